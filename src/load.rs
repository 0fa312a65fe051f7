//! Open's second half: find the data files, check each one's header, scan
//! its records in id order into the keydir, and cut the newest file's torn
//! tail back to its last good record.

use std::fs;
use std::path::Path;

use memmap2::{Advice, Mmap};

use crate::data_file::{self, DataFile};
use crate::error::{Error, Result};
use crate::format::{self, FileHeader, RecordKind, FILE_HEADER_LEN};
use crate::keydir::{Index, RecordPos};
use crate::reader::{Entry, FileSource, MmapSource, Scanner, Source};

/// The ids of the data files in `dir`, ascending. Other files are ignored.
pub fn list_data_files(dir: &Path) -> Result<Vec<u32>> {
    let mut ids = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(data_file::parse_data_file_name)
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Loads data file `id` into `index` and returns it with the offset where
/// its records end. Only the newest file may have a torn tail or header,
/// which is cut back (and synced) here; anywhere else that is corruption.
pub fn load_file(
    dir: &Path,
    id: u32,
    newest: bool,
    use_mmap: bool,
    index: &dyn Index,
) -> Result<(DataFile, u64)> {
    let file = DataFile::open(dir, id, newest)?;
    let len = file.len()?;
    if !header_is_valid(&file, len, newest)? {
        // The newest file's header was never completely written: the
        // process died while creating it, before any record went in.
        file.write_header()?;
        return Ok((file, FILE_HEADER_LEN));
    }
    let outcome = if use_mmap {
        // SAFETY: the map is read-only and dropped before this function
        // returns (before any truncation or append). The directory lock is
        // held, so no other libbitcask opener writes the file meanwhile;
        // changing it from outside while the database is open is documented
        // as unsupported.
        let map =
            unsafe { Mmap::map(file.file()) }.map_err(|e| Error::io("map", file.path(), e))?;
        // Only a hint: a kernel that refuses it still reads correctly.
        let _ = map.advise(Advice::Sequential);
        scan_into(
            &file,
            Scanner::new(MmapSource::new(map), FILE_HEADER_LEN),
            index,
        )?
    } else {
        let source = FileSource::new(file.file(), len);
        scan_into(&file, Scanner::new(source, FILE_HEADER_LEN), index)?
    };
    match outcome {
        ScanEnd::Clean(end) => Ok((file, end)),
        ScanEnd::Torn { offset, reason: _ } if newest => {
            file.file()
                .set_len(offset)
                .and_then(|()| file.file().sync_data())
                .map_err(|e| Error::io("cut the torn tail of", file.path(), e))?;
            Ok((file, offset))
        }
        ScanEnd::Torn { offset, reason } => Err(Error::corruption(
            file.path(),
            offset,
            &format!("{reason}, in a file that is not the newest (only the newest can be torn by a crash)"),
        )),
    }
}

/// Whether the file starts with a valid header of this format version.
/// `Ok(false)` means a torn header in the newest file, to be rewritten.
fn header_is_valid(file: &DataFile, len: u64, newest: bool) -> Result<bool> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    let readable = len >= FILE_HEADER_LEN;
    if readable {
        use std::os::unix::fs::FileExt;
        file.file()
            .read_exact_at(&mut header, 0)
            .map_err(|e| Error::io("read header of", file.path(), e))?;
    }
    let verdict = if readable {
        format::decode_file_header(&header)
    } else {
        FileHeader::Invalid
    };
    match verdict {
        FileHeader::Current => Ok(true),
        FileHeader::OtherVersion(version) => Err(Error::Corruption(format!(
            "{} was written in data format version {version}, and this libbitcask reads \
             version {}: open the database with a libbitcask that knows version {version}",
            file.path().display(),
            format::FORMAT_VERSION
        ))),
        FileHeader::Invalid if newest && (!readable || all_zero(file, len)?) => Ok(false),
        FileHeader::Invalid => Err(Error::corruption(
            file.path(),
            0,
            "not a libbitcask data file (bad magic or header checksum)",
        )),
    }
}

/// Whether the whole file reads as zero bytes (space never written).
fn all_zero(file: &DataFile, len: u64) -> Result<bool> {
    let mut source = FileSource::new(file.file(), len);
    let mut offset = 0;
    while offset < len {
        let chunk = source
            .read(offset, 1 << 20)
            .map_err(|e| Error::io("read", file.path(), e))?;
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        offset += chunk.len() as u64;
    }
    Ok(true)
}

enum ScanEnd {
    /// Every byte after the header is a good record; they end here.
    Clean(u64),
    /// Good records end at `offset`; what follows is a torn tail.
    Torn { offset: u64, reason: &'static str },
}

/// Applies every record of the file to `index`, in file order.
fn scan_into<S: Source>(
    file: &DataFile,
    mut scanner: Scanner<S>,
    index: &dyn Index,
) -> Result<ScanEnd> {
    let mut end = FILE_HEADER_LEN;
    loop {
        let entry = scanner
            .next_entry()
            .map_err(|e| Error::io("read", file.path(), e))?;
        match entry {
            Entry::Record {
                offset,
                len,
                kind,
                key,
            } => {
                end = offset + len;
                let (Ok(offset32), Ok(size)) = (u32::try_from(offset), u32::try_from(len)) else {
                    return Err(Error::corruption(
                        file.path(),
                        offset,
                        "record lies beyond the 4 GiB a data file can hold",
                    ));
                };
                match kind {
                    RecordKind::Put => {
                        index.put(
                            key,
                            RecordPos {
                                file_id: file.id(),
                                offset: offset32,
                                size,
                            },
                        );
                    }
                    RecordKind::Delete => {
                        index.remove(key);
                    }
                }
            }
            Entry::End => return Ok(ScanEnd::Clean(end)),
            Entry::TornTail { offset, reason } => return Ok(ScanEnd::Torn { offset, reason }),
            Entry::Corrupt { offset, reason } => {
                return Err(Error::corruption(file.path(), offset, &reason))
            }
        }
    }
}

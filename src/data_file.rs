//! One data file on disk: its name, its creation (header written, file and
//! directory synced), and the positioned read of one record by the keydir.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::{Advice, Mmap, MmapOptions};

use crate::error::{Error, Result};
use crate::format::{self, ParsedHeader, RecordKind};
use crate::keydir::RecordPos;

/// The name of data file `id`: nine digits, zero-padded, and `.data`.
pub fn data_file_name(id: u32) -> String {
    format!("{id:09}.data")
}

/// The id in a data file's name, or `None` for any other file.
pub fn parse_data_file_name(name: &str) -> Option<u32> {
    parse_file_id(name, ".data")
}

/// The id in a name of nine digits followed by `suffix` (a data or hint
/// file), or `None` for any other name.
pub fn parse_file_id(name: &str, suffix: &str) -> Option<u32> {
    let digits = name.strip_suffix(suffix)?;
    if digits.len() != 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Syncs a directory, so that files created, renamed or removed in it stay
/// so after a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// An open data file. Reads are positioned (`pread`), so any number of
/// threads read one `DataFile` at once; only the writer appends to it.
#[derive(Debug)]
pub struct DataFile {
    id: u32,
    path: PathBuf,
    file: File,
    /// A read-only map of the whole file, once it is immutable: gets then
    /// read the record in place instead of making a system call.
    map: OnceLock<Mmap>,
}

impl DataFile {
    /// Creates data file `id` in `dir` with its header, synced, and syncs the
    /// directory so that the new name survives a power loss. Fails if the
    /// file already exists.
    pub fn create(dir: &Path, id: u32) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create data file", &path, e))?;
        let data_file = DataFile {
            id,
            path,
            file,
            map: OnceLock::new(),
        };
        if let Err(e) = data_file.write_header().and_then(|()| sync_dir(dir)) {
            // Best effort: a half-made file would only be cut back at the next open.
            if std::fs::remove_file(&data_file.path).is_ok() {
                let _ = sync_dir(dir);
            }
            return Err(e);
        }
        Ok(data_file)
    }

    /// Opens an existing data file, for reading, or also for writing when it
    /// is (or may become) the active file.
    pub fn open(dir: &Path, id: u32, writable: bool) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| Error::io("open data file", &path, e))?;
        Ok(DataFile {
            id,
            path,
            file,
            map: OnceLock::new(),
        })
    }

    /// (Re)writes the file header at offset 0 and syncs it. Used at creation
    /// and when open finds the newest file's header torn.
    pub fn write_header(&self) -> Result<()> {
        self.file
            .write_all_at(&format::encode_file_header(), 0)
            .and_then(|()| self.file.set_len(format::FILE_HEADER_LEN))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("write header of", &self.path, e))
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Current length of the file on disk.
    pub fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    /// Maps the file for reads, now that it will never be written again (a
    /// full file, a merge output). Without a map (or if mapping fails: it is
    /// only faster) reads use `pread`.
    pub fn map_for_reads(&self) {
        if self.map.get().is_some() {
            return;
        }
        // SAFETY: the file is immutable from now on: libbitcask never writes
        // or truncates it again, only deletes it (the map stays valid after
        // an unlink). Changing data files from outside while the database is
        // open is documented as unsupported. The map is read-only.
        if let Ok(map) = unsafe { Mmap::map(&self.file) } {
            // Gets read single records: no readahead around them.
            let _ = map.advise(Advice::Random);
            let _ = self.map.set(map);
        }
    }

    /// Maps the first `len` bytes of the active file for reads, however
    /// short the file is yet (see [`DataFile::with_value`] for why that is
    /// safe). Failing to map is not an error: reads then use `pread`.
    pub fn map_ahead(&self, len: u64) {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        // SAFETY: reads through this map touch only the bytes of records
        // the keydir points at. Those were completely written (pwrite, whose
        // data the shared page cache shows in the map) before the keydir
        // pointed at them, and libbitcask never truncates a file below its
        // last good record, so no read reaches a page past the end of the
        // file. Pages past the end are never touched. Changing data files from
        // outside while the database is open is documented as unsupported.
        if let Ok(map) = unsafe { MmapOptions::new().len(len).map(&self.file) } {
            let _ = map.advise(Advice::Random);
            let _ = self.map.set(map);
        }
    }

    /// Calls `f` with the value of the live record at `pos`, checked as
    /// [`DataFile::read_record`] checks it: in place in the map of an
    /// immutable file, or read into `scratch`.
    pub fn with_value<R>(
        &self,
        pos: RecordPos,
        key: &[u8],
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let start = pos.offset as usize;
        let in_map = self
            .map
            .get()
            .and_then(|map| map.get(start..start + pos.size as usize));
        // Past the end of the map (a record larger than the active file's
        // map reaches, or a file shorter than the index says): pread.
        if let Some(bytes) = in_map {
            let value = self.check_record(pos, key, bytes)?;
            return Ok(f(&bytes[value]));
        }
        let value = self.read_record(pos, key, scratch)?;
        Ok(f(&scratch[value]))
    }

    /// Reads the live record at `pos` into `buf` and checks it: both
    /// checksums, a put record (in a batch or not), the expected key.
    /// Returns the range of the value within `buf`.
    pub fn read_record(
        &self,
        pos: RecordPos,
        key: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<std::ops::Range<usize>> {
        let offset = u64::from(pos.offset);
        buf.clear();
        buf.resize(pos.size as usize, 0);
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.cut_short(offset)
            } else {
                Error::io("read", &self.path, e)
            }
        })?;
        self.check_record(pos, key, buf)
    }

    fn cut_short(&self, offset: u64) -> Error {
        Error::corruption(
            &self.path,
            offset,
            "record cut short (file shorter than index)",
        )
    }

    /// Checks the bytes of the record at `pos` (exactly `pos.size` of
    /// them); returns the range of its value.
    fn check_record(
        &self,
        pos: RecordPos,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<std::ops::Range<usize>> {
        let offset = u64::from(pos.offset);
        let header = match format::parse_record_header(bytes) {
            ParsedHeader::Valid(h) => h,
            ParsedHeader::Incomplete => {
                return Err(Error::corruption(
                    &self.path,
                    offset,
                    "record header cut short",
                ))
            }
            ParsedHeader::Invalid(why) => return Err(Error::corruption(&self.path, offset, why)),
        };
        if header.record_len() != u64::from(pos.size)
            || !RecordKind::from_byte(header.type_byte).is_some_and(RecordKind::holds_value)
        {
            return Err(Error::corruption(
                &self.path,
                offset,
                "record does not match the index entry that points at it",
            ));
        }
        let body = &bytes[header.header_len..];
        if format::body_crc(body) != header.body_crc {
            return Err(Error::corruption(
                &self.path,
                offset,
                "record checksum mismatch",
            ));
        }
        let key_end = header.header_len + header.key_len as usize;
        if &bytes[header.header_len..key_end] != key {
            return Err(Error::Internal(format!(
                "{}: record at offset {offset} holds another key than the one indexed",
                self.path.display()
            )));
        }
        Ok(key_end..bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_others_are_ignored() {
        assert_eq!(data_file_name(1), "000000001.data");
        assert_eq!(parse_data_file_name("000000001.data"), Some(1));
        assert_eq!(
            parse_data_file_name(&data_file_name(4_000_000)),
            Some(4_000_000)
        );
        for other in [
            "1.data",
            "00000001.data",
            "000000001.hint",
            "LOCK",
            "0000000x1.data",
        ] {
            assert_eq!(parse_data_file_name(other), None, "{other}");
        }
    }
}

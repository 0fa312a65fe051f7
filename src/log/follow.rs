//! Reading data files that another process may be writing, for read-only
//! opens: load a file from its hint or by a scan, as `recovery.rs` does, but
//! never write, cut or rename anything, and be able to go on later from
//! where the last read stopped.
//!
//! The rules differ from recovery's, which is why this is a file of its own:
//!
//! - the newest file may be growing while it is read (a writer is
//!   appending, or died mid-append and nobody has reopened since). Its
//!   records are read up to the first one that fails a check, torn or not,
//!   and reading stops there without cutting anything; a later read goes on
//!   from that offset. A write batch without its commit record yet is not
//!   applied, and a later read starts again at its first record;
//! - every other file is immutable (a writer seals a file before it creates
//!   the next one, and a merge renames an output into place only once it is
//!   complete), so a record there that fails a check is corruption, as at
//!   a writable open;
//! - the newest file is read with positioned reads, never through a map: a
//!   writer cuts the space it grew past its last record when it seals the
//!   file, and a map that touched those pages after the cut would fault
//!   (SIGBUS). Immutable files and hint files are never cut or rewritten in
//!   place (a hint file is replaced by a rename), so they may be mapped.

use std::os::unix::fs::FileExt;
use std::path::Path;

use memmap2::{Advice, Mmap};

use super::data_file::DataFile;
use super::format::{self, FileHeader, RecordKind, FILE_HEADER_LEN};
use super::hint::{Hint, HintFile, HintKind};
use super::recovery::Apply;
use super::scanner::{FileSource, MmapSource, ScanEntry, Scanner, Source};
use super::{Change, RecordPos};
use crate::error::{Error, Result};

/// Where a read-only read of a data file stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Followed {
    /// Where the next read of this file starts: the end of its last
    /// applied record (or the first record of a batch not yet committed),
    /// or 0 while the newest file's header is not completely written yet.
    pub resume: u64,
    /// Whether the records came from the file's hint file.
    pub from_hint: bool,
}

/// Reads data file `file` from `resume` (0 for a file not read before) into
/// `sink`, without writing anything, and returns where the next read goes
/// on. `newest`: whether it is the newest data file of the directory, which
/// may still be written (see the module documentation). A file read from
/// its start uses its hint file when an intact one describes the file at
/// its present length.
pub fn follow_file(
    dir: &Path,
    file: &DataFile,
    resume: u64,
    newest: bool,
    use_mmap: bool,
    sink: &mut dyn Apply,
) -> Result<Followed> {
    let len = file.len()?;
    let followed = |resume| Followed {
        resume,
        from_hint: false,
    };
    if resume == 0 {
        if !header_written(file, len, newest)? {
            return Ok(followed(0));
        }
        if let HintFile::Usable(hint) = Hint::load(dir, file.id(), len, use_mmap)? {
            apply_hint(dir, file.id(), &hint, sink)?;
            return Ok(Followed {
                resume: len,
                from_hint: true,
            });
        }
    }
    let start = resume.max(FILE_HEADER_LEN);
    if newest || !use_mmap {
        let source = FileSource::new(file.file(), len);
        return scan(file, Scanner::new(source, start), start, newest, sink).map(followed);
    }
    // SAFETY: the file is not the newest, so it is immutable: it was sealed
    // (cut to its last record) before a newer file was created, and
    // libbitcask never writes, cuts or truncates it again, only deletes it,
    // which leaves the map intact. The map is dropped before returning.
    let map = unsafe { Mmap::map(file.file()) }.map_err(|e| Error::io("map", file.path(), e))?;
    // Only a hint: a kernel that refuses it still reads correctly.
    let _ = map.advise(Advice::Sequential);
    let scanner = Scanner::new(MmapSource::new(map), start);
    scan(file, scanner, start, newest, sink).map(followed)
}

/// Whether the file starts with a header of this format version; `false`
/// for the newest file while its header is not completely written (the
/// writer is creating it), an error for anything else.
fn header_written(file: &DataFile, len: u64, newest: bool) -> Result<bool> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    let got = len.min(FILE_HEADER_LEN) as usize;
    file.file()
        .read_exact_at(&mut header[..got], 0)
        .map_err(|e| Error::io("read header of", file.path(), e))?;
    let verdict = if got == header.len() {
        format::decode_file_header(&header)
    } else {
        FileHeader::Invalid
    };
    match verdict {
        FileHeader::Current => Ok(true),
        FileHeader::OtherVersion(version) => Err(Error::Corruption(format!(
            "{} was written in data format version {version}, and this libbitcask reads \
             version {}",
            file.path().display(),
            format::FORMAT_VERSION
        ))),
        // A header being written: each byte is the final one or still zero.
        FileHeader::Invalid
            if newest
                && header
                    .iter()
                    .zip(format::encode_file_header())
                    .all(|(&have, want)| have == 0 || have == want) =>
        {
            Ok(false)
        }
        FileHeader::Invalid => Err(Error::corruption(
            file.path(),
            0,
            "not a libbitcask data file (bad magic or header checksum)",
        )),
    }
}

/// Applies the entries of an intact hint file to `sink`, a run at a time.
fn apply_hint(dir: &Path, id: u32, hint: &Hint, sink: &mut dyn Apply) -> Result<()> {
    sink.reserve(hint);
    let run_len = sink.run_len().max(1);
    let mut run = Vec::with_capacity(run_len.min(hint.max_entries()));
    let decoded = hint.for_each(|kind, key, offset, size| {
        run.push(Change {
            key,
            pos: RecordPos {
                file_id: id,
                offset,
                size,
            },
            delete: kind == HintKind::Delete,
        });
        if run.len() == run_len {
            sink.apply_run(&run);
            run.clear();
        }
    });
    if !decoded {
        return Err(Error::Corruption(format!(
            "{}: the hint file passes its checksum but does not decode",
            dir.join(super::filename::hint_file_name(id)).display()
        )));
    }
    sink.apply_run(&run);
    Ok(())
}

/// A batch record waiting for its commit record.
struct BatchRecord {
    delete: bool,
    key: Vec<u8>,
    pos: RecordPos,
}

/// Applies the records from `start` on to `sink`, the records of a batch at
/// its commit record, and returns where the next read goes on.
fn scan<S: Source>(
    file: &DataFile,
    mut scanner: Scanner<S>,
    start: u64,
    newest: bool,
    sink: &mut dyn Apply,
) -> Result<u64> {
    let mut end = start;
    let mut pending: Vec<BatchRecord> = Vec::new();
    let mut run_start = start;
    loop {
        let entry = scanner
            .next_entry()
            .map_err(|e| Error::io("read", file.path(), e))?;
        let (offset, len, kind, key, value) = match entry {
            ScanEntry::Record {
                offset,
                len,
                kind,
                key,
                value,
            } => (offset, len, kind, key, value),
            ScanEntry::End => break,
            // Not written completely yet, or torn by a writer that died:
            // either way not read, and not cut.
            ScanEntry::TornTail { .. } | ScanEntry::Corrupt { .. } if newest => break,
            ScanEntry::TornTail { offset, reason } => {
                return Err(Error::corruption(
                    file.path(),
                    offset,
                    &format!("{reason}, in a file that is no longer written to"),
                ))
            }
            ScanEntry::Corrupt { offset, reason } => {
                return Err(Error::corruption(file.path(), offset, &reason))
            }
        };
        end = offset + len;
        let (Ok(offset32), Ok(size)) = (u32::try_from(offset), u32::try_from(len)) else {
            return Err(Error::corruption(
                file.path(),
                offset,
                "record lies beyond the 4 GiB a data file can hold",
            ));
        };
        let pos = RecordPos {
            file_id: file.id(),
            offset: offset32,
            size,
        };
        match kind {
            // A lost value's marker stands for the key as a put would.
            RecordKind::Put | RecordKind::Delete | RecordKind::LostValue => {
                // Batch records that a plain record follows were never
                // committed (a batch is one contiguous append).
                pending.clear();
                apply(sink, kind == RecordKind::Delete, key, pos);
            }
            RecordKind::BatchPut | RecordKind::BatchDelete => {
                if pending.is_empty() {
                    run_start = offset;
                }
                pending.push(BatchRecord {
                    delete: kind == RecordKind::BatchDelete,
                    key: key.to_vec(),
                    pos,
                });
            }
            RecordKind::BatchCommit => {
                let count = format::decode_batch_commit(key, value)
                    .map(|(_, count)| count as usize)
                    .filter(|&count| count <= pending.len());
                let Some(count) = count else {
                    return Err(Error::corruption(
                        file.path(),
                        offset,
                        "batch commit record that does not match the batch records before it",
                    ));
                };
                for p in &pending[pending.len() - count..] {
                    apply(sink, p.delete, &p.key, p.pos);
                }
                pending.clear();
            }
        }
    }
    // In the newest file, a batch whose commit record is not written yet is
    // read again, whole, next time. Elsewhere it is a dead batch: skipped.
    Ok(if newest && !pending.is_empty() {
        run_start
    } else {
        end
    })
}

/// Applies one put or delete.
fn apply(sink: &mut dyn Apply, delete: bool, key: &[u8], pos: RecordPos) {
    if delete {
        sink.delete(key, pos);
    } else {
        sink.put(key, pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::format::encode_record;
    use std::collections::BTreeMap;
    use std::fs;
    use std::path::PathBuf;

    /// The keys and values a sink was given, read back from the file.
    #[derive(Default)]
    struct Seen(BTreeMap<Vec<u8>, RecordPos>);

    impl Apply for Seen {
        fn put(&mut self, key: &[u8], pos: RecordPos) {
            self.0.insert(key.to_vec(), pos);
        }
        fn delete(&mut self, key: &[u8], _pos: RecordPos) {
            self.0.remove(key);
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bitcask-follow-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn file_with(dir: &Path, bytes: &[u8]) -> DataFile {
        let mut all = format::encode_file_header().to_vec();
        all.extend_from_slice(bytes);
        fs::write(dir.join("000000001.data"), all).unwrap();
        DataFile::open(dir, 1, false).unwrap()
    }

    fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut all: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().into_string().unwrap(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        all.sort();
        all
    }

    #[test]
    fn the_newest_file_is_read_to_its_last_good_record_and_nothing_is_cut() {
        let dir = temp_dir("torn");
        let mut bytes = Vec::new();
        encode_record(RecordKind::Put, b"a", b"1", &mut bytes);
        let good = FILE_HEADER_LEN + bytes.len() as u64;
        encode_record(RecordKind::Put, b"b", b"22", &mut bytes);
        bytes.truncate(bytes.len() - 1); // the last record is torn
        bytes.extend_from_slice(&[0; 100]);
        let file = file_with(&dir, &bytes);
        let before = snapshot(&dir);
        let mut seen = Seen::default();
        let got = follow_file(&dir, &file, 0, true, true, &mut seen).unwrap();
        assert_eq!(got.resume, good);
        assert_eq!(seen.0.keys().collect::<Vec<_>>(), [b"a"]);
        assert_eq!(
            snapshot(&dir),
            before,
            "a read-only read changed the directory"
        );
        // The same bytes in a file that is not the newest are corruption.
        let err = follow_file(&dir, &file, 0, false, true, &mut Seen::default()).unwrap_err();
        assert!(matches!(err, Error::Corruption(_)), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_batch_without_its_commit_record_is_read_again_once_it_has_one() {
        let dir = temp_dir("batch");
        let mut bytes = Vec::new();
        encode_record(RecordKind::Put, b"a", b"1", &mut bytes);
        let batch_start = FILE_HEADER_LEN + bytes.len() as u64;
        encode_record(RecordKind::BatchPut, b"b", b"2", &mut bytes);
        encode_record(RecordKind::BatchPut, b"c", b"3", &mut bytes);
        let file = file_with(&dir, &bytes);
        let mut seen = Seen::default();
        let got = follow_file(&dir, &file, 0, true, false, &mut seen).unwrap();
        assert_eq!(got.resume, batch_start);
        assert_eq!(seen.0.len(), 1);
        // The writer appends the commit record: the batch applies whole.
        format::encode_batch_commit(1, 2, &mut bytes);
        let file = file_with(&dir, &bytes);
        let got = follow_file(&dir, &file, got.resume, true, false, &mut seen).unwrap();
        assert_eq!(got.resume, file.len().unwrap());
        assert_eq!(seen.0.keys().collect::<Vec<_>>(), [b"a", b"b", b"c"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_header_still_being_written_is_no_records_yet_only_in_the_newest_file() {
        let dir = temp_dir("header");
        let header = format::encode_file_header();
        for written in [0, 5, 15] {
            let mut bytes = header[..written].to_vec();
            bytes.resize(FILE_HEADER_LEN as usize, 0);
            fs::write(dir.join("000000001.data"), &bytes).unwrap();
            let file = DataFile::open(&dir, 1, false).unwrap();
            let got = follow_file(&dir, &file, 0, true, true, &mut Seen::default()).unwrap();
            assert_eq!(got.resume, 0, "{written} bytes");
            assert!(follow_file(&dir, &file, 0, false, true, &mut Seen::default()).is_err());
        }
        fs::write(dir.join("000000001.data"), b"not a data file!").unwrap();
        let file = DataFile::open(&dir, 1, false).unwrap();
        assert!(follow_file(&dir, &file, 0, true, true, &mut Seen::default()).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}

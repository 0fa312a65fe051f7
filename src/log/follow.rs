//! Reading data files that another process may be writing, for read-only
//! opens: load a file from its hint or by a scan, through the same code as
//! a writable open (`replay.rs`), but never write, cut or rename anything,
//! and be able to go on later from where the last read stopped.
//!
//! The rules differ from recovery's (`recovery.rs`), which is why this is a
//! file of its own:
//!
//! - the newest file may be growing while it is read (a writer is
//!   appending, or died mid-append and nobody has reopened since). Its
//!   records are read up to the first one that fails a check, torn or not,
//!   and reading stops there without cutting anything; a later read goes on
//!   from that offset. A write batch without its commit record yet is not
//!   applied, and a later read starts again at its first record. A header
//!   still being written (each byte final or still zero) is no records yet;
//! - every other file is immutable (a writer seals a file before it creates
//!   the next one, and a merge renames an output into place only once it is
//!   complete), so a record there that fails a check is damage, refused as
//!   a writable open refuses it, unless only zeros follow (space allocated
//!   and never written, which a writable open cuts: here simply not read);
//! - a hint file is used as a writable open uses it: one that fails its
//!   checks is ignored, and one whose entries turn out not to decode part
//!   way through makes the caller load again without it
//!   ([`Following::HintRejected`]);
//! - the newest file is read with positioned reads, never through a map: a
//!   writer cuts the space it grew past its last record when it seals the
//!   file, and a map that touched those pages after the cut would fault
//!   (SIGBUS). Immutable files and hint files are never cut or rewritten in
//!   place (a hint file is replaced by a rename), so they may be mapped.

use std::path::Path;

use memmap2::{Advice, Mmap};

use super::data_file::{read_header, DataFile, Header, NOT_A_HEADER};
use super::format::{self, FILE_HEADER_LEN};
use super::hint::{Hint, HintFile};
use super::recovery::sealed_damage;
use super::replay::{apply_hint, replay, Apply, ScanEnd};
use super::scanner::{zeros_to_end, FileSource, MmapSource, Scanner, Source};
use crate::error::{Error, Result};

/// How a read-only read treats one data file.
#[derive(Clone, Copy, Debug)]
pub struct FollowMode {
    /// The newest data file of the directory, which may still be written
    /// (see the module documentation).
    pub newest: bool,
    /// Read an immutable file, and hint files, through a memory map.
    pub use_mmap: bool,
    /// Do not use its hint file (an earlier read rejected it).
    pub ignore_hint: bool,
}

/// Where a read-only read of a data file stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Followed {
    /// Where the next read of this file starts: the end of its last
    /// applied record (or the first record of a batch not yet committed),
    /// or 0 while the newest file's header is not completely written yet.
    pub resume: u64,
    /// Whether the records came from the file's hint file.
    pub from_hint: bool,
    /// Whether a hint file was there but not used (damaged, of another
    /// file, or ignored by `mode`; not a stale hint of the newest file).
    pub hint_ignored: bool,
}

/// What [`follow_file`] did with one data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Following {
    /// It is read.
    Read(Followed),
    /// Its hint file turned out not to decode after some of its entries
    /// were applied to the sink: load again, with
    /// [`FollowMode::ignore_hint`] for this file.
    HintRejected,
}

/// Reads data file `file` from `resume` (0 for a file not read before) into
/// `sink`, without writing anything, and says where the next read goes on.
/// A file read from its start uses its hint file when an intact one
/// describes the file at its present length.
pub fn follow_file(
    dir: &Path,
    file: &DataFile,
    resume: u64,
    mode: FollowMode,
    sink: &mut dyn Apply,
) -> Result<Following> {
    let len = file.len()?;
    let mut followed = Followed {
        resume: 0,
        from_hint: false,
        hint_ignored: false,
    };
    if resume == 0 {
        if !header_written(file, len, mode.newest)? {
            return Ok(Following::Read(followed));
        }
        let hint = match mode.ignore_hint {
            true => HintFile::Unusable("ignored"),
            false => Hint::load(dir, file.id(), len, mode.use_mmap)?,
        };
        match hint {
            HintFile::Usable(hint) => {
                if apply_hint(&hint, file.id(), len, sink).is_err() {
                    return Ok(Following::HintRejected);
                }
                followed.resume = len;
                followed.from_hint = true;
                return Ok(Following::Read(followed));
            }
            // The newest file's hint from the writer's last clean close
            // goes stale with its first write after it.
            HintFile::Stale if mode.newest => {}
            HintFile::Stale | HintFile::Unusable(_) => followed.hint_ignored = true,
            HintFile::Missing => {}
        }
    }
    let start = resume.max(FILE_HEADER_LEN);
    followed.resume = if mode.newest || !mode.use_mmap {
        let source = FileSource::new(file.file(), len);
        scan(file, Scanner::new(source, start), mode.newest, sink)?
    } else {
        // SAFETY: the file is not the newest, so it is immutable: it was
        // sealed (cut to its last record) before a newer file was created,
        // and libbitcask never writes, cuts or truncates it again, only
        // deletes it, which leaves the map intact. The map is dropped before
        // returning.
        let map =
            unsafe { Mmap::map(file.file()) }.map_err(|e| Error::io("map", file.path(), e))?;
        // Only a hint: a kernel that refuses it still reads correctly.
        let _ = map.advise(Advice::Sequential);
        scan(file, Scanner::new(MmapSource::new(map), start), false, sink)?
    };
    Ok(Following::Read(followed))
}

/// Whether the file starts with a header of this format version; `false`
/// for the newest file while its header is not completely written (the
/// writer is creating it), an error for anything else.
fn header_written(file: &DataFile, len: u64, newest: bool) -> Result<bool> {
    match read_header(file.file(), file.path(), len)? {
        Header::Valid => Ok(true),
        Header::Invalid(bytes) if newest && format::is_partial_file_header(&bytes) => Ok(false),
        Header::Invalid(_) => Err(Error::corruption(file.path(), 0, NOT_A_HEADER)),
    }
}

/// Applies the records from where `scanner` stands on to `sink` and returns
/// where the next read goes on (see the module documentation for the
/// newest file and the others).
fn scan<S: Source>(
    file: &DataFile,
    scanner: Scanner<S>,
    newest: bool,
    sink: &mut dyn Apply,
) -> Result<u64> {
    let replayed = replay(file, scanner, sink)?;
    if let (ScanEnd::Bad { offset, reason }, false) = (&replayed.end, newest) {
        let mut source = FileSource::new(file.file(), file.len()?);
        let zeros =
            zeros_to_end(&mut source, *offset).map_err(|e| Error::io("read", file.path(), e))?;
        if !zeros {
            return Err(sealed_damage(file.path(), *offset, reason));
        }
    }
    // In the newest file, a batch whose commit record is not written yet is
    // read again, whole, next time. Elsewhere it is a dead batch: skipped.
    Ok(match replayed.uncommitted_from {
        Some(start) if newest => start,
        _ => replayed.end.good_end(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::format::{encode_record, RecordKind};
    use crate::log::RecordPos;
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

    fn mode(newest: bool, use_mmap: bool) -> FollowMode {
        FollowMode {
            newest,
            use_mmap,
            ignore_hint: false,
        }
    }

    /// `follow_file` for a file whose hint is not rejected.
    fn read(
        dir: &Path,
        file: &DataFile,
        resume: u64,
        mode: FollowMode,
        sink: &mut dyn Apply,
    ) -> Result<Followed> {
        match follow_file(dir, file, resume, mode, sink)? {
            Following::Read(followed) => Ok(followed),
            Following::HintRejected => panic!("hint rejected"),
        }
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
        let got = read(&dir, &file, 0, mode(true, true), &mut seen).unwrap();
        assert_eq!(got.resume, good);
        assert_eq!(seen.0.keys().collect::<Vec<_>>(), [b"a"]);
        assert_eq!(
            snapshot(&dir),
            before,
            "a read-only read changed the directory"
        );
        // The same bytes in a file that is not the newest are corruption.
        let err = read(&dir, &file, 0, mode(false, true), &mut Seen::default()).unwrap_err();
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
        let got = read(&dir, &file, 0, mode(true, false), &mut seen).unwrap();
        assert_eq!(got.resume, batch_start);
        assert_eq!(seen.0.len(), 1);
        // The writer appends the commit record: the batch applies whole.
        format::encode_batch_commit(1, 2, &mut bytes);
        let file = file_with(&dir, &bytes);
        let got = read(&dir, &file, got.resume, mode(true, false), &mut seen).unwrap();
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
            let got = read(&dir, &file, 0, mode(true, true), &mut Seen::default()).unwrap();
            assert_eq!(got.resume, 0, "{written} bytes");
            assert!(read(&dir, &file, 0, mode(false, true), &mut Seen::default()).is_err());
        }
        fs::write(dir.join("000000001.data"), b"not a data file!").unwrap();
        let file = DataFile::open(&dir, 1, false).unwrap();
        assert!(read(&dir, &file, 0, mode(true, true), &mut Seen::default()).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A hint file whose checksum holds but whose entries do not decode
    /// (here its last entry has an unknown kind) is rejected, as at a
    /// writable open; loaded again without it, the file is scanned.
    #[test]
    fn a_hint_that_does_not_decode_is_rejected_and_the_file_scanned_instead() {
        use crate::log::hint::{write_hint_file, HintBuilder, HintKind};
        let dir = temp_dir("hint");
        let mut bytes = Vec::new();
        let mut hint = HintBuilder::new(1);
        for key in [&b"a"[..], b"b"] {
            let offset = FILE_HEADER_LEN as u32 + bytes.len() as u32;
            encode_record(RecordKind::Put, key, b"value", &mut bytes);
            let size = FILE_HEADER_LEN as u32 + bytes.len() as u32 - offset;
            let pos = RecordPos {
                file_id: 1,
                offset,
                size,
            };
            hint.push(HintKind::Put, key, pos);
        }
        let file = file_with(&dir, &bytes);
        let len = file.len().unwrap();
        let mut hint = hint.finish(len, 0);
        // The last entry's kind byte: 1 + 1 (key length) + 8 + 1 (key) from
        // the end of the entries, before the 4-byte checksum.
        let kind_at = hint.len() - 4 - 11;
        assert_eq!(hint[kind_at], HintKind::Put as u8);
        hint[kind_at] = 9;
        let crc = crc32fast::hash(&hint[..hint.len() - 4]);
        let end = hint.len();
        hint[end - 4..].copy_from_slice(&crc.to_le_bytes());
        write_hint_file(&dir, 1, &hint).unwrap();
        let rejected = follow_file(&dir, &file, 0, mode(false, true), &mut Seen::default());
        assert_eq!(rejected.unwrap(), Following::HintRejected);
        let mut seen = Seen::default();
        let ignoring = FollowMode {
            ignore_hint: true,
            ..mode(false, true)
        };
        let got = read(&dir, &file, 0, ignoring, &mut seen).unwrap();
        assert_eq!(
            (got.resume, got.from_hint, got.hint_ignored),
            (len, false, true)
        );
        assert_eq!(seen.0.keys().collect::<Vec<_>>(), [b"a", b"b"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Zeros after an immutable file's last record (a `fallocate` that
    /// failed part-way leaves them; a writable open cuts them) are not
    /// damage: the records before them are read, nothing is cut. Anything
    /// else after the last record is.
    #[test]
    fn zeros_after_an_immutable_files_last_record_are_not_read_and_not_damage() {
        let dir = temp_dir("zeros");
        let mut bytes = Vec::new();
        encode_record(RecordKind::Put, b"a", b"1", &mut bytes);
        let good = FILE_HEADER_LEN + bytes.len() as u64;
        bytes.extend_from_slice(&[0; 4096]);
        let file = file_with(&dir, &bytes);
        let mut seen = Seen::default();
        let got = read(&dir, &file, 0, mode(false, true), &mut seen).unwrap();
        assert_eq!(got.resume, good);
        assert_eq!(seen.0.len(), 1);
        assert_eq!(file.len().unwrap(), good + 4096, "nothing was cut");
        bytes[200] = 1;
        let file = file_with(&dir, &bytes);
        let err = read(&dir, &file, 0, mode(false, true), &mut Seen::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Corruption(text) if text.contains("repair")),
            "{err}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}

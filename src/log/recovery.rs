//! Recovery at open, file by file: check each data file's header, load
//! its records (from its hint file when a valid one exists, else by a
//! scan) into a sink, in log order, and cut the newest file's torn tail
//! back to its last good record. The sink is the keydir at open (see
//! `db/open.rs`) or a hint file being built.
//!
//! Write batches: batch records are held back until their commit record,
//! which names how many records right before it belong to the batch; then
//! they are applied together. Batch records that no commit record claims
//! (a writer died in the middle of a batch's append) are ignored, and at the
//! end of the newest file they are cut off with the torn tail, so that no
//! later append lands after them.

use std::fs;
use std::path::Path;

use memmap2::{Advice, Mmap};

use super::data_file::DataFile;
use super::dir::sync_dir;
use super::filename::{hint_file_name, FileName};
use super::format::{self, FileHeader, RecordKind, FILE_HEADER_LEN};
use super::hint::{Hint, HintBuilder, HintKind};
use super::scanner::{FileSource, MmapSource, ScanEntry, Scanner, Source};
use super::{Change, RecordPos};
use crate::error::{Error, Result};

/// Removes what a crash can leave behind besides data files: a merge output
/// or hint file still under its temporary name, and a hint file whose data
/// file is gone (a merge deleted the data file first). `data_ids` are the
/// data files present, ascending.
pub fn remove_leftovers(dir: &Path, data_ids: &[u32]) -> Result<()> {
    let mut removed = false;
    for (name, found) in super::dir::list(dir)? {
        let leftover = match name {
            FileName::TempData(_) | FileName::TempHint(_) => true,
            FileName::Hint(id) => data_ids.binary_search(&id).is_err(),
            FileName::Data(_) | FileName::Lock => false,
        };
        if leftover {
            let path = dir.join(found);
            fs::remove_file(&path).map_err(|e| Error::io("remove leftover", &path, e))?;
            removed = true;
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Where the records of a scanned data file (or its hint) go, in file
/// order: the keydir at open, a hint file being built afterwards.
pub trait Apply {
    /// `key`'s value is the record at `pos`.
    fn put(&mut self, key: &[u8], pos: RecordPos);
    /// `key` is deleted by the tombstone at `pos`.
    fn delete(&mut self, key: &[u8], pos: RecordPos);
    /// The entries of `hint` are about to come in (through
    /// [`Apply::apply_run`]): a chance to make room for them.
    fn reserve(&mut self, hint: &Hint) {
        let _ = hint;
    }
    /// How many changes [`Apply::apply_run`] is best given at a time.
    fn run_len(&self) -> usize {
        4096
    }
    /// The next changes, in order, all at once: what a hint file holds.
    fn apply_run(&mut self, changes: &[Change<'_>]) {
        for c in changes {
            apply(self, c.delete, c.key, c.pos);
        }
    }
}

impl Apply for HintBuilder {
    fn put(&mut self, key: &[u8], pos: RecordPos) {
        self.push(HintKind::Put, key, pos);
    }

    fn delete(&mut self, key: &[u8], pos: RecordPos) {
        self.push(HintKind::Delete, key, pos);
    }
}

/// A data file as open left it.
pub struct Loaded {
    pub file: DataFile,
    /// Where its good records end: where appending continues.
    pub end: u64,
    /// The largest batch sequence number among its commit records (0: none).
    pub max_batch_seq: u64,
    /// Whether its records came from its hint file rather than a scan.
    pub from_hint: bool,
}

/// Loads data file `id` into `sink` and returns it with the offset where
/// its records end: from its hint file when a valid one exists, otherwise
/// by scanning it. Only the newest file may have a torn tail or header,
/// which is cut back (and synced) here; anywhere else that is corruption.
pub fn load_file(
    dir: &Path,
    id: u32,
    newest: bool,
    use_mmap: bool,
    sink: &mut dyn Apply,
) -> Result<Loaded> {
    let file = DataFile::open(dir, id, newest)?;
    let len = file.len()?;
    if !header_is_valid(&file, len, newest)? {
        // The newest file's header was never completely written: the
        // process died while creating it, before any record went in.
        file.write_header()?;
        return Ok(Loaded {
            file,
            end: FILE_HEADER_LEN,
            max_batch_seq: 0,
            from_hint: false,
        });
    }
    if let Some(hint) = Hint::read(dir, id, len, use_mmap)? {
        // Room for the file's keys up front, rather than growing the index
        // several times over while they go in: a hash index rehashes every
        // key it has each time it grows.
        sink.reserve(&hint);
        let run_len = sink.run_len().max(1);
        let mut run = Vec::with_capacity(run_len.min(hint.max_entries()));
        let applied = hint.for_each(|kind, key, offset, size| {
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
        if applied {
            sink.apply_run(&run);
        } else {
            return Err(Error::Corruption(format!(
                "{}: the hint file passes its checksum but does not decode; delete it and \
                 open again (the data file is then scanned)",
                dir.join(hint_file_name(id)).display()
            )));
        }
        return Ok(Loaded {
            file,
            end: len,
            max_batch_seq: hint.max_batch_seq(),
            from_hint: true,
        });
    }
    let outcome = scan_file(&file, len, use_mmap, sink)?;
    let max_batch_seq = outcome.max_batch_seq;
    let loaded = |file, end| {
        Ok(Loaded {
            file,
            end,
            max_batch_seq,
            from_hint: false,
        })
    };
    // An uncommitted batch at the end of the newest file is part of its torn
    // tail: cut it too, or the next append would land after dead records.
    let end = match (outcome.end, outcome.uncommitted_from) {
        (ScanEnd::Clean(_), Some(start)) if newest => ScanEnd::Torn {
            offset: start,
            reason: "batch without its commit record",
        },
        (ScanEnd::Torn { reason, .. }, Some(start)) if newest => ScanEnd::Torn {
            offset: start,
            reason,
        },
        (end, _) => end,
    };
    match end {
        ScanEnd::Clean(end) => loaded(file, end),
        ScanEnd::Torn { offset, reason: _ } if newest => {
            file.file()
                .set_len(offset)
                .and_then(|()| file.file().sync_data())
                .map_err(|e| Error::io("cut the torn tail of", file.path(), e))?;
            loaded(file, offset)
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
pub fn header_is_valid(file: &DataFile, len: u64, newest: bool) -> Result<bool> {
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

/// What a scan of one file found.
struct ScanOutcome {
    end: ScanEnd,
    /// Where the batch records that no commit record claimed begin, if the
    /// file ends with some.
    uncommitted_from: Option<u64>,
    max_batch_seq: u64,
}

/// A batch record waiting for its commit record.
struct BatchRecord {
    delete: bool,
    key: Vec<u8>,
    pos: RecordPos,
}

/// Scans the `len` bytes of `file` into `sink`, through a memory map or
/// positioned reads.
fn scan_file(
    file: &DataFile,
    len: u64,
    use_mmap: bool,
    sink: &mut dyn Apply,
) -> Result<ScanOutcome> {
    if use_mmap {
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
            file,
            Scanner::new(MmapSource::new(map), FILE_HEADER_LEN),
            sink,
        )
    } else {
        let source = FileSource::new(file.file(), len);
        scan_into(file, Scanner::new(source, FILE_HEADER_LEN), sink)
    }
}

/// The hint file of an immutable data file, from a scan of it (positioned
/// reads: the file may be large, and is read once).
pub fn build_hint(file: &DataFile) -> Result<Vec<u8>> {
    let len = file.len()?;
    let mut builder = HintBuilder::new(file.id());
    let outcome = scan_file(file, len, false, &mut builder)?;
    match outcome.end {
        ScanEnd::Clean(end) if end == len && outcome.uncommitted_from.is_none() => {
            Ok(builder.finish(len, outcome.max_batch_seq))
        }
        _ => Err(Error::Internal(format!(
            "{} is no longer written to but does not end with a complete record",
            file.path().display()
        ))),
    }
}

/// Applies every record of the file to `sink`, in file order; the records
/// of a batch together, at its commit record.
fn scan_into<S: Source>(
    file: &DataFile,
    mut scanner: Scanner<S>,
    sink: &mut dyn Apply,
) -> Result<ScanOutcome> {
    let mut end = FILE_HEADER_LEN;
    let mut pending: Vec<BatchRecord> = Vec::new();
    // Where the run of pending batch records starts.
    let mut run_start = FILE_HEADER_LEN;
    let mut max_batch_seq = 0;
    loop {
        let entry = scanner
            .next_entry()
            .map_err(|e| Error::io("read", file.path(), e))?;
        match entry {
            ScanEntry::Record {
                offset,
                len,
                kind,
                key,
                value,
            } => {
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
                    RecordKind::Put | RecordKind::Delete => {
                        // Batch records that a plain record follows were
                        // never committed (a batch is one contiguous append).
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
                        let Some((seq, count)) = format::decode_batch_commit(key, value) else {
                            return Err(Error::corruption(
                                file.path(),
                                offset,
                                "malformed batch commit record",
                            ));
                        };
                        let count = count as usize;
                        if count > pending.len() {
                            return Err(Error::corruption(
                                file.path(),
                                offset,
                                &format!(
                                    "batch {seq} commits {count} records but only {} batch \
                                     records precede its commit record",
                                    pending.len()
                                ),
                            ));
                        }
                        // Records before the batch's own are a dead batch's.
                        for p in &pending[pending.len() - count..] {
                            apply(sink, p.delete, &p.key, p.pos);
                        }
                        pending.clear();
                        max_batch_seq = max_batch_seq.max(seq);
                    }
                }
            }
            ScanEntry::End | ScanEntry::TornTail { .. } => {
                let end = match entry {
                    ScanEntry::TornTail { offset, reason } => ScanEnd::Torn { offset, reason },
                    _ => ScanEnd::Clean(end),
                };
                return Ok(ScanOutcome {
                    end,
                    uncommitted_from: (!pending.is_empty()).then_some(run_start),
                    max_batch_seq,
                });
            }
            ScanEntry::Corrupt { offset, reason } => {
                return Err(Error::corruption(file.path(), offset, &reason))
            }
        }
    }
}

/// Applies one put or delete.
fn apply(sink: &mut (impl Apply + ?Sized), delete: bool, key: &[u8], pos: RecordPos) {
    if delete {
        sink.delete(key, pos);
    } else {
        sink.put(key, pos);
    }
}

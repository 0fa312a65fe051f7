//! Recovery at open, file by file: check each data file's header, load
//! its records into a sink (from its hint file when a usable one exists,
//! else by a scan: both in `replay.rs`), and apply the recovery rules of
//! `docs/format.md` to where the good records end: cut the newest file's
//! tail, cut zeros off sealed files, refuse damage no crash explains. What
//! was done goes into the report of `recovery_report.rs`. The sink is the
//! keydir at open (see `db/open.rs`) or a hint file being built.
//!
//! The rules follow from the crash model: a killed process leaves what it
//! had copied into the page cache; a power cut leaves the synced bytes of
//! every file and, of the newest file's unsynced pages, any subset, written
//! back in any order; a data file is synced whole before the next one is
//! created (it is sealed), and so is the active file at a clean close,
//! which also writes its hint file (naming its exact length: the mark of a
//! clean close).
//!
//! - In the newest file without a usable hint, the first record that fails
//!   a check ends the good data: every synced record lies before it (a
//!   sync makes a prefix of the file durable). What follows is the tail:
//!   copied to a quarantine file if it holds any non-zero byte (see
//!   `quarantine.rs`), then cut off, and the cut reported ([`TailCut`]).
//!   With `strict` open refuses instead.
//! - In a sealed file, zeros from a record boundary to the end are space
//!   allocated and never written (a failed `fallocate` leaves them): cut.
//!   Anything else that fails a check is damage no crash explains:
//!   [`Error::Corruption`], naming the file and offset, and repair.
//! - A file loaded from its hint is not read; damage in it is found by the
//!   get that reads the record. A hint that fails its checks, or whose
//!   entries do not decode or point outside the file, is ignored and the
//!   data file scanned.
//!
//! Write batches are applied only at their commit record (`replay.rs`).
//! Batch records that no commit record claims (a writer died in the middle
//! of a batch's append) are ignored, and at the end of the newest file they
//! are cut off with the torn tail, so that no later append lands after them.

use std::fs::{self, OpenOptions};
use std::path::Path;

use memmap2::{Advice, Mmap};

use super::data_file::{read_header, DataFile, Header, NOT_A_HEADER};
use super::dir::sync_dir;
use super::filename::FileName;
use super::format::FILE_HEADER_LEN;
use super::hint::{Hint, HintBuilder, HintFile};
use super::quarantine::quarantine_range;
use super::recovery_report::{FileRecovery, TailCut};
use super::replay::{apply_hint, replay, Apply, Replayed, ScanEnd};
use super::scanner::{zeros_to_end, FileSource, MmapSource, ScanEntry, Scanner};
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
            // Never completed, so never relied on: the bytes it was to hold
            // are still in their data file (it is cut only afterwards).
            FileName::TempQuarantine { .. } => true,
            FileName::Hint(id) => data_ids.binary_search(&id).is_err(),
            FileName::Data(_) | FileName::Lock | FileName::Quarantine { .. } => false,
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
/// The hint file of data file `id` turned out unusable after some of its
/// entries were applied: open must load every file again without it.
#[derive(Debug)]
pub struct HintRejected {
    pub id: u32,
}

/// What [`load_file`] did with one data file.
pub enum Loading {
    /// It is loaded.
    Loaded(Box<Loaded>),
    /// Its hint file was rejected part-way: load everything again, with
    /// [`LoadMode::ignore_hint`] for this file.
    HintRejected(HintRejected),
}

/// How open treats one data file.
#[derive(Clone, Copy, Debug)]
pub struct LoadMode {
    /// The newest data file: the one a crash can leave with a tail to cut.
    pub newest: bool,
    /// Read it (and its hint) through a memory map.
    pub use_mmap: bool,
    /// Refuse, rather than quarantine and cut, a tail that holds anything
    /// but zeros.
    pub strict: bool,
    /// Do not use its hint file (it was rejected by an earlier attempt).
    pub ignore_hint: bool,
    /// Where the records not yet in the sink begin: [`FILE_HEADER_LEN`],
    /// or where a checkpoint of the index ends (`db/saved_keydir.rs`). From
    /// later than the header the file is scanned from there, its hint
    /// unused.
    pub from: u64,
}

impl LoadMode {
    /// The whole file, from just after its header.
    pub fn whole(newest: bool, use_mmap: bool, strict: bool) -> LoadMode {
        LoadMode {
            newest,
            use_mmap,
            strict,
            ignore_hint: false,
            from: FILE_HEADER_LEN,
        }
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
    /// What open did to it besides reading it.
    pub recovered: FileRecovery,
}

/// Loads data file `id` into `sink` and returns it with the offset where
/// its records end: from its hint file when a usable one exists, otherwise
/// by scanning it, applying the recovery rules of the module documentation.
pub fn load_file(dir: &Path, id: u32, mode: LoadMode, sink: &mut dyn Apply) -> Result<Loading> {
    let newest = mode.newest;
    let file = DataFile::open(dir, id, newest)?;
    let len = file.len()?;
    let mut recovered = FileRecovery::default();
    if let Header::Invalid(_) = read_header(file.file(), file.path(), len)? {
        // Only the newest file's header can be torn, and only before any
        // record went in (the process died while creating the file): the
        // file is then all zeros, or shorter than a header.
        let torn = newest && (len < FILE_HEADER_LEN || all_zero(&file, 0, len)?);
        if !torn {
            return Err(Error::corruption(file.path(), 0, NOT_A_HEADER));
        }
        file.write_header()?;
        recovered.header_rewritten = true;
        return Ok(Loading::Loaded(Box::new(Loaded {
            file,
            end: FILE_HEADER_LEN,
            max_batch_seq: 0,
            from_hint: false,
            recovered,
        })));
    }
    let resumed = mode.from > FILE_HEADER_LEN;
    let hint = match (mode.ignore_hint, resumed) {
        (true, _) => HintFile::Unusable("ignored"),
        (false, true) => HintFile::Missing,
        (false, false) => Hint::load(dir, id, len, mode.use_mmap)?,
    };
    match hint {
        HintFile::Usable(hint) => {
            if apply_hint(&hint, id, len, sink).is_err() {
                // Possible only if the checksum matched by chance, or a bug
                // wrote it. Some entries are in the sink already: the
                // caller loads everything again, without this hint.
                return Ok(Loading::HintRejected(HintRejected { id }));
            }
            return Ok(Loading::Loaded(Box::new(Loaded {
                file,
                end: len,
                max_batch_seq: hint.max_batch_seq(),
                from_hint: true,
                recovered,
            })));
        }
        // The newest file's hint from the last clean close goes stale with
        // the first write after it: that is no news.
        HintFile::Stale if newest => {}
        HintFile::Stale | HintFile::Unusable(_) => recovered.hint_ignored = true,
        HintFile::Missing => {}
    }
    if mode.from > len {
        // The caller checked the length; the file changed since.
        return Err(Error::Internal(format!(
            "{} is {len} bytes long, shorter than the {} bytes already loaded",
            file.path().display(),
            mode.from
        )));
    }
    let outcome = scan(&file, len, mode.use_mmap, mode.from, sink)?;
    let max_batch_seq = outcome.max_batch_seq;
    let end = if newest {
        recover_newest(dir, &file, len, outcome, mode.strict, &mut recovered)?
    } else {
        recover_sealed(&file, len, outcome, &mut recovered)?
    };
    Ok(Loading::Loaded(Box::new(Loaded {
        file,
        end,
        max_batch_seq,
        from_hint: false,
        recovered,
    })))
}
/// The end of the good data of the newest file, once its tail (if any) is
/// quarantined and cut.
fn recover_newest(
    dir: &Path,
    file: &DataFile,
    len: u64,
    outcome: Replayed,
    strict: bool,
    recovered: &mut FileRecovery,
) -> Result<u64> {
    // An uncommitted batch at the end is part of the tail: cut it too, or
    // the next append would land after dead records.
    let (cut, bad) = match (outcome.end, outcome.uncommitted_from) {
        (ScanEnd::Clean(end), None) => return Ok(end),
        (ScanEnd::Clean(_), Some(start)) => (
            start,
            ("a write batch without its commit record".to_string(), None),
        ),
        (ScanEnd::Bad { offset, reason }, uncommitted) => (
            uncommitted.map_or(offset, |start| start.min(offset)),
            (reason, Some(offset)),
        ),
    };
    let (reason, bad_offset) = bad;
    let has_data = !all_zero(file, cut, len)?;
    if strict && has_data {
        return Err(Error::Corruption(format!(
            "{}: the newest data file ends in {} bytes from offset {cut} that are not good \
             records ({reason}), and strict_recovery is on, so open refuses to cut them. \
             Every write synced before them is intact: open without strict_recovery to move \
             them to a quarantine file and cut them off, or run repair on the closed database",
            file.path().display(),
            len - cut
        )));
    }
    let intact_records_after = match bad_offset {
        Some(offset) => count_intact_records(file, offset + 1, len)?,
        None => 0,
    };
    let quarantined = if has_data {
        let why = format!("open: the tail of the newest data file: {reason}");
        quarantine_range(dir, file.file(), file.id(), cut, len, &why)?
    } else {
        None
    };
    // The bytes are safe in the quarantine file (synced, and its name in
    // the synced directory) before they leave the data file.
    file.file()
        .set_len(cut)
        .and_then(|()| file.file().sync_data())
        .map_err(|e| Error::io("cut the tail of", file.path(), e))?;
    let (quarantine_file, quarantined_bytes) = match quarantined {
        Some((name, stored)) => (Some(name), stored),
        None => (None, 0),
    };
    recovered.tail = Some(TailCut {
        file: data_file_name_of(file),
        file_id: file.id(),
        offset: cut,
        bytes_cut: len - cut,
        reason,
        quarantine_file,
        quarantined_bytes,
        intact_records_after,
    });
    Ok(cut)
}

/// The end of the good data of a sealed file: all of it, or up to zeros
/// that run to its end (cut here). Anything else is corruption.
fn recover_sealed(
    file: &DataFile,
    len: u64,
    outcome: Replayed,
    recovered: &mut FileRecovery,
) -> Result<u64> {
    // Batch records no commit record claims are ignored, as the format says.
    let (offset, reason) = match outcome.end {
        ScanEnd::Clean(end) => return Ok(end),
        ScanEnd::Bad { offset, reason } => (offset, reason),
    };
    if all_zero(file, offset, len)? {
        // Sealed files are open for reading only: cut through a handle of its own.
        OpenOptions::new()
            .write(true)
            .open(file.path())
            .and_then(|f| f.set_len(offset).and_then(|()| f.sync_data()))
            .map_err(|e| Error::io("cut the zero-filled end of", file.path(), e))?;
        recovered.zero_bytes_cut = len - offset;
        return Ok(offset);
    }
    Err(sealed_damage(file.path(), offset, &reason))
}

/// The error for damage in a sealed data file, which no crash explains.
pub fn sealed_damage(path: &Path, offset: u64, reason: &str) -> Error {
    Error::Corruption(format!(
        "{}: {reason} at offset {offset}. The file was complete and synced before a newer          one began (it is sealed), so no crash explains this: it is damage. Run repair on the          closed database (bitcask_repair, or `bitcask repair DIR`) to keep every intact record          and move the damaged bytes to a quarantine file, or restore the file from a backup",
        path.display()
    ))
}

/// The file's name in its directory.
fn data_file_name_of(file: &DataFile) -> String {
    super::filename::data_file_name(file.id())
}

/// Whether `start..end` of `file` holds only zero bytes (space allocated
/// and never written).
fn all_zero(file: &DataFile, start: u64, end: u64) -> Result<bool> {
    zeros_to_end(&mut FileSource::new(file.file(), end), start)
        .map_err(|e| Error::io("read", file.path(), e))
}

/// How many records that pass every check lie in `from..len` of `file`,
/// found by resynchronising after each one that fails.
fn count_intact_records(file: &DataFile, from: u64, len: u64) -> Result<u64> {
    let read_err = |e| Error::io("read", file.path(), e);
    let mut scanner = Scanner::new(FileSource::new(file.file(), len), from);
    let mut count = 0;
    let mut at = from;
    while let Some(found) = scanner.resync(at).map_err(read_err)? {
        scanner.seek(found);
        while let ScanEntry::Record { .. } = scanner.next_entry().map_err(read_err)? {
            count += 1;
        }
        at = scanner.offset() + 1;
    }
    Ok(count)
}

/// Applies the records of the `len` bytes of `file` to `sink`, read
/// through a memory map or positioned reads.
fn scan(
    file: &DataFile,
    len: u64,
    use_mmap: bool,
    from: u64,
    sink: &mut dyn Apply,
) -> Result<Replayed> {
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
        replay(file, Scanner::new(MmapSource::new(map), from), sink)
    } else {
        let source = FileSource::new(file.file(), len);
        replay(file, Scanner::new(source, from), sink)
    }
}

/// The hint file of an immutable data file, from a scan of it (positioned
/// reads: the file may be large, and is read once).
pub fn build_hint(file: &DataFile) -> Result<Vec<u8>> {
    let len = file.len()?;
    let mut builder = HintBuilder::new(file.id());
    let outcome = scan(file, len, false, FILE_HEADER_LEN, &mut builder)?;
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

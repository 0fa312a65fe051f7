//! Recovery at open, file by file: check each data file's header, load
//! its records (from its hint file when a usable one exists, else by a
//! scan) into a sink, in log order, and apply the recovery rules of
//! `docs/format.md`. The sink is the keydir at open (see `db/open.rs`) or
//! a hint file being built.
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
//! Write batches: batch records are held back until their commit record,
//! which names how many records right before it belong to the batch; then
//! they are applied together. Batch records that no commit record claims
//! (a writer died in the middle of a batch's append) are ignored, and at the
//! end of the newest file they are cut off with the torn tail, so that no
//! later append lands after them.

use std::fs::{self, OpenOptions};
use std::path::Path;

use memmap2::{Advice, Mmap};

use super::data_file::DataFile;
use super::dir::sync_dir;
use super::filename::FileName;
use super::format::{self, FileHeader, RecordKind, FILE_HEADER_LEN};
use super::hint::{self, Hint, HintBuilder, HintFile, HintKind};
use super::quarantine::quarantine_range;
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

/// What open did to one data file besides reading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileRecovery {
    /// Its hint file exists but was not usable (damaged, stale, or it
    /// does not decode): the file was scanned instead.
    pub hint_ignored: bool,
    /// Its header was torn (the newest file, created by a writer that died
    /// before the header was on disk) and was written again.
    pub header_rewritten: bool,
    /// Zero bytes cut from the end of a sealed file.
    pub zero_bytes_cut: u64,
    /// The tail cut from the newest file.
    pub tail: Option<TailCut>,
}

/// The tail open cut off the newest data file: everything from the first
/// record that failed a check (or from a batch that never got its commit
/// record) to the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The data file's name.
    pub file: String,
    /// The data file's id.
    pub file_id: u32,
    /// Where the cut began: the file's length now.
    pub offset: u64,
    /// How many bytes were cut (zeros included).
    pub bytes_cut: u64,
    /// Why the good data ended there.
    pub reason: String,
    /// The quarantine file that holds the cut bytes; `None` when they were
    /// all zeros (space allocated ahead and never written).
    pub quarantine_file: Option<String>,
    /// How many of the cut bytes the quarantine file stores (the tail up to
    /// its last non-zero byte).
    pub quarantined_bytes: u64,
    /// Records that pass every check, found after the first one that fails
    /// (0 for a torn write). More is a sign of damage, or of pages written
    /// back out of order before a power cut; repair can bring them back.
    pub intact_records_after: u64,
}

/// What open found and did, over every data file: how each was loaded,
/// and whatever it changed (a tail cut off the newest file, zeros cut off
/// sealed files, a torn header written again). Read it after open with
/// [`crate::Bitcask::recovery`] (C: `bitcask_get_recovery_report`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Data files loaded from their hint files (not read).
    pub files_from_hint: u64,
    /// Data files read in full (no usable hint file).
    pub files_scanned: u64,
    /// Hint files found but not used (damaged, stale, of another file, or
    /// with entries that do not decode): their data files were scanned.
    /// The newest file's hint from the last clean close, made stale by
    /// later writes, does not count.
    pub hints_ignored: u64,
    /// Whether the newest data file's header was torn (a writer died while
    /// creating the file) and was written again.
    pub header_rewritten: bool,
    /// Zero bytes cut off the ends of sealed data files (space allocated and
    /// never written, as a failed `fallocate` leaves).
    pub zero_bytes_cut: u64,
    /// The tail cut off the newest data file, if one was.
    pub tail: Option<TailCut>,
}

impl RecoveryReport {
    /// Adds what loading one file did.
    pub fn add(&mut self, loaded: &Loaded) {
        if loaded.from_hint {
            self.files_from_hint += 1;
        } else {
            self.files_scanned += 1;
        }
        let r = &loaded.recovered;
        self.hints_ignored += u64::from(r.hint_ignored);
        self.header_rewritten |= r.header_rewritten;
        self.zero_bytes_cut += r.zero_bytes_cut;
        if r.tail.is_some() {
            self.tail = r.tail.clone();
        }
    }

    /// Whether open changed nothing: no tail cut, no zeros cut, no header
    /// written again.
    pub fn changed_nothing(&self) -> bool {
        self.tail.is_none() && self.zero_bytes_cut == 0 && !self.header_rewritten
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "open loaded {} data file(s) from hint files and scanned {}",
            self.files_from_hint, self.files_scanned
        )?;
        if self.hints_ignored > 0 {
            write!(f, "; {} hint file(s) ignored", self.hints_ignored)?;
        }
        if let Some(t) = &self.tail {
            write!(
                f,
                "; cut {} bytes from offset {} of {} ({})",
                t.bytes_cut, t.offset, t.file, t.reason
            )?;
            match &t.quarantine_file {
                Some(q) => write!(f, ", kept in quarantine file {q}")?,
                None => write!(f, ", all zeros")?,
            }
            if t.intact_records_after > 0 {
                write!(
                    f,
                    "; {} intact record(s) lay after the first bad one (damage, or pages \
                     written back out of order before a power cut): repair with \
                     restore_quarantined brings them back",
                    t.intact_records_after
                )?;
            }
        }
        if self.zero_bytes_cut > 0 {
            write!(
                f,
                "; cut {} zero bytes off the ends of sealed data files",
                self.zero_bytes_cut
            )?;
        }
        if self.header_rewritten {
            write!(f, "; wrote the newest data file's torn header again")?;
        }
        Ok(())
    }
}

/// Loads data file `id` into `sink` and returns it with the offset where
/// its records end: from its hint file when a usable one exists, otherwise
/// by scanning it, applying the recovery rules of the module documentation.
pub fn load_file(dir: &Path, id: u32, mode: LoadMode, sink: &mut dyn Apply) -> Result<Loading> {
    let newest = mode.newest;
    let file = DataFile::open(dir, id, newest)?;
    let len = file.len()?;
    let mut recovered = FileRecovery::default();
    if !header_is_valid(&file, len, newest)? {
        // The newest file's header was never completely written: the
        // process died while creating it, before any record went in.
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
    let hint = match mode.ignore_hint {
        true => HintFile::Unusable("ignored"),
        false => Hint::load(dir, id, len, mode.use_mmap)?,
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
    let outcome = scan_file(&file, len, mode.use_mmap, sink)?;
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

/// Applies the entries of a usable hint of a data file `data_len` bytes
/// long to `sink`, in runs. `Err` with why if an entry does not decode or
/// points outside the file: the entries before it were applied, and the
/// caller starts over without this hint.
fn apply_hint(
    hint: &Hint,
    id: u32,
    data_len: u64,
    sink: &mut dyn Apply,
) -> std::result::Result<(), &'static str> {
    // Room for the file's keys up front, rather than growing the index
    // several times over while they go in: a hash index rehashes every key
    // it has each time it grows.
    sink.reserve(hint);
    let run_len = sink.run_len().max(1);
    let mut run = Vec::with_capacity(run_len.min(hint.max_entries()));
    let mut inside = true;
    let decoded = hint.for_each(|kind, key, offset, size| {
        if !inside || !hint::entry_fits(offset, size, data_len) {
            inside = false;
            return;
        }
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
    match (decoded, inside) {
        (true, true) => {
            sink.apply_run(&run);
            Ok(())
        }
        (false, _) => Err("its entries do not decode"),
        (true, false) => Err("an entry points outside the data file"),
    }
}

/// The end of the good data of the newest file, once its tail (if any) is
/// quarantined and cut.
fn recover_newest(
    dir: &Path,
    file: &DataFile,
    len: u64,
    outcome: ScanOutcome,
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
    let has_data = quarantine_has_data(file, cut, len)?;
    if strict && has_data {
        return Err(Error::Corruption(format!(
            "{}: the newest data file ends in {} bytes from offset {cut} that are not good              records ({reason}), and strict_recovery is on, so open refuses to cut them.              Every write synced before them is intact: open without strict_recovery to move              them to a quarantine file and cut them off, or run repair on the closed database",
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
    outcome: ScanOutcome,
    recovered: &mut FileRecovery,
) -> Result<u64> {
    // Batch records no commit record claims are ignored, as the format says.
    let (offset, reason) = match outcome.end {
        ScanEnd::Clean(end) => return Ok(end),
        ScanEnd::Bad { offset, reason } => (offset, reason),
    };
    if !quarantine_has_data(file, offset, len)? {
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

/// Whether `start..end` of `file` holds any non-zero byte.
fn quarantine_has_data(file: &DataFile, start: u64, end: u64) -> Result<bool> {
    let mut source = FileSource::new(file.file(), end);
    let mut offset = start;
    while offset < end {
        let chunk = source
            .read(offset, 1 << 20)
            .map_err(|e| Error::io("read", file.path(), e))?;
        if chunk.is_empty() {
            break;
        }
        if chunk.iter().any(|&b| b != 0) {
            return Ok(true);
        }
        offset += chunk.len() as u64;
    }
    Ok(false)
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
    /// Good records end at `offset`, where the first record that fails a
    /// check lies (torn, damaged, or not a record at all).
    Bad { offset: u64, reason: String },
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
                let (Ok(offset32), Ok(size)) = (u32::try_from(offset), u32::try_from(len)) else {
                    return Ok(finish(
                        ScanEnd::Bad {
                            offset,
                            reason: "record lies beyond the 4 GiB a data file can hold".into(),
                        },
                        &pending,
                        run_start,
                        max_batch_seq,
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
                            return Ok(finish(
                                ScanEnd::Bad {
                                    offset,
                                    reason: "malformed batch commit record".into(),
                                },
                                &pending,
                                run_start,
                                max_batch_seq,
                            ));
                        };
                        let count = count as usize;
                        if count > pending.len() {
                            let reason = format!(
                                "batch {seq} commits {count} records but only {} batch \
                                 records precede its commit record",
                                pending.len()
                            );
                            return Ok(finish(
                                ScanEnd::Bad { offset, reason },
                                &pending,
                                run_start,
                                max_batch_seq,
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
                end = offset + len;
            }
            ScanEntry::End => {
                return Ok(finish(
                    ScanEnd::Clean(end),
                    &pending,
                    run_start,
                    max_batch_seq,
                ))
            }
            ScanEntry::TornTail { offset, reason } => {
                let reason = reason.to_string();
                return Ok(finish(
                    ScanEnd::Bad { offset, reason },
                    &pending,
                    run_start,
                    max_batch_seq,
                ));
            }
            ScanEntry::Corrupt { offset, reason } => {
                return Ok(finish(
                    ScanEnd::Bad { offset, reason },
                    &pending,
                    run_start,
                    max_batch_seq,
                ));
            }
        }
    }
}

/// What a scan found, once it stopped with `end`.
fn finish(
    end: ScanEnd,
    pending: &[BatchRecord],
    run_start: u64,
    max_batch_seq: u64,
) -> ScanOutcome {
    ScanOutcome {
        end,
        uncommitted_from: (!pending.is_empty()).then_some(run_start),
        max_batch_seq,
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

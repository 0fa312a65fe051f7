//! Applying one data file's records to a sink, in log order: the one way
//! both a writable open (`recovery.rs`) and a read-only open (`follow.rs`)
//! turn a file into changes of the keydir (or of a hint file being built).
//!
//! From a hint file, the entries are applied a run at a time, each checked
//! to lie inside the data file as it goes ([`apply_hint`]). From a scan,
//! plain records go in as they come, and write batches all or nothing
//! ([`replay`]): batch records are held back until their commit record,
//! which names how many records right before it belong to the batch; then
//! they go in together. Batch records that no commit record claims (a
//! writer died in the middle of a batch's append, or is still appending it)
//! are not applied, and the scan says where they begin. What a scan lets
//! in is also handed to the sink a run at a time (keys copied into a
//! [`ScanRun`]), because a run is what lets an index fetch the slots of
//! the next keys while it applies this one: one at a time, each put of a
//! scanned file waited for two cache misses (measured: 41% of a 1M-key
//! crash reopen in the hash index's probe).
//!
//! A scan stops at the first record that fails a check and says where and
//! why; what that means (a tail to cut, damage, the end of what a writer has
//! appended so far) is for the caller's rules to decide.

use super::data_file::DataFile;
use super::format::{self, RecordKind};
use super::hint::{self, Hint, HintBuilder, HintKind};
use super::scanner::{ScanEntry, Scanner, Source};
use super::{Change, RecordPos};
use crate::error::{Error, Result};

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
    /// The next changes, in order, all at once: a run of a hint file's
    /// entries, of a scan's records, or one committed batch whole.
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

/// Applies the entries of a usable hint of data file `id`, `data_len`
/// bytes long, to `sink`, in runs. `Err` with why if an entry does not
/// decode or points outside the file (possible only if the hint's checksum
/// matched by chance, or a bug wrote it): the entries before it were
/// applied, so the caller must load again without this hint.
pub fn apply_hint(
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

/// How a scan of a file's records ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanEnd {
    /// Every byte from where the scan began is a good record; they end here.
    Clean(u64),
    /// Good records end at `offset`, where the first record that fails a
    /// check lies (torn, damaged, or not a record at all).
    Bad { offset: u64, reason: String },
}

impl ScanEnd {
    /// Where the good records end.
    pub fn good_end(&self) -> u64 {
        match self {
            ScanEnd::Clean(end) => *end,
            ScanEnd::Bad { offset, .. } => *offset,
        }
    }
}

/// What [`replay`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// How the scan ended.
    pub end: ScanEnd,
    /// Where the batch records that no commit record claimed begin, if the
    /// good records end with some.
    pub uncommitted_from: Option<u64>,
    /// The largest batch sequence number among the commit records (0: none).
    pub max_batch_seq: u64,
}

/// The changes a scan let in that the sink has not been given yet, in
/// order, their keys copied (a scanner's key borrows its read window,
/// which the next read may refill).
struct ScanRun {
    keys: Vec<u8>,
    /// Each change's key as a range of `keys`, whether it deletes, where.
    changes: Vec<(std::ops::Range<usize>, bool, RecordPos)>,
    /// At most this many changes: the sink's [`Apply::run_len`].
    max_changes: usize,
}

/// At most this many key bytes wait in a [`ScanRun`], however many changes
/// the sink takes at a time: the ordered index takes a million, which with
/// long keys would be a large copy for nothing.
const SCAN_RUN_KEY_BYTES: usize = 4 << 20;

impl ScanRun {
    fn new(sink: &dyn Apply) -> ScanRun {
        let max_changes = sink.run_len().max(1);
        ScanRun {
            keys: Vec::new(),
            changes: Vec::with_capacity(max_changes.min(4096)),
            max_changes,
        }
    }

    /// Adds one change; gives the run to `sink` once it is full.
    fn push(&mut self, sink: &mut dyn Apply, delete: bool, key: &[u8], pos: RecordPos) {
        let start = self.keys.len();
        self.keys.extend_from_slice(key);
        self.changes.push((start..self.keys.len(), delete, pos));
        if self.changes.len() >= self.max_changes || self.keys.len() >= SCAN_RUN_KEY_BYTES {
            self.flush(sink);
        }
    }

    /// Gives `sink` every change waiting, in order.
    fn flush(&mut self, sink: &mut dyn Apply) {
        if self.changes.is_empty() {
            return;
        }
        let changes: Vec<Change<'_>> = self
            .changes
            .iter()
            .map(|(key, delete, pos)| Change {
                key: &self.keys[key.clone()],
                pos: *pos,
                delete: *delete,
            })
            .collect();
        sink.apply_run(&changes);
        self.changes.clear();
        self.keys.clear();
    }
}

/// A batch record waiting for its commit record.
struct BatchRecord {
    delete: bool,
    key: Vec<u8>,
    pos: RecordPos,
}

/// Applies the records of `file` that `scanner` walks, from where it stands,
/// to `sink`, in file order and in runs: plain records as they come, the
/// records of a batch as one run at its commit record. Every record let in
/// has been given to `sink` when it returns, `Err` included. Stops at the
/// end of the file or at the first record that fails a check (a commit
/// record that counts more batch records than precede it, or a record
/// beyond the 4 GiB a position can name, is one).
pub fn replay<S: Source>(
    file: &DataFile,
    mut scanner: Scanner<S>,
    sink: &mut dyn Apply,
) -> Result<Replayed> {
    let mut end = scanner.offset();
    let mut pending: Vec<BatchRecord> = Vec::new();
    // Where the run of pending batch records starts.
    let mut run_start = end;
    let mut max_batch_seq = 0;
    let mut run = ScanRun::new(sink);
    let stop = loop {
        let entry = match scanner.next_entry() {
            Ok(entry) => entry,
            Err(e) => {
                // What was let in before the failed read goes in, as it
                // would have one record at a time.
                run.flush(sink);
                return Err(Error::io("read", file.path(), e));
            }
        };
        let (offset, len, kind, key, value) = match entry {
            ScanEntry::Record {
                offset,
                len,
                kind,
                key,
                value,
            } => (offset, len, kind, key, value),
            ScanEntry::End => break ScanEnd::Clean(end),
            ScanEntry::TornTail { offset, reason } => {
                let reason = reason.to_string();
                break ScanEnd::Bad { offset, reason };
            }
            ScanEntry::Corrupt { offset, reason } => break ScanEnd::Bad { offset, reason },
        };
        let (Ok(offset32), Ok(size)) = (u32::try_from(offset), u32::try_from(len)) else {
            let reason = "record lies beyond the 4 GiB a data file can hold".to_string();
            break ScanEnd::Bad { offset, reason };
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
                run.push(sink, kind == RecordKind::Delete, key, pos);
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
                    let reason = "malformed batch commit record".to_string();
                    break ScanEnd::Bad { offset, reason };
                };
                let count = count as usize;
                if count > pending.len() {
                    let reason = format!(
                        "batch {seq} commits {count} records but only {} batch records \
                         precede its commit record",
                        pending.len()
                    );
                    break ScanEnd::Bad { offset, reason };
                }
                // Records before the batch's own are a dead batch's. The
                // batch goes in as one run of its own (after what came
                // before it), so that an index that applies a run
                // atomically shows a following reader all of it or none.
                run.flush(sink);
                let batch: Vec<Change<'_>> = pending[pending.len() - count..]
                    .iter()
                    .map(|p| Change {
                        key: &p.key,
                        pos: p.pos,
                        delete: p.delete,
                    })
                    .collect();
                sink.apply_run(&batch);
                pending.clear();
                max_batch_seq = max_batch_seq.max(seq);
            }
        }
        end = offset + len;
    };
    run.flush(sink);
    Ok(Replayed {
        end: stop,
        uncommitted_from: (!pending.is_empty()).then_some(run_start),
        max_batch_seq,
    })
}

/// Applies one put or delete.
fn apply(sink: &mut (impl Apply + ?Sized), delete: bool, key: &[u8], pos: RecordPos) {
    if delete {
        sink.delete(key, pos);
    } else {
        sink.put(key, pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::format::{encode_batch_commit, encode_record, FILE_HEADER_LEN};
    use crate::log::scanner::FileSource;
    use std::fs;

    /// Every change a sink was given, in order, and the length of each run
    /// it was given them in; it takes runs of `.2` (0: the default).
    #[derive(Default)]
    struct Log(Vec<(bool, Vec<u8>)>, Vec<usize>, usize);

    impl Apply for Log {
        fn put(&mut self, key: &[u8], _pos: RecordPos) {
            self.0.push((false, key.to_vec()));
        }
        fn delete(&mut self, key: &[u8], _pos: RecordPos) {
            self.0.push((true, key.to_vec()));
        }
        fn run_len(&self) -> usize {
            match self.2 {
                0 => 4096,
                n => n,
            }
        }
        fn apply_run(&mut self, changes: &[Change<'_>]) {
            self.1.push(changes.len());
            for c in changes {
                apply(self, c.delete, c.key, c.pos);
            }
        }
    }

    fn replay_bytes(name: &str, records: &[u8]) -> (Log, Replayed) {
        replay_in_runs(name, records, 0)
    }

    fn replay_in_runs(name: &str, records: &[u8], run_len: usize) -> (Log, Replayed) {
        let dir =
            std::env::temp_dir().join(format!("bitcask-replay-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut bytes = format::encode_file_header().to_vec();
        bytes.extend_from_slice(records);
        fs::write(dir.join("000000001.data"), &bytes).unwrap();
        let file = DataFile::open(&dir, 1, false).unwrap();
        let source = FileSource::new(file.file(), bytes.len() as u64);
        let mut log = Log(Vec::new(), Vec::new(), run_len);
        let replayed = replay(&file, Scanner::new(source, FILE_HEADER_LEN), &mut log).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        (log, replayed)
    }

    #[test]
    fn a_batch_applies_at_its_commit_record_and_a_dead_one_never() {
        let mut bytes = Vec::new();
        encode_record(RecordKind::Put, b"a", b"1", &mut bytes);
        // A dead batch: a plain record follows it.
        encode_record(RecordKind::BatchPut, b"dead", b"x", &mut bytes);
        encode_record(RecordKind::Delete, b"a", b"", &mut bytes);
        // A dead batch's record right before a live batch's own records.
        encode_record(RecordKind::BatchPut, b"dead2", b"x", &mut bytes);
        encode_record(RecordKind::BatchPut, b"b", b"2", &mut bytes);
        encode_record(RecordKind::BatchDelete, b"c", b"", &mut bytes);
        encode_batch_commit(7, 2, &mut bytes);
        let committed_end = FILE_HEADER_LEN + bytes.len() as u64;
        // An uncommitted batch at the end.
        encode_record(RecordKind::BatchPut, b"later", b"3", &mut bytes);
        let (log, replayed) = replay_bytes("batch", &bytes);
        let keys: Vec<_> = log
            .0
            .iter()
            .map(|(delete, k)| (*delete, String::from_utf8_lossy(k).into_owned()))
            .collect();
        assert_eq!(
            keys,
            [
                (false, "a".to_string()),
                (true, "a".to_string()),
                (false, "b".to_string()),
                (true, "c".to_string())
            ]
        );
        assert_eq!(replayed.max_batch_seq, 7);
        assert_eq!(replayed.uncommitted_from, Some(committed_end));
        assert_eq!(
            replayed.end,
            ScanEnd::Clean(FILE_HEADER_LEN + bytes.len() as u64)
        );
    }

    #[test]
    fn a_commit_record_that_counts_too_many_ends_the_good_records() {
        let mut bytes = Vec::new();
        encode_record(RecordKind::BatchPut, b"b", b"2", &mut bytes);
        let commit_at = FILE_HEADER_LEN + bytes.len() as u64;
        encode_batch_commit(1, 2, &mut bytes);
        encode_record(RecordKind::Put, b"after", b"1", &mut bytes);
        let (log, replayed) = replay_bytes("count", &bytes);
        assert!(log.0.is_empty());
        assert!(
            matches!(&replayed.end, ScanEnd::Bad { offset, reason }
                if *offset == commit_at && reason.contains("commits 2 records")),
            "{replayed:?}"
        );
        assert_eq!(replayed.end.good_end(), commit_at);
        assert_eq!(replayed.uncommitted_from, Some(FILE_HEADER_LEN));
    }

    #[test]
    fn a_scan_gives_runs_of_the_sinks_length_and_each_batch_a_run_of_its_own() {
        let key = |i: usize| format!("k{i}").into_bytes();
        let mut bytes = Vec::new();
        for i in 0..7 {
            encode_record(RecordKind::Put, &key(i), b"v", &mut bytes);
        }
        // A batch of 4: longer than a run, still given whole.
        for i in 7..11 {
            encode_record(RecordKind::BatchPut, &key(i), b"v", &mut bytes);
        }
        encode_batch_commit(1, 4, &mut bytes);
        encode_record(RecordKind::Delete, &key(0), b"", &mut bytes);
        encode_record(RecordKind::Put, &key(11), b"v", &mut bytes);
        let good_end = FILE_HEADER_LEN + bytes.len() as u64;
        // What a torn append leaves: the runs before it still all go in.
        encode_record(RecordKind::Put, &key(12), b"v", &mut bytes);
        bytes.truncate(bytes.len() - 1);
        let (log, replayed) = replay_in_runs("runs", &bytes, 3);
        let mut expected: Vec<(bool, Vec<u8>)> = (0..11).map(|i| (false, key(i))).collect();
        expected.push((true, key(0)));
        expected.push((false, key(11)));
        assert_eq!(log.0, expected);
        // 3 + 3 + 1 plain records (the run waiting when the batch's commit
        // record came), the batch, then the last two at the torn record.
        assert_eq!(log.1, [3, 3, 1, 4, 2]);
        assert_eq!(replayed.end.good_end(), good_end);
    }
}

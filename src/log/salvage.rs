//! The salvage scan of one data file, for repair and verify: every record
//! that passes its checks is kept, and after one that fails, reading goes on
//! at the next offset where a record passes its checks again (see
//! [`Scanner::resync`]); what lies between is a damaged range.
//!
//! Write batches stay all or nothing: the batch records right before a
//! damaged range may have lost their commit record to it, and a commit
//! record right after one may have lost some of its batch's records to it;
//! either way the batch cannot be known complete, so its intact records are
//! taken out with the damaged range (and counted). Batch records that end
//! the file without a commit record are taken out too, as open would.
//!
//! A scan can also stop at the first record that fails a check
//! ([`Until::FirstFailure`]): what verify does with the newest data file
//! while a writer may be appending to it.

use std::ops::Range;

use super::format::{self, RecordKind};
use super::scanner::{ScanEntry, Scanner, Source};

/// A range a salvage scan takes out of a data file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Removed {
    /// The bytes taken out (damage, and any intact batch records that
    /// cannot be kept without it).
    pub range: Range<u64>,
    /// Where the damage itself begins: the first record that failed a check
    /// (`None` when only an incomplete batch is taken out).
    pub damage_at: Option<u64>,
    /// Why.
    pub reason: String,
    /// Intact records taken out with it (batch records of a batch it cut).
    pub intact_records: u64,
    /// The scan found there what a process killed mid-append leaves (see
    /// [`ScanEntry::TornTail`]), and nothing good after it.
    pub torn_tail: bool,
}

/// How far a salvage scan reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// To the end of the file, stepping over each damaged range.
    End,
    /// To the first record that fails a check ([`Salvage::stopped`]).
    FirstFailure,
}

/// Where an [`Until::FirstFailure`] scan stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// The offset of the first record that fails a check.
    pub offset: u64,
    /// What failed.
    pub reason: String,
    /// Whether only zeros follow, from `offset` to the end.
    pub zeros: bool,
}

/// What a salvage scan of one data file found.
#[derive(Debug, Default)]
pub struct Salvage {
    /// The records kept, as contiguous runs of bytes, in file order.
    pub kept: Vec<Range<u64>>,
    /// How many records are kept.
    pub records: u64,
    /// The lost values' markers among them.
    pub lost_values: u64,
    /// The ranges taken out, in file order.
    pub removed: Vec<Removed>,
    /// Where zeros begin that run to the end of the file (not damage:
    /// space allocated and never written).
    pub zero_tail: Option<u64>,
    /// Where an [`Until::FirstFailure`] scan stopped, if it did before the
    /// end of the file (no zero tail or damaged range is reported then).
    pub stopped: Option<Stopped>,
}

impl Salvage {
    /// Whether the file needs no change: nothing to take out, nothing to cut.
    pub fn is_clean(&self) -> bool {
        self.removed.is_empty() && self.zero_tail.is_none()
    }

    fn keep(&mut self, range: Range<u64>, records: u64) {
        self.records += records;
        match self.kept.last_mut() {
            Some(last) if last.end == range.start => last.end = range.end,
            _ => self.kept.push(range),
        }
    }
}

/// Batch records waiting for their commit record: contiguous, from `start`.
struct Pending {
    range: Range<u64>,
    count: u64,
    /// They follow a damaged range directly.
    after_damage: bool,
}

/// One kept record, as [`salvage`] reports it to its caller.
pub struct SalvagedRecord<'a> {
    pub offset: u64,
    pub kind: RecordKind,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// Scans `source` from `start` (a data file from its 16-byte header on, or
/// quarantined bytes from 0), keeping what passes its checks, as far as
/// `until` says. `visit` is called with each record in the order a scan at
/// open applies them: plain records at once, a batch's records at its
/// commit record (only if kept).
pub fn salvage<S: Source>(
    source: S,
    start: u64,
    until: Until,
    mut visit: impl FnMut(SalvagedRecord<'_>),
) -> std::io::Result<Salvage> {
    let mut scanner = Scanner::new(source, start);
    let mut out = Salvage::default();
    let mut pending: Option<Pending> = None;
    // Records of the pending batch, for `visit` once committed.
    let mut batch = HeldRecords::default();
    let mut after_damage = false;
    loop {
        match scanner.next_entry()? {
            ScanEntry::Record {
                offset,
                len: record_len,
                kind,
                key,
                value,
            } => {
                let range = offset..offset + record_len;
                match kind {
                    RecordKind::BatchPut | RecordKind::BatchDelete => {
                        let p = pending.get_or_insert(Pending {
                            range: offset..offset,
                            count: 0,
                            after_damage,
                        });
                        p.range.end = range.end;
                        p.count += 1;
                        batch.push(offset, kind, key, value);
                    }
                    RecordKind::BatchCommit => {
                        let count = format::decode_batch_commit(key, value)
                            .map_or(u64::MAX, |(_, count)| u64::from(count));
                        let waiting = pending.as_ref().map_or(0, |p| p.count);
                        let follows_damage =
                            pending.as_ref().map_or(after_damage, |p| p.after_damage);
                        if count <= waiting {
                            let p = pending.take();
                            if let Some(p) = &p {
                                out.keep(p.range.clone(), p.count);
                            }
                            out.keep(range, 1);
                            batch.visit_last(count as usize, &mut visit);
                            batch.clear();
                        } else {
                            let taken = pending
                                .take()
                                .map_or(range.start..range.end, |p| p.range.start..range.end);
                            batch.clear();
                            let extend = follows_damage
                                && out
                                    .removed
                                    .last()
                                    .is_some_and(|r| r.range.end == taken.start);
                            if extend {
                                if let Some(last) = out.removed.last_mut() {
                                    last.range.end = taken.end;
                                    last.intact_records += waiting + 1;
                                }
                            } else {
                                out.removed.push(Removed {
                                    range: taken,
                                    damage_at: Some(offset),
                                    reason: format!(
                                        "a batch commit record counts {count} records, but only \
                                         {waiting} batch records precede it"
                                    ),
                                    intact_records: waiting + 1,
                                    torn_tail: false,
                                });
                            }
                        }
                        after_damage = false;
                    }
                    RecordKind::Put | RecordKind::Delete | RecordKind::LostValue => {
                        // Batch records a plain record follows never
                        // committed: open ignores them, and so may the file.
                        if let Some(p) = pending.take() {
                            out.keep(p.range, p.count);
                        }
                        batch.clear();
                        out.keep(range, 1);
                        out.lost_values += u64::from(kind == RecordKind::LostValue);
                        visit(SalvagedRecord {
                            offset,
                            kind,
                            key,
                            value,
                        });
                        after_damage = false;
                    }
                }
            }
            ScanEntry::End => {
                take_uncommitted(&mut out, pending.take());
                return Ok(out);
            }
            ScanEntry::TornTail { offset, reason } => {
                let failed = Failed {
                    offset,
                    reason: reason.to_string(),
                    torn_tail: true,
                };
                if let Some(done) = step_over(&mut scanner, &mut out, &mut pending, failed, until)?
                {
                    return Ok(done);
                }
                batch.clear();
                after_damage = true;
            }
            ScanEntry::Corrupt { offset, reason } => {
                let failed = Failed {
                    offset,
                    reason,
                    torn_tail: false,
                };
                if let Some(done) = step_over(&mut scanner, &mut out, &mut pending, failed, until)?
                {
                    return Ok(done);
                }
                batch.clear();
                after_damage = true;
            }
        }
    }
}

/// The records of a pending batch, held for `visit` until their commit
/// record: their keys and values in one buffer, so that holding a record
/// costs no allocation of its own (a scan meets millions).
#[derive(Default)]
struct HeldRecords {
    /// Offset, kind, and where the key and the value end in `bytes`.
    records: Vec<(u64, RecordKind, usize, usize)>,
    bytes: Vec<u8>,
}

impl HeldRecords {
    fn push(&mut self, offset: u64, kind: RecordKind, key: &[u8], value: &[u8]) {
        self.bytes.extend_from_slice(key);
        let key_end = self.bytes.len();
        self.bytes.extend_from_slice(value);
        self.records.push((offset, kind, key_end, self.bytes.len()));
    }

    /// Visits the last `count` records held, in order.
    fn visit_last(&self, count: usize, visit: &mut impl FnMut(SalvagedRecord<'_>)) {
        let first = self.records.len() - count;
        let mut start = match first {
            0 => 0,
            n => self.records[n - 1].3,
        };
        for &(offset, kind, key_end, end) in &self.records[first..] {
            visit(SalvagedRecord {
                offset,
                kind,
                key: &self.bytes[start..key_end],
                value: &self.bytes[key_end..end],
            });
            start = end;
        }
    }

    fn clear(&mut self) {
        self.records.clear();
        self.bytes.clear();
    }
}

/// Takes out batch records that end the file without their commit record.
fn take_uncommitted(out: &mut Salvage, pending: Option<Pending>) {
    if let Some(p) = pending {
        out.removed.push(Removed {
            range: p.range,
            damage_at: None,
            reason: "write batch records without their commit record at the end of the file"
                .to_string(),
            intact_records: p.count,
            torn_tail: false,
        });
    }
}

/// A record that failed its checks.
struct Failed {
    offset: u64,
    reason: String,
    /// The scanner took it for a torn tail.
    torn_tail: bool,
}

/// A record fails its checks: with [`Until::FirstFailure`], or if zeros
/// run from it to the end, the scan ends there (returned as done); anything
/// else is a damaged range up to the next record that passes its checks,
/// where the scanner goes on.
fn step_over<S: Source>(
    scanner: &mut Scanner<S>,
    out: &mut Salvage,
    pending: &mut Option<Pending>,
    failed: Failed,
    until: Until,
) -> std::io::Result<Option<Salvage>> {
    let offset = failed.offset;
    let zeros = scanner.rest_is_zero(offset)?;
    if until == Until::FirstFailure {
        take_uncommitted(out, pending.take());
        out.stopped = Some(Stopped {
            offset,
            reason: failed.reason,
            zeros,
        });
        return Ok(Some(std::mem::take(out)));
    }
    let len = scanner.file_len();
    if zeros {
        take_uncommitted(out, pending.take());
        out.zero_tail = (offset < len).then_some(offset);
        return Ok(Some(std::mem::take(out)));
    }
    let next = scanner.resync(offset + 1)?;
    let (start, intact) = match pending.take() {
        Some(p) => (p.range.start, p.count),
        None => (offset, 0),
    };
    out.removed.push(Removed {
        range: start..next.unwrap_or(len),
        damage_at: Some(offset),
        reason: failed.reason,
        intact_records: intact,
        torn_tail: failed.torn_tail && next.is_none(),
    });
    scanner.seek(next.unwrap_or(len));
    Ok(None)
}

/// How often [`ScanProgress`] reports, in bytes read.
const PROGRESS_STEP: u64 = 1 << 20;

/// The progress of the salvage scans of several data files, for a caller's
/// callback: the bytes read so far, and in all (the files' lengths when
/// the work began). Reported about every MiB, and at the end of each file.
pub struct ScanProgress<'a> {
    callback: &'a mut dyn FnMut(u64, u64),
    total: u64,
    /// Bytes of the files read to their end.
    done: u64,
    /// Bytes read, over all files, at which to report next.
    next: u64,
}

impl<'a> ScanProgress<'a> {
    /// Progress over files of `total` bytes in all, reported to `callback`.
    pub fn new(total: u64, callback: &'a mut dyn FnMut(u64, u64)) -> ScanProgress<'a> {
        ScanProgress {
            callback,
            total,
            done: 0,
            next: 0,
        }
    }

    /// The file being read is read up to `offset`.
    pub fn reading(&mut self, offset: u64) {
        let now = (self.done + offset).min(self.total);
        if now >= self.next {
            (self.callback)(now, self.total);
            self.next = now + PROGRESS_STEP;
        }
    }

    /// The file being read, `len` bytes long, is read.
    pub fn file_read(&mut self, len: u64) {
        self.done += len;
        self.next = 0;
        self.reading(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::format::encode_record;
    use crate::log::scanner::BytesSource;

    fn record(kind: RecordKind, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(kind, key, value, &mut out);
        out
    }

    fn keys(bytes: &[u8]) -> (Vec<Vec<u8>>, Salvage) {
        let mut keys = Vec::new();
        let s = salvage(BytesSource::new(bytes.to_vec()), 0, Until::End, |r| {
            keys.push(r.key.to_vec())
        })
        .unwrap();
        (keys, s)
    }

    #[test]
    fn records_after_a_damaged_range_are_kept() {
        let mut bytes = Vec::new();
        for i in 0..5u8 {
            bytes.extend(record(RecordKind::Put, &[b'k', i], &[i; 40]));
        }
        let second = record(RecordKind::Put, b"k\x00", &[0; 40]).len();
        bytes[second + 20] ^= 0xFF; // inside the value of the second record
        let (found, s) = keys(&bytes);
        assert_eq!(
            found,
            vec![
                b"k\x00".to_vec(),
                b"k\x02".to_vec(),
                b"k\x03".to_vec(),
                b"k\x04".to_vec()
            ]
        );
        assert_eq!(s.removed.len(), 1);
        assert_eq!(s.removed[0].range, second as u64..2 * second as u64);
        assert_eq!(s.records, 4);
        assert_eq!(s.kept.len(), 2);
    }

    #[test]
    fn a_batch_cut_by_damage_is_taken_out_whole() {
        let mut bytes = record(RecordKind::Put, b"a", b"1");
        let batch_start = bytes.len() as u64;
        bytes.extend(record(RecordKind::BatchPut, b"b", b"2"));
        let damaged = bytes.len();
        bytes.extend(record(RecordKind::BatchPut, b"c", b"3"));
        let mut commit = Vec::new();
        format::encode_batch_commit(1, 2, &mut commit);
        bytes.extend(&commit);
        bytes.extend(record(RecordKind::Put, b"d", b"4"));
        bytes[damaged + 1] ^= 0x55; // the second batch record's header
        let (found, s) = keys(&bytes);
        assert_eq!(found, vec![b"a".to_vec(), b"d".to_vec()]);
        assert_eq!(s.removed.len(), 1, "{:?}", s.removed);
        let end_of_commit = (bytes.len() - record(RecordKind::Put, b"d", b"4").len()) as u64;
        assert_eq!(s.removed[0].range, batch_start..end_of_commit);
        // The first batch record, before the damage, and the commit record after it.
        assert_eq!(s.removed[0].intact_records, 2);
    }

    /// A commit record claims only the batch records right before it: a
    /// dead batch's record before them is kept in the file (open ignores
    /// it) but not visited.
    #[test]
    fn a_commit_record_visits_only_its_own_batch_with_its_keys_and_values() {
        let mut bytes = record(RecordKind::BatchPut, b"dead", b"0");
        bytes.extend(record(RecordKind::BatchPut, b"b", b"22"));
        bytes.extend(record(RecordKind::BatchDelete, b"c", b""));
        format::encode_batch_commit(1, 2, &mut bytes);
        let mut seen = Vec::new();
        let s = salvage(BytesSource::new(bytes.clone()), 0, Until::End, |r| {
            seen.push((r.kind, r.key.to_vec(), r.value.to_vec()))
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (RecordKind::BatchPut, b"b".to_vec(), b"22".to_vec()),
                (RecordKind::BatchDelete, b"c".to_vec(), Vec::new())
            ]
        );
        assert_eq!((s.records, s.kept.len()), (4, 1));
        assert!(s.removed.is_empty());
    }

    #[test]
    fn zeros_to_the_end_are_a_zero_tail_and_uncommitted_batch_records_are_taken_out() {
        let mut bytes = record(RecordKind::Put, b"a", b"1");
        let uncommitted = bytes.len() as u64;
        bytes.extend(record(RecordKind::BatchPut, b"b", b"2"));
        let zeros = bytes.len() as u64;
        bytes.extend([0u8; 100]);
        let (found, s) = keys(&bytes);
        assert_eq!(found, vec![b"a".to_vec()]);
        assert_eq!(s.zero_tail, Some(zeros));
        assert_eq!(s.removed[0].range, uncommitted..zeros);
        assert_eq!(s.removed[0].damage_at, None);
    }
}

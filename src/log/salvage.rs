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
/// quarantined bytes from 0), keeping what passes its checks. `visit` is
/// called with each record in the order a scan at open applies them: plain
/// records at once, a batch's records at its commit record (only if kept).
pub fn salvage<S: Source>(
    source: S,
    start: u64,
    mut visit: impl FnMut(SalvagedRecord<'_>),
) -> std::io::Result<Salvage> {
    let len = source.len();
    let mut scanner = Scanner::new(source, start);
    let mut out = Salvage::default();
    let mut pending: Option<Pending> = None;
    // Records of the pending batch, for `visit` once committed.
    let mut batch: Vec<(u64, RecordKind, Vec<u8>, Vec<u8>)> = Vec::new();
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
                        batch.push((offset, kind, key.to_vec(), value.to_vec()));
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
                            let first = batch.len() - count as usize;
                            for (offset, kind, key, value) in batch.drain(..).skip(first) {
                                visit(SalvagedRecord {
                                    offset,
                                    kind,
                                    key: &key,
                                    value: &value,
                                });
                            }
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
                if let Some(done) =
                    step_over(&mut scanner, &mut out, &mut pending, offset, reason, len)?
                {
                    return Ok(done);
                }
                batch.clear();
                after_damage = true;
            }
            ScanEntry::Corrupt { offset, reason } => {
                if let Some(done) =
                    step_over(&mut scanner, &mut out, &mut pending, offset, &reason, len)?
                {
                    return Ok(done);
                }
                batch.clear();
                after_damage = true;
            }
        }
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
        });
    }
}

/// The record at `offset` fails its checks: zeros to the end end the scan
/// (returned as done); anything else is a damaged range up to the next
/// record that passes its checks, where the scanner goes on.
fn step_over<S: Source>(
    scanner: &mut Scanner<S>,
    out: &mut Salvage,
    pending: &mut Option<Pending>,
    offset: u64,
    reason: &str,
    len: u64,
) -> std::io::Result<Option<Salvage>> {
    if scanner.rest_is_zero(offset)? {
        take_uncommitted(out, pending.take());
        out.zero_tail = (offset < len).then_some(offset);
        return Ok(Some(std::mem::take(out)));
    }
    let next = scanner.resync(offset + 1)?.unwrap_or(len);
    let (start, intact) = match pending.take() {
        Some(p) => (p.range.start, p.count),
        None => (offset, 0),
    };
    out.removed.push(Removed {
        range: start..next,
        damage_at: Some(offset),
        reason: reason.to_string(),
        intact_records: intact,
    });
    scanner.seek(next);
    Ok(None)
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
        let s = salvage(BytesSource::new(bytes.to_vec()), 0, |r| {
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

//! Ordered iteration over a snapshot of the keydir.
//!
//! At creation the iterator copies the matching keys and their record
//! positions out of the index, in key order as one consistent view (all
//! keys in one buffer; a hash index sorts a copy of its own first, see
//! `keydir/hash.rs`),
//! and holds on to every data file open at that moment. From then on it
//! needs no lock: later puts and deletes change the index, not the copy, and
//! the records it points at stay readable because data files are append-only
//! and the iterator's `Arc`s keep them open (a future merge that deletes a
//! file only unlinks it; the open descriptor still reads it). Values are
//! read only when asked for, with one positioned read each.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keydir::Index;
use crate::log::data_file::DataFile;
use crate::log::filename::data_file_name;
use crate::log::RecordPos;

/// One key of the snapshot: where its bytes lie in the key buffer, and
/// where its record lies on disk.
struct SnapshotKey {
    key: Range<usize>,
    pos: RecordPos,
}

/// An iterator over the keys of a database as they were when it was made,
/// in ascending unsigned byte order (descending if made in reverse), limited
/// to the keys that start with its prefix. Made by [`crate::Bitcask::iter`];
/// it starts at the first key.
pub struct Iter {
    /// Every key of the snapshot, back to back.
    keys: Vec<u8>,
    /// Ascending by key.
    entries: Vec<SnapshotKey>,
    /// Every data file at creation, so that each record stays readable.
    files: BTreeMap<u32, Arc<DataFile>>,
    reverse: bool,
    /// Position in iteration order; `entries.len()` once exhausted.
    at: usize,
    /// The current record, once its value was asked for.
    record: Vec<u8>,
    /// The value's range in `record`, and the position it belongs to.
    value: Option<(usize, Range<usize>)>,
}

impl Iter {
    /// Copies the keys of `index` that start with `prefix`. The caller holds
    /// the read lock of `files` across the call, so that every file the
    /// copied positions point into is among `files`.
    pub(crate) fn new(
        index: &dyn Index,
        files: &BTreeMap<u32, Arc<DataFile>>,
        prefix: &[u8],
        reverse: bool,
    ) -> Iter {
        let mut keys = Vec::new();
        let mut entries = Vec::new();
        index.scan_prefix(prefix, &mut |key, pos| {
            let start = keys.len();
            keys.extend_from_slice(key);
            entries.push(SnapshotKey {
                key: start..keys.len(),
                pos,
            });
        });
        Iter {
            keys,
            entries,
            files: files.clone(),
            reverse,
            at: 0,
            record: Vec::new(),
            value: None,
        }
    }

    /// Number of keys in the snapshot.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the snapshot holds no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the iterator is at a key (false once it has moved past the last).
    pub fn valid(&self) -> bool {
        self.at < self.entries.len()
    }

    /// Moves to the next key in iteration order; does nothing once exhausted.
    pub fn next(&mut self) {
        if self.valid() {
            self.at += 1;
        }
    }

    /// Moves back to the first key in iteration order.
    pub fn rewind(&mut self) {
        self.at = 0;
    }

    /// Moves to the first key `>= key` (`<= key` in reverse), which is the
    /// first one at or after `key` in iteration order; exhausted if none.
    pub fn seek(&mut self, key: &[u8]) {
        let n = self.entries.len();
        self.at = if self.reverse {
            n - self
                .entries
                .partition_point(|e| &self.keys[e.key.clone()] <= key)
        } else {
            self.entries
                .partition_point(|e| &self.keys[e.key.clone()] < key)
        };
    }

    /// Leaves the iterator exhausted.
    pub fn exhaust(&mut self) {
        self.at = self.entries.len();
    }

    /// The current key, or `None` once exhausted. It stays valid as long as
    /// the iterator (the snapshot's keys never move).
    pub fn key(&self) -> Option<&[u8]> {
        self.entry().map(|e| &self.keys[e.key.clone()])
    }

    /// The current value, read from its data file with one positioned read
    /// (and both checksums checked) the first time it is asked for at this
    /// position. [`Error::NotFound`] once exhausted.
    pub fn value(&mut self) -> Result<&[u8]> {
        self.current().map(|(_, value)| value)
    }

    /// The current key and value, as [`Iter::key`] and [`Iter::value`].
    pub fn current(&mut self) -> Result<(&[u8], &[u8])> {
        let Some(entry) = self.entry() else {
            return Err(Error::NotFound);
        };
        let (key, pos) = (entry.key.clone(), entry.pos);
        let cached = matches!(&self.value, Some((at, _)) if *at == self.at);
        if !cached {
            self.value = None;
            let file = self.files.get(&pos.file_id).ok_or_else(|| {
                Error::Internal(format!(
                    "an iterator points into data file {}, which it does not hold",
                    data_file_name(pos.file_id)
                ))
            })?;
            // A large value's buffer is not kept for the next small one.
            if self.record.capacity() > 1 << 20 {
                self.record = Vec::new();
            }
            let range = file.read_record(pos, &self.keys[key.clone()], &mut self.record)?;
            self.value = Some((self.at, range));
        }
        let range = match &self.value {
            Some((_, range)) => range.clone(),
            None => return Err(Error::Internal("iterator value vanished".to_string())),
        };
        Ok((&self.keys[key], &self.record[range]))
    }

    fn entry(&self) -> Option<&SnapshotKey> {
        let n = self.entries.len();
        if self.at >= n {
            return None;
        }
        let i = if self.reverse {
            n - 1 - self.at
        } else {
            self.at
        };
        self.entries.get(i)
    }
}

//! Ordered iteration over a snapshot of the keydir.
//!
//! At creation the iterator takes a point-in-time snapshot of the matching
//! keys and their record positions (`keydir/snapshot/mod.rs`: registered
//! under the writer lock, so between two writes, then copied while writers
//! go on) and holds on to every data file open at that moment. From then
//! on it needs no lock: later puts and deletes change the index, not the
//! copy, and the records it points at stay readable because data files are
//! append-only and the iterator's `Arc`s keep them open (a merge that
//! deletes a file only unlinks it; the open descriptor still reads it).
//! Values are read only when asked for, with one positioned read each.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::keydir::SnapshotKeys;
use crate::log::data_file::DataFile;
use crate::log::filename::data_file_name;

/// An iterator over the keys of a database as they were when it was made,
/// in ascending unsigned byte order (descending if made in reverse), limited
/// to the keys that start with its prefix. Made by [`crate::Bitcask::iter`];
/// it starts at the first key.
pub struct Iter {
    /// Ascending by key.
    keys: SnapshotKeys,
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
    /// An iterator over `keys`, whose records lie in `files`.
    pub(crate) fn new(
        keys: SnapshotKeys,
        files: BTreeMap<u32, Arc<DataFile>>,
        reverse: bool,
    ) -> Iter {
        Iter {
            keys,
            files,
            reverse,
            at: 0,
            record: Vec::new(),
            value: None,
        }
    }

    /// Number of keys in the snapshot.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the snapshot holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether the iterator is at a key (false once it has moved past the last).
    pub fn valid(&self) -> bool {
        self.at < self.keys.len()
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
        let n = self.keys.len();
        self.at = if self.reverse {
            n - self.keys.partition_point(key, true)
        } else {
            self.keys.partition_point(key, false)
        };
    }

    /// Leaves the iterator exhausted.
    pub fn exhaust(&mut self) {
        self.at = self.keys.len();
    }

    /// The current key, or `None` once exhausted. It stays valid as long as
    /// the iterator (the snapshot's keys never move).
    pub fn key(&self) -> Option<&[u8]> {
        self.entry().map(|(key, _)| key)
    }

    /// The current value, read from its data file with one positioned read
    /// (and both checksums checked) the first time it is asked for at this
    /// position. [`Error::NotFound`] once exhausted.
    pub fn value(&mut self) -> Result<&[u8]> {
        self.current().map(|(_, value)| value)
    }

    /// The current key and value, as [`Iter::key`] and [`Iter::value`].
    pub fn current(&mut self) -> Result<(&[u8], &[u8])> {
        let Some(i) = self.index() else {
            return Err(Error::NotFound);
        };
        let cached = matches!(&self.value, Some((at, _)) if *at == self.at);
        if !cached {
            self.value = None;
            // A large value's buffer is not kept for the next small one.
            if self.record.capacity() > 1 << 20 {
                self.record = Vec::new();
            }
            let Some((key, pos)) = self.keys.get(i) else {
                return Err(Error::NotFound);
            };
            let file = self.files.get(&pos.file_id).ok_or_else(|| {
                Error::Internal(format!(
                    "an iterator points into data file {}, which it does not hold",
                    data_file_name(pos.file_id)
                ))
            })?;
            let range = file.read_record(pos, key, &mut self.record)?;
            self.value = Some((self.at, range));
        }
        let range = match &self.value {
            Some((_, range)) => range.clone(),
            None => return Err(Error::Internal("iterator value vanished".to_string())),
        };
        let key = self.keys.get(i).map_or(&[][..], |(key, _)| key);
        Ok((key, &self.record[range]))
    }

    /// The current key and its record's position.
    fn entry(&self) -> Option<(&[u8], crate::log::RecordPos)> {
        self.index().and_then(|i| self.keys.get(i))
    }

    /// Where the current key lies in the snapshot (ascending order).
    fn index(&self) -> Option<usize> {
        let n = self.keys.len();
        if self.at >= n {
            return None;
        }
        Some(if self.reverse {
            n - 1 - self.at
        } else {
            self.at
        })
    }
}

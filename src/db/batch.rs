//! Write batches: puts and deletes buffered in memory, then written by
//! [`crate::Bitcask::write`] as one append that ends with a commit record, so
//! that all of them become visible together, and after a crash all or none
//! of them are found at open (see `load.rs`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::log::format::{self, check_key, check_value};

/// A write batch. Within a batch the last operation on a key wins. Made by
/// [`crate::Bitcask::batch`], which gives it the database's
/// `max_batch_bytes`; committing empties it for reuse.
#[derive(Debug)]
pub struct Batch {
    /// The last operation on each key: a value to put, or `None` to delete.
    ops: BTreeMap<Box<[u8]>, Option<Vec<u8>>>,
    /// Bytes the batch takes in a data file, its commit record included.
    bytes: u64,
    max_bytes: u64,
}

impl Batch {
    pub(crate) fn new(max_bytes: u64) -> Batch {
        Batch {
            ops: BTreeMap::new(),
            bytes: format::batch_commit_len() as u64,
            max_bytes,
        }
    }

    /// Adds a put of `value` under `key` (checked as [`crate::Bitcask::put`]
    /// checks them). [`Error::InvalidArgument`], with the batch unchanged,
    /// if the batch would grow past `max_batch_bytes`.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        self.set(key, Some(value))
    }

    /// Adds a delete of `key`. A delete of a key that is absent when the
    /// batch is committed writes nothing.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        self.set(key, None)
    }

    /// Number of distinct keys the batch changes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch holds no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Bytes the batch would take in a data file, its commit record included.
    pub fn encoded_len(&self) -> u64 {
        self.bytes
    }

    /// Drops every operation.
    pub fn clear(&mut self) {
        self.ops.clear();
        self.bytes = format::batch_commit_len() as u64;
    }

    /// The operations, in key order.
    pub(crate) fn ops(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.ops.iter().map(|(k, v)| (&k[..], v.as_deref()))
    }

    fn set(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let len = |value: Option<&[u8]>| {
            format::record_len(key.len(), value.map_or(0, <[u8]>::len)) as u64
        };
        let replaced = self.ops.get(key).map_or(0, |old| len(old.as_deref()));
        let total = self.bytes - replaced + len(value);
        if total > self.max_bytes {
            return Err(Error::InvalidArgument(format!(
                "the batch would grow to {total} bytes, past max_batch_bytes ({}); commit it \
                 and continue in a new batch, or open the database with a larger \
                 max_batch_bytes",
                self.max_bytes
            )));
        }
        self.ops.insert(key.into(), value.map(<[u8]>::to_vec));
        self.bytes = total;
        Ok(())
    }
}

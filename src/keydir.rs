//! The keydir: the in-memory index from key to the position of its latest
//! record. It sits behind the [`Index`] trait so that other index types can be
//! plugged in; [`OrderedIndex`] is the default.

use crate::options::IndexType;

mod ordered;

pub use ordered::OrderedIndex;

/// Where a key's latest record lies: which data file, where in it, how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPos {
    pub file_id: u32,
    /// Offset of the record's first byte. Data files are at most 2 GiB plus
    /// one record, so 32 bits hold every offset.
    pub offset: u32,
    /// Length of the whole record, header included.
    pub size: u32,
}

/// An in-memory index. Implementations lock internally: every method may be
/// called from many threads at once.
pub trait Index: Send + Sync {
    /// The position of `key`'s latest record.
    fn get(&self, key: &[u8]) -> Option<RecordPos>;
    /// Points `key` at `pos`; returns the position it replaced.
    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos>;
    /// Forgets `key`; returns the position it had.
    fn remove(&self, key: &[u8]) -> Option<RecordPos>;
    /// Number of keys.
    fn len(&self) -> usize;
    /// Calls `visit` for every key that starts with `prefix` (all keys for
    /// an empty prefix), in ascending unsigned byte order, as one consistent
    /// view: writers wait until the walk is done, so keep `visit` short.
    fn scan_prefix(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], RecordPos));
}

/// Builds an empty index of the given type.
pub fn new_index(index_type: IndexType) -> Box<dyn Index> {
    match index_type {
        IndexType::Ordered => Box::<OrderedIndex>::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u32) -> RecordPos {
        RecordPos {
            file_id: n,
            offset: n * 10,
            size: n + 1,
        }
    }

    #[test]
    fn put_get_replace_remove() {
        let index = new_index(IndexType::Ordered);
        assert_eq!(index.len(), 0);
        assert_eq!(index.put(b"a", pos(1)), None);
        assert_eq!(index.put(b"b", pos(2)), None);
        assert_eq!(index.put(b"a", pos(3)), Some(pos(1)));
        assert_eq!(index.get(b"a"), Some(pos(3)));
        assert_eq!(index.len(), 2);
        assert_eq!(index.remove(b"a"), Some(pos(3)));
        assert_eq!(index.remove(b"a"), None);
        assert_eq!(index.get(b"a"), None);
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn prefix_scan_is_ordered_and_bounded() {
        let index = new_index(IndexType::Ordered);
        for (i, key) in [&b"a"[..], b"ab", b"ab\x00", b"ab\xff", b"ac", b"b", b"\xff"]
            .iter()
            .enumerate()
        {
            index.put(key, pos(i as u32));
        }
        let scan = |prefix: &[u8]| {
            let mut keys = Vec::new();
            index.scan_prefix(prefix, &mut |k, _| keys.push(k.to_vec()));
            keys
        };
        assert_eq!(
            scan(b"ab"),
            vec![b"ab".to_vec(), b"ab\x00".to_vec(), b"ab\xff".to_vec()]
        );
        assert_eq!(scan(b"").len(), 7);
        assert_eq!(scan(b"\xff"), vec![b"\xff".to_vec()]);
        assert!(scan(b"zz").is_empty());
    }

    #[test]
    fn keys_with_zero_and_ff_bytes_are_distinct() {
        let index = new_index(IndexType::Ordered);
        index.put(&[0x00], pos(1));
        index.put(&[0x00, 0x00], pos(2));
        index.put(&[0xFF], pos(3));
        assert_eq!(index.get(&[0x00]), Some(pos(1)));
        assert_eq!(index.get(&[0x00, 0x00]), Some(pos(2)));
        assert_eq!(index.get(&[0xFF]), Some(pos(3)));
    }
}

//! [`OrderedIndex`]: the keydir as a B-tree of boxed keys, in key order.

use std::collections::BTreeMap;

use parking_lot::RwLock;

use super::{Index, RecordPos};

/// A B-tree ordered by key bytes (unsigned), behind a reader-writer lock.
#[derive(Default)]
pub struct OrderedIndex {
    map: RwLock<BTreeMap<Box<[u8]>, RecordPos>>,
}

impl Index for OrderedIndex {
    fn get(&self, key: &[u8]) -> Option<RecordPos> {
        self.map.read().get(key).copied()
    }

    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos> {
        let mut map = self.map.write();
        // An overwrite updates in place and allocates nothing.
        if let Some(slot) = map.get_mut(key) {
            return Some(std::mem::replace(slot, pos));
        }
        map.insert(key.into(), pos)
    }

    fn remove(&self, key: &[u8]) -> Option<RecordPos> {
        self.map.write().remove(key)
    }

    fn replace_if(&self, key: &[u8], expected: RecordPos, new: RecordPos) -> bool {
        match self.map.write().get_mut(key) {
            Some(slot) if *slot == expected => {
                *slot = new;
                true
            }
            _ => false,
        }
    }

    fn len(&self) -> usize {
        self.map.read().len()
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], RecordPos)) {
        use std::ops::Bound;
        let map = self.map.read();
        let range = map.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
        for (key, pos) in range.take_while(|(key, _)| key.starts_with(prefix)) {
            visit(key, *pos);
        }
    }
}

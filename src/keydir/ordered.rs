//! [`OrderedIndex`]: the keydir as a B-tree of boxed keys, in key order.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};

use super::snapshot::{Copies, CopyGuard, PendingSnapshot, SnapshotKeys};
use super::{key_head, prefetch, release_free_heap, Index};
use crate::log::{Change, RecordPos};

/// How many keys a snapshot copies per hold of the read lock: a writer
/// waits at most that long for it (about a millisecond at 10,000 keys).
/// Tests take smaller chunks, to change the tree between many of them.
const SNAPSHOT_CHUNK: usize = if cfg!(test) { 512 } else { 4096 };

/// [`OrderedIndex::apply`] rebuilds the map from a run unless the map holds
/// more than this many times the run's changes: a rebuild costs about the
/// map's size plus the run's, so over a load it stays within this many
/// times the changes applied, while inserting one by one costs a walk from
/// the root per change.
const REBUILD_RATIO: usize = 8;

/// A B-tree ordered by key bytes (unsigned), behind a reader-writer lock.
#[derive(Default)]
pub struct OrderedIndex {
    map: RwLock<BTreeMap<Box<[u8]>, RecordPos>>,
    /// Whether [`OrderedIndex::apply`] rebuilt the map since the last
    /// [`Index::shrink_to_fit`]: it freed buffers of tens of MiB then.
    rebuilt: AtomicBool,
    /// Snapshots being copied, each with the last key it has copied.
    copies: Copies<Mutex<Reached>>,
}

/// How far a snapshot's copy has got, in key order. Changed under the
/// map's read lock, looked at under its write lock: never at once.
enum Reached {
    Nothing,
    /// Every key up to this one, included.
    UpTo(Box<[u8]>),
    All,
}

impl Reached {
    fn covers(&self, key: &[u8]) -> bool {
        match self {
            Reached::Nothing => false,
            Reached::UpTo(last) => key <= &last[..],
            Reached::All => true,
        }
    }
}

impl OrderedIndex {
    /// Notes a change of `key` from `old` for the snapshots being copied
    /// that have not reached it (see `snapshot.rs`). The caller holds the
    /// write lock.
    #[inline]
    fn note(&self, key: &[u8], old: Option<RecordPos>) {
        if self.copies.any() {
            self.copies
                .note(key, old, |reached| reached.lock().covers(key));
        }
    }
}

impl Index for OrderedIndex {
    fn get(&self, key: &[u8]) -> Option<RecordPos> {
        self.map.read().get(key).copied()
    }

    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos> {
        let mut map = self.map.write();
        // An overwrite updates in place and allocates nothing.
        let old = match map.get_mut(key) {
            Some(slot) => Some(std::mem::replace(slot, pos)),
            None => map.insert(key.into(), pos),
        };
        self.note(key, old);
        old
    }

    fn remove(&self, key: &[u8]) -> Option<RecordPos> {
        let mut map = self.map.write();
        let old = map.remove(key);
        if old.is_some() {
            self.note(key, old);
        }
        old
    }

    fn replace_if(&self, key: &[u8], expected: RecordPos, new: RecordPos) -> bool {
        let mut map = self.map.write();
        match map.get_mut(key) {
            Some(slot) if *slot == expected => {
                *slot = new;
                self.note(key, Some(expected));
                true
            }
            _ => false,
        }
    }

    /// Long runs: a rebuild costs the map's size, so the fewer the better,
    /// while a run costs 32 bytes a change, 32 MiB at this length.
    fn run_len(&self) -> usize {
        1 << 20
    }

    /// Sorts the run by key (one key's changes stay in order). Into a map
    /// not much larger than the run, it then merges the map's entries with
    /// the run's outcome and builds a new map from the sorted whole, in
    /// linear time; inserting keys one by one walks the tree from the root
    /// each time, with a cache miss at nearly every level (every key is an
    /// allocation of its own). Into a larger map, it applies the changes
    /// one by one, in key order, so that consecutive ones share the upper
    /// nodes of their walks.
    fn apply(
        &self,
        changes: &[Change<'_>],
        replaced: &mut dyn FnMut(&Change<'_>, Option<RecordPos>),
    ) {
        let order = sorted(changes);
        let mut map = self.map.write();
        if map.len() / REBUILD_RATIO > changes.len() {
            for (at, &(_, i)) in order.iter().enumerate() {
                prefetch_ahead(changes, &order, at);
                let change = &changes[i];
                let old = if change.delete {
                    map.remove(change.key)
                } else if let Some(slot) = map.get_mut(change.key) {
                    Some(std::mem::replace(slot, change.pos))
                } else {
                    map.insert(change.key.into(), change.pos)
                };
                if old.is_some() || !change.delete {
                    self.note(change.key, old);
                }
                replaced(change, old);
            }
            return;
        }
        let mut existing = std::mem::take(&mut *map).into_iter().peekable();
        let mut entries = Vec::with_capacity(existing.len() + changes.len());
        let mut at = 0;
        while at < order.len() {
            prefetch_ahead(changes, &order, at);
            let (head, first) = order[at];
            let key = changes[first].key;
            // The map's keys before this one, which the run leaves alone.
            while let Some(entry) = existing.next_if(|(k, _)| **k < *key) {
                entries.push(entry);
            }
            let (mut boxed, mut now) = match existing.next_if(|(k, _)| **k == *key) {
                Some((boxed, pos)) => (Some(boxed), Some(pos)),
                None => (None, None),
            };
            // This key's changes, in the run's order.
            while let Some(&(_, i)) = order
                .get(at)
                .filter(|(h, i)| *h == head && changes[*i].key == key)
            {
                let change = &changes[i];
                if now.is_some() || !change.delete {
                    self.note(change.key, now);
                }
                replaced(change, now);
                now = (!change.delete).then_some(change.pos);
                at += 1;
            }
            if let Some(pos) = now {
                entries.push((boxed.take().unwrap_or_else(|| key.into()), pos));
            }
        }
        entries.extend(existing);
        // Sorted and without duplicates: from_iter builds the tree in one
        // pass (its own stable sort finds the input sorted in linear time).
        *map = entries.into_iter().collect();
        self.rebuilt.store(true, Ordering::Relaxed);
    }

    /// The map has no spare room to give back. But a rebuild allocates and
    /// frees the run's sorted order and the merged entries, and the loader
    /// the run itself, some 24 to 32 bytes per key each, which glibc keeps
    /// resident where they lie below the tree (about 55 bytes per key after
    /// an open of 1M keys): returned to the kernel here.
    fn shrink_to_fit(&self) {
        if self.rebuilt.swap(false, Ordering::Relaxed) {
            release_free_heap();
        }
    }

    fn len(&self) -> usize {
        self.map.read().len()
    }

    fn snapshot(&self, prefix: &[u8]) -> Box<dyn PendingSnapshot + '_> {
        Box::new(OrderedSnapshot {
            index: self,
            copy: self.copies.start(prefix, Mutex::new(Reached::Nothing)),
        })
    }
}

/// A snapshot of an [`OrderedIndex`] registered and not yet copied.
struct OrderedSnapshot<'a> {
    index: &'a OrderedIndex,
    copy: CopyGuard<'a, Mutex<Reached>>,
}

impl PendingSnapshot for OrderedSnapshot<'_> {
    /// Walks the tree in key order, [`SNAPSHOT_CHUNK`] keys per hold of
    /// the read lock; between two holds, writers change the tree and the
    /// changes past the last key copied are noted.
    fn collect_between(self: Box<Self>, between: &mut dyn FnMut()) -> SnapshotKeys {
        let prefix = self.copy.prefix();
        let mut keys = SnapshotKeys::default();
        let mut from: Bound<Box<[u8]>> = Bound::Included(prefix.into());
        loop {
            let map = self.index.map.read();
            let mut last = None;
            let mut taken = 0;
            let range = map.range::<[u8], _>((from.as_ref().map(|k| &k[..]), Bound::Unbounded));
            for (key, pos) in range.take_while(|(key, _)| key.starts_with(prefix)) {
                keys.push(key, *pos);
                last = Some(key);
                taken += 1;
                if taken == SNAPSHOT_CHUNK {
                    break;
                }
            }
            let mut reached = self.copy.progress.lock();
            match last {
                Some(last) if taken == SNAPSHOT_CHUNK => {
                    *reached = Reached::UpTo(last.clone());
                    from = Bound::Excluded(last.clone());
                }
                _ => {
                    *reached = Reached::All;
                    break;
                }
            }
            drop(reached);
            drop(map);
            between();
        }
        self.copy.finish(keys)
    }
}

/// The changes of a run in key order, each with its key's [`key_head`] and
/// its place in the run. Sorted mostly without reading the keys, which lie
/// all over the run's buffer; the place breaks ties, so that one key's
/// changes keep their order.
fn sorted(changes: &[Change<'_>]) -> Vec<((u64, u64), usize)> {
    let mut order: Vec<_> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (key_head(c.key), i))
        .collect();
    order.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| changes[a.1].key.cmp(changes[b.1].key))
            .then(a.1.cmp(&b.1))
    });
    order
}

/// In key order, the changes lie at random places in the run, and their
/// keys at random places in the hint: asks for the change 16 ahead and for
/// the key of the one 8 ahead, so that those misses overlap.
#[inline]
fn prefetch_ahead(changes: &[Change<'_>], order: &[((u64, u64), usize)], at: usize) {
    if let Some(&(_, i)) = order.get(at + 16) {
        prefetch(&changes[i]);
    }
    if let Some(key) = order.get(at + 8).and_then(|&(_, i)| changes[i].key.first()) {
        prefetch(key);
    }
}

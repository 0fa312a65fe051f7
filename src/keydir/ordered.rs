//! [`OrderedIndex`]: the keydir in key order, as a row of segments, each a
//! B-tree of a few hundred consecutive keys behind an `Arc`.
//!
//! Segment `i` holds the keys from its lower bound up to the next
//! segment's (the first segment's bound is the empty key, below every
//! key). A segment that grows past [`SEGMENT_MAX`] keys splits in two; one
//! that shrinks to a few hundred joins a neighbour. All of them sit behind
//! one reader-writer lock, so a write batch is applied under one hold of
//! the write lock: a get sees all of it or none.
//!
//! Why segments: a snapshot (an iterator, a fold) takes a reference to
//! every segment under the read lock, in microseconds, and copies the keys
//! out of them afterwards, holding no lock; a writer that changes a segment
//! a snapshot still holds copies that segment first (copy on write, see
//! `snapshot/mod.rs`). A writer so never waits for a snapshot's copy of the
//! whole tree, only, once per snapshot and segment, for the copy of one
//! segment (512 keys at most).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::snapshot::{PendingSnapshot, SnapshotKeys};
use super::{key_head, prefetch, release_free_heap, Index};
use crate::log::{Change, RecordPos};

/// [`OrderedIndex::apply`] rebuilds the tree from a run unless the tree
/// holds more than this many times the run's changes: a rebuild costs about
/// the tree's size plus the run's, so over a load it stays within this many
/// times the changes applied, while inserting one by one costs a walk from
/// the root per change.
const REBUILD_RATIO: usize = 8;
/// A segment with more keys splits in two: the most a writer copies when
/// it changes a segment a snapshot holds (each key is an allocation of its
/// own: tens of microseconds). Tests take small segments, to split and join
/// them often.
const SEGMENT_MAX: usize = if cfg!(test) { 64 } else { 512 };
/// How many keys a rebuild puts in each segment: room for a quarter more
/// before the first split.
const SEGMENT_FILL: usize = SEGMENT_MAX * 3 / 4;
/// A segment with fewer keys joins a neighbour, if the two together stay
/// within half of [`SEGMENT_MAX`].
const SEGMENT_MIN: usize = SEGMENT_MAX / 8;

type Keys = BTreeMap<Box<[u8]>, RecordPos>;

/// An ordered map of byte-string keys (unsigned order) to record positions,
/// in copy-on-write segments (see the module documentation).
#[derive(Default)]
pub struct OrderedIndex {
    tree: RwLock<Segments>,
    /// Whether [`OrderedIndex::apply`] rebuilt the tree since the last
    /// [`Index::shrink_to_fit`]: it freed buffers of tens of MiB then.
    rebuilt: AtomicBool,
}

/// The segments, ascending, and how many keys they hold in all. The row
/// is shared with snapshots too, so that taking one is a single reference.
struct Segments {
    /// Never empty: the first has the empty lower bound.
    parts: Arc<Vec<Segment>>,
    len: usize,
}

/// Consecutive keys, from `lower` (included) up to the next segment's. A
/// copy of the row copies references only.
#[derive(Clone)]
struct Segment {
    /// [`key_head`] of `lower`: the search among segments compares these,
    /// which lie in the row, and reads `lower` only on a tie.
    head: (u64, u64),
    lower: Arc<[u8]>,
    keys: Arc<Keys>,
}

impl Segment {
    fn new(lower: &[u8], keys: Keys) -> Segment {
        Segment {
            head: key_head(lower),
            lower: lower.into(),
            keys: Arc::new(keys),
        }
    }

    /// Whether this segment's lower bound is at or below `key` (of head `head`).
    #[inline]
    fn starts_at_or_below(&self, key: &[u8], head: (u64, u64)) -> bool {
        self.head < head || (self.head == head && &*self.lower <= key)
    }
}

impl Default for Segments {
    fn default() -> Self {
        Segments {
            parts: Arc::new(vec![Segment::new(&[], Keys::new())]),
            len: 0,
        }
    }
}

impl Segments {
    /// The segment whose range holds `key`.
    #[inline]
    fn find(&self, key: &[u8]) -> usize {
        let head = key_head(key);
        // The first segment's bound is empty, below or equal to any key.
        self.parts
            .partition_point(|s| s.starts_at_or_below(key, head))
            - 1
    }

    fn get(&self, key: &[u8]) -> Option<RecordPos> {
        self.parts[self.find(key)].keys.get(key).copied()
    }

    /// Segment `i`, to change: the row and the segment are copied first if
    /// a snapshot holds them.
    fn segment_mut(&mut self, i: usize) -> &mut Keys {
        Arc::make_mut(&mut Arc::make_mut(&mut self.parts)[i].keys)
    }

    fn put(&mut self, key: &[u8], pos: RecordPos) -> Option<RecordPos> {
        let i = self.find(key);
        let keys = &mut self.segment_mut(i);
        // An overwrite updates in place and allocates nothing.
        if let Some(slot) = keys.get_mut(key) {
            return Some(std::mem::replace(slot, pos));
        }
        keys.insert(key.into(), pos);
        let full = keys.len() > SEGMENT_MAX;
        self.len += 1;
        if full {
            self.split(i);
        }
        None
    }

    fn remove(&mut self, key: &[u8]) -> Option<RecordPos> {
        let i = self.find(key);
        // An absent key changes nothing: no copy of a shared segment.
        if !self.parts[i].keys.contains_key(key) {
            return None;
        }
        let old = self.segment_mut(i).remove(key);
        self.len -= 1;
        self.join_if_small(i);
        old
    }

    fn replace_if(&mut self, key: &[u8], expected: RecordPos, new: RecordPos) -> bool {
        let i = self.find(key);
        if self.parts[i].keys.get(key) != Some(&expected) {
            return false;
        }
        if let Some(slot) = self.segment_mut(i).get_mut(key) {
            *slot = new;
        }
        true
    }

    /// Splits segment `i` at its middle key.
    fn split(&mut self, i: usize) {
        let keys = &mut self.segment_mut(i);
        let Some(middle) = keys.keys().nth(keys.len() / 2).cloned() else {
            return;
        };
        let upper = keys.split_off(&middle);
        Arc::make_mut(&mut self.parts).insert(i + 1, Segment::new(&middle, upper));
    }

    /// Joins segment `i` with a neighbour when it has become small, so that
    /// deletes do not leave a long row of near-empty segments behind.
    fn join_if_small(&mut self, i: usize) {
        let len = self.parts[i].keys.len();
        if len >= SEGMENT_MIN || self.parts.len() == 1 {
            return;
        }
        let j = if i + 1 < self.parts.len() {
            i + 1
        } else {
            i - 1
        };
        if len > 0 && len + self.parts[j].keys.len() > SEGMENT_MAX / 2 {
            return;
        }
        // The upper of the two goes into the lower, which keeps its bound
        // (an empty segment simply goes: its range falls to its neighbour).
        let (low, high) = (i.min(j), i.max(j));
        let gone = Arc::make_mut(&mut self.parts).remove(high);
        let mut moved = Arc::unwrap_or_clone(gone.keys);
        self.segment_mut(low).append(&mut moved);
    }

    /// Every key and position, in order, taken out of the segments (copied
    /// where a snapshot still holds a segment).
    fn drain(&mut self) -> impl Iterator<Item = (Box<[u8]>, RecordPos)> {
        let parts = std::mem::take(&mut self.parts);
        self.len = 0;
        Arc::unwrap_or_clone(parts)
            .into_iter()
            .flat_map(|segment| Arc::unwrap_or_clone(segment.keys).into_iter())
    }

    /// Segments of [`SEGMENT_FILL`] keys made of `entries` (ascending, no
    /// key twice).
    fn build(entries: Vec<(Box<[u8]>, RecordPos)>) -> Segments {
        let len = entries.len();
        let mut parts = Vec::with_capacity(len / SEGMENT_FILL + 1);
        let mut entries = entries.into_iter().peekable();
        while entries.peek().is_some() {
            let keys: Keys = entries.by_ref().take(SEGMENT_FILL).collect();
            let lower = match keys.keys().next() {
                Some(first) if !parts.is_empty() => first.clone(),
                _ => Box::default(),
            };
            parts.push(Segment::new(&lower, keys));
        }
        if parts.is_empty() {
            return Segments::default();
        }
        Segments {
            parts: Arc::new(parts),
            len,
        }
    }
}

impl OrderedIndex {
    /// An index of `keys` (sorted, no key twice).
    pub(crate) fn from_sorted(keys: &SnapshotKeys) -> OrderedIndex {
        let entries = (0..keys.len())
            .filter_map(|i| keys.get(i))
            .map(|(key, pos)| (Box::from(key), pos))
            .collect();
        OrderedIndex {
            tree: RwLock::new(Segments::build(entries)),
            rebuilt: AtomicBool::new(true),
        }
    }
}

impl Index for OrderedIndex {
    fn get(&self, key: &[u8]) -> Option<RecordPos> {
        self.tree.read().get(key)
    }

    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos> {
        self.tree.write().put(key, pos)
    }

    fn remove(&self, key: &[u8]) -> Option<RecordPos> {
        self.tree.write().remove(key)
    }

    fn replace_if(&self, key: &[u8], expected: RecordPos, new: RecordPos) -> bool {
        self.tree.write().replace_if(key, expected, new)
    }

    /// Long runs: a rebuild costs the tree's size, so the fewer the better,
    /// while a run costs 32 bytes a change, 32 MiB at this length.
    fn run_len(&self) -> usize {
        1 << 20
    }

    /// Under one hold of the write lock (atomic for readers). Sorts the run
    /// by key (one key's changes stay in order). Into a tree not much larger
    /// than the run, it then merges the tree's entries with the run's
    /// outcome and builds new segments from the sorted whole, in linear
    /// time; inserting keys one by one walks a tree from the root each
    /// time, with a cache miss at nearly every level (every key is an
    /// allocation of its own). Into a larger tree, it applies the changes
    /// one by one, in key order, so that consecutive ones share segments
    /// and the upper nodes of their walks.
    fn apply(
        &self,
        changes: &[Change<'_>],
        replaced: &mut dyn FnMut(&Change<'_>, Option<RecordPos>),
    ) {
        let order = sorted(changes);
        let mut tree = self.tree.write();
        if tree.len / REBUILD_RATIO > changes.len() {
            for (at, &(_, i)) in order.iter().enumerate() {
                prefetch_ahead(changes, &order, at);
                let change = &changes[i];
                let old = if change.delete {
                    tree.remove(change.key)
                } else {
                    tree.put(change.key, change.pos)
                };
                replaced(change, old);
            }
            return;
        }
        let mut entries = Vec::with_capacity(tree.len + changes.len());
        let mut existing = tree.drain().peekable();
        let mut at = 0;
        while at < order.len() {
            prefetch_ahead(changes, &order, at);
            let (head, first) = order[at];
            let key = changes[first].key;
            // The tree's keys before this one, which the run leaves alone.
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
                replaced(change, now);
                now = (!change.delete).then_some(change.pos);
                at += 1;
            }
            if let Some(pos) = now {
                entries.push((boxed.take().unwrap_or_else(|| key.into()), pos));
            }
        }
        entries.extend(existing);
        *tree = Segments::build(entries);
        self.rebuilt.store(true, Ordering::Relaxed);
    }

    /// The tree has no spare room to give back. But a rebuild allocates and
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
        self.tree.read().len
    }

    /// Takes a reference to the row of segments, under the read lock for a
    /// moment (the engine holds its writer lock meanwhile, so no write lands
    /// in between): one reference, however many segments there are.
    fn snapshot(&self, prefix: &[u8]) -> Box<dyn PendingSnapshot + '_> {
        let tree = self.tree.read();
        Box::new(OrderedSnapshot {
            first: tree.find(prefix),
            segments: Arc::clone(&tree.parts),
            prefix: prefix.into(),
            len: if prefix.is_empty() { tree.len } else { 0 },
        })
    }
}

/// A snapshot of an [`OrderedIndex`]: the row of segments as it was, not
/// yet copied, and the first segment that may hold its prefix.
struct OrderedSnapshot {
    segments: Arc<Vec<Segment>>,
    first: usize,
    prefix: Box<[u8]>,
    /// How many keys it holds, if known (for the whole index).
    len: usize,
}

impl PendingSnapshot for OrderedSnapshot {
    /// Copies the keys with the prefix out of the segments, in order, with
    /// no lock, letting go of each segment once copied (a writer then needs
    /// no copy of it); they come out sorted.
    fn collect_between(self: Box<Self>, between: &mut dyn FnMut()) -> SnapshotKeys {
        let OrderedSnapshot {
            segments,
            first,
            prefix,
            len,
        } = *self;
        // A row of references of its own (a copy of the row if a writer
        // still shares it), so that each segment can be let go of in turn.
        let mut segments = Arc::unwrap_or_clone(segments);
        segments.drain(..first);
        let mut out = SnapshotKeys::with_capacity(len);
        for segment in segments {
            let mut past = false;
            let range = segment
                .keys
                .range::<[u8], _>((Bound::Included(&prefix[..]), Bound::Unbounded));
            for (key, pos) in range {
                if !key.starts_with(&prefix) {
                    past = true;
                    break;
                }
                out.push(key, *pos);
            }
            drop(segment);
            between();
            // Every later segment holds only larger keys.
            if past {
                break;
            }
        }
        out
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

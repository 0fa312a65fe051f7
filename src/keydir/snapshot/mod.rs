//! Point-in-time snapshots of the keydir, taken while writers go on.
//!
//! An iterator (or fold) sees the keys and record positions of one moment:
//! every write acknowledged before it was created, none after. Copying a
//! million keys takes tens of milliseconds, and writers must not wait for
//! that (a put stalled behind an iterator for as long is what issue 13
//! measured).
//!
//! Both index types keep their keys in parts behind `Arc`s, changed copy on
//! write: the hash index its shards (table and key arena), the ordered
//! index its segments (B-trees of a few hundred consecutive keys). A
//! snapshot ([`super::Index::snapshot`]) takes a reference to every part,
//! which takes microseconds; the engine does that under its writer lock, so
//! no write is half applied at that moment. The keys are then copied out of
//! the parts held ([`PendingSnapshot::collect`]) with no lock at all. A
//! writer that changes a part a snapshot still holds copies that one part
//! first and changes its own copy; the snapshot lets go of each part once
//! it has copied it. So a writer waits for at most the copy of one part,
//! once per snapshot, never for the snapshot's copy of the whole index,
//! and never for a reader that lost its core while holding a lock.
//!
//! Why this design, rather than the others studied (measurements in
//! docs/bench/snapshots.md):
//! - First built here: copying region by region under each region's lock,
//!   noting for the copy every change writers made meanwhile to regions
//!   not yet copied. Correct, but a copying thread that lost its core while
//!   holding a region's lock held up every writer behind it: puts of 16 to
//!   175 ms while iterators were made on a busy machine, with none of that
//!   time spent waiting for a core.
//! - Riak's keydir freeze sends writes to a pending table while a fold is
//!   live and merges it back after; gets then look in two tables, and the
//!   merge-back is a writer pause that grows with the writes made meanwhile.
//! - Sequence numbers on every entry, with old versions kept while a
//!   snapshot needs them, cost 8 bytes per key whether or not a snapshot
//!   ever exists (the hash index keeps a key in 13 bytes plus its slot).
//! - A persistent tree copied path by path costs every write a few node
//!   copies while any snapshot lives; copying whole parts costs one copy per
//!   part and snapshot, and nothing at all when no snapshot is taken.
//!
//! A snapshot's keys are entries with the key's first 16 bytes inline
//! ([`SnapshotKeys`]): the sort ([`sort`]) orders them by the bits of those
//! 16 bytes in which the keys differ, and most comparisons of a seek end
//! there without touching the key buffer.

use super::prefetch;
use crate::log::RecordPos;

mod sort;

/// Keys up to this long live inside their [`SnapshotEntry`]; longer ones in
/// the snapshot's key buffer (the first bytes inside too, for sorting).
pub const INLINE_KEY: usize = 16;

/// The keys of a snapshot that start with its prefix, ascending in unsigned
/// byte order, each with the position of its record.
#[derive(Default)]
pub struct SnapshotKeys {
    /// The bytes of every key longer than [`INLINE_KEY`], back to back.
    long_keys: Vec<u8>,
    /// In the order they were added until sorted; then in key order, or
    /// left where they were with `order` giving that.
    entries: Vec<SnapshotEntry>,
    /// Once sorted, if the sort left the entries where they were: their
    /// indices in key order.
    order: Option<Vec<u32>>,
    /// The bits in which some key's head differs from the first key's
    /// (so from another key's): the bits the sort orders by.
    differing: u128,
}

/// One key of a snapshot: its first [`INLINE_KEY`] bytes (zero-padded),
/// its length, where the rest lies, and its record's position.
#[derive(Clone, Copy)]
pub struct SnapshotEntry {
    head: [u8; INLINE_KEY],
    len: u32,
    /// Where a long key lies in [`SnapshotKeys::long_keys`] (0 for short ones).
    start: usize,
    pos: RecordPos,
}

impl SnapshotEntry {
    /// The key's first 16 bytes as two big-endian words: comparing them
    /// compares the keys' first bytes in unsigned order.
    #[inline]
    fn head_words(&self) -> (u64, u64) {
        let [a, b, c, d, e, f, g, h, rest @ ..] = self.head;
        (
            u64::from_be_bytes([a, b, c, d, e, f, g, h]),
            u64::from_be_bytes(rest),
        )
    }
}

impl SnapshotKeys {
    /// An empty set, with room for `entries` keys.
    pub fn with_capacity(entries: usize) -> SnapshotKeys {
        let entries = Vec::with_capacity(entries);
        advise_huge_pages(&entries);
        SnapshotKeys {
            long_keys: Vec::new(),
            entries,
            order: None,
            differing: 0,
        }
    }

    /// Adds a key (in any order: [`SnapshotKeys::sort`] orders them).
    #[inline]
    pub fn push(&mut self, key: &[u8], pos: RecordPos) {
        let mut head = [0u8; INLINE_KEY];
        let n = key.len().min(INLINE_KEY);
        head[..n].copy_from_slice(&key[..n]);
        let start = if key.len() > INLINE_KEY {
            let start = self.long_keys.len();
            self.long_keys.extend_from_slice(key);
            start
        } else {
            0
        };
        let first = self.entries.first().map_or(head, |e| e.head);
        self.differing |= u128::from_be_bytes(head) ^ u128::from_be_bytes(first);
        self.entries.push(SnapshotEntry {
            head,
            // Keys are at most 64 KiB.
            len: key.len() as u32,
            start,
            pos,
        });
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The key and position of entry `i` (in key order, once sorted).
    #[inline]
    pub fn get(&self, i: usize) -> Option<(&[u8], RecordPos)> {
        self.entry(i).map(|e| (self.key_of(e), e.pos))
    }

    /// Every key and its position, in key order once sorted.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], RecordPos)> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The first place whose key is not below `key` (`strictly`: above it).
    pub fn partition_point(&self, key: &[u8], strictly: bool) -> usize {
        let below = |e: &SnapshotEntry| {
            let k = self.key_of(e);
            if strictly {
                k <= key
            } else {
                k < key
            }
        };
        match &self.order {
            None => self.entries.partition_point(below),
            Some(order) => order.partition_point(|&i| below(&self.entries[i as usize])),
        }
    }

    /// Entry `i` in key order. Through `order`, entries lie anywhere in a
    /// buffer far larger than the caches, and every one would be a cache
    /// miss: iterators walk the order one place at a time, either way, so
    /// the entries [`ORDER_AHEAD`] places on both sides are asked for now.
    #[inline]
    fn entry(&self, i: usize) -> Option<&SnapshotEntry> {
        let Some(order) = &self.order else {
            return self.entries.get(i);
        };
        for ahead in [i.wrapping_add(ORDER_AHEAD), i.wrapping_sub(ORDER_AHEAD)] {
            if let Some(&j) = order.get(ahead) {
                if let Some(e) = self.entries.get(j as usize) {
                    prefetch(e);
                }
            }
        }
        self.entries.get(*order.get(i)? as usize)
    }

    #[inline]
    fn key_of<'a>(&'a self, e: &'a SnapshotEntry) -> &'a [u8] {
        let len = e.len as usize;
        if len <= INLINE_KEY {
            &e.head[..len]
        } else {
            &self.long_keys[e.start..e.start + len]
        }
    }

    /// Sorts the keys ascending ([`sort::sort`]: a radix sort on the
    /// bits in which the keys' heads differ, comparisons only among keys
    /// those bits do not tell apart).
    pub fn sort(&mut self) {
        self.order = sort::sort(&mut self.entries, &self.long_keys, self.differing);
    }
}

/// How many places ahead of an iterator [`SnapshotKeys::get`] asks for
/// the entry it will want: enough to cover a cache miss while the
/// iterator handles the keys before it.
const ORDER_AHEAD: usize = 16;

/// Asks the kernel to back the buffer of `v` with 2 MiB pages where it
/// can (transparent huge pages, when the system leaves them to madvise):
/// a snapshot of a million keys fills and sorts 40 MB, which with 4 KiB
/// pages costs ten thousand page faults and a TLB miss at nearly every
/// access of the sort. Only a hint: nothing changes if it is refused.
fn advise_huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    let start = (v.as_ptr() as usize).next_multiple_of(HUGE);
    let end = (v.as_ptr() as usize + bytes) / HUGE * HUGE;
    if end > start {
        // SAFETY: the range lies inside the vector's own allocation, and
        // MADV_HUGEPAGE only changes how the kernel backs it, not its
        // contents or who may use it.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Unsigned byte order of two entries' keys.
#[inline]
fn compare(long_keys: &[u8], a: &SnapshotEntry, b: &SnapshotEntry) -> std::cmp::Ordering {
    a.head_words().cmp(&b.head_words()).then_with(|| {
        // Equal heads: the first 16 bytes (or all of a shorter key, which
        // is then a prefix of the other) are equal; only two long keys can
        // still differ in their bytes.
        let (la, lb) = (a.len as usize, b.len as usize);
        if la > INLINE_KEY && lb > INLINE_KEY {
            long_keys[a.start..a.start + la].cmp(&long_keys[b.start..b.start + lb])
        } else {
            la.cmp(&lb)
        }
    })
}

/// A snapshot registered by [`super::Index::snapshot`], whose keys are not
/// copied yet.
pub trait PendingSnapshot {
    /// Copies the keys, region by region, and returns them sorted, as of
    /// the moment the snapshot was registered. Writers go on meanwhile.
    fn collect(self: Box<Self>) -> SnapshotKeys {
        self.collect_between(&mut || {})
    }

    /// [`PendingSnapshot::collect`], calling `between` after each region,
    /// with no lock held: tests make changes there, at every stage of a copy.
    fn collect_between(self: Box<Self>, between: &mut dyn FnMut()) -> SnapshotKeys;
}

//! Point-in-time snapshots of the keydir, taken while writers go on.
//!
//! An iterator (or fold) sees the keys and record positions of one moment:
//! every write acknowledged before it was created, none after. Copying a
//! million keys takes tens of milliseconds, and writers must not wait for
//! that (a put stalled behind an iterator is the pause issue 13 measured).
//! So the copy is made a region at a time (a shard of the hash index, a
//! few thousand keys of the ordered one), each under that region's lock
//! for a moment only, while writers go on changing the index in between.
//!
//! The moment of the snapshot is when it is registered ([`Copies::start`]):
//! the engine does that under its writer lock, where no write is half
//! applied. From then on, every change to a key in a region the copy has
//! not reached yet is noted for it, with the key's position before the
//! change (or its absence): the first note of a key wins, so it holds the
//! key as of the snapshot. A change to a region already copied needs no
//! note: the copy holds that region as of an instant after the snapshot
//! with every change since then noted. When the copy is done, each noted key
//! takes its noted state in place of whatever the copy saw. Notes are kept
//! only while a copy runs, not for the life of the iterator (which holds its
//! own copy of the keys), and only for keys written meanwhile.
//!
//! Why this design, rather than the others studied (measurements in
//! docs/bench/snapshots.md):
//! - Riak's keydir freeze sends writes to a pending table while a fold is
//!   live and merges it back after; gets then look in two tables, and the
//!   merge-back is a writer pause that grows with the writes made meanwhile.
//! - Sequence numbers on every entry, with old versions kept while a
//!   snapshot needs them, cost 8 bytes per key whether or not a snapshot
//!   ever exists (the hash index keeps a key in 13 bytes plus its slot).
//! - A persistent (copy-on-write) tree makes a snapshot O(1) but copies a
//!   path of nodes on every write that follows one, and its gets cannot use
//!   the hash index's compact table.
//!
//! Here a get, a put with no snapshot in progress, and the memory per key are
//! what they were; a write during a copy pays one look-up in the list of
//! copies and, the first time a key changes, one note.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::log::RecordPos;

/// Keys up to this long live inside their [`SnapshotEntry`]; longer ones in
/// the snapshot's key buffer (the first bytes inside too, for sorting).
pub const INLINE_KEY: usize = 16;

/// The keys of a snapshot that start with its prefix, ascending in unsigned
/// byte order, each with the position of its record.
#[derive(Default)]
pub struct SnapshotKeys {
    /// The bytes of every key longer than [`INLINE_KEY`], back to back.
    long_keys: Vec<u8>,
    entries: Vec<SnapshotEntry>,
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
        SnapshotKeys {
            long_keys: Vec::new(),
            entries: Vec::with_capacity(entries),
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

    /// The key and position of entry `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<(&[u8], RecordPos)> {
        self.entries.get(i).map(|e| (self.key_of(e), e.pos))
    }

    /// The first place whose key is not below `key` (`strictly`: above it).
    pub fn partition_point(&self, key: &[u8], strictly: bool) -> usize {
        self.entries.partition_point(|e| {
            let k = self.key_of(e);
            if strictly {
                k <= key
            } else {
                k < key
            }
        })
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

    /// Sorts the keys ascending. Most comparisons end at the inline heads,
    /// compared as two big-endian words, without touching the key buffer.
    pub fn sort(&mut self) {
        let long_keys = &self.long_keys;
        self.entries
            .sort_unstable_by(|a, b| compare(long_keys, a, b));
    }

    /// Gives each noted key its noted state: its position as of the
    /// snapshot, or its absence. Both `self` (sorted) and `noted` are in key
    /// order, so this is one merge; only keys that start with `prefix` are
    /// kept.
    fn correct(self, noted: &BTreeMap<Box<[u8]>, Option<RecordPos>>, prefix: &[u8]) -> Self {
        if noted.is_empty() {
            return self;
        }
        let mut out = SnapshotKeys::with_capacity(self.entries.len() + noted.len());
        let mut notes = noted
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .peekable();
        let mut at = 0;
        loop {
            let copied = self.entries.get(at).map(|e| (self.key_of(e), e.pos));
            // The next noted key, if it does not come after the next copied one.
            let note_first = match (copied, notes.peek()) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some((key, _)), Some((noted_key, _))) => &noted_key[..] <= key,
            };
            if note_first {
                let Some((noted_key, state)) = notes.next() else {
                    break;
                };
                if copied.is_some_and(|(key, _)| key == &noted_key[..]) {
                    // The copy saw a later state of this key.
                    at += 1;
                }
                if let Some(pos) = state {
                    out.push(noted_key, *pos);
                }
            } else if let Some((key, pos)) = copied {
                out.push(key, pos);
                at += 1;
            } else {
                break;
            }
        }
        out
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

/// The copies in progress of one index, and the notes made for them.
/// `P` is how far a copy has got, in the index type's own terms.
pub(super) struct Copies<P> {
    /// How many copies are registered: writes look at the list only if any.
    active: AtomicUsize,
    list: Mutex<Vec<Arc<Copy<P>>>>,
}

impl<P> Default for Copies<P> {
    fn default() -> Self {
        Copies {
            active: AtomicUsize::new(0),
            list: Mutex::new(Vec::new()),
        }
    }
}

/// One copy in progress.
pub(super) struct Copy<P> {
    /// The prefix of the snapshot: other keys need no note.
    prefix: Box<[u8]>,
    /// How far the copy has got (the index type decides what that means).
    pub(super) progress: P,
    /// Each key changed since the snapshot, in a region not yet copied
    /// when it changed, with its state as of the snapshot.
    noted: Mutex<BTreeMap<Box<[u8]>, Option<RecordPos>>>,
}

impl<P> Copy<P> {
    /// The prefix the copy is limited to.
    pub(super) fn prefix(&self) -> &[u8] {
        &self.prefix
    }

    /// The copy made (`copied`, sorted), corrected with the notes.
    pub(super) fn finish(&self, copied: SnapshotKeys) -> SnapshotKeys {
        copied.correct(&self.noted.lock(), &self.prefix)
    }
}

impl<P> Copies<P> {
    /// Registers a copy: from now on, changes are noted for it. Called where
    /// no change is half applied (see the module documentation). The copy
    /// is unregistered when the returned guard is dropped.
    pub(super) fn start(&self, prefix: &[u8], progress: P) -> CopyGuard<'_, P> {
        let copy = Arc::new(Copy {
            prefix: prefix.into(),
            progress,
            noted: Mutex::new(BTreeMap::new()),
        });
        let mut list = self.list.lock();
        list.push(Arc::clone(&copy));
        self.active.store(list.len(), Ordering::Relaxed);
        CopyGuard { copies: self, copy }
    }

    /// Whether any copy is registered. Changes and registrations are
    /// serialized by the caller (the engine's writer lock), which orders
    /// this load after any registration it must see.
    #[inline]
    pub(super) fn any(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    /// Notes that `key`, which had `old` (None: absent), has just changed,
    /// for every copy that has not `reached` it yet. The caller still holds
    /// the lock of the key's region, so that a copy of that region made
    /// after the change also finds the note.
    pub(super) fn note(&self, key: &[u8], old: Option<RecordPos>, reached: impl Fn(&P) -> bool) {
        for copy in self.list.lock().iter() {
            if !key.starts_with(&copy.prefix) || reached(&copy.progress) {
                continue;
            }
            let mut noted = copy.noted.lock();
            if !noted.contains_key(key) {
                noted.insert(key.into(), old);
            }
        }
    }
}

/// A registered copy; unregisters it when dropped (also on a panic).
pub(super) struct CopyGuard<'a, P> {
    copies: &'a Copies<P>,
    copy: Arc<Copy<P>>,
}

impl<P> std::ops::Deref for CopyGuard<'_, P> {
    type Target = Copy<P>;

    fn deref(&self) -> &Copy<P> {
        &self.copy
    }
}

impl<P> Drop for CopyGuard<'_, P> {
    fn drop(&mut self) {
        let mut list = self.copies.list.lock();
        list.retain(|c| !Arc::ptr_eq(c, &self.copy));
        self.copies.active.store(list.len(), Ordering::Relaxed);
    }
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

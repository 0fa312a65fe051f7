//! [`HashIndex`]: the keydir as a compact hash table, for fast point reads
//! and a small memory footprint per key.
//!
//! Layout. The index is split into shards by a few bits of the key's hash;
//! each shard is an open-addressing table (linear probing, at most 3/4 full)
//! behind its own reader-writer lock, with its own [`KeyArena`] holding its
//! keys and record positions. A table slot is one `u64`: 24 bits of the
//! key's hash (the tag, which rules out nearly every wrong slot without
//! touching the key) over a 40-bit reference into the arena. So a key costs
//! its arena entry (12 + 1 + key length bytes below 128) plus 8 bytes per
//! slot, that is 8/load (10.7 to 21.3) bytes at a load between 3/8 and 3/4.
//!
//! Why shards: a resize rehashes one shard, and a compaction copies one
//! shard's arena, so the pause a writer (and the readers of that shard)
//! may meet is about 1/[`SHARDS`] of what one big table would give; and
//! threads working on different shards do not touch the same lock word.
//!
//! Removal is backward-shift deletion (no tombstones: a removed key leaves
//! no trace in the table, so probe lengths do not decay under churn). A
//! removed key's arena entry becomes garbage; an overwrite rewrites the
//! position in place and makes none. When a shard's garbage exceeds its
//! live bytes (and [`MIN_GARBAGE`]) the shard copies its live entries into a
//! fresh arena; the copying is paid for by the garbage that triggered it,
//! so it costs O(1) amortized per removal. A shard whose table falls below
//! 1/8 full shrinks.
//!
//! Open loads a hint file's entries in runs ([`Index::apply`]): every
//! shard locked once per run, and the slot and entry of changes a few ahead
//! prefetched, so that their cache misses overlap. Before a file, each
//! shard grows once for its share of the file's new keys
//! ([`Index::reserve`]); after the last, any table left larger than growth
//! would have made it shrinks ([`Index::shrink_to_fit`]).
//!
//! Ordered walks ([`Index::scan_prefix`]) copy the matching keys out of
//! every shard under all the shards' read locks (one consistent view),
//! release them, sort the copy and then visit it: an iterator over a hash
//! index sorts a snapshot when it is created, O(m log m) key comparisons for
//! m matching keys, and holds a transient copy of their keys (their length
//! plus 40 bytes each) while it visits. Copying is the larger part: it
//! reads the keys in table order, which is random in memory (see the
//! README for measurements).

use parking_lot::RwLock;

use super::arena::{EntryRef, KeyArena};
use super::key_hash::KeyHasher;
use super::{key_head, prefetch, release_free_heap, Change, Index, RecordPos};

/// Number of shards of a default [`HashIndex`]. Enough that one shard's
/// resize at 10M keys stays in the milliseconds; few enough that an almost
/// empty index costs a few KiB.
pub const SHARDS: usize = 64;
/// The hash bits above this one pick the shard (at most 64 shards: bits
/// 34..40). Buckets come from the low bits, tags from the top 24: the three
/// never overlap for tables below 2^34 slots.
const SHARD_SHIFT: u32 = 34;
/// The smallest table a shard allocates.
const MIN_SLOTS: usize = 16;
/// Garbage a shard tolerates before it compacts its arena, whatever the
/// share: compacting a tiny shard over a few removals would be churn.
const MIN_GARBAGE: usize = 16 << 10;
/// How many changes ahead [`HashIndex::apply`] asks for the home slot of a
/// key, and then for the entry that slot points at: far enough that the
/// slot has arrived by the time its entry is wanted, and that one has by the
/// time the change is applied.
const PREFETCH_SLOT_AHEAD: usize = 16;
const PREFETCH_ENTRY_AHEAD: usize = 8;
/// How many slots ahead a walk over the whole table (a resize, a
/// compaction) asks for the entry of a slot: the walk reads every entry,
/// in table order, which is random order in the arena, so each is a cache
/// miss, and this overlaps them.
const PREFETCH_WALK_AHEAD: usize = 16;

/// One table slot: 0 when empty, else the top bits of the key's hash (the
/// tag) over the entry's arena reference plus one.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot(u64);

impl Slot {
    const EMPTY: Slot = Slot(0);
    /// The tag takes the bits above the reference.
    const TAG_SHIFT: u32 = EntryRef::BITS;
    const REF_MASK: u64 = (1 << EntryRef::BITS) - 1;

    /// A slot for the key of hash `hash` whose entry lies `at`. The
    /// reference is stored plus one so that no occupied slot is 0; an arena
    /// never hands out the all-ones reference (an entry at the end of the
    /// last chunk would have no room).
    fn new(hash: u64, at: EntryRef) -> Slot {
        Slot((tag(hash) << Self::TAG_SHIFT) | (at.to_bits() + 1))
    }

    fn is_empty(self) -> bool {
        self == Slot::EMPTY
    }

    fn tag(self) -> u64 {
        self.0 >> Self::TAG_SHIFT
    }

    fn entry(self) -> EntryRef {
        EntryRef::from_bits((self.0 & Self::REF_MASK) - 1)
    }

    /// The same slot pointing at a moved entry.
    fn moved_to(self, at: EntryRef) -> Slot {
        Slot((self.0 & !Self::REF_MASK) | (at.to_bits() + 1))
    }
}

/// The tag of a hash: its top bits, as many as a slot has room for.
fn tag(hash: u64) -> u64 {
    hash >> Slot::TAG_SHIFT
}

/// The number of slots for `len` keys: a power of two, at most 3/4 full.
fn capacity_for(len: usize) -> usize {
    (len.saturating_mul(4).div_ceil(3))
        .next_power_of_two()
        .max(MIN_SLOTS)
}

/// One shard: a table of slots over an arena. Not synchronized; the index
/// keeps each behind a lock.
#[derive(Default)]
struct Shard {
    /// A power of two in length (or empty before the first key); always
    /// holds at least one empty slot, which ends every probe.
    slots: Vec<Slot>,
    /// Occupied slots.
    len: usize,
    arena: KeyArena,
}

impl Shard {
    /// The index of the slot holding `key` (of hash `hash`).
    #[inline]
    fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        self.probe(key, hash).ok()
    }

    /// Walks the probe path of `key` (of hash `hash`) once: `Ok(i)` when
    /// slot `i` holds the key, else `Err(i)` with the first empty slot,
    /// where an insert puts it. One walk answers both because there are no
    /// tombstones: the key, if present, lies before the first empty slot.
    /// The table must not be empty.
    #[inline]
    fn probe(&self, key: &[u8], hash: u64) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.is_empty() {
                return Err(i);
            }
            if slot.tag() == tag(hash) && self.arena.key(slot.entry()) == key {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    fn get(&self, key: &[u8], hash: u64) -> Option<RecordPos> {
        self.find(key, hash)
            .map(|i| self.arena.pos(self.slots[i].entry()))
    }

    fn put(
        &mut self,
        hasher: &KeyHasher,
        key: &[u8],
        hash: u64,
        pos: RecordPos,
    ) -> Option<RecordPos> {
        // An empty table (no key yet) resizes below before any slot is used.
        let found = if self.slots.is_empty() {
            Err(0)
        } else {
            self.probe(key, hash)
        };
        let mut free = match found {
            Ok(i) => {
                let at = self.slots[i].entry();
                let old = self.arena.pos(at);
                self.arena.set_pos(at, pos);
                return Some(old);
            }
            Err(free) => free,
        };
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(hasher, capacity_for(self.len + 1));
            free = self.free_slot(hash);
        }
        let at = self.arena.push(key, pos);
        self.slots[free] = Slot::new(hash, at);
        self.len += 1;
        None
    }

    fn remove(&mut self, hasher: &KeyHasher, key: &[u8], hash: u64) -> Option<RecordPos> {
        let i = self.find(key, hash)?;
        let at = self.slots[i].entry();
        let old = self.arena.pos(at);
        self.arena.release(at);
        self.close_gap(hasher, i);
        self.len -= 1;
        if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize(hasher, capacity_for(self.len));
        }
        let garbage = self.arena.garbage_bytes();
        if garbage >= MIN_GARBAGE && garbage > self.arena.live_bytes() {
            self.compact();
        }
        Some(old)
    }

    /// Grows the table, if needed, to hold `additional` more keys without
    /// growing again.
    fn reserve(&mut self, hasher: &KeyHasher, additional: usize) {
        let capacity = capacity_for(self.len.saturating_add(additional));
        if capacity > self.slots.len() {
            self.resize(hasher, capacity);
        }
    }

    /// Shrinks the table to the size that growing key by key would have
    /// given it, if it is larger; returns whether it did.
    fn shrink_to_fit(&mut self, hasher: &KeyHasher) -> bool {
        let capacity = capacity_for(self.len);
        let larger = self.slots.len() > capacity;
        if larger {
            self.resize(hasher, capacity);
        }
        larger
    }

    /// Starts loading the home slot of `hash` into the cache.
    #[inline]
    fn prefetch_slot(&self, hash: u64) {
        if !self.slots.is_empty() {
            prefetch(&self.slots[hash as usize & (self.slots.len() - 1)]);
        }
    }

    /// Starts loading the entry of the first slot on `hash`'s probe path
    /// whose tag matches (almost always the key's own, for an overwrite or
    /// a remove). Looks only at the few slots from the home slot that a
    /// [`Shard::prefetch_slot`] of it brought in, and stops at an empty one
    /// (a new key: there is no entry to compare).
    ///
    /// For a remove (`remove`), also the entries of the slots after it in
    /// its cluster, up to the slot line's worth: the backward shift rehashes
    /// each of their keys.
    #[inline]
    fn prefetch_entry(&self, hash: u64, remove: bool) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        let mut found = false;
        for _ in 0..8 {
            let slot = self.slots[i];
            if slot.is_empty() {
                return;
            }
            if found || slot.tag() == tag(hash) {
                self.arena.prefetch(slot.entry());
                if !remove {
                    return;
                }
                found = true;
            }
            i = (i + 1) & mask;
        }
    }

    /// The first empty slot on the probe path of `hash`.
    fn free_slot(&self, hash: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        while !self.slots[i].is_empty() {
            i = (i + 1) & mask;
        }
        i
    }

    /// Empties slot `hole` and moves later slots of its cluster back, each
    /// to the earliest free place on its own probe path, so that every key
    /// stays reachable from its home bucket without tombstones.
    fn close_gap(&mut self, hasher: &KeyHasher, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut i = (hole + 1) & mask;
        loop {
            let slot = self.slots[i];
            if slot.is_empty() {
                break;
            }
            // The tag lacks the bucket bits, so the key is hashed again.
            let home = hasher.hash(self.arena.key(slot.entry())) as usize & mask;
            // The slot may move into the hole when the hole lies on its probe
            // path, between its home and where it is now (cyclically).
            if i.wrapping_sub(home) & mask >= i.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = Slot::EMPTY;
    }

    /// Rehashes every key into a table of `capacity` slots.
    fn resize(&mut self, hasher: &KeyHasher, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, vec![Slot::EMPTY; capacity]);
        for (j, &slot) in old.iter().enumerate() {
            if let Some(ahead) = old.get(j + PREFETCH_WALK_AHEAD).filter(|s| !s.is_empty()) {
                self.arena.prefetch(ahead.entry());
            }
            if !slot.is_empty() {
                let i = self.free_slot(hasher.hash(self.arena.key(slot.entry())));
                self.slots[i] = slot;
            }
        }
    }

    /// Copies the live entries into a fresh arena and drops the old one
    /// with its garbage. Hashes and tags do not change, so no slot moves.
    fn compact(&mut self) {
        let old = std::mem::take(&mut self.arena);
        for j in 0..self.slots.len() {
            if let Some(ahead) = self.slots.get(j + PREFETCH_WALK_AHEAD) {
                if !ahead.is_empty() {
                    old.prefetch(ahead.entry());
                }
            }
            let slot = self.slots[j];
            if !slot.is_empty() {
                self.slots[j] = slot.moved_to(self.arena.copy_from(&old, slot.entry()));
            }
        }
    }

    /// Appends every key that starts with `prefix`, with its position.
    fn copy_prefix(&self, prefix: &[u8], keys: &mut Vec<u8>, found: &mut Vec<Found>) {
        for slot in self.slots.iter().filter(|s| !s.is_empty()) {
            let key = self.arena.key(slot.entry());
            if key.starts_with(prefix) {
                found.push(Found {
                    head: key_head(key),
                    start: keys.len(),
                    len: key.len() as u32,
                    pos: self.arena.pos(slot.entry()),
                });
                keys.extend_from_slice(key);
            }
        }
    }
}

/// A key copied out by `scan_prefix`: where its bytes lie in the copy.
struct Found {
    /// The key's [`key_head`]: most comparisons of the sort end there,
    /// without a read of the key buffer.
    head: (u64, u64),
    start: usize,
    /// Keys are at most 64 KiB.
    len: u32,
    pos: RecordPos,
}

/// A shard on a cache line of its own, so that two threads locking two
/// shards do not contend for one line.
#[repr(align(64))]
#[derive(Default)]
struct PaddedShard(RwLock<Shard>);

/// The keydir as a sharded open-addressing hash table over key arenas (see
/// the module documentation). Point reads and writes lock one shard;
/// `scan_prefix` locks all of them for reading while it copies.
pub struct HashIndex {
    hasher: KeyHasher,
    shards: Box<[PaddedShard]>,
}

impl Default for HashIndex {
    fn default() -> Self {
        HashIndex::with_shards(SHARDS)
    }
}

impl HashIndex {
    /// An empty index of `shards` shards (a power of two, at most 64).
    pub fn with_shards(shards: usize) -> HashIndex {
        assert!(
            shards.is_power_of_two() && shards <= 1 << (Slot::TAG_SHIFT - SHARD_SHIFT),
            "{shards} shards: a power of two up to 64 is needed"
        );
        HashIndex {
            hasher: KeyHasher::new(),
            shards: (0..shards).map(|_| PaddedShard::default()).collect(),
        }
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        &self.shards[self.shard_no(hash)].0
    }

    /// The number of the shard that holds keys of hash `hash`.
    fn shard_no(&self, hash: u64) -> usize {
        (hash >> SHARD_SHIFT) as usize & (self.shards.len() - 1)
    }

    /// What the index holds and allocates, summed over its shards.
    #[cfg(test)]
    pub(crate) fn stats(&self) -> HashStats {
        let mut stats = HashStats::default();
        for shard in self.shards.iter() {
            let shard = shard.0.read();
            stats.keys += shard.len;
            stats.slots += shard.slots.len();
            stats.arena_allocated += shard.arena.allocated_bytes();
            stats.arena_live += shard.arena.live_bytes();
            stats.arena_garbage += shard.arena.garbage_bytes();
        }
        stats.total_bytes = stats.slots * std::mem::size_of::<Slot>()
            + stats.arena_allocated
            + std::mem::size_of_val(&*self.shards);
        stats
    }
}

/// Counts from [`HashIndex::stats`].
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HashStats {
    pub keys: usize,
    pub slots: usize,
    /// Bytes of arena chunks, the unused tail of each shard's newest included.
    pub arena_allocated: usize,
    pub arena_live: usize,
    pub arena_garbage: usize,
    /// Tables, arenas and the shards themselves: all the index allocates
    /// but malloc's own overhead (a few bytes per chunk and table).
    pub total_bytes: usize,
}

impl Index for HashIndex {
    fn get(&self, key: &[u8]) -> Option<RecordPos> {
        let hash = self.hasher.hash(key);
        self.shard(hash).read().get(key, hash)
    }

    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos> {
        let hash = self.hasher.hash(key);
        self.shard(hash).write().put(&self.hasher, key, hash, pos)
    }

    fn remove(&self, key: &[u8]) -> Option<RecordPos> {
        let hash = self.hasher.hash(key);
        self.shard(hash).write().remove(&self.hasher, key, hash)
    }

    /// Grows each shard for its share of `additional` keys. Keys spread
    /// over the shards by their hash, so a shard's share varies around the
    /// mean: one that gets more than the 1/8 of slack grows as usual.
    fn reserve(&self, additional: usize) {
        let share = additional.div_ceil(self.shards.len());
        let share = share.saturating_add(share / 8);
        for shard in self.shards.iter() {
            shard.0.write().reserve(&self.hasher, share);
        }
    }

    fn reserves(&self) -> bool {
        true
    }

    fn shrink_to_fit(&self) {
        let mut shrank = false;
        for shard in self.shards.iter() {
            shrank |= shard.0.write().shrink_to_fit(&self.hasher);
        }
        if shrank {
            release_free_heap();
        }
    }

    /// Takes every shard's write lock once for the whole run (in shard
    /// order, as `scan_prefix` takes the read locks, so the two cannot
    /// deadlock) and pipelines the changes: while one is applied, the home
    /// slot of a later one and the entry of a nearer one are already on
    /// their way into the cache. A key at open costs a cache miss or two
    /// (its slot, its entry) in tables far larger than the cache; in a
    /// run, the misses of many changes overlap instead of taking turns.
    fn apply(
        &self,
        changes: &[Change<'_>],
        replaced: &mut dyn FnMut(&Change<'_>, Option<RecordPos>),
    ) {
        let hashes: Vec<u64> = changes.iter().map(|c| self.hasher.hash(c.key)).collect();
        let mut shards: Vec<_> = self.shards.iter().map(|s| s.0.write()).collect();
        for (i, (change, &hash)) in changes.iter().zip(&hashes).enumerate() {
            if let Some(&ahead) = hashes.get(i + PREFETCH_SLOT_AHEAD) {
                shards[self.shard_no(ahead)].prefetch_slot(ahead);
            }
            if let Some(&ahead) = hashes.get(i + PREFETCH_ENTRY_AHEAD) {
                let remove = changes[i + PREFETCH_ENTRY_AHEAD].delete;
                shards[self.shard_no(ahead)].prefetch_entry(ahead, remove);
            }
            let shard = &mut shards[self.shard_no(hash)];
            let old = if change.delete {
                shard.remove(&self.hasher, change.key, hash)
            } else {
                shard.put(&self.hasher, change.key, hash, change.pos)
            };
            replaced(change, old);
        }
    }

    fn len(&self) -> usize {
        // Shard by shard, so a write running meanwhile may be counted or
        // not; the engine serializes writes, and its callers want no more.
        self.shards.iter().map(|s| s.0.read().len).sum()
    }

    fn scan_prefix(&self, prefix: &[u8], visit: &mut dyn FnMut(&[u8], RecordPos)) {
        let mut keys = Vec::new();
        let mut found = Vec::new();
        {
            // Every shard's read lock at once, taken in shard order: one
            // consistent view. Writers hold one shard lock at a time, so
            // this cannot deadlock with them.
            let shards: Vec<_> = self.shards.iter().map(|s| s.0.read()).collect();
            for shard in &shards {
                shard.copy_prefix(prefix, &mut keys, &mut found);
            }
        }
        let key_of = |f: &Found| &keys[f.start..f.start + f.len as usize];
        found.sort_unstable_by(|a, b| a.head.cmp(&b.head).then_with(|| key_of(a).cmp(key_of(b))));
        for f in &found {
            visit(key_of(f), f.pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u32) -> RecordPos {
        RecordPos {
            file_id: n,
            offset: !n,
            size: n.rotate_left(7),
        }
    }

    fn key(i: u32) -> Vec<u8> {
        format!("key{i:013}").into_bytes()
    }

    #[test]
    fn growth_across_many_resizes_keeps_every_key() {
        let index = HashIndex::with_shards(1);
        let n = 200_000u32;
        let mut capacities = vec![];
        for i in 0..n {
            assert_eq!(index.put(&key(i), pos(i)), None);
            let slots = index.stats().slots;
            if capacities.last() != Some(&slots) {
                capacities.push(slots);
                // Right after each resize, every key so far is still there.
                for j in (0..=i).step_by(97).chain([i]) {
                    assert_eq!(index.get(&key(j)), Some(pos(j)), "key {j} at {slots} slots");
                }
            }
        }
        // 16, 32, ..., 2^19 (200,000 keys fill 2^18 slots past 3/4):
        // sixteen tables, each double the last.
        assert_eq!(capacities.len(), 16, "{capacities:?}");
        assert!(
            capacities.windows(2).all(|w| w[1] == 2 * w[0]),
            "{capacities:?}"
        );
        assert_eq!(index.len(), n as usize);
        for i in 0..n {
            assert_eq!(index.get(&key(i)), Some(pos(i)));
        }
        assert_eq!(index.get(&key(n)), None);
    }

    #[test]
    fn removal_shrinks_the_table_and_reinsertion_grows_it_back() {
        let index = HashIndex::with_shards(1);
        let n = 50_000u32;
        for i in 0..n {
            index.put(&key(i), pos(i));
        }
        let full = index.stats().slots;
        // Remove all but every 20th key, in an order unrelated to the table's.
        for i in (0..n).rev().filter(|i| i % 20 != 0) {
            assert_eq!(index.remove(&key(i)), Some(pos(i)));
        }
        let shrunk = index.stats();
        assert_eq!(shrunk.keys, (n / 20) as usize);
        assert!(shrunk.slots * 8 <= full, "{} slots of {full}", shrunk.slots);
        for i in 0..n {
            let expected = (i % 20 == 0).then(|| pos(i));
            assert_eq!(index.get(&key(i)), expected, "key {i}");
        }
        for i in (0..n).filter(|i| i % 20 != 0) {
            assert_eq!(index.put(&key(i), pos(i + n)), None);
        }
        assert_eq!(index.stats().slots, full);
        for i in 0..n {
            let expected = if i % 20 == 0 { pos(i) } else { pos(i + n) };
            assert_eq!(index.get(&key(i)), Some(expected), "key {i}");
        }
    }

    #[test]
    fn compaction_frees_garbage_and_keeps_every_key() {
        let index = HashIndex::with_shards(1);
        let long = |i: u32| [key(i), vec![0xFF; 40]].concat(); // 56 bytes, 69 per entry
        let n = 20_000u32;
        for i in 0..n {
            index.put(&long(i), pos(i));
        }
        let before = index.stats();
        assert_eq!(before.arena_live, n as usize * 69);
        // Overwrites rewrite positions in place: no garbage.
        for i in 0..n {
            assert_eq!(index.put(&long(i), pos(i + 1)), Some(pos(i)));
        }
        assert_eq!(index.stats().arena_garbage, 0);
        assert_eq!(index.stats().arena_allocated, before.arena_allocated);
        let mut max_garbage = 0;
        for i in (0..n).filter(|i| i % 4 != 0) {
            index.remove(&long(i));
            let stats = index.stats();
            max_garbage = max_garbage.max(stats.arena_garbage);
            // Compaction keeps garbage at most the live bytes (or the minimum).
            assert!(
                stats.arena_garbage <= stats.arena_live.max(MIN_GARBAGE),
                "{stats:?}"
            );
        }
        let after = index.stats();
        assert!(
            max_garbage > 0 && after.arena_live == (n / 4) as usize * 69,
            "{after:?}"
        );
        assert!(
            after.arena_allocated * 2 < before.arena_allocated,
            "{before:?} {after:?}"
        );
        for i in 0..n {
            let expected = (i % 4 == 0).then(|| pos(i + 1));
            assert_eq!(index.get(&long(i)), expected, "key {i}");
        }
        let mut seen = 0;
        index.scan_prefix(b"", &mut |k, p| {
            assert_eq!(k.len(), 56);
            assert_eq!(index_of(k) % 4, 0);
            assert_eq!(p, pos(index_of(k) + 1));
            seen += 1;
        });
        assert_eq!(seen, n / 4);
    }

    fn index_of(long_key: &[u8]) -> u32 {
        std::str::from_utf8(&long_key[3..16])
            .unwrap()
            .parse()
            .unwrap()
    }

    #[test]
    fn removing_every_key_in_any_order_empties_each_cluster() {
        // Small full tables with clusters that wrap around the end; removal
        // in several orders must leave every other key reachable.
        for round in 0..200u32 {
            let index = HashIndex::with_shards(1);
            let count = 12; // 3/4 of 16 slots: long clusters, some wrapping
            let keys: Vec<_> = (0..count).map(|i| key(round * 100 + i)).collect();
            for (i, k) in keys.iter().enumerate() {
                index.put(k, pos(i as u32));
            }
            assert_eq!(index.stats().slots, 16);
            let mut order: Vec<usize> = (0..count as usize).collect();
            order.rotate_left(round as usize % count as usize);
            if round % 2 == 1 {
                order.reverse();
            }
            for (done, &r) in order.iter().enumerate() {
                assert_eq!(index.remove(&keys[r]), Some(pos(r as u32)), "round {round}");
                for &left in &order[done + 1..] {
                    assert_eq!(
                        index.get(&keys[left]),
                        Some(pos(left as u32)),
                        "round {round}"
                    );
                }
            }
            assert_eq!(index.len(), 0);
        }
    }

    #[test]
    fn one_probe_insert_finds_keys_anywhere_in_their_cluster() {
        // A table at exactly 3/4 (12 keys in 16 slots: long clusters, some
        // wrapping): the one walk that looks for the key must find each one
        // wherever it lies, so that overwrites neither add a second copy nor
        // grow the table; the next new key then lands in a free slot.
        for round in 0..100u32 {
            let index = HashIndex::with_shards(1);
            let keys: Vec<_> = (0..12).map(|i| key(round * 100 + i)).collect();
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(index.put(k, pos(i as u32)), None, "round {round}");
            }
            for (i, k) in keys.iter().enumerate().rev() {
                let again = pos(i as u32 + 50);
                assert_eq!(index.put(k, again), Some(pos(i as u32)), "round {round}");
            }
            let stats = index.stats();
            assert_eq!((stats.keys, stats.slots), (12, 16), "round {round}");
            assert_eq!(stats.arena_live, 12 * 29, "round {round}: no new entries");
            let extra = key(round * 100 + 99);
            assert_eq!(index.put(&extra, pos(99)), None, "round {round}");
            assert_eq!(index.stats().slots, 32, "round {round}");
            for (i, k) in keys.iter().enumerate() {
                assert_eq!(index.get(k), Some(pos(i as u32 + 50)), "round {round}");
            }
            assert_eq!(index.get(&extra), Some(pos(99)), "round {round}");
        }
    }

    #[test]
    fn a_reservation_grows_each_table_once_and_keeps_every_key() {
        let index = HashIndex::default();
        let n = 50_000u32;
        for i in 0..1000 {
            index.put(&key(i), pos(i));
        }
        index.reserve(n as usize - 1000);
        let reserved = index.stats().slots;
        for i in 1000..n {
            assert_eq!(index.put(&key(i), pos(i)), None);
        }
        // No shard outgrew its share (1/64 of the keys, plus 1/8), so no
        // table grew again.
        assert_eq!(index.stats().slots, reserved);
        for i in 0..n {
            assert_eq!(index.get(&key(i)), Some(pos(i)), "key {i}");
        }
        // The slack may have doubled a table that did not need it; then
        // shrinking gives it back, to the size growth would have given.
        index.shrink_to_fit();
        for shard in index.shards.iter() {
            let shard = shard.0.read();
            assert_eq!(shard.slots.len(), capacity_for(shard.len));
        }
        for i in 0..n {
            assert_eq!(index.get(&key(i)), Some(pos(i)), "key {i}");
        }
    }

    #[test]
    fn shrink_to_fit_gives_back_what_a_reservation_left_unused() {
        let index = HashIndex::with_shards(4);
        // Reserved for 100,000 keys, as for a hint of 100,000 puts that
        // turn out to be 10,000 keys, each put ten times.
        index.reserve(100_000);
        let reserved = index.stats().slots;
        for round in 0..10 {
            for i in 0..10_000 {
                index.put(&key(i), pos(i + round));
            }
        }
        assert_eq!(index.stats().slots, reserved);
        index.shrink_to_fit();
        let shrunk = index.stats();
        // Each table now holds its keys between 3/8 and 3/4 full, as if
        // they had gone in one by one.
        assert!(
            shrunk.slots * 4 < reserved,
            "{shrunk:?}, {reserved} reserved"
        );
        for shard in index.shards.iter() {
            let shard = shard.0.read();
            assert_eq!(shard.slots.len(), capacity_for(shard.len));
        }
        for i in 0..10_000 {
            assert_eq!(index.get(&key(i)), Some(pos(i + 9)), "key {i}");
        }
        assert_eq!(index.get(&key(10_000)), None);
        // An empty index, reserved or not, stays valid.
        let empty = HashIndex::with_shards(2);
        empty.shrink_to_fit();
        empty.reserve(1000);
        empty.shrink_to_fit();
        assert_eq!((empty.len(), empty.get(b"k")), (0, None));
        assert_eq!(empty.put(b"k", pos(1)), None);
    }

    #[test]
    fn keys_whose_tags_collide_are_told_apart_by_their_bytes() {
        let index = HashIndex::with_shards(1);
        // Two keys with the same tag and the same home in a 16-slot table,
        // so that one lies on the other's probe path: by the birthday bound
        // some pair among ~2^14 keys shares those 28 bits.
        let probe_key = |i: u32| {
            let h = index.hasher.hash(&key(i));
            (tag(h), h & 15)
        };
        let mut seen = std::collections::HashMap::new();
        let (a, b) = (0..1 << 20)
            .find_map(|i| seen.insert(probe_key(i), i).map(|first| (first, i)))
            .expect("a collision among 2^20 keys");
        index.put(&key(a), pos(0));
        index.put(&key(b), pos(1));
        assert_eq!(index.stats().slots, 16);
        assert_eq!(index.get(&key(a)), Some(pos(0)));
        assert_eq!(index.get(&key(b)), Some(pos(1)));
        assert_eq!(index.remove(&key(a)), Some(pos(0)));
        assert_eq!(index.get(&key(a)), None);
        assert_eq!(index.remove(&key(a)), None);
        assert_eq!(index.get(&key(b)), Some(pos(1)));
    }

    #[test]
    fn a_key_costs_its_entry_and_a_share_of_8_byte_slots() {
        let index = HashIndex::default();
        let n = 100_000u32;
        for i in 0..n {
            index.put(&key(i), pos(i));
        }
        let stats = index.stats();
        // 12 bytes of position, 1 of length, 16 of key.
        assert_eq!(stats.arena_live, n as usize * 29);
        // Each shard is at most 3/4 full and at least 3/8 (it doubled
        // past 3/4), give or take the spread of keys over shards.
        assert!(stats.slots * 3 >= n as usize * 4, "{stats:?}");
        assert!(stats.slots * 3 <= n as usize * 8 * 11 / 10, "{stats:?}");
        assert_eq!(std::mem::size_of::<Slot>(), 8);
        // Chunk tails: at most one chunk (256 KiB at most) per shard.
        assert!(
            stats.arena_allocated - stats.arena_live <= SHARDS * (256 << 10),
            "{stats:?}"
        );
    }
}

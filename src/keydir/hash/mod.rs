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
//! reads the keys in table order, which is random in memory (measurements
//! in docs/bench/index-types.md).

use parking_lot::RwLock;

mod arena;
mod key_hash;
mod shard;

pub use key_hash::KeyHasher;
use shard::{Found, Shard, Slot};

use super::{release_free_heap, Index};
use crate::log::{Change, RecordPos};

/// Number of shards of a default [`HashIndex`]. Enough that one shard's
/// resize at 10M keys stays in the milliseconds; few enough that an almost
/// empty index costs a few KiB.
pub const SHARDS: usize = 64;
/// The hash bits above this one pick the shard (at most 64 shards: bits
/// 34..40). Buckets come from the low bits, tags from the top 24: the three
/// never overlap for tables below 2^34 slots.
const SHARD_SHIFT: u32 = 34;
/// How many changes ahead [`HashIndex::apply`] asks for the home slot of a
/// key, and then for the entry that slot points at: far enough that the
/// slot has arrived by the time its entry is wanted, and that one has by the
/// time the change is applied.
const PREFETCH_SLOT_AHEAD: usize = 16;
const PREFETCH_ENTRY_AHEAD: usize = 8;
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

    /// An empty index whose hash function has a given seed, so that a
    /// random test can repeat a run exactly, its table layout included.
    #[cfg(test)]
    pub fn with_shards_and_seed(shards: usize, seed: u64) -> HashIndex {
        HashIndex {
            hasher: KeyHasher::with_seed(seed),
            ..HashIndex::with_shards(shards)
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
    #[cfg(any(test, feature = "bench-internals"))]
    pub fn stats(&self) -> HashStats {
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
#[cfg(any(test, feature = "bench-internals"))]
#[derive(Clone, Copy, Debug, Default)]
pub struct HashStats {
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
mod tests;

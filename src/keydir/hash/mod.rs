//! [`HashIndex`]: the keydir as a compact hash table, for fast point reads
//! and a small memory footprint per key.
//!
//! Layout. The index is split into shards by a few bits of the key's hash;
//! each shard is an open-addressing table (linear probing, at most 3/4 full)
//! behind its own reader-writer lock, with its own [`KeyArena`] holding its
//! keys and their records' sizes. A table slot is one `u64`: the top 24
//! bits of the key's hash (the tag, which rules out nearly every wrong
//! slot without touching the key) over a 40-bit reference into the arena;
//! beside it, on the next cache line, where the key's record starts (file
//! id and offset, `table.rs`). A get reads the slot and the start and goes
//! to the record ([`Index::locate`]), comparing the record's key: one
//! cache miss fewer than reading the entry first. A key's
//! home slot is the top bits of its hash too, so the tag gives it: removal's
//! backward shift and a resize move slots without reading a key (in tables
//! up to 2^24 slots; larger ones hash the key again). So a key costs
//! its arena entry (1 + 2 + key length bytes, for keys below 64 bytes and
//! records below 64 KiB) plus 16 bytes per slot, that is 16/load (21.3 to
//! 42.7) bytes at a load between 3/8 and 3/4.
//!
//! Why shards: a resize moves the slots of one shard, and a compaction
//! copies one shard's arena, so the pause a writer (and the readers of that shard)
//! may meet is about 1/[`SHARDS`] of what one big table would give; and
//! threads working on different shards do not touch the same lock word.
//!
//! Removal is backward-shift deletion (no tombstones: a removed key leaves
//! no trace in the table, so probe lengths do not decay under churn). A
//! removed key's arena entry becomes garbage; an overwrite rewrites the
//! start and the size in place and makes none (unless the size grows past
//! the entry's 2 bytes: then it takes a new entry of 4). When a shard's garbage exceeds its
//! live bytes (and [`MIN_GARBAGE`]) the shard copies its live entries into a
//! fresh arena; the copying is paid for by the garbage that triggered it,
//! so it costs O(1) amortized per removal. A shard whose table falls below
//! 1/8 full shrinks.
//!
//! Open loads a hint file's entries in runs ([`Index::apply`]): every
//! shard locked once per run, and the slot and entry of changes a few ahead
//! prefetched, so that their cache misses overlap; a long run is split by
//! shard between two threads (the lower half of the shards on one, the
//! upper on the other), since one key's changes all go to one shard.
//! Open's scans of data files come in the same runs. Before a file, each
//! shard grows once for its share of the file's new keys
//! ([`Index::reserve`]); after the last, any table left larger than growth
//! would have made it shrinks ([`Index::shrink_to_fit`]).
//!
//! A write batch ([`Index::apply`]) locks every shard it touches, in shard
//! order, before it changes any, and lets go of them only when all its
//! changes are in: a get sees all of the batch or none of it.
//!
//! Snapshots ([`Index::snapshot`]): each shard's table and arena live in
//! an `Arc`. A snapshot takes a reference to every shard (a moment under
//! each read lock, all while the engine's writer lock keeps writes out),
//! then copies the matching keys out of those shards holding no lock at
//! all, and sorts them: a radix sort on the bits in which the keys' first
//! 16 bytes differ (`keydir/snapshot/sort.rs`), comparisons only among
//! keys those bits do not tell apart. A writer that changes a shard a
//! snapshot still holds first copies it (copy on write: the table and
//! arena of one shard, 1/[`SHARDS`] of the index, a memcpy), and changes
//! its own copy; the snapshot lets go of each shard as soon as it has
//! copied its keys. So a writer never waits for a snapshot's copy, only
//! for a copy of one shard, once per snapshot.

use std::sync::Arc;

mod arena;
mod key_hash;
mod lookahead;
mod pages;
mod persist;
mod shard;
mod table;

pub use key_hash::KeyHasher;
use lookahead::{PaddedShard, ShardGuard};
pub(crate) use pages::{warm_up, warm_up_wanted};
use shard::Shard;
use table::Slot;

use super::in_two::in_two;
use super::snapshot::{PendingSnapshot, SnapshotKeys};
use super::{release_free_heap, Index};
use crate::log::{Change, RecordPos, RecordStart};

/// Number of shards of a default [`HashIndex`]. Enough that what a writer
/// does to one shard at a time (a resize, the compaction of its arena, a
/// copy for a snapshot that holds it) stays within a few milliseconds at
/// 50M keys (49K keys a shard); few enough that an almost empty index costs
/// a few hundred KiB.
pub const SHARDS: usize = 1024;
/// The hash bits above this one pick the shard (at most 1024 shards: bits
/// 30..40). Tags are the top 24 bits, and a key's home slot the top bits
/// too (as many as the table's size takes): the shard's bits and the home's
/// overlap only in tables above 2^24 slots a shard.
const SHARD_SHIFT: u32 = 30;
/// How many changes ahead [`HashIndex::apply`] asks for a key's shard (the
/// table's and the arena's addresses, and the arena's chunk table), then
/// for its home slot, then for the entry that slot points at: each far
/// enough that what a step reads has arrived by the time it runs. Without
/// the first step, the other two waited for the shard (measured: a third
/// of a 1M-key scan's apply time on those two loads).
const PREFETCH_SHARD_AHEAD: usize = 24;
const PREFETCH_SLOT_AHEAD: usize = 16;
const PREFETCH_ENTRY_AHEAD: usize = 8;
/// From how many changes [`Index::apply`] splits a run between two threads
/// (by shard: the lower half's on one, the upper half's on the other): a
/// thread's start (hundreds of microseconds on a VM, measured) is then
/// small next to the run's work (100-200 ns a change). Open loads in runs
/// of 65536 (`db/open.rs`); a batch of this many changes is also split.
const APPLY_IN_TWO_FROM: usize = 1 << 15;
/// The keydir as a sharded open-addressing hash table over key arenas (see
/// the module documentation). Point reads and writes lock one shard; a
/// batch, the shards it touches.
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
    /// An empty index of `shards` shards (a power of two, at most 1024).
    pub fn with_shards(shards: usize) -> HashIndex {
        HashIndex::with_hasher(KeyHasher::new(), shards)
    }

    /// An empty index of `shards` shards whose keys `hasher` places.
    fn with_hasher(hasher: KeyHasher, shards: usize) -> HashIndex {
        assert!(
            shards.is_power_of_two() && shards <= 1 << (Slot::TAG_SHIFT - SHARD_SHIFT),
            "{shards} shards: a power of two up to 1024 is needed"
        );
        HashIndex {
            hasher,
            shards: (0..shards).map(|_| PaddedShard::default()).collect(),
        }
    }

    /// An empty index whose hash function has a given seed, so that a
    /// random test can repeat a run exactly, its table layout included.
    #[cfg(test)]
    pub fn with_shards_and_seed(shards: usize, seed: u64) -> HashIndex {
        HashIndex::with_hasher(KeyHasher::with_seed(seed), shards)
    }

    /// Shard `no`, locked for writing.
    fn write(&self, no: usize) -> ShardGuard<'_> {
        self.shards[no].write()
    }

    fn shard(&self, hash: u64) -> &PaddedShard {
        &self.shards[self.shard_no(hash)]
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
            let shard = shard.read();
            stats.keys += shard.len;
            stats.slots += shard.slots.len();
            stats.arena_allocated += shard.arena.allocated_bytes();
            stats.arena_live += shard.arena.live_bytes();
            stats.arena_garbage += shard.arena.garbage_bytes();
        }
        stats.total_bytes = stats.slots * table::Table::BYTES_PER_SLOT
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
        let shard = self.shard(hash);
        // The slot's cache miss overlaps taking the lock.
        shard.prefetch_slot(hash);
        shard.read().get(key, hash)
    }

    fn locate(&self, key: &[u8]) -> Option<RecordStart> {
        let hash = self.hasher.hash(key);
        let shard = self.shard(hash);
        shard.prefetch_slot(hash);
        shard.read().locate(hash)
    }

    fn prefetch(&self, key: &[u8]) {
        let hash = self.hasher.hash(key);
        self.shard(hash).prefetch_slot(hash);
    }

    fn put(&self, key: &[u8], pos: RecordPos) -> Option<RecordPos> {
        let hash = self.hasher.hash(key);
        let mut shard = self.write(self.shard_no(hash));
        Arc::make_mut(&mut shard).put(&self.hasher, key, hash, pos)
    }

    fn remove(&self, key: &[u8]) -> Option<RecordPos> {
        let hash = self.hasher.hash(key);
        let mut shard = self.write(self.shard_no(hash));
        // A key that is not there changes nothing: no copy of a shared
        // shard. An unshared one needs no look first (the removal's own
        // probe finds the key or not); under the write lock nothing can
        // start sharing it, and one let go meanwhile only costs a look.
        if Arc::strong_count(&shard) > 1 {
            shard.find(key, hash)?;
        }
        Arc::make_mut(&mut shard).remove(&self.hasher, key, hash)
    }

    fn replace_if(&self, key: &[u8], expected: RecordPos, new: RecordPos) -> bool {
        let hash = self.hasher.hash(key);
        let mut shard = self.write(self.shard_no(hash));
        if shard.get(key, hash) != Some(expected) {
            return false;
        }
        Arc::make_mut(&mut shard).replace_if(key, hash, expected, new)
    }

    /// Grows each shard for its share of `additional` keys. Keys spread
    /// over the shards by their hash, so a shard's share varies around the
    /// mean: one that gets more than the 1/8 of slack grows as usual.
    fn reserve(&self, additional: usize) {
        let share = additional.div_ceil(self.shards.len());
        let share = share.saturating_add(share / 8);
        for shard in self.shards.iter() {
            Arc::make_mut(&mut shard.write()).reserve(&self.hasher, share);
        }
    }

    fn reserves(&self) -> bool {
        true
    }

    fn shrink_to_fit(&self) {
        let mut shrank = false;
        for shard in self.shards.iter() {
            shrank |= Arc::make_mut(&mut shard.write()).shrink_to_fit(&self.hasher);
        }
        if shrank {
            release_free_heap();
        }
    }

    /// Takes the write lock of every shard the run touches, in shard
    /// order (a snapshot takes one read lock at a time, so the two cannot
    /// deadlock), applies the whole run and only then lets go of them: a
    /// get sees all of it or none. The changes are pipelined: while one is
    /// applied, the home slot of a later one and the entry of a nearer one
    /// are already on their way into the cache. A key at open costs a cache
    /// miss or two (its slot, its entry) in tables far larger than the
    /// cache; in a run, the misses of many changes overlap instead of
    /// taking turns.
    fn apply(
        &self,
        changes: &[Change<'_>],
        replaced: &mut dyn FnMut(&Change<'_>, Option<RecordPos>),
    ) {
        if let [change] = changes {
            // One change (a batch of one): atomic as it is, without the
            // bookkeeping of a run.
            let old = if change.delete {
                self.remove(change.key)
            } else {
                self.put(change.key, change.pos)
            };
            replaced(change, old);
            return;
        }
        let hashes: Vec<u64> = changes.iter().map(|c| self.hasher.hash(c.key)).collect();
        let mut locked = self.lock_for(&hashes);
        if changes.len() >= APPLY_IN_TWO_FROM {
            if let LockedShards::All(guards) = &mut locked {
                self.apply_in_two(changes, &hashes, guards, replaced);
                return;
            }
        }
        self.apply_picked(changes, &hashes, None, &mut locked, |i, old| {
            replaced(&changes[i], old)
        });
    }

    fn len(&self) -> usize {
        // Shard by shard, so a write running meanwhile may be counted or
        // not; the engine serializes writes, and its callers want no more.
        self.shards.iter().map(|s| s.read().len).sum()
    }

    /// Takes a reference to every shard, as [`Index::snapshot`] does.
    fn checkpoint(&self) -> Option<super::SaveLater> {
        let layout = self.layout_later();
        Some(Box::new(move |out| layout.write(out)))
    }

    /// Takes a reference to every shard, each under its read lock for a
    /// moment; the engine holds its writer lock meanwhile, so no write
    /// lands between two of them.
    fn snapshot(&self, prefix: &[u8]) -> Box<dyn PendingSnapshot + '_> {
        Box::new(HashSnapshot {
            shards: self.shards.iter().map(|s| Arc::clone(&s.read())).collect(),
            prefix: prefix.into(),
        })
    }
}

impl HashIndex {
    /// Applies `changes` (all of them, or those at `picks`, in that order)
    /// to the shards `shards` holds, each of those changes' shards among
    /// them, and reports each by its index in `changes` with the position
    /// it replaced. Asks for the shard, slot and entry of the changes a few
    /// ahead, so that their cache misses overlap.
    fn apply_picked(
        &self,
        changes: &[Change<'_>],
        hashes: &[u64],
        picks: Option<&[u32]>,
        shards: &mut impl ShardsOf,
        mut done: impl FnMut(usize, Option<RecordPos>),
    ) {
        let count = picks.map_or(changes.len(), <[u32]>::len);
        let at = |j: usize| picks.map_or(j, |p| p[j] as usize);
        for j in 0..count {
            if j + PREFETCH_SHARD_AHEAD < count {
                let ahead = hashes[at(j + PREFETCH_SHARD_AHEAD)];
                shards.peek(self.shard_no(ahead)).prefetch_header();
            }
            if j + PREFETCH_SLOT_AHEAD < count {
                let ahead = hashes[at(j + PREFETCH_SLOT_AHEAD)];
                shards.peek(self.shard_no(ahead)).prefetch_slot(ahead);
            }
            if j + PREFETCH_ENTRY_AHEAD < count {
                let i = at(j + PREFETCH_ENTRY_AHEAD);
                let ahead = hashes[i];
                shards
                    .peek(self.shard_no(ahead))
                    .prefetch_entry(ahead, changes[i].delete);
            }
            let i = at(j);
            let (change, hash) = (&changes[i], hashes[i]);
            let shard = shards.shard(self.shard_no(hash));
            let old = if change.delete {
                shard.remove(&self.hasher, change.key, hash)
            } else {
                shard.put(&self.hasher, change.key, hash, change.pos)
            };
            done(i, old);
        }
    }

    /// [`Index::apply`] of a long run, every shard locked (`guards`): the
    /// lower half of the shards' changes on this thread, the upper half's on
    /// a helper thread ("bitcask-apply", for as long as the run takes) if one
    /// can be started. One key's changes all go to one shard, so each half
    /// keeps their order; `replaced` hears of every change, in order, once
    /// both halves are done, still under every lock.
    fn apply_in_two(
        &self,
        changes: &[Change<'_>],
        hashes: &[u64],
        guards: &mut [ShardGuard<'_>],
        replaced: &mut dyn FnMut(&Change<'_>, Option<RecordPos>),
    ) {
        // The run has several changes a shard: nearly every shard is about
        // to change, so each is made this run's own (copied if a snapshot
        // holds it) up front.
        let mut shards: Vec<&mut Shard> =
            guards.iter_mut().map(|g| Arc::make_mut(&mut **g)).collect();
        let split = shards.len() / 2;
        let (lower, upper) = shards.split_at_mut(split);
        let (mut lower_picks, mut upper_picks) = (Vec::new(), Vec::new());
        for (i, &hash) in hashes.iter().enumerate() {
            match self.shard_no(hash) < split {
                true => lower_picks.push(i as u32),
                false => upper_picks.push(i as u32),
            }
        }
        let apply_half = |shards, first, picks: &[u32]| {
            let mut olds = Vec::with_capacity(picks.len());
            let mut half = Half { shards, first };
            self.apply_picked(changes, hashes, Some(picks), &mut half, |_, old| {
                olds.push(old)
            });
            olds
        };
        let (upper_olds, lower_olds) = in_two(
            "bitcask-apply",
            || apply_half(upper, split, &upper_picks),
            || apply_half(lower, 0, &lower_picks),
        );
        let mut olds = vec![None; changes.len()];
        for (picks, half_olds) in [(&lower_picks, lower_olds), (&upper_picks, upper_olds)] {
            for (&i, old) in picks.iter().zip(half_olds) {
                olds[i as usize] = old;
            }
        }
        for (change, old) in changes.iter().zip(olds) {
            replaced(change, old);
        }
    }

    /// The write locks of the shards of `hashes`, taken in shard order:
    /// all of them for a run at least as long as there are shards.
    fn lock_for(&self, hashes: &[u64]) -> LockedShards<'_> {
        if hashes.len() >= self.shards.len() {
            return LockedShards::All(self.shards.iter().map(|s| s.write()).collect());
        }
        let mut touched: Vec<usize> = hashes.iter().map(|&h| self.shard_no(h)).collect();
        touched.sort_unstable();
        touched.dedup();
        LockedShards::Some(
            touched
                .into_iter()
                .map(|no| (no, self.shards[no].write()))
                .collect(),
        )
    }
}

/// Shards locked for writing by [`HashIndex::lock_for`].
enum LockedShards<'a> {
    /// Every shard, by number.
    All(Vec<ShardGuard<'a>>),
    /// A few, ascending by number.
    Some(Vec<(usize, ShardGuard<'a>)>),
}

/// Shards that [`HashIndex::apply_picked`] changes, by shard number.
trait ShardsOf {
    /// Shard `no`, to change (copied first if a snapshot holds it).
    fn shard(&mut self, no: usize) -> &mut Shard;
    /// Shard `no`, to look at (the prefetches ahead of each change).
    fn peek(&self, no: usize) -> &Shard;
}

impl ShardsOf for LockedShards<'_> {
    /// Shard `no`, which must be among those locked, to change (copied
    /// first if a snapshot holds it).
    #[inline]
    fn shard(&mut self, no: usize) -> &mut Shard {
        let guard = match self {
            LockedShards::All(all) => &mut all[no],
            LockedShards::Some(some) => {
                let at = some.partition_point(|(n, _)| *n < no);
                &mut some[at].1
            }
        };
        Arc::make_mut(guard)
    }

    /// Shard `no`, which must be among those locked, to look at: unlike
    /// [`ShardsOf::shard`], no atomic check that it is not shared (what
    /// the prefetches ahead of each change need; a shared shard's slots
    /// are the same until the change copies them).
    fn peek(&self, no: usize) -> &Shard {
        match self {
            LockedShards::All(all) => &all[no],
            LockedShards::Some(some) => &some[some.partition_point(|(n, _)| *n < no)].1,
        }
    }
}

/// Half of the shards of an index, from number `first` on, each already
/// made the run's own: what one thread of [`HashIndex::apply_in_two`]
/// changes.
struct Half<'s, 'a> {
    shards: &'s mut [&'a mut Shard],
    first: usize,
}

impl ShardsOf for Half<'_, '_> {
    fn shard(&mut self, no: usize) -> &mut Shard {
        self.shards[no - self.first]
    }

    fn peek(&self, no: usize) -> &Shard {
        self.shards[no - self.first]
    }
}

/// A snapshot of a [`HashIndex`]: every shard as it was, not yet copied.
struct HashSnapshot {
    shards: Vec<Arc<Shard>>,
    prefix: Box<[u8]>,
}

impl PendingSnapshot for HashSnapshot {
    /// Copies the keys out of the shards it holds, with no lock, each
    /// shard's arena from start to end (in memory order, which the CPU
    /// prefetches; in table order every key would be a cache miss), letting
    /// go of each shard once copied (a writer then needs no copy of it);
    /// then sorts them.
    fn collect_between(self: Box<Self>, between: &mut dyn FnMut()) -> SnapshotKeys {
        let HashSnapshot { shards, prefix } = *self;
        let len = if prefix.is_empty() {
            shards.iter().map(|s| s.len).sum()
        } else {
            0
        };
        let mut keys = SnapshotKeys::with_capacity(len);
        for shard in shards {
            shard.copy_prefix(&prefix, &mut keys);
            drop(shard);
            between();
        }
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests;

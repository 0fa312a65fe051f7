//! Each shard's lock, beside a copy of where its table lies that can be read
//! with no lock, so that a lookup can ask for its slot before it locks.
//!
//! Why: a lookup's slot (a cache miss) lies behind the shard's lock (an
//! atomic read-modify-write, which later loads wait for) and behind the
//! shard's header (its table's address: often another miss). With the
//! table's address at hand beside the lock, the slot's miss starts first
//! and overlaps both. The copy is refreshed whenever a write lock is let
//! go, the only time the table can have moved; a reader may see a stale or
//! half-updated copy, and then prefetches a useless line: a prefetch never
//! faults, whatever the address, and the lookup itself reads under the lock.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::shard::{home, Shard};
use super::table::Table;
use crate::keydir::prefetch_address;

/// A shard on a cache line of its own, so that two threads locking two
/// shards do not contend for one line, with the copy of where its table
/// lies (see the module documentation). The shard is shared with the
/// snapshots that hold it (see `mod.rs`).
#[repr(align(64))]
#[derive(Default)]
pub(super) struct PaddedShard {
    lock: RwLock<Arc<Shard>>,
    /// The address of the shard's header (what its `Arc` points at).
    header: AtomicUsize,
    /// The address of the shard's first slot.
    slots: AtomicUsize,
    /// How many slots the table has (0: none yet).
    len: AtomicUsize,
}

impl PaddedShard {
    /// The shard, locked for reading.
    pub(super) fn read(&self) -> RwLockReadGuard<'_, Arc<Shard>> {
        self.lock.read()
    }

    /// The shard, locked for writing; letting go of the guard refreshes
    /// the copy of where its table lies.
    pub(super) fn write(&self) -> ShardGuard<'_> {
        ShardGuard {
            guard: self.lock.write(),
            padded: self,
        }
    }

    /// Starts loading the header of the shard, the home slot of `hash` and
    /// its start into the cache, without locking and without waiting.
    #[inline]
    pub(super) fn prefetch_slot(&self, hash: u64) {
        let header = self.header.load(Ordering::Relaxed);
        let slots = self.slots.load(Ordering::Relaxed);
        let len = self.len.load(Ordering::Relaxed);
        if header != 0 {
            prefetch_address(header);
        }
        if len != 0 {
            // Wrapping: a torn copy may pair an address with another
            // table's length; the line asked for is then useless, not unsafe.
            let slot = slots.wrapping_add(Table::slot_offset(home(hash, len)));
            prefetch_address(slot);
            prefetch_address(slot.wrapping_add(Table::START_AFTER_SLOT));
        }
    }

    /// Whether the copy of where the table lies is the shard's own.
    #[cfg(test)]
    pub(super) fn copy_is_current(&self) -> bool {
        let shard = self.lock.read();
        self.header.load(Ordering::Relaxed) == &**shard as *const Shard as usize
            && self.slots.load(Ordering::Relaxed) == shard.slots.as_ptr() as usize
            && self.len.load(Ordering::Relaxed) == shard.slots.len()
    }
}

/// A shard's write lock (see [`PaddedShard::write`]).
pub(super) struct ShardGuard<'a> {
    guard: RwLockWriteGuard<'a, Arc<Shard>>,
    padded: &'a PaddedShard,
}

impl Deref for ShardGuard<'_> {
    type Target = Arc<Shard>;

    fn deref(&self) -> &Arc<Shard> {
        &self.guard
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut Arc<Shard> {
        &mut self.guard
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        let shard: &Shard = &self.guard;
        let padded = self.padded;
        padded
            .header
            .store(shard as *const Shard as usize, Ordering::Relaxed);
        padded
            .slots
            .store(shard.slots.as_ptr() as usize, Ordering::Relaxed);
        padded.len.store(shard.slots.len(), Ordering::Relaxed);
    }
}

//! One shard of a [`super::HashIndex`]: an open-addressing table of
//! [`Slot`]s (linear probing, backward-shift removal) over a key arena, not
//! synchronized (the index keeps each behind a lock).

use super::arena::KeyArena;
use super::key_hash::KeyHasher;
use super::table::{tag, Slot, Start, Table};
use crate::keydir::SnapshotKeys;
use crate::keydir::{prefetch, prefetch_address};
use crate::log::{RecordPos, RecordStart};

/// The smallest table a shard allocates.
pub(super) const MIN_SLOTS: usize = 16;
/// Garbage a shard tolerates before it compacts its arena, whatever the
/// share: compacting a tiny shard over a few removals would be churn.
pub(super) const MIN_GARBAGE: usize = 16 << 10;
/// How many slots ahead a walk over the whole table (a resize, a
/// compaction) asks for the entry of a slot: the walk reads every entry,
/// in table order, which is random order in the arena, so each is a cache
/// miss, and this overlaps them.
pub(super) const PREFETCH_WALK_AHEAD: usize = 16;

/// Bits of a tag.
const TAG_BITS: u32 = u64::BITS - Slot::TAG_SHIFT;

/// Whether in a table of `slots` slots a slot's tag gives its home.
#[inline]
fn tags_give_homes(slots: usize) -> bool {
    slots.trailing_zeros() <= TAG_BITS
}

/// The home slot of a key of hash `hash` in a table of `slots` slots (a
/// power of two): the hash's top bits. Those are the tag's top bits too,
/// so in a table of up to 2^[`TAG_BITS`] slots a slot's tag gives its home
/// ([`Shard::home_of`]), and moving slots (removal's backward shift, a
/// resize) reads no key.
#[inline]
pub(super) fn home(hash: u64, slots: usize) -> usize {
    match slots.trailing_zeros() {
        0 => 0,
        bits => (hash >> (u64::BITS - bits)) as usize,
    }
}

/// The number of slots for `len` keys: a power of two, at most 3/4 full.
pub(super) fn capacity_for(len: usize) -> usize {
    (len.saturating_mul(4).div_ceil(3))
        .next_power_of_two()
        .max(MIN_SLOTS)
}

/// One shard: a table of slots over an arena. Not synchronized; the index
/// keeps each behind a lock. A clone is a copy of both (see
/// [`KeyArena`]'s `Clone`): what a writer makes of a shard that a snapshot
/// still holds.
#[derive(Clone, Default)]
pub(super) struct Shard {
    /// A power of two in length (or empty before the first key); always
    /// holds at least one empty slot, which ends every probe.
    pub(super) slots: Table,
    /// Occupied slots.
    pub(super) len: usize,
    pub(super) arena: KeyArena,
}

impl Shard {
    /// The index of the slot holding `key` (of hash `hash`).
    #[inline]
    pub(super) fn find(&self, key: &[u8], hash: u64) -> Option<usize> {
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
    pub(super) fn probe(&self, key: &[u8], hash: u64) -> Result<usize, usize> {
        self.walk(hash, |slot| self.arena.key(slot.entry()) == key)
    }

    /// Walks the probe path of `hash` from its home slot: `Ok(i)` at the
    /// first slot whose tag is `hash`'s and which `is_it` accepts, else
    /// `Err(i)` at the first empty slot. The table must not be empty.
    #[inline]
    fn walk(&self, hash: u64, is_it: impl Fn(Slot) -> bool) -> Result<usize, usize> {
        let mask = self.slots.len() - 1;
        let mut i = home(hash, self.slots.len());
        loop {
            let slot = self.slots[i];
            if slot.is_empty() {
                return Err(i);
            }
            if slot.tag() == tag(hash) && is_it(slot) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// Where the record of the first key on `hash`'s probe path whose tag
    /// matches starts: almost always `hash`'s key's own, but its record's
    /// key is to be compared (a tag is 24 bits of the hash). One read of the
    /// table and none of the arena.
    #[inline]
    pub(super) fn locate(&self, hash: u64) -> Option<RecordStart> {
        if self.slots.is_empty() {
            return None;
        }
        let i = self.walk(hash, |_| true).ok()?;
        Some(self.slots.start(i).get())
    }

    pub(super) fn get(&self, key: &[u8], hash: u64) -> Option<RecordPos> {
        self.find(key, hash).map(|i| self.pos_of(i))
    }

    /// The record position of the key in slot `i`: its start from the
    /// slot, its size from the entry.
    fn pos_of(&self, i: usize) -> RecordPos {
        let size = self.arena.size(self.slots[i].entry());
        self.slots.start(i).get().with_size(size)
    }

    /// Points the key in slot `i` (which is `key`) at `pos`. A size that
    /// the entry has no room for takes a new entry.
    ///
    /// Writes only what changes (the start; the size if it differs; the
    /// slot if the entry moves): a line written is a line the cache must
    /// write back (dirtying the slot and the entry on every overwrite made
    /// overwrite 0.89x as fast in peerbench, 16 pairs).
    fn set_pos(&mut self, i: usize, key: &[u8], pos: RecordPos) {
        let at = self.slots[i].entry();
        if self.arena.size(at) != pos.size && !self.arena.set_size(at, pos.size) {
            self.arena.release(at);
            let moved = self.arena.push(key, pos.size);
            self.slots[i] = self.slots[i].moved_to(moved);
        }
        self.slots.set_start(i, Start::new(pos.start()));
    }

    /// Points `key` at `new` if it points at `expected`; returns whether it did.
    pub(super) fn replace_if(
        &mut self,
        key: &[u8],
        hash: u64,
        expected: RecordPos,
        new: RecordPos,
    ) -> bool {
        let Some(i) = self.find(key, hash) else {
            return false;
        };
        let now = self.pos_of(i) == expected;
        if now {
            self.set_pos(i, key, new);
            self.compact_if_due();
        }
        now
    }

    pub(super) fn put(
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
                let old = self.pos_of(i);
                self.set_pos(i, key, pos);
                self.compact_if_due();
                return Some(old);
            }
            Err(free) => free,
        };
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize(hasher, capacity_for(self.len + 1));
            free = self.free_slot(hash);
        }
        let at = self.arena.push(key, pos.size);
        self.slots[free] = Slot::new(hash, at);
        self.slots.set_start(free, Start::new(pos.start()));
        self.len += 1;
        None
    }

    pub(super) fn remove(
        &mut self,
        hasher: &KeyHasher,
        key: &[u8],
        hash: u64,
    ) -> Option<RecordPos> {
        let i = self.find(key, hash)?;
        let old = self.pos_of(i);
        self.arena.release(self.slots[i].entry());
        self.close_gap(hasher, i);
        self.len -= 1;
        if self.slots.len() > MIN_SLOTS && self.len * 8 < self.slots.len() {
            self.resize(hasher, capacity_for(self.len));
        }
        self.compact_if_due();
        Some(old)
    }

    /// Compacts the arena if its garbage exceeds its live bytes (and
    /// [`MIN_GARBAGE`]): after a removal, or an overwrite that took a new
    /// entry.
    fn compact_if_due(&mut self) {
        let garbage = self.arena.garbage_bytes();
        if garbage >= MIN_GARBAGE && garbage > self.arena.live_bytes() {
            self.compact();
        }
    }

    /// Grows the table, if needed, to hold `additional` more keys without
    /// growing again.
    pub(super) fn reserve(&mut self, hasher: &KeyHasher, additional: usize) {
        let capacity = capacity_for(self.len.saturating_add(additional));
        if capacity > self.slots.len() {
            self.resize(hasher, capacity);
        }
    }

    /// Shrinks the table to the size that growing key by key would have
    /// given it, if it is larger; returns whether it did.
    pub(super) fn shrink_to_fit(&mut self, hasher: &KeyHasher) -> bool {
        let capacity = capacity_for(self.len);
        let larger = self.slots.len() > capacity;
        if larger {
            self.resize(hasher, capacity);
        }
        larger
    }

    /// Starts loading what [`Shard::prefetch_slot`] and
    /// [`Shard::prefetch_entry`] read before their own loads: this
    /// struct's fields and the arena's chunk table.
    #[inline]
    pub(super) fn prefetch_header(&self) {
        prefetch(self);
        self.arena.prefetch_chunk_table();
    }

    /// Starts loading the home slot of `hash` into the cache, and its start.
    #[inline]
    pub(super) fn prefetch_slot(&self, hash: u64) {
        if !self.slots.is_empty() {
            let i = home(hash, self.slots.len());
            prefetch(&self.slots[i]);
            prefetch_address(&self.slots[i] as *const Slot as usize + Table::START_AFTER_SLOT);
        }
    }

    /// Starts loading the entry of the first slot on `hash`'s probe path
    /// whose tag matches (almost always the key's own, for an overwrite or
    /// a remove). Looks only at the few slots from the home slot that a
    /// [`Shard::prefetch_slot`] of it brought in, and stops at an empty one
    /// (a new key: there is no entry to compare).
    ///
    /// For a remove (`remove`) in a table too large for tags to give homes
    /// ([`Shard::home_of`]), also the entries of the slots after it in its
    /// cluster, up to the slot line's worth: the backward shift hashes each
    /// of their keys again.
    #[inline]
    pub(super) fn prefetch_entry(&self, hash: u64, remove: bool) {
        if self.slots.is_empty() {
            return;
        }
        let remove = remove && !tags_give_homes(self.slots.len());
        let mask = self.slots.len() - 1;
        let mut i = home(hash, self.slots.len());
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
    pub(super) fn free_slot(&self, hash: u64) -> usize {
        self.free_slot_from(home(hash, self.slots.len()))
    }

    /// The first empty slot from slot `i` on.
    fn free_slot_from(&self, mut i: usize) -> usize {
        let mask = self.slots.len() - 1;
        while !self.slots[i].is_empty() {
            i = (i + 1) & mask;
        }
        i
    }

    /// Empties slot `hole` and moves later slots of its cluster back, each
    /// to the earliest free place on its own probe path, so that every key
    /// stays reachable from its home bucket without tombstones.
    pub(super) fn close_gap(&mut self, hasher: &KeyHasher, mut hole: usize) {
        let mask = self.slots.len() - 1;
        let mut i = (hole + 1) & mask;
        loop {
            let slot = self.slots[i];
            if slot.is_empty() {
                break;
            }
            let home = self.home_of(hasher, slot);
            // The slot may move into the hole when the hole lies on its probe
            // path, between its home and where it is now (cyclically).
            if i.wrapping_sub(home) & mask >= i.wrapping_sub(hole) & mask {
                self.slots[hole] = slot;
                self.slots.set_start(hole, self.slots.start(i));
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = Slot::EMPTY;
        self.slots.set_start(hole, Start::default());
    }

    /// Moves every slot into a table of `capacity` slots, each placed by
    /// its tag ([`Shard::home_of`]): no key is read, unless the table is
    /// too large for tags to give homes.
    pub(super) fn resize(&mut self, hasher: &KeyHasher, capacity: usize) {
        let old = std::mem::replace(&mut self.slots, Table::zeroed(capacity));
        let read_keys = !tags_give_homes(capacity);
        for j in 0..old.len() {
            let slot = old[j];
            if read_keys {
                if let Some(ahead) = old.get(j + PREFETCH_WALK_AHEAD).filter(|s| !s.is_empty()) {
                    self.arena.prefetch(ahead.entry());
                }
            }
            if !slot.is_empty() {
                let i = self.free_slot_from(self.home_of(hasher, slot));
                self.slots[i] = slot;
                self.slots.set_start(i, old.start(j));
            }
        }
    }

    /// The home slot, in this table, of the key that `slot` holds: its
    /// tag's top bits ([`home`]), or, in a table of more than
    /// 2^[`TAG_BITS`] slots (an index of billions of keys, or a few
    /// shards of tens of millions), its key hashed again.
    fn home_of(&self, hasher: &KeyHasher, slot: Slot) -> usize {
        let bits = self.slots.len().trailing_zeros();
        if tags_give_homes(self.slots.len()) {
            (slot.tag() >> (TAG_BITS - bits)) as usize
        } else {
            home(hasher.hash(self.arena.key(slot.entry())), self.slots.len())
        }
    }

    /// Copies the live entries into a fresh arena and drops the old one
    /// with its garbage. Hashes and tags do not change, so no slot moves.
    pub(super) fn compact(&mut self) {
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

    /// Adds every key that starts with `prefix`, with its position, in
    /// table order (the entries a few slots ahead asked for, as in
    /// [`Shard::compact`]). Each entry is a cache miss that the prefetch
    /// hides only in part: a snapshot of 1M keys takes longer than the
    /// walk of the arena in address order did when entries held their
    /// positions (see docs/bench/defaults.md, stop 30). Sorting the slots
    /// by their entries' cache lines first (a counting sort) was slower
    /// still.
    pub(super) fn copy_prefix(&self, prefix: &[u8], out: &mut SnapshotKeys) {
        for j in 0..self.slots.len() {
            if let Some(ahead) = self.slots.get(j + PREFETCH_WALK_AHEAD) {
                if !ahead.is_empty() {
                    self.arena.prefetch(ahead.entry());
                }
            }
            let slot = self.slots[j];
            if slot.is_empty() {
                continue;
            }
            let (key, size) = self.arena.key_and_size(slot.entry());
            if key.starts_with(prefix) {
                out.push(key, self.slots.start(j).get().with_size(size));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The home a slot's tag gives ([`Shard::home_of`]) is the home its
    /// key's hash gives ([`home`]), in tables small and large, on both
    /// sides of 2^[`TAG_BITS`] slots (above it, the key is hashed again);
    /// and every key stays found after others around it are removed.
    #[test]
    fn a_slot_s_home_is_its_key_s_home_at_every_table_size() {
        let hasher = KeyHasher::with_seed(7);
        for bits in [4, 11, TAG_BITS, TAG_BITS + 1] {
            let mut shard = Shard {
                slots: Table::zeroed(1 << bits),
                ..Shard::default()
            };
            // Within 3/4 of the table, so that no put resizes it.
            let keys = ((1usize << bits) * 3 / 4 - 1).min(300) as u32;
            for n in 0..keys {
                let key = n.to_le_bytes();
                let hash = hasher.hash(&key);
                let pos = RecordPos {
                    file_id: n,
                    offset: n,
                    size: 1,
                };
                assert_eq!(shard.put(&hasher, &key, hash, pos), None);
                let at = shard.find(&key, hash).expect("a key just put");
                assert_eq!(
                    shard.home_of(&hasher, shard.slots[at]),
                    home(hash, shard.slots.len()),
                    "{bits}-bit table, key {n}"
                );
            }
            assert_eq!(shard.slots.len(), 1 << bits, "a put resized the table");
            for n in (0..keys).step_by(3) {
                let key = n.to_le_bytes();
                assert!(shard.remove(&hasher, &key, hasher.hash(&key)).is_some());
            }
            for n in 0..keys {
                let key = n.to_le_bytes();
                let found = shard.get(&key, hasher.hash(&key)).is_some();
                assert_eq!(found, n % 3 != 0, "{bits}-bit table, key {n}");
            }
        }
    }
}

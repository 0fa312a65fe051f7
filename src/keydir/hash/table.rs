//! A shard's table slot ([`Slot`]), where its record starts ([`Start`]),
//! and how they lie in memory: slots in groups of eight (one
//! cache line), each group followed by the eight slots' record starts (the
//! next line).
//!
//! Why: a get goes from a key's slot straight to its record, so the slot
//! needs where the record starts beside it ([`Start`]). Layouts measured
//! against the table before (slots alone, the start in the arena entry)
//! with peerbench's `bitcask` row alone (1M x 100 B), runs alternated,
//! new / old:
//!
//! | layout | readrandom | readmissing | fill, overwrite, delete |
//! | --- | --- | --- | --- |
//! | 16-byte slots (entry, start), 4 pairs | 1.44x | 0.86x | 1.02x, 1.10x, 0.92x |
//! | starts in an array of their own, 8 + 12 + 10 rounds | 1.26x, 1.31x, 1.30x | 1.00x, 0.98x, 0.89x | 0.92x to 1.21x, 0.94x to 0.96x, 0.94x to 0.98x |
//! | 64 slots, then their 64 starts, 10 rounds | 1.30x | 0.86x | 0.98x, 0.99x, 1.04x |
//! | 8 slots, then their 8 starts (this), 12 + 10 rounds | 1.37x, 1.35x | 0.86x, 0.86x | 0.98x and 1.16x, 1.01x and 1.04x, 0.97x and 1.03x |
//!
//! With eight, a start lies on the line after its group's, the pair the
//! CPU's adjacent-line prefetch fetches together, in one DRAM page. What
//! every layout pays is on readmissing: a lookup of an absent key reads
//! one slot's line as before, but the table is twice the memory and the
//! start is asked for with the slot (before the probe knows whether a tag
//! matches).

use std::ops::{Index, IndexMut};

use super::arena::EntryRef;
use super::pages::{Buf, Plain};
use crate::log::RecordStart;

/// One table slot: 0 when empty, else the top bits of the key's hash (the
/// tag) over the entry's arena reference plus one. Where the key's record
/// starts is in a [`Start`] beside it (below).
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(transparent)]
pub(super) struct Slot(u64);

// SAFETY: a u64 underneath (repr(transparent)); all-zero is EMPTY; no drop.
unsafe impl Plain for Slot {}

impl Slot {
    pub(super) const EMPTY: Slot = Slot(0);
    /// The tag takes the bits above the reference.
    pub(super) const TAG_SHIFT: u32 = EntryRef::BITS;
    pub(super) const REF_MASK: u64 = (1 << EntryRef::BITS) - 1;

    /// A slot for the key of hash `hash` whose entry lies `at`. The
    /// reference is stored plus one so that no occupied slot is 0; an arena
    /// never hands out the all-ones reference (an entry at the end of the
    /// last chunk would have no room).
    pub(super) fn new(hash: u64, at: EntryRef) -> Slot {
        Slot((tag(hash) << Self::TAG_SHIFT) | (at.to_bits() + 1))
    }

    pub(super) fn is_empty(self) -> bool {
        self == Slot::EMPTY
    }

    pub(super) fn tag(self) -> u64 {
        self.0 >> Self::TAG_SHIFT
    }

    pub(super) fn entry(self) -> EntryRef {
        EntryRef::from_bits((self.0 & Self::REF_MASK) - 1)
    }

    /// The slot as a number, to save it.
    pub(super) fn bits(self) -> u64 {
        self.0
    }

    /// A slot saved with [`Slot::bits`].
    pub(super) fn from_bits(bits: u64) -> Slot {
        Slot(bits)
    }

    /// The same slot pointing at a moved entry.
    pub(super) fn moved_to(self, at: EntryRef) -> Slot {
        Slot((self.0 & !Self::REF_MASK) | (at.to_bits() + 1))
    }
}

/// The tag of a hash: its top bits, as many as a slot has room for.
pub(super) fn tag(hash: u64) -> u64 {
    hash >> Slot::TAG_SHIFT
}

/// Slots to a group: a cache line of them.
pub(super) const GROUP: usize = 8;

/// Where a slot's record starts (file id over offset).
#[derive(Clone, Copy, PartialEq, Eq, Default, Debug)]
#[repr(transparent)]
pub(super) struct Start(u64);

// SAFETY: a u64 underneath (repr(transparent)); no drop.
unsafe impl Plain for Start {}

impl Start {
    pub(super) fn new(start: RecordStart) -> Start {
        Start((u64::from(start.file_id) << 32) | u64::from(start.offset))
    }

    pub(super) fn get(self) -> RecordStart {
        RecordStart {
            file_id: (self.0 >> 32) as u32,
            offset: self.0 as u32,
        }
    }

    /// The start as a number, to save it.
    pub(super) fn bits(self) -> u64 {
        self.0
    }

    /// A start saved with [`Start::bits`].
    pub(super) fn from_bits(bits: u64) -> Start {
        Start(bits)
    }
}

/// Eight slots, then their starts: two cache lines.
#[derive(Clone, Copy)]
#[repr(C)]
pub(super) struct Group {
    slots: [Slot; GROUP],
    starts: [Start; GROUP],
}

impl Group {
    /// The group as sixteen numbers (slots, then starts), to save it.
    pub(super) fn words(&self) -> [u64; 2 * GROUP] {
        std::array::from_fn(|i| match i < GROUP {
            true => self.slots[i].bits(),
            false => self.starts[i - GROUP].bits(),
        })
    }

    /// A group saved with [`Group::words`].
    pub(super) fn from_words(words: [u64; 2 * GROUP]) -> Group {
        Group {
            slots: std::array::from_fn(|i| Slot::from_bits(words[i])),
            starts: std::array::from_fn(|i| Start::from_bits(words[GROUP + i])),
        }
    }
}

// SAFETY: sixteen u64s underneath (repr(C), no padding); all-zero is eight
// empty slots; no drop.
unsafe impl Plain for Group {}

/// A table of slots with their starts, a power of two of them (at least a
/// group), or none. Indexing gives the slots; [`Table::start`] the starts.
#[derive(Clone, Default)]
pub(super) struct Table {
    groups: Buf<Group>,
}

impl Table {
    /// A table of `slots` empty slots: 0, or a power of two of at least
    /// [`GROUP`].
    pub(super) fn zeroed(slots: usize) -> Table {
        debug_assert!(slots == 0 || (slots.is_power_of_two() && slots >= GROUP));
        Table {
            groups: Buf::zeroed(slots / GROUP),
        }
    }

    /// A table of saved groups.
    pub(super) fn from_groups(groups: Buf<Group>) -> Table {
        Table { groups }
    }

    /// The groups, to save them.
    pub(super) fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// How many slots.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.groups.len() * GROUP
    }

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every slot, in order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Slot> + '_ {
        self.groups.iter().flat_map(|g| g.slots)
    }

    /// Slot `i`, if there is one.
    #[inline]
    pub(super) fn get(&self, i: usize) -> Option<&Slot> {
        self.groups.get(i / GROUP).map(|g| &g.slots[i % GROUP])
    }

    /// Where the record of slot `i` starts.
    #[inline]
    pub(super) fn start(&self, i: usize) -> Start {
        self.groups[i / GROUP].starts[i % GROUP]
    }

    /// Sets where the record of slot `i` starts.
    #[inline]
    pub(super) fn set_start(&mut self, i: usize, start: Start) {
        self.groups[i / GROUP].starts[i % GROUP] = start;
    }

    /// The first slot's address, for [`Table::slot_offset`].
    pub(super) fn as_ptr(&self) -> *const Group {
        self.groups.as_ptr()
    }

    /// How far slot `i` lies from the first slot, in bytes; its start lies
    /// [`Table::START_AFTER_SLOT`] bytes after it.
    #[inline]
    pub(super) fn slot_offset(i: usize) -> usize {
        (i / GROUP) * std::mem::size_of::<Group>() + (i % GROUP) * std::mem::size_of::<Slot>()
    }

    /// How far a slot's start lies after the slot, in bytes.
    pub(super) const START_AFTER_SLOT: usize = GROUP * std::mem::size_of::<Slot>();

    /// Bytes of memory per slot.
    #[cfg(any(test, feature = "bench-internals"))]
    pub(super) const BYTES_PER_SLOT: usize = std::mem::size_of::<Group>() / GROUP;
}

impl Index<usize> for Table {
    type Output = Slot;

    #[inline]
    fn index(&self, i: usize) -> &Slot {
        &self.groups[i / GROUP].slots[i % GROUP]
    }
}

impl IndexMut<usize> for Table {
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.groups[i / GROUP].slots[i % GROUP]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_s_start_lies_a_line_after_it_and_each_keeps_its_value() {
        assert_eq!(std::mem::size_of::<Group>(), 128);
        assert_eq!(Table::START_AFTER_SLOT, 64);
        let mut table = Table::zeroed(32);
        assert_eq!(table.len(), 32);
        for i in 0..32 {
            assert!(table[i].is_empty());
            table.set_start(
                i,
                Start::new(RecordStart {
                    file_id: i as u32,
                    offset: !(i as u32),
                }),
            );
        }
        let base = table.as_ptr() as usize;
        for i in 0..32 {
            let slot_at = &table[i] as *const Slot as usize;
            assert_eq!(slot_at - base, Table::slot_offset(i));
            let start_at = &table.groups[i / GROUP].starts[i % GROUP] as *const Start as usize;
            assert_eq!(start_at - slot_at, Table::START_AFTER_SLOT);
            let start = table.start(i).get();
            assert_eq!((start.file_id, start.offset), (i as u32, !(i as u32)));
            assert!(table[i].is_empty(), "a start written over slot {i}");
        }
        assert!(table.get(32).is_none());
        assert!(Table::zeroed(0).is_empty());
    }
}

//! A [`HashIndex`] saved as it lies in memory, and loaded back: what the
//! keydir file that close writes holds (see `db/saved_keydir.rs`), so that
//! the next open copies tables and arenas instead of hashing and inserting
//! every key again (a million keys: about 53 MB, read at memory speed).
//!
//! ```text
//! hasher state u64 | shard count u32
//! per shard: keys u64 | slots u64 | per group of 8 slots: each slot u64,
//!            then each slot's start u64
//!            | arena bytes used u64 | of them released u64 | chunks u32
//!            | per chunk: room u64 | length u64 | its bytes
//! ```
//!
//! Integers are little-endian. The hasher's state is saved because every
//! slot's place depends on it (and on the rule that places a key by its
//! hash's top bits, which the keydir file's version names). The caller
//! checks a checksum over all of it; loading also checks that the parts
//! fit together (table sizes, the count of used slots, every slot pointing
//! inside its arena), so that even bytes that pass the checksum by chance
//! cannot make the index read outside its memory.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::arena::KeyArena;
use super::pages::Buf;
use super::shard::{Shard, MIN_SLOTS};
use super::table::{Group, Slot, Table, GROUP};
use super::{HashIndex, KeyHasher, SHARD_SHIFT};

/// Slots are written and read this many at a time.
const SLOT_BATCH: usize = 8192;
/// Bytes of a saved group of slots with their starts.
const GROUP_LEN: usize = GROUP * 16;

impl HashIndex {
    /// The index as it is now, to be written by [`Layout::write`]: a
    /// reference to every shard, each taken under its read lock for a
    /// moment. A writer that changes a shard still held copies it first.
    pub(crate) fn layout_later(&self) -> Layout {
        Layout {
            hasher_state: self.hasher.state(),
            shards: self
                .shards
                .iter()
                .map(|shard| Arc::clone(&shard.read()))
                .collect(),
        }
    }

    /// The index [`Layout::write`] wrote, read from `input`; `None` if
    /// the bytes do not describe one. Errors are the reader's.
    pub(crate) fn load_layout(input: &mut dyn Read) -> io::Result<Option<HashIndex>> {
        let hasher = KeyHasher::from_state(read_u64(input)?);
        let shards = read_u32(input)? as usize;
        if !shards.is_power_of_two() || shards > 1 << (Slot::TAG_SHIFT - SHARD_SHIFT) {
            return Ok(None);
        }
        let index = HashIndex::with_hasher(hasher, shards);
        let mut buf = vec![0u8; SLOT_BATCH * 16];
        for padded in index.shards.iter() {
            let Some(shard) = load_shard(input, &mut buf)? else {
                return Ok(None);
            };
            *padded.write() = Arc::new(shard);
        }
        Ok(Some(index))
    }
}

/// The shards of a [`HashIndex`] at one moment, with its hasher's state.
pub(crate) struct Layout {
    hasher_state: u64,
    shards: Vec<Arc<Shard>>,
}

impl Layout {
    /// Writes the index (see the module documentation), letting go of each
    /// shard once it is written, so that writers stop copying it.
    pub(crate) fn write(self, out: &mut dyn Write) -> io::Result<()> {
        out.write_all(&self.hasher_state.to_le_bytes())?;
        out.write_all(&(self.shards.len() as u32).to_le_bytes())?;
        let mut buf = Vec::with_capacity(SLOT_BATCH * 16);
        for shard in self.shards {
            out.write_all(&(shard.len as u64).to_le_bytes())?;
            out.write_all(&(shard.slots.len() as u64).to_le_bytes())?;
            for groups in shard.slots.groups().chunks(SLOT_BATCH / GROUP) {
                buf.clear();
                for group in groups {
                    for word in group.words() {
                        buf.extend_from_slice(&word.to_le_bytes());
                    }
                }
                out.write_all(&buf)?;
            }
            let (chunks, used, garbage) = shard.arena.parts();
            out.write_all(&(used as u64).to_le_bytes())?;
            out.write_all(&(garbage as u64).to_le_bytes())?;
            out.write_all(&(chunks.len() as u32).to_le_bytes())?;
            for chunk in chunks {
                out.write_all(&(chunk.capacity() as u64).to_le_bytes())?;
                out.write_all(&(chunk.len() as u64).to_le_bytes())?;
                out.write_all(chunk)?;
            }
        }
        Ok(())
    }
}

/// One shard written by [`Layout::write`], checked to fit together.
fn load_shard(input: &mut dyn Read, buf: &mut [u8]) -> io::Result<Option<Shard>> {
    let len = read_u64(input)?;
    let slot_count = read_u64(input)?;
    // A table is empty or a power of two of at least MIN_SLOTS, with an
    // empty slot to end every probe; one shard holds below 2^30 slots.
    let sized = slot_count == 0
        || (slot_count.is_power_of_two()
            && slot_count >= MIN_SLOTS as u64
            && slot_count <= 1 << 30);
    if !sized || len >= slot_count.max(1) {
        return Ok(None);
    }
    let slots = read_table(input, buf, slot_count as usize)?;
    let used = read_u64(input)? as usize;
    let garbage = read_u64(input)? as usize;
    let chunk_count = read_u32(input)? as usize;
    let mut chunks = Vec::with_capacity(chunk_count.min(1 << 16));
    for _ in 0..chunk_count {
        let room = read_u64(input)? as usize;
        let chunk_len = read_u64(input)? as usize;
        if chunk_len > room || room > 1 << 20 {
            return Ok(None);
        }
        let mut chunk = Buf::with_capacity(room);
        input.read_exact(chunk.extend_zeroed(chunk_len))?;
        chunks.push(chunk);
    }
    let Some(arena) = KeyArena::from_parts(chunks, used, garbage) else {
        return Ok(None);
    };
    let occupied = slots.iter().filter(|s| !s.is_empty()).count();
    // An occupied slot's reference is stored plus one: never 0.
    let inside = slots
        .iter()
        .all(|s| s.is_empty() || (s.bits() & Slot::REF_MASK != 0 && arena.holds(s.entry())));
    if occupied as u64 != len || !inside {
        return Ok(None);
    }
    Ok(Some(Shard {
        slots,
        len: len as usize,
        arena,
    }))
}

/// A table of `slots` slots written by [`Layout::write`].
fn read_table(input: &mut dyn Read, buf: &mut [u8], slots: usize) -> io::Result<Table> {
    let groups = slots / GROUP;
    let mut table = Buf::with_capacity(groups);
    let mut batch = Vec::with_capacity(SLOT_BATCH / GROUP);
    while table.len() < groups {
        let n = (groups - table.len()).min(SLOT_BATCH / GROUP);
        input.read_exact(&mut buf[..n * GROUP_LEN])?;
        batch.clear();
        batch.extend(buf[..n * GROUP_LEN].chunks_exact(GROUP_LEN).map(|b| {
            Group::from_words(std::array::from_fn(|i| {
                u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]))
            }))
        }));
        table.extend_from_slice(&batch);
    }
    Ok(Table::from_groups(table))
}

fn read_u64(input: &mut dyn Read) -> io::Result<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32(input: &mut dyn Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

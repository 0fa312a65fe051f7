//! Where the hash index keeps its keys: entries back to back in a few large
//! chunks of bytes, instead of one heap allocation per key (a boxed key
//! costs its 16-byte pointer plus at least 16 bytes of malloc header and
//! rounding).
//!
//! An entry is the key's record position (file id, offset, size: 12 bytes,
//! little-endian), the key's length (LEB128: 1 byte below 128, 3 bytes at
//! most) and the key's bytes. Entries never move, so an [`EntryRef`] (chunk
//! number and offset) stays valid until the entry is released or the whole
//! arena is replaced. A released entry stays in place as garbage: the owner
//! counts it ([`KeyArena::garbage_bytes`]) and rebuilds the arena from its
//! live entries when garbage dominates.

use super::pages::Buf;
use crate::log::format::MAX_KEY_LEN;

use crate::keydir::prefetch;
use crate::log::RecordPos;

/// Bits of an [`EntryRef`] that hold the offset within the chunk.
const OFFSET_BITS: u32 = 18;
/// The largest chunk: big enough for the largest entry (12 + 3 + 65536
/// bytes, in a chunk of its own).
const MAX_CHUNK: usize = 1 << OFFSET_BITS;
/// The first chunk; each next one doubles up to `GROWN_CHUNK`, so that a
/// small index stays small.
const MIN_CHUNK: usize = 1 << 10;
/// The size chunks grow to. Each shard's newest chunk is partly unused,
/// and in huge pages (`pages.rs`) unused room is resident memory too: at
/// 32 KiB that is at most 32 MiB over 1024 shards (256 KiB chunks cost 23
/// bytes per key at 10M keys, measured).
const GROWN_CHUNK: usize = 32 << 10;
/// Chunk numbers fit in the 40 bits of an [`EntryRef`] that the hash
/// index's table slots hold: 2^22 chunks, 128 GiB of 32 KiB chunks per
/// arena.
const MAX_CHUNKS: usize = 1 << (EntryRef::BITS - OFFSET_BITS);
/// Bytes of the record position at the start of an entry.
const POS_LEN: usize = 12;

/// Where an entry lies: its chunk number above `OFFSET_BITS` bits of offset.
/// Always below 2^[`EntryRef::BITS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct EntryRef(u64);

impl EntryRef {
    /// How many bits a reference takes.
    pub(crate) const BITS: u32 = 40;

    /// The reference as a number below 2^[`EntryRef::BITS`], to pack into a slot.
    pub(crate) fn to_bits(self) -> u64 {
        self.0
    }

    /// A reference back from [`EntryRef::to_bits`].
    pub(crate) fn from_bits(bits: u64) -> EntryRef {
        EntryRef(bits)
    }

    fn new(chunk: usize, offset: usize) -> EntryRef {
        EntryRef(((chunk as u64) << OFFSET_BITS) | offset as u64)
    }

    fn chunk(self) -> usize {
        (self.0 >> OFFSET_BITS) as usize
    }

    fn offset(self) -> usize {
        (self.0 & ((1 << OFFSET_BITS) - 1)) as usize
    }
}

/// Keys with their record positions, packed in chunks (from `pages.rs`).
/// Not synchronized: the hash index keeps each arena behind its shard's
/// lock.
#[derive(Default)]
pub(crate) struct KeyArena {
    /// Each chunk is allocated at its full size up front and never grows,
    /// so entries never move.
    chunks: Vec<Buf<u8>>,
    /// Bytes of all entries, live and released.
    used: usize,
    /// Bytes of released entries.
    garbage: usize,
}

impl KeyArena {
    /// Appends an entry for `key` at `pos` and returns where it lies.
    ///
    /// # Panics
    /// If `key` is longer than [`MAX_KEY_LEN`] (the engine refuses such
    /// keys before they reach the index), or if the arena already holds
    /// 1 TiB.
    pub(crate) fn push(&mut self, key: &[u8], pos: RecordPos) -> EntryRef {
        debug_assert!(pos.size != 0, "a record of 0 bytes reached the keydir");
        assert!(
            key.len() <= MAX_KEY_LEN,
            "a key of {} bytes reached the keydir (the limit is {MAX_KEY_LEN})",
            key.len()
        );
        let mut len_bytes = [0u8; 3];
        let len_len = encode_len(key.len(), &mut len_bytes);
        let size = POS_LEN + len_len + key.len();
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity().min(MAX_CHUNK) - chunk.len() >= size);
        if !fits {
            assert!(
                self.chunks.len() < MAX_CHUNKS,
                "the keydir arena is full (1 TiB of keys in one shard)"
            );
            let next = (MIN_CHUNK << self.chunks.len().min(8)).min(GROWN_CHUNK);
            self.chunks.push(Buf::with_capacity(next.max(size)));
        }
        let chunk_no = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_no];
        let at = EntryRef::new(chunk_no, chunk.len());
        chunk.extend_from_slice(&encode_pos(pos));
        chunk.extend_from_slice(&len_bytes[..len_len]);
        chunk.extend_from_slice(key);
        self.used += size;
        at
    }

    /// The key of the entry at `at`.
    #[inline]
    pub(crate) fn key(&self, at: EntryRef) -> &[u8] {
        let bytes = &self.chunks[at.chunk()][at.offset() + POS_LEN..];
        let (len, len_len) = decode_len(bytes);
        // Only a damaged saved index (see `persist.rs`) can have a length
        // that runs past its chunk: an empty key then, rather than a panic.
        bytes.get(len_len..len_len + len).unwrap_or_default()
    }

    /// The record position of the entry at `at`.
    #[inline]
    pub(crate) fn pos(&self, at: EntryRef) -> RecordPos {
        let offset = at.offset();
        let mut bytes = [0u8; POS_LEN];
        bytes.copy_from_slice(&self.chunks[at.chunk()][offset..offset + POS_LEN]);
        decode_pos(&bytes)
    }

    /// Starts loading the start of the chunk table, which
    /// [`KeyArena::prefetch`] reads first (a shard below 256 KiB of entries
    /// has one chunk; two share a cache line).
    #[inline]
    pub(crate) fn prefetch_chunk_table(&self) {
        if let Some(first) = self.chunks.first() {
            prefetch(first);
        }
    }

    /// Starts loading the entry at `at` into the cache: its position, its
    /// length and the start of its key, which may lie on the next line.
    #[inline]
    pub(crate) fn prefetch(&self, at: EntryRef) {
        if let Some(chunk) = self.chunks.get(at.chunk()) {
            let offset = at.offset();
            if let Some(first) = chunk.get(offset) {
                prefetch(first);
            }
            // Position, length byte and 16 bytes of key: 29 bytes.
            if let Some(key) = chunk.get(offset + POS_LEN + 16) {
                prefetch(key);
            }
        }
    }

    /// Points the entry at `at` to a new record position, in place.
    pub(crate) fn set_pos(&mut self, at: EntryRef, pos: RecordPos) {
        debug_assert!(pos.size != 0, "a record of 0 bytes reached the keydir");
        let offset = at.offset();
        self.chunks[at.chunk()][offset..offset + POS_LEN].copy_from_slice(&encode_pos(pos));
    }

    /// Marks the entry at `at` as garbage (its record size becomes 0). Its
    /// bytes stay until the arena is replaced; `at` must not be used again.
    pub(crate) fn release(&mut self, at: EntryRef) {
        let len = self.key(at).len();
        let mut len_bytes = [0u8; 3];
        self.garbage += POS_LEN + encode_len(len, &mut len_bytes) + len;
        let offset = at.offset();
        self.chunks[at.chunk()][offset + 8..offset + POS_LEN].fill(0);
    }

    /// Calls `f` with the key and position of every live entry, in the
    /// order they lie in memory: a walk that reads the arena from start to
    /// end, which the CPU prefetches, rather than in table order, which is
    /// a cache miss per key.
    pub(crate) fn for_each_live(&self, mut f: impl FnMut(&[u8], RecordPos)) {
        for chunk in &self.chunks {
            let mut at = 0;
            while at + POS_LEN < chunk.len() {
                let mut pos = [0u8; POS_LEN];
                pos.copy_from_slice(&chunk[at..at + POS_LEN]);
                let (len, len_len) = decode_len(&chunk[at + POS_LEN..]);
                let start = at + POS_LEN + len_len;
                let pos = decode_pos(&pos);
                if pos.size != 0 {
                    f(&chunk[start..start + len], pos);
                }
                at = start + len;
            }
        }
    }

    /// Copies the entry at `at` in `other` into this arena.
    pub(crate) fn copy_from(&mut self, other: &KeyArena, at: EntryRef) -> EntryRef {
        self.push(other.key(at), other.pos(at))
    }

    /// Bytes of released entries.
    pub(crate) fn garbage_bytes(&self) -> usize {
        self.garbage
    }

    /// Bytes of live entries.
    pub(crate) fn live_bytes(&self) -> usize {
        self.used - self.garbage
    }

    /// Bytes allocated for chunks, the unused tail of the newest included
    /// (not the few bytes of bookkeeping).
    #[cfg(any(test, feature = "bench-internals"))]
    pub(crate) fn allocated_bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<Buf<u8>>()
    }
}

impl KeyArena {
    /// The chunks, oldest first, and the bytes of entries live and
    /// released: what a saved index holds of the arena.
    pub(crate) fn parts(&self) -> (&[Buf<u8>], usize, usize) {
        (&self.chunks, self.used, self.garbage)
    }

    /// The arena of saved [`KeyArena::parts`], if they fit together: chunks
    /// of at most the largest chunk's room, no more of them than a
    /// reference can name, `used` their bytes and `garbage` at most that.
    pub(crate) fn from_parts(
        chunks: Vec<Buf<u8>>,
        used: usize,
        garbage: usize,
    ) -> Option<KeyArena> {
        let fits = chunks.len() <= MAX_CHUNKS
            && chunks.iter().all(|c| c.len() <= MAX_CHUNK)
            && chunks.iter().map(|c| c.len()).sum::<usize>() == used
            && garbage <= used;
        fits.then_some(KeyArena {
            chunks,
            used,
            garbage,
        })
    }

    /// Whether an entry could start at `at`: its position and length byte
    /// lie inside a chunk. (What a saved table's slots are checked with.)
    pub(crate) fn holds(&self, at: EntryRef) -> bool {
        self.chunks
            .get(at.chunk())
            .is_some_and(|c| at.offset() + POS_LEN < c.len())
    }
}

/// A copy whose entries lie where they lie in the original (every
/// [`EntryRef`] holds for both), and whose newest chunk has the original's
/// room left, so that entries pushed later never move either.
impl Clone for KeyArena {
    fn clone(&self) -> Self {
        KeyArena {
            chunks: self.chunks.clone(),
            used: self.used,
            garbage: self.garbage,
        }
    }
}

fn encode_pos(pos: RecordPos) -> [u8; POS_LEN] {
    let mut bytes = [0u8; POS_LEN];
    bytes[0..4].copy_from_slice(&pos.file_id.to_le_bytes());
    bytes[4..8].copy_from_slice(&pos.offset.to_le_bytes());
    bytes[8..12].copy_from_slice(&pos.size.to_le_bytes());
    bytes
}

fn decode_pos(bytes: &[u8; POS_LEN]) -> RecordPos {
    let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    RecordPos {
        file_id: word(0),
        offset: word(4),
        size: word(8),
    }
}

/// Writes `len` (below 2^21) as LEB128 into `out`; returns how many bytes.
fn encode_len(mut len: usize, out: &mut [u8; 3]) -> usize {
    let mut n = 0;
    loop {
        let low = (len & 0x7F) as u8;
        len >>= 7;
        if len == 0 {
            out[n] = low;
            return n + 1;
        }
        out[n] = low | 0x80;
        n += 1;
    }
}

/// Reads a length written by `encode_len`: the length and how many bytes it took.
#[inline]
fn decode_len(bytes: &[u8]) -> (usize, usize) {
    let mut len = 0;
    for (i, &byte) in bytes.iter().take(3).enumerate() {
        len |= usize::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            return (len, i + 1);
        }
    }
    // encode_len never writes a fourth byte; a broken entry shows as an
    // empty key rather than a read past it.
    (0, 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(n: u32) -> RecordPos {
        RecordPos {
            file_id: n,
            offset: u32::MAX - n,
            size: n.wrapping_mul(7) | 1,
        }
    }

    #[test]
    fn lengths_round_trip_at_every_width_boundary() {
        for len in [0, 1, 127, 128, 16383, 16384, MAX_KEY_LEN] {
            let mut out = [0u8; 3];
            let n = encode_len(len, &mut out);
            assert_eq!(
                n,
                if len < 128 {
                    1
                } else if len < 16384 {
                    2
                } else {
                    3
                }
            );
            assert_eq!(decode_len(&out[..n]), (len, n), "{len}");
        }
    }

    #[test]
    fn entries_keep_their_keys_and_positions_across_many_chunks() {
        let mut arena = KeyArena::default();
        let keys: Vec<Vec<u8>> = (0..20_000u32)
            .map(|i| {
                // Lengths from 0 to 300, bytes that include 0x00 and 0xFF.
                (0..(i % 301))
                    .map(|j| (i.wrapping_mul(31) ^ j) as u8)
                    .collect()
            })
            .collect();
        let refs: Vec<EntryRef> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| arena.push(k, pos(i as u32)))
            .collect();
        assert!(arena.chunks.len() > 10, "{} chunks", arena.chunks.len());
        for (i, (k, &at)) in keys.iter().zip(&refs).enumerate() {
            assert_eq!(arena.key(at), &k[..]);
            assert_eq!(arena.pos(at), pos(i as u32));
        }
        arena.set_pos(refs[5], pos(99));
        assert_eq!(arena.pos(refs[5]), pos(99));
        assert_eq!(arena.key(refs[5]), &keys[5][..]);
        assert_eq!(arena.pos(refs[6]), pos(6));
    }

    #[test]
    fn the_longest_key_fits_and_chunks_stay_addressable() {
        let mut arena = KeyArena::default();
        let long = vec![0xABu8; MAX_KEY_LEN];
        let a = arena.push(b"short", pos(1));
        let b = arena.push(&long, pos(2));
        let c = arena.push(&long, pos(3));
        let d = arena.push(b"", pos(4));
        assert_eq!(arena.key(a), b"short");
        assert_eq!(arena.key(b), &long[..]);
        assert_eq!(arena.key(c), &long[..]);
        assert_eq!(arena.key(d), b"");
        assert_eq!(arena.pos(d), pos(4));
        assert!(arena.chunks.iter().all(|c| c.capacity() <= MAX_CHUNK));
        for at in [a, b, c, d] {
            assert!(at.to_bits() < 1 << EntryRef::BITS);
            assert_eq!(EntryRef::from_bits(at.to_bits()), at);
        }
    }

    #[test]
    #[should_panic(expected = "reached the keydir")]
    fn a_key_over_the_limit_is_refused() {
        KeyArena::default().push(&vec![0; MAX_KEY_LEN + 1], pos(1));
    }

    #[test]
    fn a_walk_finds_every_live_entry_in_the_order_they_lie() {
        let mut arena = KeyArena::default();
        let keys: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| vec![i as u8; (i % 300) as usize])
            .collect();
        let refs: Vec<EntryRef> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| arena.push(k, pos(i as u32)))
            .collect();
        for (i, &at) in refs.iter().enumerate() {
            if i % 3 == 0 {
                arena.release(at);
            }
        }
        let mut seen = Vec::new();
        arena.for_each_live(|k, p| seen.push((k.to_vec(), p)));
        let expected: Vec<_> = keys
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .map(|(i, k)| (k.clone(), pos(i as u32)))
            .collect();
        assert_eq!(seen.len(), expected.len());
        assert!(seen == expected);
    }

    #[test]
    fn released_entries_count_as_garbage_and_copies_are_live() {
        let mut arena = KeyArena::default();
        let a = arena.push(b"abc", pos(1)); // 12 + 1 + 3
        let b = arena.push(&[7; 200], pos(2)); // 12 + 2 + 200
        assert_eq!(arena.live_bytes(), 16 + 214);
        arena.release(b);
        assert_eq!(arena.garbage_bytes(), 214);
        assert_eq!(arena.live_bytes(), 16);
        let mut fresh = KeyArena::default();
        let a2 = fresh.copy_from(&arena, a);
        assert_eq!((fresh.key(a2), fresh.pos(a2)), (&b"abc"[..], pos(1)));
        assert_eq!((fresh.live_bytes(), fresh.garbage_bytes()), (16, 0));
    }
}

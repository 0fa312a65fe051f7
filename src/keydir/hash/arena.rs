//! Where the hash index keeps its keys: entries back to back in a few large
//! chunks of bytes, instead of one heap allocation per key (a boxed key
//! costs its 16-byte pointer plus at least 16 bytes of malloc header and
//! rounding).
//!
//! An entry is the key's length and a width bit (LEB128 of `len << 1 |
//! wide`: 1 byte for keys below 64 bytes, 3 at most), the size of the key's
//! record (2 bytes, little-endian, or 4 when `wide`) and the key's bytes.
//! Where the record lies (file and offset) is in the table slot, where a
//! get finds it without reading the entry (see `shard.rs`); the size is only
//! needed when the record is replaced (the bytes it leaves dead) and by
//! snapshots. Entries never move, so an [`EntryRef`] (chunk number and
//! offset) stays valid until the entry is released or the whole arena is
//! replaced. A released entry stays in place as garbage: the owner counts
//! it ([`KeyArena::garbage_bytes`]) and rebuilds the arena from its live
//! entries when garbage dominates.

use super::pages::Buf;
use crate::log::format::MAX_KEY_LEN;

use crate::keydir::prefetch;

/// Bits of an [`EntryRef`] that hold the offset within the chunk.
const OFFSET_BITS: u32 = 18;
/// The largest chunk: big enough for the largest entry (3 + 4 + 65536
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
/// The largest record size an entry holds in 2 bytes; larger ones take 4.
const NARROW_MAX: u32 = u16::MAX as u32;

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

/// What the first bytes of an entry say: its key's length, whether its
/// record size takes 4 bytes, and where the size and the key start.
#[derive(Clone, Copy)]
struct EntryHead {
    key_len: usize,
    wide: bool,
    /// Offset of the size from the entry's start (the length's bytes).
    size_at: usize,
}

impl EntryHead {
    fn size_len(self) -> usize {
        if self.wide {
            4
        } else {
            2
        }
    }

    /// Offset of the key from the entry's start.
    fn key_at(self) -> usize {
        self.size_at + self.size_len()
    }

    /// Bytes of the whole entry.
    fn len(self) -> usize {
        self.key_at() + self.key_len
    }
}

/// Keys with the sizes of their records, packed in chunks (from
/// `pages.rs`). Not synchronized: the hash index keeps each arena behind
/// its shard's lock.
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
    /// Appends an entry for `key`, whose record is `size` bytes, and
    /// returns where it lies.
    ///
    /// # Panics
    /// If `key` is longer than [`MAX_KEY_LEN`] (the engine refuses such
    /// keys before they reach the index), or if the arena already holds
    /// 128 GiB.
    pub(crate) fn push(&mut self, key: &[u8], size: u32) -> EntryRef {
        debug_assert!(size != 0, "a record of 0 bytes reached the keydir");
        assert!(
            key.len() <= MAX_KEY_LEN,
            "a key of {} bytes reached the keydir (the limit is {MAX_KEY_LEN})",
            key.len()
        );
        let wide = size > NARROW_MAX;
        let mut len_bytes = [0u8; 3];
        let len_len = encode_len((key.len() << 1) | usize::from(wide), &mut len_bytes);
        let size_bytes = size.to_le_bytes();
        let size_len = if wide { 4 } else { 2 };
        let entry_len = len_len + size_len + key.len();
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| chunk.capacity().min(MAX_CHUNK) - chunk.len() >= entry_len);
        if !fits {
            assert!(
                self.chunks.len() < MAX_CHUNKS,
                "the keydir arena is full (128 GiB of keys in one shard)"
            );
            let next = (MIN_CHUNK << self.chunks.len().min(8)).min(GROWN_CHUNK);
            self.chunks.push(Buf::with_capacity(next.max(entry_len)));
        }
        let chunk_no = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_no];
        let at = EntryRef::new(chunk_no, chunk.len());
        chunk.extend_from_slice(&len_bytes[..len_len]);
        chunk.extend_from_slice(&size_bytes[..size_len]);
        chunk.extend_from_slice(key);
        self.used += entry_len;
        at
    }

    /// The bytes of the entry at `at` to the end of its chunk (empty for a
    /// reference outside every chunk, which only a damaged saved index can
    /// hold).
    #[inline]
    fn from(&self, at: EntryRef) -> &[u8] {
        self.chunks
            .get(at.chunk())
            .and_then(|c| c.get(at.offset()..))
            .unwrap_or_default()
    }

    #[inline]
    fn head(bytes: &[u8]) -> EntryHead {
        let (len, len_len) = decode_len(bytes);
        EntryHead {
            key_len: len >> 1,
            wide: len & 1 == 1,
            size_at: len_len,
        }
    }

    /// The key of the entry at `at`.
    #[inline]
    pub(crate) fn key(&self, at: EntryRef) -> &[u8] {
        let bytes = self.from(at);
        let head = Self::head(bytes);
        // Only a damaged saved index (see `persist.rs`) can have a length
        // that runs past its chunk: an empty key then, rather than a panic.
        bytes.get(head.key_at()..head.len()).unwrap_or_default()
    }

    /// The key of the entry at `at` and its record's size: what
    /// [`KeyArena::key`] and [`KeyArena::size`] give, reading the entry's
    /// length once.
    #[inline]
    pub(crate) fn key_and_size(&self, at: EntryRef) -> (&[u8], u32) {
        let bytes = self.from(at);
        let head = Self::head(bytes);
        let key = bytes.get(head.key_at()..head.len()).unwrap_or_default();
        (key, Self::size_in(bytes, head))
    }

    /// The size of the record of the entry at `at` (0 for a damaged
    /// entry, as [`KeyArena::key`]).
    #[inline]
    pub(crate) fn size(&self, at: EntryRef) -> u32 {
        let bytes = self.from(at);
        Self::size_in(bytes, Self::head(bytes))
    }

    /// The record size stored in the entry `bytes` starts with (0 if they
    /// end before it), read byte by byte (a copy of 2 or 4 bytes would be a
    /// call).
    #[inline]
    fn size_in(bytes: &[u8], head: EntryHead) -> u32 {
        match bytes.get(head.size_at..head.key_at()) {
            Some(&[a, b]) => u32::from(u16::from_le_bytes([a, b])),
            Some(&[a, b, c, d]) => u32::from_le_bytes([a, b, c, d]),
            _ => 0,
        }
    }

    /// Sets the record size of the entry at `at`, in place; returns false
    /// (and changes nothing) if the entry has 2 bytes for it and `size`
    /// needs 4: the caller then releases it and pushes a new one.
    pub(crate) fn set_size(&mut self, at: EntryRef, size: u32) -> bool {
        debug_assert!(size != 0, "a record of 0 bytes reached the keydir");
        let (chunk, offset) = (at.chunk(), at.offset());
        let head = Self::head(&self.chunks[chunk][offset..]);
        if !head.wide && size > NARROW_MAX {
            return false;
        }
        let start = offset + head.size_at;
        self.chunks[chunk][start..start + head.size_len()]
            .copy_from_slice(&size.to_le_bytes()[..head.size_len()]);
        true
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

    /// Starts loading the entry at `at` into the cache: its length, its
    /// size and the start of its key, which may lie on the next line.
    #[inline]
    pub(crate) fn prefetch(&self, at: EntryRef) {
        if let Some(chunk) = self.chunks.get(at.chunk()) {
            let offset = at.offset();
            if let Some(first) = chunk.get(offset) {
                prefetch(first);
            }
            // Length, size and 16 bytes of key: 19 bytes.
            if let Some(key) = chunk.get(offset + 18) {
                prefetch(key);
            }
        }
    }

    /// Marks the entry at `at` as garbage. Its bytes stay until the arena
    /// is replaced; `at` must not be used again.
    pub(crate) fn release(&mut self, at: EntryRef) {
        self.garbage += Self::head(self.from(at)).len();
    }

    /// Copies the entry at `at` in `other` into this arena.
    pub(crate) fn copy_from(&mut self, other: &KeyArena, at: EntryRef) -> EntryRef {
        self.push(other.key(at), other.size(at))
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

    /// Whether an entry could start at `at`: its length byte lies inside a
    /// chunk. (What a saved table's slots are checked with.)
    pub(crate) fn holds(&self, at: EntryRef) -> bool {
        self.chunks
            .get(at.chunk())
            .is_some_and(|c| at.offset() < c.len())
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

    /// A record size for entry `n`: narrow ones mostly, a wide one (over
    /// 64 KiB) every seventh.
    fn size(n: u32) -> u32 {
        match n % 7 {
            0 => NARROW_MAX + 1 + n,
            _ => (n.wrapping_mul(7) % NARROW_MAX) | 1,
        }
    }

    #[test]
    fn lengths_round_trip_at_every_width_boundary() {
        for len in [0, 1, 127, 128, 16383, 16384, (MAX_KEY_LEN << 1) | 1] {
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
    fn entries_keep_their_keys_and_sizes_across_many_chunks() {
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
            .map(|(i, k)| arena.push(k, size(i as u32)))
            .collect();
        assert!(arena.chunks.len() > 10, "{} chunks", arena.chunks.len());
        for (i, (k, &at)) in keys.iter().zip(&refs).enumerate() {
            assert_eq!(arena.key(at), &k[..]);
            assert_eq!(arena.size(at), size(i as u32));
        }
        // A narrow entry takes another narrow size in place, not a wide one.
        assert!(arena.set_size(refs[5], 99));
        assert_eq!(arena.size(refs[5]), 99);
        assert!(!arena.set_size(refs[5], NARROW_MAX + 1));
        assert_eq!(arena.size(refs[5]), 99);
        assert_eq!(arena.key(refs[5]), &keys[5][..]);
        // A wide one takes both.
        assert!(arena.set_size(refs[7], 3));
        assert_eq!(arena.size(refs[7]), 3);
        assert!(arena.set_size(refs[7], u32::MAX));
        assert_eq!(arena.size(refs[7]), u32::MAX);
        assert_eq!(arena.key(refs[7]), &keys[7][..]);
        assert_eq!(arena.size(refs[6]), size(6));
        assert_eq!(arena.size(refs[8]), size(8));
    }

    #[test]
    fn the_longest_key_fits_and_chunks_stay_addressable() {
        let mut arena = KeyArena::default();
        let long = vec![0xABu8; MAX_KEY_LEN];
        let a = arena.push(b"short", size(1));
        let b = arena.push(&long, size(2));
        let c = arena.push(&long, size(7));
        let d = arena.push(b"", size(4));
        assert_eq!(arena.key(a), b"short");
        assert_eq!(arena.key(b), &long[..]);
        assert_eq!((arena.key(c), arena.size(c)), (&long[..], size(7)));
        assert_eq!(arena.key(d), b"");
        assert_eq!(arena.size(d), size(4));
        assert!(arena.chunks.iter().all(|c| c.capacity() <= MAX_CHUNK));
        for at in [a, b, c, d] {
            assert!(at.to_bits() < 1 << EntryRef::BITS);
            assert_eq!(EntryRef::from_bits(at.to_bits()), at);
        }
    }

    #[test]
    #[should_panic(expected = "reached the keydir")]
    fn a_key_over_the_limit_is_refused() {
        KeyArena::default().push(&vec![0; MAX_KEY_LEN + 1], size(1));
    }

    #[test]
    fn a_reference_outside_the_arena_reads_as_an_empty_key_of_size_0() {
        let mut arena = KeyArena::default();
        arena.push(b"abc", 5);
        let outside = EntryRef::new(3, 0);
        assert!(!arena.holds(outside));
        assert_eq!((arena.key(outside), arena.size(outside)), (&b""[..], 0));
    }

    #[test]
    fn released_entries_count_as_garbage_and_copies_are_live() {
        let mut arena = KeyArena::default();
        let a = arena.push(b"abc", 9); // 1 + 2 + 3
        let b = arena.push(&[7; 200], 1 << 20); // 2 + 4 + 200
        assert_eq!(arena.live_bytes(), 6 + 206);
        arena.release(b);
        assert_eq!(arena.garbage_bytes(), 206);
        assert_eq!(arena.live_bytes(), 6);
        let mut fresh = KeyArena::default();
        let a2 = fresh.copy_from(&arena, a);
        assert_eq!((fresh.key(a2), fresh.size(a2)), (&b"abc"[..], 9));
        assert_eq!((fresh.live_bytes(), fresh.garbage_bytes()), (6, 0));
    }
}

//! The sort of a snapshot's keys: a radix sort on the bits in which their
//! heads differ, then comparisons only among keys those bits do not tell
//! apart.
//!
//! Why not a comparison sort: that took 60-70 ms for a million keys on two
//! cores, most of an iterator's creation (issue 14 asks for 100 ms in all).
//! Each of its twenty million comparisons is a branch that random keys make
//! the CPU mispredict half the time. Keys of one database mostly share a
//! front (a table name, zero-padded numbers), and of the bits after it few
//! vary: a million keys like `0000000001234567` differ in 28 bits of their
//! 16-byte heads. Those bits, packed into one number (the key's *rank*),
//! order the keys as their bytes do, and three counting passes over a
//! million 8-byte (rank, index) pairs sort them, with no comparison and no
//! branch that depends on the keys.
//!
//! A rank keeps at most [`RANK_BITS`] of the varying bits, the first ones:
//! keys with equal ranks (equal heads, or random keys that share their
//! first 32 varying bits) are then put in order by the full comparison,
//! run by run. If no bit of the heads varies, that comparison sort is all
//! there is, on two threads as before.

use super::{advise_huge_pages, compare, SnapshotEntry, INLINE_KEY};
use crate::keydir::in_two::in_two;

/// The most varying bits a rank keeps: a rank then fits beside an entry's
/// index (32 bits) in the one `u64` the passes move.
const RANK_BITS: u32 = 32;

/// The widest digit one pass sorts by: 2^11 counters (8 KiB) stay in the L1
/// cache, and 2^11 places written at once stay within what the CPU's write
/// buffers and TLB follow. A 28-bit rank takes three passes.
const DIGIT_BITS: u32 = 11;

/// Below this many keys the comparison sort is as fast (and the radix
/// sort's tables and second buffer are not worth setting up).
const RADIX_FROM: usize = 1 << 10;

/// From how many keys [`sort_by_comparing`] sorts two halves at once: a
/// thread's start (tens of microseconds) is then small next to the sort.
const SORT_IN_TWO_FROM: usize = 1 << 17;

/// Puts `entries` in ascending key order: either moves them into it (and
/// returns `None`) or leaves them where they are and returns their indices
/// in that order. `differing` has a bit set where some entry's head differs
/// from another's (as a big-endian number).
///
/// The radix sort leaves them where they are: moving forty-byte entries
/// into order is a random read of each (every one a cache miss) and a
/// second buffer as large for the kernel to zero, which took as long as the
/// sort. An iterator reads them through the order instead, asking for
/// entries a few places ahead ([`super::SnapshotKeys::get`]).
///
/// Many keys are first split by their ranks' top digit into a lower and an
/// upper part of about half each, which are then sorted at once, the lower
/// one on a helper thread (if one can be started).
pub(super) fn sort(
    entries: &mut [SnapshotEntry],
    long_keys: &[u8],
    differing: u128,
) -> Option<Vec<u32>> {
    let n = entries.len();
    if n < RADIX_FROM || differing == 0 || u32::try_from(n).is_err() {
        sort_by_comparing(entries, long_keys);
        return None;
    }
    let ranks = Ranks::new(differing);
    let digits = Digits::new(ranks.bits);
    let mut pairs = fresh_buffer(n);
    for (i, (pair, e)) in pairs.iter_mut().zip(entries.iter()).enumerate() {
        // The check above: every index fits in 32 bits.
        *pair = (ranks.of(&e.head) << 32) | i as u64;
    }
    let mut other = fresh_buffer(n);
    let mut order = vec![0u32; n];
    let out = &mut order[..];
    let entries_in = &entries[..];
    if n < SORT_IN_TWO_FROM {
        sort_part(entries_in, &mut pairs, &mut other, out, &digits, long_keys);
    } else {
        // `other` gets the pairs split in two, `pairs` is the parts' scratch.
        let split = split_by_top_digit(&pairs, &mut other, &digits);
        let (low_pairs, high_pairs) = other.split_at_mut(split);
        let (low_scratch, high_scratch) = pairs.split_at_mut(split);
        let (low_out, high_out) = out.split_at_mut(split);
        in_two(
            "bitcask-sort",
            || {
                sort_part(
                    entries_in,
                    low_pairs,
                    low_scratch,
                    low_out,
                    &digits,
                    long_keys,
                )
            },
            || {
                sort_part(
                    entries_in,
                    high_pairs,
                    high_scratch,
                    high_out,
                    &digits,
                    long_keys,
                )
            },
        );
    }
    Some(order)
}

/// A buffer of `n` words for the radix passes, backed by huge pages where
/// the kernel gives them (the passes go over it several times), not yet
/// touched: whichever thread writes a page first has the kernel zero it.
fn fresh_buffer(n: usize) -> Vec<u64> {
    let buffer = vec![0u64; n];
    advise_huge_pages(&buffer);
    buffer
}

/// How a head becomes its rank: each head byte with varying bits has a
/// table giving, for each of its values, those bits packed and moved to
/// where they lie in the rank; a rank is the OR of its bytes' entries (no
/// step waits for the one before). The first [`RANK_BITS`] varying bits
/// are kept.
struct Ranks {
    /// Per head byte with varying bits: where it lies in the head, and its
    /// table.
    bytes: Vec<(usize, [u32; 256])>,
    /// Bits in a rank.
    bits: u32,
}

impl Ranks {
    fn new(differing: u128) -> Ranks {
        let mask = differing.to_be_bytes();
        // The bytes the rank takes bits from, each with its mask.
        let mut taken = Vec::new();
        let mut total = 0;
        for (at, &m) in mask.iter().enumerate().take(INLINE_KEY) {
            if total >= RANK_BITS {
                break;
            }
            if m != 0 {
                taken.push((at, m));
                total += m.count_ones();
            }
        }
        // The last byte may bring more bits than the rank has room for:
        // its lowest ones are dropped.
        let excess = total.saturating_sub(RANK_BITS);
        let mut after = total;
        let bytes = taken
            .into_iter()
            .map(|(at, m)| {
                after -= m.count_ones();
                let mut table = [0u32; 256];
                for (value, entry) in table.iter_mut().enumerate() {
                    let packed = u64::from(pack_bits(value as u8, m));
                    // At most RANK_BITS bits remain after the shifts.
                    *entry = ((packed << after) >> excess) as u32;
                }
                (at, table)
            })
            .collect();
        Ranks {
            bytes,
            bits: total - excess,
        }
    }

    #[inline]
    fn of(&self, head: &[u8; INLINE_KEY]) -> u64 {
        let mut rank = 0;
        for (at, table) in &self.bytes {
            rank |= table[usize::from(head[*at])];
        }
        u64::from(rank)
    }
}

/// The bits of `value` where `mask` has a one, packed into the low bits in
/// their order (what x86's `pext` does, which not every CPU has).
fn pack_bits(value: u8, mask: u8) -> u8 {
    (0..8)
        .rev()
        .filter(|bit| mask & (1 << bit) != 0)
        .fold(0, |packed, bit| (packed << 1) | ((value >> bit) & 1))
}

/// How ranks are cut into the digits of the radix passes: as few passes as
/// digits of at most [`DIGIT_BITS`] need, the digits as even as can be.
struct Digits {
    passes: u32,
    width: u32,
}

impl Digits {
    fn new(bits: u32) -> Digits {
        let passes = bits.div_ceil(DIGIT_BITS).max(1);
        Digits {
            passes,
            width: bits.div_ceil(passes),
        }
    }

    /// Buckets per pass.
    fn buckets(&self) -> usize {
        1 << self.width
    }

    /// Digit `pass` (0: the least significant) of a pair's rank.
    #[inline]
    fn of(&self, pair: u64, pass: u32) -> usize {
        ((pair >> (32 + self.width * pass)) as usize) & (self.buckets() - 1)
    }
}

/// Copies `pairs` into `out`, those whose rank's top digit is below some
/// bucket first, the others after, in one pass; the bucket is the one that
/// makes the two parts nearest to equal. Returns the lower part's length.
fn split_by_top_digit(pairs: &[u64], out: &mut [u64], digits: &Digits) -> usize {
    let top = digits.passes - 1;
    let mut counts = vec![0usize; digits.buckets()];
    for &pair in pairs {
        counts[digits.of(pair, top)] += 1;
    }
    let half = pairs.len() / 2;
    let (mut below, mut bucket) = (0, 0);
    while bucket < counts.len() && below + counts[bucket] / 2 < half {
        below += counts[bucket];
        bucket += 1;
    }
    let (mut low, mut high) = (0, below);
    for &pair in pairs {
        let place = if digits.of(pair, top) < bucket {
            &mut low
        } else {
            &mut high
        };
        out[*place] = pair;
        *place += 1;
    }
    below
}

/// Sorts one part: `pairs` by rank (a least-significant-digit radix sort,
/// `scratch` as the other buffer, a pass skipped where every rank has the
/// same digit), each run of equal ranks then by comparing their keys, and
/// writes the entries' indices in that order into `out`.
fn sort_part(
    entries: &[SnapshotEntry],
    pairs: &mut [u64],
    scratch: &mut [u64],
    out: &mut [u32],
    digits: &Digits,
    long_keys: &[u8],
) {
    debug_assert!(pairs.len() == out.len() && pairs.len() == scratch.len());
    let mut counts = vec![0u32; digits.buckets()];
    let (mut from, mut to) = (pairs, scratch);
    for pass in 0..digits.passes {
        let Some(&first) = from.first() else {
            return;
        };
        counts.fill(0);
        for &pair in from.iter() {
            counts[digits.of(pair, pass)] += 1;
        }
        if counts[digits.of(first, pass)] as usize == from.len() {
            continue;
        }
        // Each bucket's first place, then each pair to its bucket's next.
        let mut next = 0;
        for count in counts.iter_mut() {
            let here = *count;
            *count = next;
            next += here;
        }
        for &pair in from.iter() {
            let place = &mut counts[digits.of(pair, pass)];
            to[*place as usize] = pair;
            *place += 1;
        }
        std::mem::swap(&mut from, &mut to);
    }
    order_equal_ranks(from, entries, long_keys);
    for (place, &pair) in out.iter_mut().zip(from.iter()) {
        *place = pair as u32;
    }
}

/// Puts each run of pairs with equal ranks in their keys' order by
/// comparing the keys: their ranks told them apart no further.
fn order_equal_ranks(order: &mut [u64], entries: &[SnapshotEntry], long_keys: &[u8]) {
    let mut start = 0;
    while start < order.len() {
        let rank = order[start] >> 32;
        let mut end = start + 1;
        while end < order.len() && order[end] >> 32 == rank {
            end += 1;
        }
        if end - start > 1 {
            order[start..end].sort_unstable_by(|a, b| {
                compare(long_keys, &entries[index(*a)], &entries[index(*b)])
            });
        }
        start = end;
    }
}

/// The entry index in a pair's low 32 bits.
#[inline]
fn index(pair: u64) -> usize {
    pair as u32 as usize
}

/// Sorts `entries` by comparing keys. Most comparisons end at the inline
/// heads, compared as two big-endian words, without touching the key
/// buffer. Many keys are first split at their median into a lower and an
/// upper half, which are then sorted at once, the lower one on a helper
/// thread (if one can be started).
fn sort_by_comparing(entries: &mut [SnapshotEntry], long_keys: &[u8]) {
    let by_key = |a: &SnapshotEntry, b: &SnapshotEntry| compare(long_keys, a, b);
    let n = entries.len();
    if n < SORT_IN_TWO_FROM {
        entries.sort_unstable_by(by_key);
        return;
    }
    let (lower, _, upper) = entries.select_nth_unstable_by(n / 2, by_key);
    in_two(
        "bitcask-sort",
        || lower.sort_unstable_by(by_key),
        || upper.sort_unstable_by(by_key),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_bits_keeps_the_masked_bits_in_order() {
        assert_eq!(pack_bits(0b1010_1100, 0b1111_0000), 0b1010);
        assert_eq!(pack_bits(0b1010_1100, 0b1000_0001), 0b10);
        assert_eq!(pack_bits(0x37, 0x0F), 0x7);
        assert_eq!(pack_bits(0xFF, 0), 0);
        assert_eq!(pack_bits(0b0100_0010, 0b0100_0010), 0b11);
    }

    #[test]
    fn ranks_keep_the_first_varying_bits() {
        // Digits vary in their low four bits; byte 3 is the first to vary.
        let mut differing = [0u8; 16];
        for b in &mut differing[3..16] {
            *b = 0x0F;
        }
        let ranks = Ranks::new(u128::from_be_bytes(differing));
        assert_eq!(ranks.bits, RANK_BITS);
        let head: [u8; 16] = *b"00012345678901aa";
        // The digits 1..8 of the head, four bits each.
        assert_eq!(ranks.of(&head), 0x1234_5678);
    }
}

//! The 64-bit hash of a key, for the hash index.
//!
//! A small seeded hash in the style of wyhash: the core step is the folded
//! multiply (the two halves of a 64x64->128-bit product, xored), one or two
//! of them for a key of up to 16 bytes and one more per further 16 bytes.
//! That is several times cheaper than std's SipHash on short keys (see the
//! `hash_rate` benchmark in `bench.rs`), and every output bit depends on
//! every input bit, which the index needs: it takes the shard, the bucket
//! and the tag from different bits of one hash.
//!
//! Each index draws its seed from std's `RandomState`, so which keys collide
//! differs from process to process and cannot be worked out offline. This is
//! the same protection foldhash and ahash give, not a cryptographic one.

use std::hash::{BuildHasher, RandomState};

/// Odd constants with about half their bits set (wyhash's secrets).
const SECRET: [u64; 3] = [
    0x2d35_8dcc_aa6c_78a5,
    0x8bb8_4b93_962e_acc9,
    0x4b33_a62e_d433_d4a3,
];

/// A seeded hash function for keys; cheap to copy, the same for every
/// thread of one index.
#[derive(Clone, Copy, Debug)]
pub struct KeyHasher {
    seed: u64,
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher::new()
    }
}

impl KeyHasher {
    /// A hasher with a fresh random seed.
    pub fn new() -> KeyHasher {
        KeyHasher::with_seed(RandomState::new().hash_one(0x6b65_7964_6972u64))
    }

    /// A hasher with a given seed, so that a test can repeat a layout.
    pub fn with_seed(seed: u64) -> KeyHasher {
        // Mixed once, so that seeds that differ in one bit hash far apart.
        KeyHasher {
            seed: fold_mul(seed ^ SECRET[0], SECRET[1]),
        }
    }

    /// The hasher's whole state, to save with a table laid out by it.
    pub(crate) fn state(&self) -> u64 {
        self.seed
    }

    /// The hasher whose [`KeyHasher::state`] was `state`.
    pub(crate) fn from_state(state: u64) -> KeyHasher {
        KeyHasher { seed: state }
    }

    /// The hash of `key` (any length, empty included).
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        let len = key.len();
        let mut seed = self.seed;
        let (a, b) = if len <= 16 {
            if len >= 4 {
                // Two overlapping 32-bit reads from each end cover 4..=16 bytes.
                let quarter = (len >> 3) << 2;
                (
                    (read_u32(key, 0) << 32) | read_u32(key, quarter),
                    (read_u32(key, len - 4) << 32) | read_u32(key, len - 4 - quarter),
                )
            } else if len > 0 {
                let spread = (u64::from(key[0]) << 56)
                    | (u64::from(key[len >> 1]) << 32)
                    | u64::from(key[len - 1]);
                (spread, 0)
            } else {
                (0, 0)
            }
        } else {
            let mut rest = key;
            while rest.len() > 16 {
                seed = fold_mul(read_u64(rest, 0) ^ SECRET[1], read_u64(rest, 8) ^ seed);
                rest = &rest[16..];
            }
            // The last 16 bytes of the key, overlapping the loop's when shorter.
            (read_u64(key, len - 16), read_u64(key, len - 8))
        };
        let product = u128::from(a ^ SECRET[1]) * u128::from(b ^ seed);
        let (lo, hi) = (product as u64, (product >> 64) as u64);
        fold_mul(lo ^ SECRET[0] ^ len as u64, hi ^ SECRET[2])
    }
}

/// The folded multiply: the low and high halves of the 128-bit product, xored.
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[inline]
fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[inline]
fn read_u32(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u64::from(u32::from_le_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_key_of_up_to_two_bytes_and_every_length_hashes_apart() {
        let hasher = KeyHasher::with_seed(1);
        let mut seen = HashSet::new();
        assert!(seen.insert(hasher.hash(b"")));
        for a in 0..=255u8 {
            assert!(seen.insert(hasher.hash(&[a])), "[{a}]");
            for b in 0..=255u8 {
                assert!(seen.insert(hasher.hash(&[a, b])), "[{a}, {b}]");
            }
        }
        // Runs of one byte value: only the length tells them apart.
        for byte in [0x00, 0xFF] {
            for len in 3..200 {
                assert!(seen.insert(hasher.hash(&vec![byte; len])), "{byte} x {len}");
            }
        }
    }

    #[test]
    fn every_byte_of_a_long_key_counts() {
        let hasher = KeyHasher::with_seed(2);
        let key: Vec<u8> = (0..100u8).collect();
        let base = hasher.hash(&key);
        for i in 0..key.len() {
            let mut changed = key.clone();
            changed[i] ^= 1;
            assert_ne!(hasher.hash(&changed), base, "byte {i}");
        }
    }

    #[test]
    fn sequential_keys_spread_evenly_over_low_middle_and_high_bits() {
        // The index takes buckets from the low bits, the shard from bits
        // 30..40 and the tag from the top 24: each must be uniform.
        let hasher = KeyHasher::with_seed(3);
        let n = 1 << 16;
        let mut low = vec![0u32; 64];
        let mut mid = vec![0u32; 64];
        let mut high = vec![0u32; 64];
        for i in 0..n {
            let h = hasher.hash(format!("key{i:013}").as_bytes());
            low[(h & 63) as usize] += 1;
            mid[((h >> 30) & 63) as usize] += 1;
            high[(h >> 58) as usize] += 1;
        }
        // 1024 expected per cell, standard deviation 32: 25% off is 8 sigma.
        for (name, cells) in [("low", low), ("mid", mid), ("high", high)] {
            for (i, &count) in cells.iter().enumerate() {
                assert!(
                    (768..=1280).contains(&count),
                    "{name} bits, cell {i}: {count}"
                );
            }
        }
    }

    #[test]
    fn seeds_change_the_hash() {
        let (a, b) = (KeyHasher::with_seed(1), KeyHasher::with_seed(2));
        assert_ne!(a.hash(b"same key"), b.hash(b"same key"));
        assert_ne!(KeyHasher::new().hash(b"k"), KeyHasher::new().hash(b"k"));
    }
}

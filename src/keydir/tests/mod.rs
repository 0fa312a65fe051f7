//! The contract every index type keeps; each test runs on every type (and
//! on a one-shard hash index, whose single table resizes and compacts often).

use super::*;
use std::collections::BTreeMap;

fn pos(n: u32) -> RecordPos {
    RecordPos {
        file_id: n,
        offset: n.wrapping_mul(10),
        size: n + 1,
    }
}

/// Every index under test, with a name for failure messages.
fn indexes() -> Vec<(&'static str, Box<dyn Index>)> {
    vec![
        ("ordered", new_index(IndexType::Ordered)),
        ("hash", new_index(IndexType::Hash)),
        ("hash, 1 shard", Box::new(HashIndex::with_shards(1))),
    ]
}

fn scan(index: &dyn Index, prefix: &[u8]) -> Vec<(Vec<u8>, RecordPos)> {
    let snapshot = index.snapshot(prefix).collect();
    (0..snapshot.len())
        .filter_map(|i| snapshot.get(i))
        .map(|(k, p)| (k.to_vec(), p))
        .collect()
}

fn keys(index: &dyn Index, prefix: &[u8]) -> Vec<Vec<u8>> {
    scan(index, prefix).into_iter().map(|(k, _)| k).collect()
}

#[test]
fn put_get_replace_remove() {
    for (name, index) in indexes() {
        assert_eq!(index.len(), 0, "{name}");
        assert_eq!(index.put(b"a", pos(1)), None, "{name}");
        assert_eq!(index.put(b"b", pos(2)), None, "{name}");
        assert_eq!(index.put(b"a", pos(3)), Some(pos(1)), "{name}");
        assert_eq!(index.get(b"a"), Some(pos(3)), "{name}");
        assert_eq!(index.len(), 2, "{name}");
        assert!(
            !index.replace_if(b"a", pos(1), pos(4)),
            "{name}: not what it points at"
        );
        assert!(index.replace_if(b"a", pos(3), pos(4)), "{name}");
        assert!(
            !index.replace_if(b"zz", pos(3), pos(4)),
            "{name}: absent key"
        );
        assert_eq!(index.get(b"zz"), None, "{name}");
        assert!(index.replace_if(b"a", pos(4), pos(3)), "{name}");
        assert_eq!(index.remove(b"a"), Some(pos(3)), "{name}");
        assert_eq!(index.remove(b"a"), None, "{name}");
        assert_eq!(index.get(b"a"), None, "{name}");
        assert_eq!(index.get(b"b"), Some(pos(2)), "{name}");
        assert_eq!(index.len(), 1, "{name}");
        assert_eq!(index.put(b"a", pos(4)), None, "{name}: reinserted");
        assert_eq!(index.get(b"a"), Some(pos(4)), "{name}");
    }
}

#[test]
fn prefix_scan_is_ordered_and_bounded() {
    for (name, index) in indexes() {
        let sorted = [&b"a"[..], b"ab", b"ab\x00", b"ab\xff", b"ac", b"b", b"\xff"];
        for (i, key) in sorted.iter().enumerate().rev() {
            index.put(key, pos(i as u32));
        }
        assert_eq!(
            keys(&*index, b"ab"),
            vec![b"ab".to_vec(), b"ab\x00".to_vec(), b"ab\xff".to_vec()],
            "{name}"
        );
        let all = scan(&*index, b"");
        let expected: Vec<_> = sorted
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_vec(), pos(i as u32)))
            .collect();
        assert_eq!(all, expected, "{name}");
        assert_eq!(keys(&*index, b"\xff"), vec![b"\xff".to_vec()], "{name}");
        assert!(keys(&*index, b"zz").is_empty(), "{name}");
        assert!(keys(&*index, b"ab\x00\x00").is_empty(), "{name}");
    }
}

#[test]
fn keys_with_zero_and_ff_bytes_are_distinct() {
    for (name, index) in indexes() {
        let tricky: [&[u8]; 7] = [
            &[0x00],
            &[0x00, 0x00],
            &[0x00, 0xFF],
            &[0xFF],
            &[0xFF, 0x00],
            &[0xFF, 0xFF],
            &[0x00; 300],
        ];
        for (i, key) in tricky.iter().enumerate() {
            index.put(key, pos(i as u32));
        }
        for (i, key) in tricky.iter().enumerate() {
            assert_eq!(index.get(key), Some(pos(i as u32)), "{name}: {key:?}");
        }
        assert_eq!(index.get(&[0x00; 299]), None, "{name}");
        assert_eq!(index.get(&[0x00; 301]), None, "{name}");
        assert_eq!(index.len(), tricky.len(), "{name}");
    }
}

#[test]
fn long_keys_up_to_the_limit() {
    for (name, index) in indexes() {
        let mut long = vec![0xFFu8; crate::log::format::MAX_KEY_LEN];
        index.put(&long, pos(1));
        *long.last_mut().unwrap() = 0xFE;
        index.put(&long, pos(2));
        long.truncate(127);
        index.put(&long, pos(3)); // one byte of length in the hash arena
        long.push(0xFE);
        index.put(&long, pos(4)); // two bytes
        assert_eq!(index.len(), 4, "{name}");
        let found = scan(&*index, &[0xFF; 100]);
        let lens: Vec<_> = found.iter().map(|(k, p)| (k.len(), p.file_id)).collect();
        let max = crate::log::format::MAX_KEY_LEN;
        assert_eq!(lens, vec![(127, 3), (128, 4), (max, 2), (max, 1)], "{name}");
        for (key, p) in &found {
            assert_eq!(index.get(key), Some(*p), "{name}");
            assert_eq!(index.remove(key), Some(*p), "{name}");
        }
        assert_eq!(index.len(), 0, "{name}");
    }
}

/// The seed of a random test: BITCASK_TEST_SEED if set (to replay a
/// failing run), else one that differs from run to run. Printed, so that a
/// failure's output says how to replay it; it also seeds the hash
/// indexes' hash function (see [`seeded_indexes`]).
fn test_seed(test: &str) -> u64 {
    let seed = std::env::var("BITCASK_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
        | 1;
    eprintln!("{test}: seed {seed} (BITCASK_TEST_SEED={seed} replays it)");
    seed
}

/// [`indexes`], with the hash indexes' hash function seeded from `seed`,
/// so that a replay has the same table layout too.
fn seeded_indexes(seed: u64) -> Vec<(&'static str, Box<dyn Index>)> {
    vec![
        ("ordered", new_index(IndexType::Ordered)),
        (
            "hash",
            Box::new(HashIndex::with_shards_and_seed(hash::SHARDS, seed)),
        ),
        (
            "hash, 1 shard",
            Box::new(HashIndex::with_shards_and_seed(1, seed)),
        ),
    ]
}

/// xorshift64 from `seed`: each call gives a number below `n`.
fn xorshift(mut rng: u64) -> impl FnMut(u64) -> u64 {
    move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    }
}

/// Random puts, overwrites, removals and prefix scans against a
/// BTreeMap, with the seed in every message.
#[test]
fn random_operations_match_a_btreemap() {
    let seed = test_seed("random_operations_match_a_btreemap");
    for (name, index) in seeded_indexes(seed) {
        let mut next = xorshift(seed);
        let mut model = BTreeMap::new();
        for op in 0..60_000u32 {
            // A universe of 3000 keys of 1 to 40 bytes over a few byte
            // values (0x00 and 0xFF among them), so prefixes are shared.
            let id = next(3000);
            let key: Vec<u8> = (0..1 + id % 40)
                .map(|j| [0x00, 0x01, b'k', 0x7F, 0x80, 0xFF][((id >> (j % 11)) + j) as usize % 6])
                .chain(id.to_le_bytes().into_iter().take(2))
                .collect();
            let why = format!("{name}, seed {seed}, op {op}");
            match next(10) {
                0..=5 => assert_eq!(
                    index.put(&key, pos(op)),
                    model.insert(key, pos(op)),
                    "{why}"
                ),
                6..=8 => assert_eq!(index.remove(&key), model.remove(&key), "{why}"),
                _ => assert_eq!(index.get(&key), model.get(&key).copied(), "{why}"),
            }
            if op % 5000 == 0 || op == 59_999 {
                assert_eq!(index.len(), model.len(), "{why}");
                for prefix in [&b""[..], &[0x00], &[0xFF, 0x00], b"k"] {
                    let expected: Vec<_> = model
                        .iter()
                        .filter(|(k, _)| k.starts_with(prefix))
                        .map(|(k, p)| (k.clone(), *p))
                        .collect();
                    assert_eq!(scan(&*index, prefix), expected, "{why}, prefix {prefix:?}");
                }
            }
        }
        // Remove everything that is left, then the index is empty.
        for key in model.keys() {
            assert!(index.remove(key).is_some(), "{name}, seed {seed}");
        }
        assert_eq!(
            (index.len(), scan(&*index, b"").len()),
            (0, 0),
            "{name}, seed {seed}"
        );
    }
}

/// Runs of changes (as open applies hint files: puts, overwrites and
/// deletes, of keys present or not, one key several times in a run)
/// leave what put and remove one by one leave, and report for every
/// change the position it replaced.
#[test]
fn apply_in_runs_matches_one_by_one() {
    let seed = test_seed("apply_in_runs_matches_one_by_one");
    let mut next = xorshift(seed);
    // Keys 0..5000 in changes of every kind; each change's position is
    // its own number, so a report names its change.
    let keys: Vec<Vec<u8>> = (0..5000u32).map(|i| format!("k{i}").into_bytes()).collect();
    let ops: Vec<(usize, bool)> = (0..60_000)
        .map(|_| (next(5000) as usize, next(4) == 0))
        .collect();
    let changes: Vec<Change> = ops
        .iter()
        .enumerate()
        .map(|(n, &(k, delete))| Change {
            key: &keys[k],
            pos: pos(n as u32),
            delete,
        })
        .collect();
    let mut model = BTreeMap::new();
    let expected: Vec<Option<RecordPos>> = changes
        .iter()
        .map(|c| {
            if c.delete {
                model.remove(c.key)
            } else {
                model.insert(c.key, c.pos)
            }
        })
        .collect();
    for (name, index) in seeded_indexes(seed) {
        let why = format!("{name}, seed {seed}");
        let mut reported = vec![None; changes.len()];
        let mut count = 0;
        // Runs of several lengths, a one-change run and an empty one.
        let mut rest = &changes[..];
        for len in [0, 1, 7, 4096, 40_000].into_iter().cycle() {
            let (run, later) = rest.split_at(len.min(rest.len()));
            index.apply(run, &mut |change, old| {
                reported[change.pos.file_id as usize] = Some(old);
                count += 1;
            });
            rest = later;
            if rest.is_empty() {
                break;
            }
        }
        // As open does after loading; it changes no contents.
        index.shrink_to_fit();
        assert_eq!(count, changes.len(), "{why}");
        for (n, (got, want)) in reported.iter().zip(&expected).enumerate() {
            assert_eq!(*got, Some(*want), "{why}: change {n}");
        }
        assert_eq!(index.len(), model.len(), "{why}");
        let all: Vec<_> = model.iter().map(|(k, p)| (k.to_vec(), *p)).collect();
        assert_eq!(scan(&*index, b""), all, "{why}");
    }
}

/// A reservation and giving it back change room, never contents.
#[test]
fn reserve_and_shrink_to_fit_keep_every_key() {
    for (name, index) in indexes() {
        for i in 0..3000u32 {
            index.put(format!("a{i}").as_bytes(), pos(i));
        }
        index.reserve(100_000);
        for i in 0..3000u32 {
            index.put(format!("b{i}").as_bytes(), pos(i));
            if i % 3 == 0 {
                index.remove(format!("a{i}").as_bytes());
            }
        }
        index.shrink_to_fit();
        index.shrink_to_fit();
        assert_eq!(index.len(), 5000, "{name}");
        for i in 0..3000u32 {
            let a = (i % 3 != 0).then(|| pos(i));
            assert_eq!(index.get(format!("a{i}").as_bytes()), a, "{name}");
            assert_eq!(
                index.get(format!("b{i}").as_bytes()),
                Some(pos(i)),
                "{name}"
            );
        }
        assert_eq!(scan(&*index, b"").len(), 5000, "{name}");
    }
}

mod readers;
mod snapshots;

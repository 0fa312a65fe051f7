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

/// A run long enough to be applied on two threads (the hash index copies
/// every shard a snapshot holds first) leaves a snapshot registered
/// before it as it was, and the index as one-by-one changes would.
#[test]
fn a_long_run_leaves_a_snapshot_taken_before_it_unchanged() {
    let keys: Vec<Vec<u8>> = (0..6000u32).map(|i| format!("k{i}").into_bytes()).collect();
    for (name, index) in indexes() {
        let mut model = BTreeMap::new();
        for (n, key) in keys.iter().enumerate().take(3000) {
            index.put(key, pos(n as u32));
            model.insert(key.clone(), pos(n as u32));
        }
        let before: Vec<_> = model.iter().map(|(k, p)| (k.clone(), *p)).collect();
        let pending = index.snapshot(b"");
        // Overwrites, deletes and new keys, 40,000 changes in one run.
        let changes: Vec<Change> = (0..40_000u32)
            .map(|n| Change {
                key: &keys[(n as usize * 7) % keys.len()],
                pos: pos(100_000 + n),
                delete: n % 5 == 0,
            })
            .collect();
        apply_to_both(&*index, &mut model, &changes);
        assert_eq!(
            snapshot_pairs(&pending.collect()),
            before,
            "{name}: the snapshot"
        );
        let after: Vec<_> = model.iter().map(|(k, p)| (k.clone(), *p)).collect();
        assert_eq!(scan(&*index, b""), after, "{name}: the index");
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

/// Readers never see a torn or foreign position while one writer puts,
/// overwrites and removes (each key's positions carry its number). Each
/// reader counts what it saw: it reads until the writer is done and it has
/// made at least `MIN_GETS` gets, the writer starts only once every reader
/// has, and a last pass finds exactly the keys the writer left.
#[test]
fn readers_see_whole_positions_during_writes() {
    const READERS: u32 = 3;
    const MIN_GETS: u64 = 20_000;
    const ROUNDS: u32 = 20;
    for (name, index) in indexes() {
        let index: std::sync::Arc<dyn Index> = index.into();
        let keys = 2000u32;
        // Every key is there before the readers start: a reader that ran
        // all its gets before the writer's first put (both threads are
        // scheduled as the machine pleases) still finds keys, rather than
        // failing `found > 0` by chance.
        for k in 0..keys {
            let p = RecordPos {
                file_id: k,
                offset: k,
                size: 1 << 31,
            };
            index.put(format!("key{k}").as_bytes(), p);
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let start = std::sync::Barrier::new(READERS as usize + 1);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..READERS)
                .map(|t| {
                    let (index, done, start) = (&index, &done, &start);
                    s.spawn(move || {
                        let check = |k: u32| -> bool {
                            match index.get(format!("key{k}").as_bytes()) {
                                Some(p) => {
                                    assert_eq!(p.file_id, k, "{name}");
                                    assert_eq!(p.size, (p.offset ^ k) | 1 << 31, "{name}");
                                    true
                                }
                                None => false,
                            }
                        };
                        let (mut gets, mut found) = (0u64, 0u64);
                        let mut i = t;
                        start.wait();
                        while !done.load(std::sync::atomic::Ordering::SeqCst) || gets < MIN_GETS {
                            found += u64::from(check(i % keys));
                            gets += 1;
                            i = i.wrapping_add(7);
                        }
                        let at_end = (0..keys).filter(|&k| check(k)).count();
                        (gets, found, at_end)
                    })
                })
                .collect();
            start.wait();
            for round in 0..ROUNDS {
                for k in 0..keys {
                    let key = format!("key{k}");
                    if (k + round) % 3 == 0 {
                        index.remove(key.as_bytes());
                    } else {
                        let offset = round * keys + k;
                        let p = RecordPos {
                            file_id: k,
                            offset,
                            size: (offset ^ k) | 1 << 31,
                        };
                        index.put(key.as_bytes(), p);
                    }
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let left = (0..keys).filter(|k| (k + ROUNDS - 1) % 3 != 0).count();
            for reader in readers {
                let (gets, found, at_end) = reader.join().unwrap();
                assert!(gets >= MIN_GETS, "{name}: {gets} gets");
                assert!(found > 0, "{name}: {gets} gets found nothing");
                assert_eq!(at_end, left, "{name}: the last pass");
            }
        });
    }
}

/// The key of number `id` in the snapshot tests: 12,000 keys spread over a
/// few prefixes, some longer than a snapshot entry holds inline.
fn snapshot_key(id: u64) -> Vec<u8> {
    let mut key =
        [b"a/", &b"b/"[..], b"b/long-key-past-sixteen-bytes/"][(id % 3) as usize].to_vec();
    key.extend_from_slice(format!("{id:05}").as_bytes());
    key
}

/// Random changes of every kind (new keys, overwrites, removals, merge's
/// replace_if, batches through apply) to `index` and `model` alike.
fn random_changes(
    index: &dyn Index,
    model: &mut BTreeMap<Vec<u8>, RecordPos>,
    next: &mut impl FnMut(u64) -> u64,
    count: u64,
    stamp: &mut u32,
) {
    for _ in 0..count {
        *stamp += 1;
        let key = snapshot_key(next(14_000));
        match next(10) {
            0..=3 => assert_eq!(index.put(&key, pos(*stamp)), model.insert(key, pos(*stamp))),
            4..=5 => assert_eq!(index.remove(&key), model.remove(&key)),
            6 => {
                if let Some(&old) = model.get(&key) {
                    assert!(index.replace_if(&key, old, pos(*stamp)));
                    model.insert(key, pos(*stamp));
                }
            }
            _ => {
                let batch: Vec<(Vec<u8>, bool)> = (0..1 + next(40))
                    .map(|_| (snapshot_key(next(14_000)), next(3) == 0))
                    .collect();
                let changes: Vec<Change<'_>> = batch
                    .iter()
                    .map(|(key, delete)| {
                        *stamp += 1;
                        Change {
                            key,
                            pos: pos(*stamp),
                            delete: *delete,
                        }
                    })
                    .collect();
                apply_to_both(index, model, &changes);
            }
        }
    }
}

/// Applies `changes` as one run to `index`, and one by one to `model`.
fn apply_to_both(index: &dyn Index, model: &mut BTreeMap<Vec<u8>, RecordPos>, changes: &[Change]) {
    index.apply(changes, &mut |_, _| {});
    for c in changes {
        if c.delete {
            model.remove(c.key);
        } else {
            model.insert(c.key.to_vec(), c.pos);
        }
    }
}

fn snapshot_pairs(keys: &SnapshotKeys) -> Vec<(Vec<u8>, RecordPos)> {
    (0..keys.len())
        .filter_map(|i| keys.get(i))
        .map(|(k, p)| (k.to_vec(), p))
        .collect()
}

/// Fails with the first key where `got` and `expected` differ (the whole
/// lists would fill the screen).
fn assert_same_pairs(got: &[(Vec<u8>, RecordPos)], expected: &[(Vec<u8>, RecordPos)], why: &str) {
    let first = got.iter().zip(expected).position(|(g, e)| g != e);
    if let Some(i) = first {
        panic!("{why}: at {i}, {:?} instead of {:?}", got[i], expected[i]);
    }
    assert_eq!(got.len(), expected.len(), "{why}: counts");
}

fn model_pairs(model: &BTreeMap<Vec<u8>, RecordPos>, prefix: &[u8]) -> Vec<(Vec<u8>, RecordPos)> {
    model
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, p)| (k.clone(), *p))
        .collect()
}

/// A snapshot holds the keys as they were when it was registered, however
/// the index changes while it is copied: changes of every kind between
/// every two regions of the copy (shards, chunks of keys), and a second
/// snapshot registered and copied in the middle of the first.
#[test]
fn a_snapshot_holds_the_keys_of_its_moment_whatever_changes_while_it_is_copied() {
    let seed = test_seed("a_snapshot_holds_the_keys_of_its_moment");
    let indexes = [
        ("ordered", new_index(IndexType::Ordered)),
        ("hash", new_index(IndexType::Hash)),
        (
            "hash, 4 shards",
            Box::new(HashIndex::with_shards(4)) as Box<dyn Index>,
        ),
    ];
    for (name, index) in indexes {
        let mut next = xorshift(seed);
        let mut model = BTreeMap::new();
        let mut stamp = 0;
        random_changes(&*index, &mut model, &mut next, 30_000, &mut stamp);
        for prefix in [&b""[..], b"b/", b"b/long"] {
            let expected = model_pairs(&model, prefix);
            let pending = index.snapshot(prefix);
            let mut regions = 0;
            let mut inner_checked = false;
            let got = pending.collect_between(&mut || {
                regions += 1;
                random_changes(&*index, &mut model, &mut next, 50, &mut stamp);
                if regions == 2 {
                    let inner_expected = model_pairs(&model, b"");
                    let inner = index.snapshot(b"").collect_between(&mut || {
                        random_changes(&*index, &mut model, &mut next, 20, &mut stamp);
                    });
                    let why = format!("{name}, seed {seed}: inner snapshot");
                    assert_same_pairs(&snapshot_pairs(&inner), &inner_expected, &why);
                    inner_checked = true;
                }
            });
            assert!(regions >= 3 && inner_checked, "{name}: {regions} regions");
            let why = format!("{name}, seed {seed}, prefix {prefix:?}");
            assert_same_pairs(&snapshot_pairs(&got), &expected, &why);
            // Nothing stays registered: later changes are not noted.
            let after = model_pairs(&model, prefix);
            assert_same_pairs(&scan(&*index, prefix), &after, &why);
        }
    }
}

/// A snapshot's sort gives the order of a plain sort of the keys, below
/// and above the size it sorts in two parts, whatever the keys share at
/// their front (the sort skips those bytes), however many bits vary in a
/// byte, and however they tie past the bits a rank keeps.
#[test]
fn snapshot_sort_orders_keys_as_a_plain_sort_does() {
    let seed = test_seed("snapshot_sort_orders_keys_as_a_plain_sort_does");
    let mut rand = xorshift(seed);
    // Bytes that make ties and edge cases: the ends of the range, the
    // zero padding a short key's head gets, and one ordinary digit.
    let wide = [0x00u8, 0x01, b'5', 0x7F, 0x80, 0xFE, 0xFF];
    // Three varying bits a byte: 32 is no whole number of bytes, so a
    // rank ends inside a byte.
    let narrow = [0x10u8, 0x13, 0x15, 0x16];
    let digits = *b"0123456789";
    for (count, shared, alphabet) in [
        (1_000, 0, &wide[..]),
        (2_000, 7, &wide),
        (3_000, 16, &wide),
        (1_500, 23, &wide),
        (140_000, 9, &wide),
        (5_000, 3, &narrow),
        (140_000, 0, &narrow),
        (140_000, 4, &digits),
    ] {
        let prefix: Vec<u8> = (0..shared).map(|i| b'a' + (i % 26) as u8).collect();
        let mut model = BTreeMap::new();
        while model.len() < count {
            let mut key = prefix.clone();
            for _ in 0..rand(13) {
                key.push(alphabet[rand(alphabet.len() as u64) as usize]);
            }
            let n = model.len() as u32;
            model.entry(key).or_insert(pos(n));
        }
        // Inserted in a scrambled order (the model's order reversed in
        // blocks), then sorted.
        let mut pairs: Vec<_> = model.iter().map(|(k, p)| (k.clone(), *p)).collect();
        for chunk in pairs.chunks_mut(7) {
            chunk.reverse();
        }
        pairs.reverse();
        let mut keys = SnapshotKeys::with_capacity(pairs.len());
        for (k, p) in &pairs {
            keys.push(k, *p);
        }
        keys.sort();
        let expected: Vec<_> = model.into_iter().collect();
        let why = format!("{count} keys sharing {shared} bytes, seed {seed}");
        assert_same_pairs(&snapshot_pairs(&keys), &expected, &why);
        let walked: Vec<_> = keys.iter().map(|(k, p)| (k.to_vec(), p)).collect();
        assert_same_pairs(&walked, &expected, &why);
        // Seeks: every 97th key, and each of those with a byte added (a
        // key that is not there, between two that are).
        for (key, _) in expected.iter().step_by(97) {
            let mut past = key.clone();
            past.push(0x00);
            for probe in [key, &past] {
                for strictly in [false, true] {
                    let want =
                        expected.partition_point(
                            |(k, _)| {
                                if strictly {
                                    k <= probe
                                } else {
                                    k < probe
                                }
                            },
                        );
                    assert_eq!(
                        keys.partition_point(probe, strictly),
                        want,
                        "{why}: seek to {probe:?}, strictly {strictly}"
                    );
                }
            }
        }
    }
}

//! Snapshots: what they hold while the index changes, and their sort.

use super::*;

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

//! What concurrent readers see (issue 13): a write batch all at once, and
//! iterators and folds as point-in-time snapshots, on both index types,
//! with `sync_writes` on and off, with and without a merge running.
//!
//! A writer moves a group of keys from generation g to g + 1 with one batch
//! each: every key gets the value g + 1, except that every fourth batch
//! deletes a fifth of the keys instead (which ones depends on g), and every
//! sixteenth has values of 4 KiB, which makes it larger than a data file
//! (the data files are 64 KiB, so batches also cross rollovers). Readers
//! check, against that model:
//! - every iterator and every fold holds exactly one generation: all its
//!   values equal, and exactly the keys that generation has (no mixed
//!   generations);
//! - gets of every key in a fixed order never see a key newer than a
//!   later one, nor a key absent before a later key shows a generation in
//!   which it is present (no out-of-order reads);
//! - one reader's reads of all kinds never go back to an older generation.
//!
//! A second test checks the order of single puts: a writer puts the keys
//! one after the other, each after the previous one returned, and no
//! snapshot holds a key's new value without the new value of every key put
//! before it.
//!
//! The amount of work is a number of snapshots, not a time: the test stops
//! when every reader has checked its share, whatever the machine's speed.
//! `BITCASK_SNAPSHOT_TEST_SNAPSHOTS` sets how many snapshots each
//! configuration checks (default 300, for `make test`); the long run of the
//! README sets 16,000, for at least 100,000 in all.

mod common;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use bitcask::{Bitcask, IndexType, Options};
use common::TempDir;

/// Keys in the group the batches move together.
const GROUP: u64 = 48;
const PREFIX: &[u8] = b"grp-";

fn key(i: u64) -> Vec<u8> {
    format!("grp-{i:05}").into_bytes()
}

/// Whether key `i` is absent in generation `g`: every fourth generation
/// deletes a fifth of the keys, a different fifth each time.
fn deleted(g: u64, i: u64) -> bool {
    g % 4 == 3 && (i + g) % 5 == 0
}

/// The value of every present key in generation `g`: the generation, then
/// filler (4 KiB in every sixteenth generation, which makes the batch larger
/// than a data file).
fn value(g: u64) -> Vec<u8> {
    let filler = if g % 16 == 15 { 4096 } else { 24 };
    let mut v = g.to_le_bytes().to_vec();
    v.resize(8 + filler, (g % 251) as u8);
    v
}

/// The generation a value holds, checking its filler.
fn generation_of(v: &[u8]) -> Result<u64, String> {
    let g = u64::from_le_bytes(v.get(..8).ok_or("short value")?.try_into().unwrap());
    if v != value(g) {
        return Err(format!("a value of generation {g} is damaged"));
    }
    Ok(g)
}

/// The smallest generation at or after `from` in which key `i` is absent.
fn first_absence(from: u64, i: u64) -> u64 {
    (from..).find(|&g| deleted(g, i)).unwrap()
}

/// The key, value pairs of the group a snapshot holds, ascending.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the readers checked, added up.
#[derive(Default)]
struct Tally {
    snapshots: AtomicU64,
    get_passes: AtomicU64,
    reads: AtomicU64,
    generations: AtomicU64,
}

/// One snapshot (key, value pairs of the group, ascending) against the
/// model: one generation, not older than `seen`, with exactly its keys.
fn check_snapshot(pairs: &[(Vec<u8>, Vec<u8>)], seen: &mut u64) -> Result<(), String> {
    let gens: Vec<u64> = pairs
        .iter()
        .map(|(_, v)| generation_of(v))
        .collect::<Result<_, _>>()?;
    let Some(&g) = gens.first() else {
        return Err("a snapshot without any key of the group".into());
    };
    if let Some(other) = gens.iter().find(|&&x| x != g) {
        return Err(format!(
            "mixed generations: {g} and {other} in one snapshot"
        ));
    }
    if g < *seen {
        return Err(format!("out of order: generation {g} after {seen}"));
    }
    let expected: Vec<Vec<u8>> = (0..GROUP).filter(|&i| !deleted(g, i)).map(key).collect();
    let keys: Vec<&Vec<u8>> = pairs.iter().map(|(k, _)| k).collect();
    if keys.len() != expected.len() || keys.iter().zip(&expected).any(|(a, b)| *a != b) {
        return Err(format!(
            "generation {g}: {} keys, not the {} it has",
            keys.len(),
            expected.len()
        ));
    }
    *seen = g;
    Ok(())
}

/// Gets of every key, in key order, against the model (see the module
/// documentation); `seen` is the reader's latest generation.
fn check_gets(db: &Bitcask, seen: &mut u64) -> Result<u64, String> {
    let mut reads = 0;
    for i in 0..GROUP {
        let got = db.get(&key(i)).map_err(|e| e.to_string())?;
        reads += 1;
        match got {
            Some(v) => {
                let g = generation_of(&v)?;
                if g < *seen {
                    return Err(format!(
                        "out of order: key {i} at generation {g} after generation {seen}"
                    ));
                }
                if deleted(g, i) {
                    return Err(format!(
                        "key {i} present in generation {g}, which deletes it"
                    ));
                }
                *seen = g;
            }
            // Absent: the reader has reached a generation that deletes it.
            None => *seen = first_absence(*seen, i),
        }
    }
    Ok(reads)
}

fn iterator_pairs(db: &Bitcask, reverse: bool) -> Result<Pairs, String> {
    let mut it = db.iter(PREFIX, reverse).map_err(|e| e.to_string())?;
    let mut pairs = Vec::new();
    while it.valid() {
        let (k, v) = it.current().map_err(|e| e.to_string())?;
        pairs.push((k.to_vec(), v.to_vec()));
        it.next();
    }
    if reverse {
        pairs.reverse();
    }
    Ok(pairs)
}

fn fold_pairs(db: &Bitcask) -> Result<Pairs, String> {
    let mut pairs = Vec::new();
    db.fold(PREFIX, |k, v| {
        pairs.push((k.to_vec(), v.to_vec()));
        ControlFlow::Continue(())
    })
    .map_err(|e| e.to_string())?;
    Ok(pairs)
}

fn snapshots_per_config() -> u64 {
    std::env::var("BITCASK_SNAPSHOT_TEST_SNAPSHOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300)
}

fn options(index_type: IndexType, sync: bool) -> Options {
    let mut opts = Options::default();
    opts.set_index_type(index_type);
    opts.set_sync_writes(sync);
    opts.set_data_file_size(64 << 10).unwrap();
    // Merges only where the test runs them.
    opts.set_auto_merge_ratio(0.0).unwrap();
    opts
}

/// One configuration of the batch test: a writer, two readers (one taking
/// iterators, forward and reverse, and folds; one doing gets in key order
/// and a snapshot now and then) and, with `merging`, a thread merging over
/// and over.
fn batches_are_seen_whole(index_type: IndexType, sync: bool, merging: bool) {
    let tmp = TempDir::new("snapshots");
    let db = Bitcask::open(tmp.db(), options(index_type, sync)).unwrap();
    let mut first = db.batch();
    for i in 0..GROUP {
        first.put(&key(i), &value(0)).unwrap();
    }
    db.write(&mut first).unwrap();
    let quota = snapshots_per_config();
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let (db, stop_ref, tally_ref) = (&db, &stop, &tally);
    let config = format!("{index_type:?} index, sync_writes {sync}, merge {merging}");
    std::thread::scope(|s| {
        let writer = s.spawn(move || {
            let mut g = 0;
            while !stop_ref.load(Ordering::Relaxed) {
                g += 1;
                let mut b = db.batch();
                for i in 0..GROUP {
                    if deleted(g, i) {
                        b.delete(&key(i)).unwrap();
                    } else {
                        b.put(&key(i), &value(g)).unwrap();
                    }
                }
                db.write(&mut b).unwrap();
            }
            tally_ref.generations.store(g, Ordering::Relaxed);
        });
        let merger = merging.then(|| {
            s.spawn(move || {
                let mut merges = 0u64;
                while !stop_ref.load(Ordering::Relaxed) {
                    db.merge().unwrap();
                    merges += 1;
                }
                merges
            })
        });
        let snapshot_reader = s.spawn(move || -> Result<(), String> {
            let mut seen = 0;
            for n in 0..quota {
                let pairs = match n % 3 {
                    0 => iterator_pairs(db, false)?,
                    1 => iterator_pairs(db, true)?,
                    _ => fold_pairs(db)?,
                };
                tally_ref
                    .reads
                    .fetch_add(pairs.len() as u64, Ordering::Relaxed);
                check_snapshot(&pairs, &mut seen).map_err(|e| format!("snapshot {n}: {e}"))?;
                tally_ref.snapshots.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
        let get_reader = s.spawn(move || -> Result<(), String> {
            let mut seen = 0;
            for n in 0..quota {
                let reads = check_gets(db, &mut seen).map_err(|e| format!("get pass {n}: {e}"))?;
                tally_ref.reads.fetch_add(reads, Ordering::Relaxed);
                tally_ref.get_passes.fetch_add(1, Ordering::Relaxed);
                // A snapshot after the gets must not be older than they were.
                if n % 8 == 0 {
                    let pairs = iterator_pairs(db, false)?;
                    check_snapshot(&pairs, &mut seen)
                        .map_err(|e| format!("snapshot after get pass {n}: {e}"))?;
                    tally_ref.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(())
        });
        let outcomes = [snapshot_reader.join(), get_reader.join()];
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        if let Some(merger) = merger {
            merger.join().unwrap();
        }
        for outcome in outcomes {
            if let Err(e) = outcome.unwrap() {
                panic!("{config}: {e}");
            }
        }
    });
    println!(
        "{config}: {} snapshots and {} get passes checked ({} reads), over {} generations: \
         0 mixed, 0 out of order",
        tally.snapshots.load(Ordering::Relaxed),
        tally.get_passes.load(Ordering::Relaxed),
        tally.reads.load(Ordering::Relaxed),
        tally.generations.load(Ordering::Relaxed),
    );
}

fn batches_are_seen_whole_without_sync(index_type: IndexType) {
    batches_are_seen_whole(index_type, false, false);
}

fn batches_are_seen_whole_with_sync(index_type: IndexType) {
    batches_are_seen_whole(index_type, true, false);
}

fn batches_are_seen_whole_while_merging(index_type: IndexType) {
    batches_are_seen_whole(index_type, false, true);
}

fn batches_are_seen_whole_with_sync_while_merging(index_type: IndexType) {
    batches_are_seen_whole(index_type, true, true);
}

/// Single puts, one after the other: a snapshot holding a key's new value
/// holds the new value of every key put before it. Keys are put in a fixed
/// random order (so consecutive ones lie in different shards of a hash
/// index), round after round, each round giving every key the round's
/// number.
fn single_puts_are_seen_in_order(index_type: IndexType, sync: bool) {
    const KEYS: u64 = 200;
    let tmp = TempDir::new("snapshots-puts");
    let db = Bitcask::open(tmp.db(), options(index_type, sync)).unwrap();
    let mut order: Vec<u64> = (0..KEYS).collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    let put_key = |i: u64| format!("put-{i:04}").into_bytes();
    for &i in &order {
        db.put(&put_key(i), &0u64.to_le_bytes()).unwrap();
    }
    let quota = snapshots_per_config();
    let stop = AtomicBool::new(false);
    let (db, order, stop_ref) = (&db, &order, &stop);
    let checked = std::thread::scope(|s| {
        s.spawn(move || {
            let mut round = 0u64;
            while !stop_ref.load(Ordering::Relaxed) {
                round += 1;
                for &i in order {
                    db.put(&put_key(i), &round.to_le_bytes()).unwrap();
                }
            }
        });
        let reader = s.spawn(move || -> Result<u64, String> {
            let mut last_round = 0;
            for n in 0..quota {
                let mut rounds = std::collections::HashMap::new();
                let mut it = db.iter(b"put-", false).map_err(|e| e.to_string())?;
                while it.valid() {
                    let (k, v) = it.current().map_err(|e| e.to_string())?;
                    let r = u64::from_le_bytes(v.try_into().map_err(|_| "bad value")?);
                    rounds.insert(k.to_vec(), r);
                    it.next();
                }
                let in_order: Vec<u64> = order.iter().map(|&i| rounds[&put_key(i)]).collect();
                check_put_order(&in_order, &mut last_round)
                    .map_err(|e| format!("snapshot {n}: {e}"))?;
            }
            Ok(quota)
        });
        let checked = reader.join().unwrap();
        stop.store(true, Ordering::Relaxed);
        checked
    });
    match checked {
        Ok(n) => println!(
            "{index_type:?} index, sync_writes {sync}: {n} snapshots of {KEYS} single puts in order"
        ),
        Err(e) => panic!("{index_type:?} index, sync_writes {sync}: {e}"),
    }
}

/// The rounds a snapshot holds, key by key in the order they are put:
/// a run of one round, then a run of the round before (the keys not yet
/// put again), never older than the reader's last snapshot.
fn check_put_order(in_order: &[u64], last_round: &mut u64) -> Result<(), String> {
    let newest = in_order[0];
    let cut = in_order
        .iter()
        .position(|&r| r != newest)
        .unwrap_or(in_order.len());
    if let Some((j, r)) = in_order[cut..]
        .iter()
        .enumerate()
        .find(|(_, &r)| r + 1 != newest)
    {
        return Err(format!(
            "the key put {}th holds round {r} although the first holds round {newest}",
            cut + j + 1
        ));
    }
    if newest < *last_round {
        return Err(format!("round {newest} after round {last_round}"));
    }
    *last_round = newest;
    Ok(())
}

fn single_puts_are_seen_in_order_without_sync(index_type: IndexType) {
    single_puts_are_seen_in_order(index_type, false);
}

fn single_puts_are_seen_in_order_with_sync(index_type: IndexType) {
    single_puts_are_seen_in_order(index_type, true);
}

test_each_index_type!(
    batches_are_seen_whole_without_sync,
    batches_are_seen_whole_with_sync,
    batches_are_seen_whole_while_merging,
    batches_are_seen_whole_with_sync_while_merging,
    single_puts_are_seen_in_order_without_sync,
    single_puts_are_seen_in_order_with_sync,
);

/// The controls: the checks above fail on what a torn batch, a reordered
/// read or a torn snapshot would show. Made by hand, so they fail every
/// time, not when a race happens to be lost.
#[test]
fn the_checks_catch_mixed_generations_and_out_of_order_reads() {
    let pairs = |g_of: &dyn Fn(u64) -> Option<u64>| -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..GROUP)
            .filter_map(|i| g_of(i).map(|g| (key(i), value(g))))
            .collect()
    };
    let mut seen = 0;
    // A whole generation passes (2 has every key; 3 deletes some).
    check_snapshot(&pairs(&|_| Some(2)), &mut seen).unwrap();
    check_snapshot(&pairs(&|i| (!deleted(3, i)).then_some(3)), &mut seen).unwrap();
    assert_eq!(seen, 3);
    // A batch applied halfway.
    let torn = pairs(&|i| Some(if i < GROUP / 2 { 5 } else { 4 }));
    assert!(check_snapshot(&torn, &mut seen)
        .unwrap_err()
        .contains("mixed"));
    // Generation 7 with a key it deletes, or without one it keeps.
    let extra = pairs(&|_| Some(7));
    assert!(check_snapshot(&extra, &mut seen)
        .unwrap_err()
        .contains("keys"));
    let missing = pairs(&|i| (i != 1 && !deleted(7, i)).then_some(7));
    assert!(check_snapshot(&missing, &mut 0)
        .unwrap_err()
        .contains("keys"));
    // Going back in time.
    let mut later = 9;
    assert!(check_snapshot(&pairs(&|_| Some(8)), &mut later)
        .unwrap_err()
        .contains("out of order"));
    // Single puts: a later key's new value without an earlier one's.
    let mut last = 0;
    check_put_order(&[4, 4, 3, 3], &mut last).unwrap();
    check_put_order(&[5, 5, 5, 5], &mut last).unwrap();
    assert!(check_put_order(&[6, 5, 6, 5], &mut last).is_err());
    assert!(check_put_order(&[6, 6, 4, 4], &mut last).is_err());
    assert!(
        check_put_order(&[4, 4, 3, 3], &mut last).is_err(),
        "back in time"
    );
    // Gets: the first key newer than the last, on a real database.
    let tmp = TempDir::new("snapshots-control");
    let db = Bitcask::open(tmp.db(), options(IndexType::Hash, false)).unwrap();
    for i in 0..GROUP {
        db.put(&key(i), &value(if i == 0 { 2 } else { 1 })).unwrap();
    }
    let mut seen = 0;
    assert!(check_gets(&db, &mut seen)
        .unwrap_err()
        .contains("out of order"));
    // A key absent where its generation keeps it... (3 deletes key 2, 4 does not).
    for i in 0..GROUP {
        db.put(&key(i), &value(4)).unwrap();
    }
    db.delete(&key(0)).unwrap();
    let mut seen = 4;
    let err = check_gets(&db, &mut seen).unwrap_err();
    assert!(err.contains("out of order"), "{err}");
    // ...and the same reads in a consistent state pass.
    db.put(&key(0), &value(4)).unwrap();
    let mut seen = 4;
    check_gets(&db, &mut seen).unwrap();
}

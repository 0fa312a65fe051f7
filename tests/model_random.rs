//! Seeded random operations against a model of what the database must
//! hold: puts (empty to 4 KiB values), deletes, batches, gets, iterations,
//! syncs, merges and reopens, with options drawn per round (sync mode,
//! file size, index type, mmap at startup), and a crash in every round: a
//! child process runs the round's operations with one named crash point
//! armed at a random hit (`BITCASK_FAILPOINT`: in an append, at a rollover,
//! at every step of a merge and of a hint file write) and aborts there. The
//! parent reopens and checks that the database is exactly the model with
//! the acknowledged operations applied, and the one in flight either wholly
//! applied or not at all; then it runs operations of its own, checking
//! every get and iteration against the model, and the next round goes on
//! from there.
//!
//! `BITCASK_MODEL_SEED` repeats a run (the seed is printed),
//! `BITCASK_MODEL_ROUNDS` sets the rounds (default 40).
#![cfg(feature = "failpoints")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::Path;

use bitcask::{Bitcask, IndexType, Options};
use common::{child_role, spawn_child, Rng, TempDir};

const TEST_NAME: &str = "random_operations_and_crashes_match_the_model";

/// Crash points, and the largest N of `point@N` drawn for each.
const CRASH_POINTS: &[(&str, u64)] = &[
    ("append:written", 150),
    ("rollover:sealed", 6),
    ("merge:rolled-over", 2),
    ("merge:output-synced", 3),
    ("merge:output-renamed", 3),
    ("merge:hint-written", 3),
    ("merge:swapped", 3),
    ("merge:inputs-unlisted", 2),
    ("merge:input-unlinked", 4),
    ("merge:input-deleted", 4),
    ("merge:done", 2),
    ("hint:before-write", 4),
];

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Clone, Debug)]
enum Op {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
    /// Each key put (Some) or deleted (None), in order.
    Batch(Vec<(Vec<u8>, Option<Vec<u8>>)>),
    Get(Vec<u8>),
    Iterate,
    Sync,
    Merge,
    Reopen,
}

impl Op {
    fn apply(&self, model: &mut Model) {
        match self {
            Op::Put(k, v) => {
                model.insert(k.clone(), v.clone());
            }
            Op::Delete(k) => {
                model.remove(k);
            }
            Op::Batch(entries) => {
                for (k, v) in entries {
                    match v {
                        Some(v) => model.insert(k.clone(), v.clone()),
                        None => model.remove(k),
                    };
                }
            }
            _ => {}
        }
    }
}

fn key(rng: &mut Rng) -> Vec<u8> {
    // Few enough keys that they are overwritten and deleted often.
    format!("key{:03}", rng.below(120)).into_bytes()
}

fn value(rng: &mut Rng, tag: u64) -> Vec<u8> {
    let len = match rng.below(10) {
        0 => 0,
        1 => 1000 + rng.below(3000) as usize,
        _ => rng.below(200) as usize,
    };
    let mut v = format!("{tag}:").into_bytes();
    v.extend((0..len).map(|i| (tag as usize).wrapping_add(i) as u8));
    v
}

/// The operations of one phase, from its own seed.
fn operations(seed: u64, count: usize, merges_and_reopens: bool) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    (0..count)
        .map(|i| {
            let tag = seed.wrapping_mul(1000).wrapping_add(i as u64);
            match rng.below(100) {
                0..=44 => Op::Put(key(&mut rng), value(&mut rng, tag)),
                45..=59 => Op::Delete(key(&mut rng)),
                60..=74 => {
                    let n = 1 + rng.below(6);
                    Op::Batch(
                        (0..n)
                            .map(|j| {
                                let k = key(&mut rng);
                                let v = (rng.below(4) != 0)
                                    .then(|| value(&mut rng, tag.wrapping_mul(10).wrapping_add(j)));
                                (k, v)
                            })
                            .collect(),
                    )
                }
                75..=86 => Op::Get(key(&mut rng)),
                87..=89 => Op::Iterate,
                90..=94 => Op::Sync,
                95..=97 if merges_and_reopens => Op::Merge,
                95..=97 => Op::Sync,
                _ if merges_and_reopens => Op::Reopen,
                _ => Op::Get(key(&mut rng)),
            }
        })
        .collect()
}

/// The options of round `round`.
fn options(seed: u64, round: u64) -> Options {
    let mut rng = Rng::new(seed ^ round.wrapping_mul(0x9E37_79B9));
    let mut o = Options::default();
    o.set_data_file_size([4096, 16 << 10, 64 << 10][rng.below(3) as usize])
        .unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    match rng.below(3) {
        0 => {
            o.set_sync_writes(true);
        }
        1 => {
            o.set_bytes_per_sync(8192);
        }
        _ => {}
    }
    o.set_index_type(if rng.below(2) == 0 {
        IndexType::Ordered
    } else {
        IndexType::Hash
    });
    o.set_mmap_at_startup(rng.below(2) == 0);
    o
}

fn contents(db: &Bitcask) -> Model {
    let mut seen = Model::new();
    db.fold(b"", |k, v| {
        seen.insert(k.to_vec(), v.to_vec());
        ControlFlow::Continue(())
    })
    .unwrap();
    seen
}

/// Runs `ops` on `db`, checking reads against `model` (updated as it goes).
/// `ack` is called after each acknowledged operation.
fn run(
    dir: &Path,
    opts: &Options,
    mut db: Bitcask,
    ops: &[Op],
    model: &mut Model,
    mut ack: impl FnMut(usize),
) -> Bitcask {
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Put(k, v) => db.put(k, v).unwrap(),
            Op::Delete(k) => db.delete(k).unwrap(),
            Op::Batch(entries) => {
                let mut batch = db.batch();
                for (k, v) in entries {
                    match v {
                        Some(v) => batch.put(k, v).unwrap(),
                        None => batch.delete(k).unwrap(),
                    }
                }
                db.write(&mut batch).unwrap();
            }
            Op::Get(k) => assert_eq!(db.get(k).unwrap().as_ref(), model.get(k), "op {i}: get"),
            Op::Iterate => assert!(contents(&db) == *model, "op {i}: iteration"),
            Op::Sync => db.sync().unwrap(),
            Op::Merge => db.merge().unwrap(),
            Op::Reopen => {
                db.close().unwrap();
                db = Bitcask::open(dir, opts.clone()).unwrap();
                assert!(contents(&db) == *model, "op {i}: after reopen");
            }
        }
        op.apply(model);
        ack(i);
    }
    db
}

#[test]
fn random_operations_and_crashes_match_the_model() {
    if let Some(dir) = child_role("model-crash") {
        let seed: u64 = std::env::var("MODEL_PHASE_SEED").unwrap().parse().unwrap();
        let opts = options(seed, 0);
        let mut model = Model::new();
        // The child checks reads against what it wrote itself only: it
        // starts from the database as it finds it.
        let db = Bitcask::open(&dir, opts.clone()).unwrap();
        model.extend(contents(&db));
        println!();
        let ops = operations(seed, 200, true);
        let db = run(&dir, &opts, db, &ops, &mut model, |i| println!("ACK {i}"));
        db.close().unwrap();
        println!("DONE");
        return;
    }
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let seed = env("BITCASK_MODEL_SEED").unwrap_or_else(|| Rng::from_time().1);
    let rounds = env("BITCASK_MODEL_ROUNDS").unwrap_or(40);
    let mut rng = Rng::new(seed);
    eprintln!("model: seed {seed} (BITCASK_MODEL_SEED={seed} repeats it), {rounds} rounds");
    let tmp = TempDir::in_memory("model");
    let dir = tmp.db();
    let mut model = Model::new();
    let (mut crashed, mut ops_checked) = (0, 0);
    for round in 0..rounds {
        // The child's round, with a crash point armed.
        let phase_seed = seed.wrapping_mul(31).wrapping_add(round);
        let (point, most) = CRASH_POINTS[rng.below(CRASH_POINTS.len() as u64) as usize];
        let armed = format!("{point}@{}", 1 + rng.below(most));
        let mut child = spawn_child(
            TEST_NAME,
            "model-crash",
            &dir,
            &[
                ("MODEL_PHASE_SEED", phase_seed.to_string()),
                ("BITCASK_FAILPOINT", armed.clone()),
            ],
        );
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect();
        let status = child.wait().unwrap();
        let finished = lines.iter().any(|l| l == "DONE");
        assert!(
            finished == status.success(),
            "round {round} ({armed}): the child failed other than at the crash point: {status}"
        );
        crashed += u64::from(!finished);
        let acked = lines.iter().filter_map(|l| common::acked_op(l)).max();
        let ops = operations(phase_seed, 200, true);
        let done = acked.map_or(0, |a| a as usize + 1);
        for op in &ops[..done] {
            op.apply(&mut model);
        }
        ops_checked += done;
        let mut with_in_flight = model.clone();
        if let Some(op) = ops.get(done).filter(|_| !finished) {
            op.apply(&mut with_in_flight);
        }
        // After the crash: exactly the acknowledged operations, and the one
        // in flight wholly or not at all.
        let opts = options(seed, round + 1);
        let db = Bitcask::open(&dir, opts.clone())
            .unwrap_or_else(|e| panic!("round {round} ({armed}): reopen failed: {e}"));
        let found = contents(&db);
        if found == with_in_flight {
            model = with_in_flight;
        } else {
            assert!(
                found == model,
                "round {round} ({armed}, {done} ops acknowledged, finished {finished}): the \
                 database is neither the model nor the model with op {done} ({:?}) applied; \
                 keys differing from the model: {:?}",
                ops.get(done),
                found
                    .keys()
                    .chain(model.keys())
                    .filter(|k| found.get(*k) != model.get(*k))
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect::<Vec<_>>()
            );
        }
        assert_eq!(db.key_count(), model.len(), "round {round}: key count");
        // The parent's own operations, without crashes.
        let own = operations(phase_seed ^ 0xABCD, 100, true);
        let db = run(&dir, &opts, db, &own, &mut model, |_| {});
        ops_checked += own.len();
        db.close().unwrap();
    }
    eprintln!(
        "model: {rounds} rounds, {crashed} crashes at a crash point, {ops_checked} operations \
         checked against the model"
    );
    assert!(crashed > 0, "no round crashed");
}

//! Batch atomicity across SIGKILL. A child commits batches (sync_writes on)
//! and prints each one it got OK for; the parent SIGKILLs it once it has
//! read a random number of those acknowledgements, reopens, and checks that
//! the database is exactly the result of the acknowledged batches, or of
//! those plus the whole batch in flight: never part of a batch. Rounds
//! continue on the same directory.

mod common;

use std::collections::BTreeMap;

use bitcask::{Bitcask, Options};
use common::{
    child_opened, child_role, child_wait_for_kill, crash_plan, keep_for_inspection,
    run_writer_until_killed, Rng, TempDir,
};

const TEST_NAME: &str = "batches_are_all_or_nothing_across_sigkill";
const KEYS: u64 = 200;
/// The most acknowledgements a round reads before its kill.
const MAX_KILL_AFTER: u64 = 60;
/// How many more batches than that a child commits before it waits for its kill.
const SLACK: u64 = 40;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Batch `i` of the deterministic sequence: (key, value or None to delete).
fn batch(i: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    let mut rng = Rng::new(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let n = 1 + rng.below(60);
    (0..n)
        .map(|_| {
            let key = format!("key-{:03}", rng.below(KEYS)).into_bytes();
            if rng.below(8) == 0 {
                return (key, None);
            }
            let mut value = format!("batch{i}:").into_bytes();
            value.extend(std::iter::repeat_n(b'x', rng.below(700) as usize));
            (key, Some(value))
        })
        .collect()
}

fn apply(model: &mut Model, i: u64) {
    for (key, value) in batch(i) {
        match value {
            Some(v) => model.insert(key, v),
            None => model.remove(&key),
        };
    }
}

fn options() -> Options {
    let mut o = Options::default();
    o.set_sync_writes(true);
    o.set_data_file_size(64 << 10).unwrap();
    o
}

fn run_writer(dir: &std::path::Path) {
    let start: u64 = std::env::var("CRASH_START").unwrap().parse().unwrap();
    let db = Bitcask::open(dir, options()).unwrap();
    child_opened();
    let mut b = db.batch();
    for i in start..start + MAX_KILL_AFTER + SLACK {
        for (key, value) in batch(i) {
            match value {
                Some(v) => b.put(&key, &v).unwrap(),
                None => b.delete(&key).unwrap(),
            }
        }
        db.write(&mut b).unwrap();
        println!("ACK {i}");
    }
    child_wait_for_kill();
}

fn contents(db: &Bitcask) -> Model {
    let mut out = Model::new();
    db.fold(b"", |k, v| {
        out.insert(k.to_vec(), v.to_vec());
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    out
}

#[test]
fn batches_are_all_or_nothing_across_sigkill() {
    if let Some(dir) = child_role("batch-writer") {
        run_writer(&dir);
        return;
    }
    let (mut rng, seed, rounds) = crash_plan(TEST_NAME, 20);
    let tmp = TempDir::new("batch-crash");
    let mut next = 0u64;
    let mut waited_for = 0u64;
    let mut model = Model::new();
    let mut in_flight_landed = 0;
    for round in 0..rounds {
        let kill_after = rng.below(MAX_KILL_AFTER);
        waited_for += kill_after;
        let last_acked =
            run_writer_until_killed(TEST_NAME, "batch-writer", &tmp.db(), next, kill_after);
        let acked_until = last_acked.map_or(next, |n| n + 1);
        for i in next..acked_until {
            apply(&mut model, i);
        }
        let mut with_in_flight = model.clone();
        apply(&mut with_in_flight, acked_until);

        let where_ = format!("round {round} (seed {seed}, killed after {kill_after} acks)");
        let db = Bitcask::open(tmp.db(), options()).unwrap_or_else(|e| {
            let kept = keep_for_inspection(&tmp.db(), "batch-crash");
            panic!(
                "{where_}: reopen failed: {e} (directory kept at {})",
                kept.display()
            )
        });
        let found = contents(&db);
        db.close().unwrap();
        if found == with_in_flight && found != model {
            in_flight_landed += 1;
            // The in-flight batch landed whole: it is part of history now.
            model = with_in_flight;
            next = acked_until + 1;
        } else {
            if found != model {
                let kept = keep_for_inspection(&tmp.db(), "batch-crash");
                panic!(
                    "{where_}: the database after batch {acked_until} was in flight is neither \
                     all nor none of it ({} keys found, {} or {} expected; directory kept at {})",
                    found.len(),
                    model.len(),
                    with_in_flight.len(),
                    kept.display()
                );
            }
            next = acked_until;
        }
        eprintln!("round {round}: {next} batches in history (killed after {kill_after})");
    }
    eprintln!("{in_flight_landed} rounds had the in-flight batch land whole");
    // Each round acknowledged at least what its kill waited for.
    assert!(
        next >= waited_for,
        "{next} batches acknowledged, {waited_for} waited for"
    );
}

/// The parent must see a child's first acknowledgement even though libtest
/// prints `test NAME ... ` without a newline before it (the cause of a
/// spurious "neither all nor none" about one run in ten).
#[test]
fn an_ack_glued_to_libtests_test_line_is_read() {
    assert_eq!(
        common::acked_op(&format!("test {TEST_NAME} ... ACK 0")),
        Some(0)
    );
    assert_eq!(common::acked_op("ACK 17"), Some(17));
    assert_eq!(common::acked_op("ACK"), None);
    assert_eq!(common::acked_op("test x ... ok"), None);
}

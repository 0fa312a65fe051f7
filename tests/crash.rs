//! Every acknowledged write survives a process crash. A child writes with
//! sync_writes on and prints each operation it got OK for; the parent
//! SIGKILLs it at a random moment, reopens, and checks that every key holds
//! its last acknowledged value (or the one write in flight at the kill).
//! Rounds continue on the same directory, so later rounds open what a killed
//! writer left, including any torn tail.
//!
//! The second test does the same with a writer that also merges every 150
//! operations, so that kills land at random moments of merges too.
//!
//! Pins: acknowledging a write before it is in the file; a torn tail that
//! blocks the next open or hides the records before it; appending after
//! garbage, which would lose every later write at the next reopen; a merge
//! that loses or resurrects a key when it is cut short.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bitcask::{Bitcask, Options};
use common::{child_role, crash_plan, run_writer_until_killed, Rng, TempDir};

const TEST_NAME: &str = "acknowledged_writes_survive_sigkill";
const MERGE_TEST_NAME: &str = "acknowledged_writes_survive_sigkill_during_merges";
/// How often the merging writer merges, in operations.
const MERGE_EVERY: u64 = 150;
const KEYS: u64 = 300;

/// Operation `i` of the deterministic sequence: the key, and the value
/// (`None` for a delete). Values vary in size so records straddle pages and
/// data files roll over.
fn op(i: u64) -> (Vec<u8>, Option<Vec<u8>>) {
    let mut rng = Rng::new(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD);
    let key = format!("key-{:03}", rng.below(KEYS)).into_bytes();
    if rng.below(10) == 0 {
        return (key, None);
    }
    let mut value = format!("op{i}:").into_bytes();
    let pad = rng.below(2000) as usize;
    value.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, pad));
    (key, Some(value))
}

fn options() -> Options {
    let mut o = Options::default();
    o.set_sync_writes(true);
    o.set_data_file_size(64 << 10).unwrap();
    o
}

fn run_writer(dir: &std::path::Path, merge: bool) {
    let start: u64 = std::env::var("CRASH_START").unwrap().parse().unwrap();
    let db = Bitcask::open(dir, options()).unwrap();
    println!();
    for i in start.. {
        let (key, value) = op(i);
        match value {
            Some(v) => db.put(&key, &v).unwrap(),
            None => db.delete(&key).unwrap(),
        }
        println!("ACK {i}");
        if merge && i % MERGE_EVERY == 0 {
            db.merge().unwrap();
        }
    }
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    if let Some(dir) = child_role("crash-writer") {
        run_writer(&dir, false);
        return;
    }
    kill_rounds(TEST_NAME, "crash-writer");
}

#[test]
fn acknowledged_writes_survive_sigkill_during_merges() {
    if let Some(dir) = child_role("crash-merger") {
        run_writer(&dir, true);
        return;
    }
    kill_rounds(MERGE_TEST_NAME, "crash-merger");
}

/// Runs the writer in `role` and kills it, round after round, checking
/// after each round that every acknowledged write is there.
fn kill_rounds(test_name: &str, role: &str) {
    let (mut rng, seed, rounds) = crash_plan(test_name, 12);
    let tmp = TempDir::new(role);
    // Every op before `next` is acknowledged; the model is their result.
    let mut next = 0u64;
    let mut model: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for round in 0..rounds {
        let delay = Duration::from_millis(20 + rng.below(400));
        let last_acked = run_writer_until_killed(test_name, role, &tmp.db(), next, delay);
        let acked_until = last_acked.map_or(next, |n| n + 1);
        for i in next..acked_until {
            let (key, value) = op(i);
            model.insert(key, value);
        }
        // The op after the last acknowledged one may or may not have landed.
        let (in_flight_key, in_flight_value) = op(acked_until);

        let db = Bitcask::open(tmp.db(), options())
            .unwrap_or_else(|e| panic!("round {round} (seed {seed}): reopen failed: {e}"));
        for (key, expected) in &model {
            let got = db.get(key).unwrap();
            let ok = got == *expected || (*key == in_flight_key && got == in_flight_value);
            assert!(
                ok,
                "round {round} (seed {seed}): {} holds {:?}, acknowledged {:?}",
                String::from_utf8_lossy(key),
                got.map(|v| String::from_utf8_lossy(&v[..v.len().min(12)]).to_string()),
                expected
                    .as_ref()
                    .map(|v| String::from_utf8_lossy(&v[..v.len().min(12)]).to_string()),
            );
        }
        db.close().unwrap();
        eprintln!(
            "round {round}: {} ops acknowledged, all present",
            acked_until - next
        );
        // Redo the in-flight op next round: it is idempotent, and then the model is exact.
        next = acked_until;
    }
    assert!(
        next > 100,
        "too few writes acknowledged ({next}) for the test to mean anything"
    );
}

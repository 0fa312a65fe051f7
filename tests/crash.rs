//! Every acknowledged write survives a process crash, in every durability
//! mode: with sync_writes, with bytes_per_sync, and by default (where a
//! write is only in the page cache when it returns). A child writes and
//! prints each operation it got OK for; the parent SIGKILLs it once it has
//! read a random number of those acknowledgements, reopens, and checks that
//! every key holds its last acknowledged value (or the one write in flight
//! at the kill). Rounds continue on the same directory, so later rounds
//! open what a killed writer left, including any torn tail.
//!
//! A fourth test does the same with a writer that also merges every 150
//! operations, so that kills land at moments of merges too; a fifth with a
//! checkpoint of the index every 8 KiB of records, so that most reopens
//! load one and read only what was written after it. (From the second
//! round on, every mode's reopen finds the keydir file the previous
//! round's close wrote and its open kept, and reads what followed it.)
//!
//! Pins: acknowledging a write before it is in the file (or, by default,
//! in the page cache); a torn tail that blocks the next open or hides the
//! records before it; appending after garbage, which would lose every later
//! write at the next reopen; a merge that loses or resurrects a key when it
//! is cut short.

mod common;

use std::collections::BTreeMap;

use bitcask::{Bitcask, Options};
use common::{
    child_opened, child_role, child_wait_for_kill, crash_plan, keep_for_inspection,
    run_writer_until_killed, Rng, TempDir,
};

/// How often the merging writer merges, in operations.
const MERGE_EVERY: u64 = 150;
const KEYS: u64 = 300;
/// How many more operations than the largest kill point a child writes
/// before it waits for its kill.
const SLACK: u64 = 100;

/// A durability mode, with the test that kills writers in it.
#[derive(Clone, Copy, Debug)]
enum Mode {
    SyncWrites,
    BytesPerSync,
    Default,
    SyncWritesMerging,
    /// The default mode with a checkpoint of the index every 8 KiB of
    /// records: reopens load the last one and read what follows it.
    Checkpoints,
}

impl Mode {
    fn test_name(self) -> &'static str {
        match self {
            Mode::SyncWrites => "acknowledged_writes_survive_sigkill",
            Mode::BytesPerSync => "acknowledged_writes_survive_sigkill_with_bytes_per_sync",
            Mode::Default => "acknowledged_writes_survive_sigkill_in_default_mode",
            Mode::SyncWritesMerging => "acknowledged_writes_survive_sigkill_during_merges",
            Mode::Checkpoints => "acknowledged_writes_survive_sigkill_with_checkpoints",
        }
    }

    fn role(self) -> &'static str {
        match self {
            Mode::SyncWrites => "crash-writer",
            Mode::BytesPerSync => "crash-writer-bps",
            Mode::Default => "crash-writer-default",
            Mode::SyncWritesMerging => "crash-merger",
            Mode::Checkpoints => "crash-writer-ckpt",
        }
    }

    fn options(self) -> Options {
        let mut o = Options::default();
        o.set_data_file_size(64 << 10).unwrap();
        match self {
            Mode::SyncWrites | Mode::SyncWritesMerging => {
                o.set_sync_writes(true);
            }
            Mode::BytesPerSync => {
                o.set_bytes_per_sync(16 << 10);
            }
            Mode::Default => {}
            Mode::Checkpoints => {
                o.set_checkpoint_bytes(8 << 10);
            }
        }
        o
    }

    /// The most acknowledgements a round reads before its kill: a synced
    /// write takes an fsync, so those rounds wait for fewer.
    fn max_kill_after(self) -> u64 {
        match self {
            Mode::SyncWrites => 300,
            Mode::SyncWritesMerging => 400,
            Mode::BytesPerSync | Mode::Default | Mode::Checkpoints => 1000,
        }
    }
}

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

fn run_writer(dir: &std::path::Path, mode: Mode) {
    let start: u64 = std::env::var("CRASH_START").unwrap().parse().unwrap();
    let db = Bitcask::open(dir, mode.options()).unwrap();
    child_opened();
    for i in start..start + mode.max_kill_after() + SLACK {
        let (key, value) = op(i);
        match value {
            Some(v) => db.put(&key, &v).unwrap(),
            None => db.delete(&key).unwrap(),
        }
        println!("ACK {i}");
        if matches!(mode, Mode::SyncWritesMerging) && i % MERGE_EVERY == 0 {
            db.merge().unwrap();
        }
    }
    child_wait_for_kill();
}

/// The parent's side of a test, or the child's when this process is one.
fn crash_test(mode: Mode) {
    if let Some(dir) = child_role(mode.role()) {
        run_writer(&dir, mode);
        return;
    }
    kill_rounds(mode);
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    crash_test(Mode::SyncWrites);
}

#[test]
fn acknowledged_writes_survive_sigkill_with_bytes_per_sync() {
    crash_test(Mode::BytesPerSync);
}

#[test]
fn acknowledged_writes_survive_sigkill_in_default_mode() {
    crash_test(Mode::Default);
}

#[test]
fn acknowledged_writes_survive_sigkill_during_merges() {
    crash_test(Mode::SyncWritesMerging);
}

#[test]
fn acknowledged_writes_survive_sigkill_with_checkpoints() {
    crash_test(Mode::Checkpoints);
}

type Model = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// What a key of `db` holds that neither its acknowledged value nor (for
/// the op in flight at the kill) that op's value is, if any.
fn first_wrong_key(
    db: &Bitcask,
    model: &Model,
    in_flight: &(Vec<u8>, Option<Vec<u8>>),
) -> Option<String> {
    let short = |v: &Option<Vec<u8>>| {
        v.as_ref()
            .map(|v| String::from_utf8_lossy(&v[..v.len().min(12)]).to_string())
    };
    for (key, expected) in model {
        let got = db.get(key).unwrap();
        let ok = got == *expected || (*key == in_flight.0 && got == in_flight.1);
        if !ok {
            return Some(format!(
                "{} holds {:?}, acknowledged {:?}",
                String::from_utf8_lossy(key),
                short(&got),
                short(expected)
            ));
        }
    }
    None
}

/// Runs the writer of `mode` and kills it, round after round, checking
/// after each round that every acknowledged write is there.
fn kill_rounds(mode: Mode) {
    let (mut rng, seed, rounds) = crash_plan(mode.test_name(), 12);
    let tmp = TempDir::new(mode.role());
    // Every op before `next` is acknowledged; the model is their result.
    let mut next = 0u64;
    let mut waited_for = 0u64;
    let mut model = Model::new();
    // Reopens that loaded a keydir file and read what followed it, by the
    // file's version (1: close's, kept by the open after it; 2: a checkpoint).
    let mut resumed = [0u64; 3];
    for round in 0..rounds {
        let kill_after = rng.below(mode.max_kill_after());
        waited_for += kill_after;
        let last_acked =
            run_writer_until_killed(mode.test_name(), mode.role(), &tmp.db(), next, kill_after);
        let acked_until = last_acked.map_or(next, |n| n + 1);
        for i in next..acked_until {
            let (key, value) = op(i);
            model.insert(key, value);
        }
        // The op after the last acknowledged one may or may not have landed.
        let in_flight = op(acked_until);

        let where_ = format!(
            "{} round {round} (seed {seed}, killed after {kill_after} acks)",
            mode.test_name()
        );
        let writer = common::keydir_writer(&tmp.db());
        let db = match Bitcask::open(tmp.db(), mode.options()) {
            Ok(db) => db,
            Err(e) => {
                let kept = keep_for_inspection(&tmp.db(), mode.role());
                panic!(
                    "{where_}: reopen failed: {e} (directory kept at {})",
                    kept.display()
                );
            }
        };
        if db.recovery().resumed_from_keydir {
            resumed[writer.map_or(0, |w| w as usize)] += 1;
        }
        if let Some(wrong) = first_wrong_key(&db, &model, &in_flight) {
            drop(db);
            let kept = keep_for_inspection(&tmp.db(), mode.role());
            panic!("{where_}: {wrong} (directory kept at {})", kept.display());
        }
        // Now and then a merge, so that the directory stays small over
        // many rounds (BITCASK_CRASH_ROUNDS).
        if round % 10 == 9 {
            db.merge().unwrap();
        }
        db.close().unwrap();
        eprintln!(
            "round {round}: {} ops acknowledged (killed after {kill_after}), all present",
            acked_until - next
        );
        // Redo the in-flight op next round: it is idempotent, and then the model is exact.
        next = acked_until;
    }
    eprintln!(
        "reopens from close's keydir file and what followed: {}, from a checkpoint: {}",
        resumed[1], resumed[2]
    );
    // The first round starts from an empty directory: a keydir file it
    // leaves is a checkpoint (the control that the mode takes them).
    if matches!(mode, Mode::Checkpoints) {
        assert!(resumed[2] > 0, "no reopen loaded a checkpoint");
    }
    // Each round acknowledged at least what its kill waited for.
    assert!(
        next >= waited_for,
        "{next} ops acknowledged, {waited_for} waited for"
    );
}

//! Every step of a merge is durable before the step that depends on it, so
//! that a power cut at any moment leaves a database with every write made
//! before the last sync, rollover or merge, and no deleted key back.
//!
//! The power-loss states are built by the fault shim's crash backend
//! (tests/faultshim): it records, at each successful fsync or fdatasync,
//! the bytes of the file or the listing of the directory. What was never
//! synced is dropped, as LevelDB's fault-injection test does: a file keeps
//! its bytes as of its last sync, a directory its names as of its last
//! sync. Names removed since that sync may each be gone or not, in any
//! combination (a file system need not apply unlinks to the disk in order).
//!
//! Pins: the new active file, which holds the newer record of a key
//! overwritten during the merge, not synced before the inputs holding the
//! older record were deleted (the key was lost, old value included); input
//! files unlinked without a directory fsync between them (a tombstone's
//! file gone and the older put's file still there: a deleted key back);
//! a merge after `data_file_size` was made smaller failing with
//! `BITCASK_INTERNAL` after installing part of its outputs.
#![cfg(feature = "failpoints")]

mod common;
mod faultshim;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use bitcask::failpoints::{self, Action};
use bitcask::{Bitcask, Options};
use common::{child_role, spawn_child, TempDir};
use faultshim::{listing, Shadow, ShimConfig};

const KEYS: u32 = 200;

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:04}").into_bytes()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    format!("value-{round}-{i}-{:040}", 0).into_bytes()
}

/// Runs this test binary's `test` as a child in `role` under the crash
/// backend, and returns its output lines once it has ended (it must abort).
fn run_child(
    test: &str,
    role: &str,
    db: &Path,
    shadow: &Path,
    extra: &[(&str, String)],
) -> Vec<String> {
    let mut config = ShimConfig::new(db);
    config.shadow = Some(shadow.to_path_buf());
    let mut env = config.env();
    env.extend(extra.iter().cloned());
    let mut child = spawn_child(test, role, db, &env);
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was to stop without closing: {status}"
    );
    lines
}

const OVERWRITE_TEST: &str = "a_power_cut_after_a_merge_keeps_the_keys_overwritten_during_it";

#[test]
fn a_power_cut_after_a_merge_keeps_the_keys_overwritten_during_it() {
    if let Some(dir) = child_role("merge-overwrite") {
        let db = Arc::new(Bitcask::open(&dir, options()).unwrap());
        for i in 0..KEYS {
            db.put(&key(i), &value(i, 1)).unwrap();
        }
        for i in 0..KEYS / 4 {
            db.put(&key(i), &value(i, 2)).unwrap();
        }
        db.sync().unwrap();
        // Overwritten once the merge has planned, before it copies: the
        // copy skips their older records, which lie in its inputs.
        let _serial = failpoints::serial();
        let planned = failpoints::arm("merge:rolled-over", Action::Pause);
        let merging = {
            let db = Arc::clone(&db);
            std::thread::spawn(move || db.merge())
        };
        planned.wait_for_hits(1);
        for i in (0..KEYS).step_by(7) {
            db.put(&key(i), &value(i, 3)).unwrap();
        }
        planned.release();
        merging.join().unwrap().unwrap();
        drop(planned);
        // The control: written, never synced.
        db.put(b"control", b"never synced").unwrap();
        println!("\nMERGED");
        // The power cut: nothing more reaches the files.
        std::process::abort();
    }
    let tmp = TempDir::new("merge-overwrite");
    let shadow = tmp.path().join("shadow");
    let lines = run_child(OVERWRITE_TEST, "merge-overwrite", &tmp.db(), &shadow, &[]);
    assert!(
        lines.iter().any(|l| l == "MERGED"),
        "the child did not merge"
    );

    // A process crash loses nothing: the control is there.
    let db = Bitcask::open(tmp.db(), options()).unwrap();
    assert_eq!(
        db.get(b"control").unwrap().as_deref(),
        Some(&b"never synced"[..])
    );
    for i in (0..KEYS).step_by(7) {
        assert_eq!(db.get(&key(i)).unwrap(), Some(value(i, 3)));
    }
    db.close().unwrap();

    let shadow = Shadow::new(&shadow);
    let names = shadow
        .synced_listing(&tmp.db())
        .expect("the database directory was never synced");
    let cut = tmp.path().join("power-cut");
    shadow.materialize(&names, &cut);
    let db = Bitcask::open(&cut, options()).unwrap();
    // The backend drops what was not synced (else it could not find the bug).
    assert_eq!(
        db.get(b"control").unwrap(),
        None,
        "the control survived the power cut"
    );
    for i in 0..KEYS {
        let synced = value(i, if i < KEYS / 4 { 2 } else { 1 });
        let got = db.get(&key(i)).unwrap();
        let during_merge = (i % 7 == 0).then(|| value(i, 3));
        assert!(
            got.as_ref() == Some(&synced) || (got.is_some() && got == during_merge),
            "key{i:04} after the power cut: {:?}",
            got.map(|v| String::from_utf8_lossy(&v).into_owned())
        );
    }
    db.close().unwrap();
}

const UNLINK_TEST: &str = "a_power_cut_while_a_merge_deletes_its_inputs_brings_no_key_back";

#[test]
fn a_power_cut_while_a_merge_deletes_its_inputs_brings_no_key_back() {
    if let Some(dir) = child_role("merge-unlink") {
        let db = Bitcask::open(&dir, options()).unwrap();
        // The put in the first file, its tombstone in a later one, and
        // both files merge inputs (each holds dead bytes).
        db.put(b"ghost", b"deleted, must stay so").unwrap();
        for i in 0..60 {
            db.put(&key(i), &value(i, 1)).unwrap();
        }
        db.delete(b"ghost").unwrap();
        for i in 60..80 {
            db.put(&key(i), &value(i, 1)).unwrap();
        }
        db.sync().unwrap();
        println!("\nBUILT");
        // BITCASK_FAILPOINT stops it after the second input's unlink.
        db.merge().unwrap();
        println!("MERGED");
        return;
    }
    let tmp = TempDir::new("merge-unlink");
    let shadow_dir = tmp.path().join("shadow");
    let lines = run_child(
        UNLINK_TEST,
        "merge-unlink",
        &tmp.db(),
        &shadow_dir,
        &[("BITCASK_FAILPOINT", "merge:input-unlinked@2".to_string())],
    );
    assert!(lines.iter().any(|l| l == "BUILT"));
    assert!(
        !lines.iter().any(|l| l == "MERGED"),
        "the crash point was never reached"
    );

    let shadow = Shadow::new(&shadow_dir);
    let synced = shadow
        .synced_listing(&tmp.db())
        .expect("the database directory was never synced");
    let now = listing(&tmp.db());
    // Removed since the directory's last sync: each may or may not be gone.
    let unsynced: Vec<&String> = synced.keys().filter(|n| !now.contains_key(*n)).collect();
    assert!(unsynced.len() <= 6, "{unsynced:?}");
    for subset in 0u32..(1 << unsynced.len()) {
        let mut names = synced.clone();
        for (bit, name) in unsynced.iter().enumerate() {
            if subset & (1 << bit) != 0 {
                names.remove(*name);
            }
        }
        let cut = tmp.path().join(format!("power-cut-{subset}"));
        shadow.materialize(&names, &cut);
        let gone: Vec<&&String> = unsynced
            .iter()
            .enumerate()
            .filter(|(bit, _)| subset & (1 << bit) != 0)
            .map(|(_, n)| n)
            .collect();
        let db = Bitcask::open(&cut, options())
            .unwrap_or_else(|e| panic!("open with {gone:?} gone: {e}"));
        assert_eq!(
            db.get(b"ghost").unwrap(),
            None,
            "a deleted key came back with {gone:?} gone and the rest of {unsynced:?} still there"
        );
        for i in 0..80 {
            assert_eq!(db.get(&key(i)).unwrap(), Some(value(i, 1)), "{gone:?}");
        }
        db.close().unwrap();
    }
    eprintln!(
        "{} power-loss states checked (removed since the last directory sync: {unsynced:?})",
        1 << unsynced.len()
    );
}

/// A database written with large data files, merged after reopening with
/// the smallest: its live records need many more outputs than it has files.
#[test]
fn a_merge_after_data_file_size_shrank_installs_every_output() {
    let tmp = TempDir::new("merge-shrunk");
    let mut big = options();
    big.set_data_file_size(1 << 20).unwrap();
    let db = Bitcask::open(tmp.db(), big).unwrap();
    let mut model = BTreeMap::new();
    for i in 0..2000u32 {
        db.put(&key(i), &value(i, 1)).unwrap();
        model.insert(key(i), value(i, 1));
    }
    for i in (0..2000u32).step_by(10) {
        db.put(&key(i), &value(i, 2)).unwrap();
        model.insert(key(i), value(i, 2));
    }
    db.close().unwrap();

    let db = Bitcask::open(tmp.db(), options()).unwrap();
    db.merge().expect("merge with a smaller data_file_size");
    assert_eq!(db.stats().unwrap().reclaimable_bytes, 0);
    assert!(db.data_file_count() > 20, "{} files", db.data_file_count());
    for (k, v) in &model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v));
    }
    db.put(b"after", b"merge").unwrap();
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), options()).unwrap();
    assert_eq!(db.key_count(), model.len() + 1);
    for (k, v) in &model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v));
    }
    db.close().unwrap();
}

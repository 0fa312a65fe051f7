//! A crash at every step of a merge (and of a hint file write) leaves a
//! directory that opens with every key at its latest value, no deleted key
//! back, and no leftover file that would stay forever. A child process
//! merges with a named crash point armed (`BITCASK_FAILPOINT`, compiled in
//! only with the `failpoints` feature) and aborts there; the parent reopens
//! and checks, merges again and checks again.
//!
//! Pins: outputs that become visible before they are complete; inputs
//! deleted in an order that lets an old put outlive the tombstone that hid
//! it (deleted keys coming back); temporary files or orphan hint files that
//! no later open or merge removes.
#![cfg(feature = "failpoints")]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use bitcask::{Bitcask, Options};
use common::{child_role, spawn_child, TempDir};

const TEST_NAME: &str = "a_crash_at_any_step_of_a_merge_loses_and_resurrects_nothing";

/// Every crash point, with `@N` for the N-th time it is reached (a merge
/// of this database has several outputs and inputs).
const POINTS: &[&str] = &[
    "merge:rolled-over",
    "merge:output-synced",
    "merge:output-synced@3",
    "merge:output-renamed",
    "merge:output-renamed@2",
    "merge:hint-written",
    "merge:swapped",
    "merge:swapped@3",
    "merge:inputs-unlisted",
    "merge:input-unlinked@2",
    "merge:input-deleted",
    "merge:input-deleted@4",
    "merge:done",
    "hint:before-write",
];

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_sync_writes(true);
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

type Model = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// The database every round starts from: overwrites, and keys put in early
/// files and deleted in later ones (the resurrection pattern).
fn build(dir: &Path) -> Model {
    let db = Bitcask::open(dir, options()).unwrap();
    let mut model = Model::new();
    let mut set = |k: String, v: Option<String>| {
        match &v {
            Some(v) => db.put(k.as_bytes(), v.as_bytes()).unwrap(),
            None => db.delete(k.as_bytes()).unwrap(),
        }
        model.insert(k.into_bytes(), v.map(String::into_bytes));
    };
    for round in 0..3 {
        for i in 0..600 {
            set(format!("k{i:04}"), Some(format!("v{i}-{round}-{:030}", i)));
        }
        for i in (round..600).step_by(9) {
            set(format!("k{i:04}"), None);
        }
    }
    db.close().unwrap();
    model
}

/// The child: writes acknowledged keys, merges (the crash point should stop
/// it there), then writes and merges more. Prints `ACK i` after each write.
fn run_child(dir: &Path) {
    let db = Bitcask::open(dir, options()).unwrap();
    println!();
    for i in 0..300 {
        db.put(format!("child{i:04}").as_bytes(), b"acked").unwrap();
        println!("ACK {i}");
        if i == 100 {
            db.merge().unwrap();
        }
    }
    db.merge().unwrap();
    println!("DONE");
}

fn check(db: &Bitcask, model: &Model, acked: Option<u64>, when: &str) {
    for (k, v) in model {
        assert_eq!(
            db.get(k).unwrap(),
            *v,
            "{when}: {}",
            String::from_utf8_lossy(k)
        );
    }
    if let Some(last) = acked {
        for i in 0..=last {
            let k = format!("child{i:04}");
            assert!(db.get(k.as_bytes()).unwrap().is_some(), "{when}: {k} lost");
        }
    }
}

/// Names in the directory that are not data files, their hint files, LOCK
/// or the keydir file close writes.
fn strays(dir: &Path) -> Vec<String> {
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names
        .iter()
        .filter(|n| {
            let hint_of_data = n
                .strip_suffix(".hint")
                .is_some_and(|id| names.contains(&format!("{id}.data")));
            !(n.ends_with(".data") || hint_of_data || *n == "LOCK" || *n == "KEYDIR")
        })
        .cloned()
        .collect()
}

#[test]
fn a_crash_at_any_step_of_a_merge_loses_and_resurrects_nothing() {
    if let Some(dir) = child_role("merge-crash") {
        run_child(&dir);
        return;
    }
    for point in POINTS {
        let tmp = TempDir::new("merge-crash");
        let model = build(&tmp.db());
        let mut child = spawn_child(
            TEST_NAME,
            "merge-crash",
            &tmp.db(),
            &[("BITCASK_FAILPOINT", point.to_string())],
        );
        let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect();
        let status = child.wait().unwrap();
        // Stopped by the crash point's abort, nothing else: a child that
        // panics (exit 101) or fails otherwise crashed somewhere unknown.
        assert_eq!(
            status.signal(),
            Some(libc::SIGABRT),
            "{point}: the child did not abort at the crash point ({status})"
        );
        assert!(!lines.iter().any(|l| l == "DONE"), "{point}: {status}");
        let acked = lines.iter().rev().find_map(|l| common::acked_op(l));

        let db = Bitcask::open(tmp.db(), options())
            .unwrap_or_else(|e| panic!("{point}: reopen after the crash failed: {e}"));
        check(&db, &model, acked, &format!("{point}: after the crash"));
        // Listed once closed: until then the background thread may be
        // writing a hint file under its temporary name.
        db.close().unwrap();
        assert_eq!(strays(&tmp.db()), Vec::<String>::new(), "{point}");
        let db = Bitcask::open(tmp.db(), options()).unwrap();
        db.merge().unwrap();
        assert_eq!(db.stats().unwrap().reclaimable_bytes, 0, "{point}");
        check(&db, &model, acked, &format!("{point}: after a new merge"));
        db.close().unwrap();
        let db = Bitcask::open(tmp.db(), options()).unwrap();
        check(
            &db,
            &model,
            acked,
            &format!("{point}: after merge and reopen"),
        );
        db.close().unwrap();
        assert_eq!(strays(&tmp.db()), Vec::<String>::new(), "{point}");
        eprintln!("{point}: crashed after {acked:?} acknowledged writes; all keys right");
    }
}

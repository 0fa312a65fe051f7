//! One opener per directory: a second open in this process or another is
//! Locked, and a holder that dies (SIGKILL) does not block the next open.

mod common;

use std::io::{BufRead, BufReader};

use bitcask::{Bitcask, Error, Options};
use common::{child_role, spawn_child, TempDir};

#[test]
fn a_second_opener_in_the_same_process_is_locked_out_until_close() {
    let tmp = TempDir::new("lock-same");
    let first = Bitcask::open(tmp.db(), Options::default()).unwrap();
    match Bitcask::open(tmp.db(), Options::default()) {
        Err(Error::Locked(msg)) => assert!(msg.contains("LOCK"), "{msg}"),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("two handles on one directory"),
    }
    first.close().unwrap();
    Bitcask::open(tmp.db(), Options::default())
        .unwrap()
        .close()
        .unwrap();
}

#[test]
fn a_holder_in_another_process_locks_out_until_it_is_killed() {
    if let Some(dir) = child_role("lock-holder") {
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        db.put(b"held", b"by child").unwrap();
        // libtest has printed "test NAME ... " without a newline: start a fresh line.
        println!("\nHOLDING");
        // Holds the lock until the parent kills it, however long that takes.
        let _held = db;
        common::child_wait_for_kill();
    }
    let tmp = TempDir::new("lock-other");
    let mut child = spawn_child(
        "a_holder_in_another_process_locks_out_until_it_is_killed",
        "lock-holder",
        &tmp.db(),
        &[],
    );
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.any(|l| l.map(|l| l == "HOLDING").unwrap_or(false)),
        "the child never took the lock"
    );
    assert!(matches!(
        Bitcask::open(tmp.db(), Options::default()),
        Err(Error::Locked(_))
    ));
    child.kill().unwrap(); // SIGKILL: no close, no unlock
    child.wait().unwrap();
    let db =
        Bitcask::open(tmp.db(), Options::default()).expect("a dead holder must not block open");
    assert_eq!(db.get(b"held").unwrap().as_deref(), Some(&b"by child"[..]));
}

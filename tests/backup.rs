//! Backup: a consistent copy that opens as a database, made while writes go
//! on, never with the lock file, only into a missing or empty directory.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bitcask::{Bitcask, Error, Options};
use common::TempDir;

fn opts() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(8192).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

#[test]
fn a_backup_made_during_writes_holds_exactly_a_prefix_of_them() {
    let tmp = TempDir::new("backup-live");
    let db = Arc::new(Bitcask::open(tmp.db(), opts()).unwrap());
    for i in 0..500 {
        db.put(&key(i), format!("v{i}").as_bytes()).unwrap();
    }
    // One writer puts key i with value "v{i}" in order, and overwrites
    // key i-500 as it goes: the backup must hold some prefix of that order.
    let acked = Arc::new(AtomicU64::new(500));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, acked, stop) = (Arc::clone(&db), Arc::clone(&acked), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut i = 500;
            while !stop.load(Ordering::Relaxed) {
                db.put(&key(i), format!("v{i}").as_bytes()).unwrap();
                db.put(&key(i - 500), format!("over{i}").as_bytes())
                    .unwrap();
                acked.store(i + 1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    while acked.load(Ordering::SeqCst) < 1500 {
        std::thread::yield_now();
    }
    let dest = tmp.path().join("backups/first");
    let acked_before = acked.load(Ordering::SeqCst);
    db.backup(&dest).unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    assert!(!dest.join("LOCK").exists(), "the lock file is never copied");
    let copy = Bitcask::open(&dest, opts()).unwrap();
    // Keys 0..n exist for some n >= what was acknowledged before the call.
    let n = copy.key_count() as u64;
    assert!(n >= acked_before, "{n} keys < {acked_before} acknowledged");
    for i in 0..n {
        let want = if i + 500 < n {
            // Overwritten by the put of i+500, unless the copy was cut
            // between that put and its overwrite.
            None
        } else {
            Some(format!("v{i}"))
        };
        let got = String::from_utf8(copy.get(&key(i)).unwrap().expect("key in backup")).unwrap();
        match want {
            Some(v) => assert_eq!(got, v, "key {i}"),
            None if i + 501 < n => assert_eq!(got, format!("over{}", i + 500), "key {i}"),
            None => assert!(got == format!("over{}", i + 500) || got == format!("v{i}")),
        }
    }
    assert_eq!(copy.get(&key(n)).unwrap(), None);
    // The backup is a database of its own: writes to either stay there.
    copy.put(b"only-in-copy", b"1").unwrap();
    db.put(b"only-in-source", b"1").unwrap();
    assert_eq!(db.get(b"only-in-copy").unwrap(), None);
    assert_eq!(copy.get(b"only-in-source").unwrap(), None);
}

#[test]
fn full_data_files_are_hard_linked_and_the_active_one_copied() {
    let tmp = TempDir::new("backup-links");
    let db = Bitcask::open(tmp.db(), opts()).unwrap();
    for i in 0..2000 {
        db.put(&key(i), b"some value bytes").unwrap();
    }
    let dest = tmp.path().join("copy");
    fs::create_dir(&dest).unwrap(); // an empty directory is fine
    db.backup(&dest).unwrap();
    let files = common::data_files(&dest);
    assert!(files.len() > 3);
    for (n, file) in files.iter().enumerate() {
        let source = tmp.db().join(file.file_name().unwrap());
        let same_inode = fs::metadata(file).unwrap().ino() == fs::metadata(&source).unwrap().ino();
        assert_eq!(same_inode, n + 1 < files.len(), "{}", file.display());
    }
    let copy = Bitcask::open(&dest, opts()).unwrap();
    for i in 0..2000 {
        assert_eq!(
            copy.get(&key(i)).unwrap().as_deref(),
            Some(&b"some value bytes"[..])
        );
    }
    // A merge in the copy deletes its names only.
    copy.put(&key(0), b"new").unwrap();
    copy.merge().unwrap();
    drop(copy);
    assert_eq!(
        db.get(&key(0)).unwrap().as_deref(),
        Some(&b"some value bytes"[..])
    );
    drop(db);
    let db = Bitcask::open(tmp.db(), opts()).unwrap();
    assert_eq!(db.key_count(), 2000);
}

#[test]
fn a_backup_refuses_a_destination_that_is_not_empty_and_changes_nothing() {
    let tmp = TempDir::new("backup-bad");
    let db = Bitcask::open(tmp.db(), opts()).unwrap();
    db.put(b"k", b"v").unwrap();
    let full = tmp.path().join("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("precious"), b"mine").unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, b"x").unwrap();
    for (dest, why) in [
        (&full, "not empty"),
        (&file, "not a directory"),
        (&tmp.db(), "database itself"),
    ] {
        match db.backup(dest) {
            Err(Error::InvalidArgument(msg)) => assert!(msg.contains(why), "{msg}"),
            other => panic!("backup into {}: {other:?}", dest.display()),
        }
    }
    assert_eq!(fs::read_dir(&full).unwrap().count(), 1);
    assert_eq!(fs::read(&file).unwrap(), b"x");
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// Across file systems nothing can be hard-linked: every file is copied,
/// and the copy is a database of its own with everything in it.
#[test]
fn a_backup_onto_another_file_system_copies_every_file() {
    let tmp = TempDir::new("backup-cross-fs");
    let db = Bitcask::open(tmp.db(), opts()).unwrap();
    for i in 0..2000 {
        db.put(&key(i), format!("value {i}").as_bytes()).unwrap();
    }
    for i in (0..2000).step_by(3) {
        db.delete(&key(i)).unwrap();
    }
    let other = TempDir::on_another_file_system(tmp.path(), "backup-dest");
    let dest = other.path().join("backup");
    let source_dev = fs::metadata(tmp.db()).unwrap().dev();
    assert_ne!(fs::metadata(other.path()).unwrap().dev(), source_dev);
    db.backup(&dest).unwrap();
    let files = common::data_files(&dest);
    assert_eq!(files.len(), db.data_file_count());
    for file in &files {
        let copy = fs::metadata(file).unwrap();
        let source = fs::metadata(tmp.db().join(file.file_name().unwrap())).unwrap();
        assert_ne!(copy.dev(), source_dev);
        assert_eq!(copy.nlink(), 1, "{}", file.display());
        if file != files.last().unwrap() {
            // A full file whole, the active one up to its last record.
            assert_eq!(copy.len(), source.len(), "{}", file.display());
        }
    }
    let copy = Bitcask::open(&dest, opts()).unwrap();
    assert_eq!(copy.key_count(), db.key_count());
    for i in 0..2000 {
        let want = (i % 3 != 0).then(|| format!("value {i}").into_bytes());
        assert_eq!(copy.get(&key(i)).unwrap(), want, "key {i}");
    }
}

//! The appender under injected faults (tests/faultshim): what a failing
//! `fallocate` or `fdatasync` does to the files and to the writes after it.
//!
//! Pins: `seal` cutting the file only when the length the appender
//! recorded was larger, so that space a failing `fallocate` added
//! (ext4 extends the file when it runs out of space part-way) stayed after
//! the last record of a sealed file and later blocked open; `fallocate`
//! interrupted by a signal (EINTR) failing the write instead of being
//! retried; a delete of an absent key acknowledged after a failed
//! `fdatasync`, when every other write was refused.

mod common;
mod faultshim;

use std::io::{BufRead, BufReader};
use std::path::Path;

use bitcask::{Bitcask, Error, Options};
use common::{child_role, data_files, spawn_child, TempDir};
use faultshim::{injected, Fault, ShimConfig, Times};

/// Runs this binary's `test` in `role` on `db` under `fault`; returns its
/// output lines and the failures the shim injected. The child must exit 0.
fn run_under(test: &str, role: &str, db: &Path, fault: Fault) -> (Vec<String>, Vec<String>) {
    let mut config = ShimConfig::new(db);
    let log = db.with_extension("faults");
    config.log = Some(log.clone());
    config.fault = Some(fault);
    let mut child = spawn_child(test, role, db, &config.env());
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{role}: the child failed: {status}");
    (lines, injected(&log))
}

fn one_mib_files() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(1 << 20).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

const SEAL_TEST: &str = "a_file_sealed_after_fallocate_failed_part_way_ends_at_its_last_record";

#[test]
fn a_file_sealed_after_fallocate_failed_part_way_ends_at_its_last_record() {
    if let Some(dir) = child_role("seal") {
        let db = Bitcask::open(&dir, one_mib_files()).unwrap();
        // Its growth (64 KiB ahead) fails part-way, the file extended by
        // 32 KiB all the same; the smaller retry, for just this record,
        // succeeds.
        db.put(b"first", &[b'a'; 1000]).unwrap();
        // Does not fit: the first file is sealed, the second begins.
        db.put(b"second", &[b'b'; 1 << 20]).unwrap();
        db.put(b"third", &[b'c'; 10]).unwrap();
        db.close().unwrap();
        return;
    }
    let tmp = TempDir::new("seal");
    let mut fault = Fault::new("fallocate", 1, libc::ENOSPC, Times::Once);
    fault.partial = true;
    let (_, injected) = run_under(SEAL_TEST, "seal", &tmp.db(), fault);
    assert_eq!(injected.len(), 1, "{injected:?}");
    let files = data_files(&tmp.db());
    // The third record went after the second, which took a file of its own.
    assert_eq!(files.len(), 3);
    for (file, last) in files.iter().zip([[b'a'; 8], [b'b'; 8], [b'c'; 8]]) {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            bytes.ends_with(&last),
            "{} does not end with its last record: {} bytes, the last ones {:?}",
            file.display(),
            bytes.len(),
            &bytes[bytes.len() - 8..]
        );
    }
    let db = Bitcask::open(tmp.db(), one_mib_files()).unwrap();
    assert_eq!(db.get(b"first").unwrap(), Some(vec![b'a'; 1000]));
    assert_eq!(db.get(b"second").unwrap(), Some(vec![b'b'; 1 << 20]));
    assert_eq!(db.get(b"third").unwrap(), Some(vec![b'c'; 10]));
    db.close().unwrap();
}

const EINTR_TEST: &str = "an_interrupted_fallocate_is_retried";

#[test]
fn an_interrupted_fallocate_is_retried() {
    if let Some(dir) = child_role("eintr") {
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        // Both the growth and its smaller retry are interrupted once.
        db.put(b"key", b"value").unwrap();
        db.close().unwrap();
        return;
    }
    let tmp = TempDir::new("eintr");
    let fault = Fault::new("fallocate", 1, libc::EINTR, Times::Count(2));
    let (_, injected) = run_under(EINTR_TEST, "eintr", &tmp.db(), fault);
    assert_eq!(injected.len(), 2, "{injected:?}");
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    assert_eq!(db.get(b"key").unwrap().as_deref(), Some(&b"value"[..]));
    db.close().unwrap();
}

const REFUSE_TEST: &str = "after_a_failed_fdatasync_every_write_is_refused";

#[test]
fn after_a_failed_fdatasync_every_write_is_refused() {
    if let Some(dir) = child_role("refuse") {
        let mut options = Options::default();
        options.set_sync_writes(true);
        // fdatasync 1 makes the new file's header durable, 2 the first put.
        let db = Bitcask::open(&dir, options).unwrap();
        db.put(b"kept", b"synced").unwrap();
        match db.put(b"lost", b"its sync failed") {
            Err(Error::Io { source, .. }) => assert_eq!(source.raw_os_error(), Some(libc::EIO)),
            other => panic!("the put whose fdatasync failed: {other:?}"),
        }
        let refused = |what: &str, result: bitcask::Result<()>| match result {
            Err(Error::WritesRefused(why)) => assert!(why.contains("reopen"), "{what}: {why}"),
            other => panic!("{what} after a failed fdatasync: {other:?}"),
        };
        refused("put", db.put(b"new", b"value"));
        refused("put of the synced key", db.put(b"kept", b"again"));
        refused("delete", db.delete(b"kept"));
        refused("delete of an absent key", db.delete(b"absent"));
        let mut batch = db.batch();
        batch.put(b"in-batch", b"value").unwrap();
        batch.delete(b"kept").unwrap();
        refused("batch", db.write(&mut batch));
        let mut absent_only = db.batch();
        absent_only.delete(b"absent").unwrap();
        refused("batch deleting an absent key", db.write(&mut absent_only));
        refused("empty batch", db.write(&mut db.batch()));
        refused("sync", db.sync());
        refused("merge", db.merge());
        // Reads go on.
        assert_eq!(db.get(b"kept").unwrap().as_deref(), Some(&b"synced"[..]));
        assert_eq!(db.get(b"new").unwrap(), None);
        refused("close", db.close());
        println!("\nALL REFUSED");
        return;
    }
    let tmp = TempDir::new("refuse");
    let fault = Fault::new("fdatasync", 2 + 1, libc::EIO, Times::Once);
    let (lines, injected) = run_under(REFUSE_TEST, "refuse", &tmp.db(), fault);
    assert!(lines.iter().any(|l| l == "ALL REFUSED"), "{lines:?}");
    assert_eq!(injected.len(), 1, "{injected:?}");
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    assert_eq!(db.get(b"kept").unwrap().as_deref(), Some(&b"synced"[..]));
    for refused in [&b"new"[..], b"in-batch"] {
        assert_eq!(db.get(refused).unwrap(), None);
    }
    db.close().unwrap();
}

const UNSUPPORTED_TEST: &str = "without_fallocate_nothing_is_copied_into_space_never_allocated";

/// Where `fallocate` is unsupported (ext3, NFS, older ZFS), extending the
/// file instead leaves a hole that a copy through the map faults on (SIGBUS)
/// once the disk is full: appends must be positioned writes there, which
/// never leave the file longer than its records. (tests/full_disk.rs fills
/// an ext3 to the brim.)
#[test]
fn without_fallocate_nothing_is_copied_into_space_never_allocated() {
    if let Some(dir) = child_role("unsupported") {
        let db = Bitcask::open(&dir, one_mib_files()).unwrap();
        let file = &data_files(&dir)[0];
        let mut end = 16;
        for i in 0..300u32 {
            let value = vec![b'v'; 100 + i as usize];
            db.put(format!("key{i:03}").as_bytes(), &value).unwrap();
            // Header: CRC, type, key length, value length (varint), CRC.
            let value_len_bytes = if value.len() < 128 { 1 } else { 2 };
            end += 4 + 1 + 1 + value_len_bytes + 4 + 6 + value.len() as u64;
            let len = std::fs::metadata(file).unwrap().len();
            assert_eq!(len, end, "after put {i}: the file grew past its records");
        }
        db.put(b"big", &vec![b'b'; 2 << 20]).unwrap();
        db.close().unwrap();
        return;
    }
    let tmp = TempDir::new("unsupported");
    let fault = Fault::new("fallocate", 1, libc::EOPNOTSUPP, Times::FromThenOn);
    let (_, injected) = run_under(UNSUPPORTED_TEST, "unsupported", &tmp.db(), fault);
    assert!(!injected.is_empty());
    let db = Bitcask::open(tmp.db(), one_mib_files()).unwrap();
    for i in 0..300u32 {
        let value = vec![b'v'; 100 + i as usize];
        assert_eq!(
            db.get(format!("key{i:03}").as_bytes()).unwrap(),
            Some(value)
        );
    }
    assert_eq!(db.get(b"big").unwrap().map(|v| v.len()), Some(2 << 20));
    db.close().unwrap();
}

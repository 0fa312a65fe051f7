//! The active file's page cache comes in huge pages for a writer that does
//! not sync often, and in 4 KiB pages for one that does
//! (`Appender::syncs_often`): a copy into a clean huge page dirties all of
//! it, so each sync of a writer that syncs often would write 2 MiB.
//!
//! What is checked is what the kernel did: the database's file maps mapped
//! by huge page table entries (`FilePmdMapped` in `/proc/self/smaps`).
//! Where the kernel or the file system under the temp directory gives file
//! maps no huge pages at all (ext4 has large folios since Linux 6.16;
//! tmpfs only when its `huge` option says so), which a probe of a plain
//! file finds first, the test says so and checks only the values.
//!
//! Pins: a writer that syncs every 64 KiB getting huge pages (with
//! `syncs_often` always false it fails: 8192 KiB), and a writer that does
//! not sync getting none (with `advise_huge` doing nothing it fails).

mod common;

use std::path::Path;

use bitcask::{Bitcask, Options};
use common::{file_maps_get_huge_pages, huge_mapped_kib, TempDir};

/// 24 MiB of records at about 130 bytes each.
const KEYS: u64 = 190_000;

fn key(i: u64) -> Vec<u8> {
    format!("huge-{i:08}").into_bytes()
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}:").into_bytes();
    v.resize(100, b'a' + (i % 26) as u8);
    v
}

/// Writes every key, with a sync every `sync_every` puts (0: never), and
/// returns the KiB of the database's maps in huge pages just after.
fn write_all(db: &Bitcask, dir: &Path, sync_every: u64) -> u64 {
    for i in 0..KEYS {
        db.put(&key(i), &value(i)).unwrap();
        if sync_every > 0 && i % sync_every == sync_every - 1 {
            db.sync().unwrap();
        }
    }
    huge_mapped_kib(dir)
}

fn check_all(db: &Bitcask, when: &str) {
    for i in 0..KEYS {
        let got = db.get(&key(i)).unwrap();
        assert!(
            got.as_deref() == Some(&value(i)[..]),
            "{when}: key {i} holds the wrong value"
        );
    }
}

#[test]
fn a_writer_that_does_not_sync_often_gets_huge_pages_and_one_that_does_none() {
    let tmp = TempDir::new("huge-pages");
    let supported = file_maps_get_huge_pages(tmp.path());
    if !supported {
        eprintln!(
            "\n*** huge_pages: file maps under {} get no huge pages on this kernel or \
             file system (ext4 needs Linux 6.16); checking values only ***\n",
            tmp.path().display()
        );
    }
    // About 130 bytes a record: a sync every 500 puts is one per 64 KiB.
    for (name, sync_every) in [("quiet", 0), ("syncing", 500)] {
        let dir = tmp.path().join(name);
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        let huge_kib = write_all(&db, &dir, sync_every);
        eprintln!("huge_pages: {name} writer: {huge_kib} KiB of its file maps in huge pages");
        if supported {
            if sync_every == 0 {
                assert!(huge_kib >= 2048, "{name}: {huge_kib} KiB in huge pages");
            } else {
                assert_eq!(huge_kib, 0, "{name}: {huge_kib} KiB in huge pages");
            }
        }
        check_all(&db, name);
        db.close().unwrap();
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        check_all(&db, &format!("{name}, reopened"));
        db.close().unwrap();
    }
}

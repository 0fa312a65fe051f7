//! The writeback of the active file unmaps its written pages from the
//! writer's map first (`DataFile::unmap_written`, on the database's I/O
//! thread, every 4 MiB appended). This test writes well past several of
//! those steps with default options (records small enough to go through the
//! map) while readers check every acknowledged value through the same map,
//! then asks the kernel to drop the files' clean pages and checks every
//! value again, then reopens and checks once more.
//!
//! Pins: an unmapping that loses what was written (the pages must stay in
//! the page cache and stay dirty until written back), or that changes what
//! a reader sees. With `MADV_REMOVE` in place of `MADV_DONTNEED` (which
//! punches the range out of the file) it fails.

mod common;

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use bitcask::{Bitcask, Options};
use common::{data_files, Rng, TempDir};

/// 16 MiB of records at about 140 bytes each: four writeback steps.
const KEYS: u64 = 120_000;

fn key(i: u64) -> Vec<u8> {
    format!("wb-{i:08}").into_bytes()
}

/// Values of 20 to 219 bytes, each naming its key.
fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i}:").into_bytes();
    v.resize(20 + (i % 200) as usize, b'a' + (i % 26) as u8);
    v
}

fn check_all(db: &Bitcask, when: &str) {
    for i in 0..KEYS {
        let got = db.get(&key(i)).unwrap();
        assert!(
            got.as_deref() == Some(&value(i)[..]),
            "{when}: key {i} holds {:?}",
            got.map(|v| String::from_utf8_lossy(&v[..v.len().min(20)]).into_owned())
        );
    }
}

#[test]
fn records_written_back_after_their_pages_are_unmapped_read_back_whole() {
    let tmp = TempDir::new("writeback");
    let db = Arc::new(Bitcask::open(tmp.db(), Options::default()).unwrap());
    // Every key below this is written.
    let written = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (db, written) = (Arc::clone(&db), Arc::clone(&written));
            thread::spawn(move || {
                let mut rng = Rng::new(0x5EED + r);
                let mut checked = 0u64;
                loop {
                    let upto = written.load(Ordering::Acquire);
                    if upto == KEYS {
                        return checked;
                    }
                    if upto == 0 {
                        thread::yield_now();
                        continue;
                    }
                    let i = rng.below(upto);
                    let got = db.get(&key(i)).unwrap();
                    assert!(
                        got.as_deref() == Some(&value(i)[..]),
                        "a reader saw key {i} as {got:?} while the writer wrote"
                    );
                    checked += 1;
                }
            })
        })
        .collect();
    for i in 0..KEYS {
        db.put(&key(i), &value(i)).unwrap();
        written.store(i + 1, Ordering::Release);
    }
    for reader in readers {
        assert!(reader.join().unwrap() > 0, "a reader checked nothing");
    }
    check_all(&db, "after the writes");

    // Clean pages go (those written back already); a page whose dirty bit
    // the unmapping had lost would go too, and read back as zeros.
    for path in data_files(&tmp.db()) {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a plain system call on a descriptor this test owns.
        let advised =
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(advised, 0, "fadvise {}", path.display());
    }
    check_all(&db, "after the clean pages were dropped");
    let disk: u64 = data_files(&tmp.db())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        disk > 12 << 20,
        "only {disk} bytes written: too few writeback steps"
    );

    Arc::into_inner(db).unwrap().close().unwrap();
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    check_all(&db, "after a reopen");
}

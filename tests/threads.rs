//! The threads a database starts are its own and end with it: a writable
//! open starts "bitcask-worker" and "bitcask-io", a read-only open none,
//! and close ends them (the header promises it). One test in this file,
//! so that no other test's database is open in the process meanwhile.

mod common;

use std::time::{Duration, Instant};

use bitcask::{Bitcask, Options};
use common::TempDir;

/// The names of this process's threads that start with "bitcask-". A
/// thread names itself once it runs, so one just started may still carry
/// its parent's name: see [`task_count`].
fn bitcask_threads() -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let comm = task.unwrap().path().join("comm");
        // A thread may end between the listing and the read.
        if let Ok(name) = std::fs::read_to_string(comm) {
            let name = name.trim().to_string();
            if name.starts_with("bitcask-") {
                names.push(name);
            }
        }
    }
    names.sort();
    names
}

/// How many threads the process has: a new one counts from the moment
/// it is created, named or not.
fn task_count() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn a_writable_open_starts_two_threads_and_close_ends_them() {
    let tmp = TempDir::new("threads");
    assert_eq!(bitcask_threads(), Vec::<String>::new(), "before any open");

    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    // Enough appends for the I/O thread to have had hints to run (and
    // both threads long since named).
    for i in 0u32..50_000 {
        db.put(&i.to_be_bytes(), &[7u8; 100]).unwrap();
    }
    assert_eq!(bitcask_threads(), ["bitcask-io", "bitcask-worker"]);

    let before = task_count();
    let mut read_only = Options::default();
    read_only.set_read_only(true);
    let reader = Bitcask::open(tmp.db(), read_only).unwrap();
    assert_eq!(reader.key_count(), 50_000);
    assert_eq!(task_count(), before, "a read-only open starts no thread");
    drop(reader);

    db.close().unwrap();
    // Joined by close; the kernel may take a moment more to drop a joined
    // thread from /proc. The bound only decides how long a failure takes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bitcask_threads().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(bitcask_threads(), Vec::<String>::new(), "after close");
}

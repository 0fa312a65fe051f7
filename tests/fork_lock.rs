//! The directory lock belongs to the process that opened the database: a
//! child made by `fork()` without `exec` does not keep it alive once that
//! process has died, and a second open in the opening process is still
//! refused with `BITCASK_LOCKED`.
//!
//! Pins: the lock was an `flock`, which belongs to the open file and so is
//! shared with every child forked while the database was open; the README
//! promises that a crashed process never blocks the next open, and a child
//! that outlived its parent (a daemon's worker, a shell-out that forked
//! before exec) did block it.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use bitcask::{Bitcask, Error, Options};
use common::{child_command, child_role, TempDir};

const TEST_NAME: &str = "a_child_forked_without_exec_does_not_keep_the_lock_of_a_dead_parent";

#[test]
fn a_child_forked_without_exec_does_not_keep_the_lock_of_a_dead_parent() {
    if let Some(dir) = child_role("forker") {
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        db.put(b"written", b"before the fork").unwrap();
        // SAFETY: the forked child calls only read(2) and _exit(2), which
        // are async-signal-safe, as a child of a threaded process must.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // Lives on with every descriptor of its parent, until the test
            // closes its end of stdin (also if the test fails).
            let mut byte = 0u8;
            // SAFETY: a read into a local byte, then the exit of this process.
            unsafe {
                while libc::read(0, (&raw mut byte).cast(), 1) > 0 {}
                libc::_exit(0);
            }
        }
        assert!(pid > 0, "fork failed");
        println!("\nFORKED {pid}");
        // Held open until the test kills this process.
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        drop(db);
        return;
    }
    let tmp = TempDir::new("fork-lock");
    let mut child = child_command(TEST_NAME, "forker", &tmp.db(), &[])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let forked: libc::pid_t = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("FORKED ")
                .and_then(|p| p.trim().parse().ok())
        })
        .expect("the child never forked");
    // The control: the holder's lock is seen from another process.
    assert!(matches!(
        Bitcask::open(tmp.db(), Options::default()),
        Err(Error::Locked(_))
    ));
    child.kill().unwrap(); // SIGKILL: the opener dies without closing
    child.wait().unwrap();
    // SAFETY: signal 0 only checks that the process exists.
    assert_eq!(
        unsafe { libc::kill(forked, 0) },
        0,
        "the forked child is to outlive its parent"
    );
    let db = Bitcask::open(tmp.db(), Options::default())
        .expect("a forked child of a dead opener must not block open");
    assert_eq!(
        db.get(b"written").unwrap().as_deref(),
        Some(&b"before the fork"[..])
    );
    // One opener per directory, in this process too.
    assert!(matches!(
        Bitcask::open(tmp.db(), Options::default()),
        Err(Error::Locked(_))
    ));
    db.close().unwrap();
    // The forked child sees end-of-file and exits.
    drop(stdin);
}

//! The directory lock: one opener per database directory, in this process
//! or any other.
//!
//! Across processes it is a POSIX record lock (`fcntl(F_SETLK)`, a write
//! lock on the whole of `LOCK`). Such a lock belongs to the process, not to
//! the open file: the kernel drops it when the process dies, and a child
//! made by `fork()` does not inherit it, so a crashed process never blocks
//! the next open, even when a child it forked without `exec` lives on. (An
//! `flock`, as used before, belongs to the open file and is shared with
//! every forked child, which then kept a dead opener's lock alive.)
//!
//! Within one process a record lock does not exclude a second lock, and
//! closing any descriptor of the file releases it (as SQLite's `os_unix.c`
//! explains at length): so the process keeps a registry of the directories
//! it holds, by device and inode, checked before `LOCK` is even opened, and
//! a second open in the same process is refused from it. Nothing else in
//! the library opens `LOCK`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::log::filename::LOCK;

/// The directories this process holds, by (device, inode). Taking and
/// releasing a lock happen under this mutex, so that no thread opens the
/// lock file of a directory while another closes its descriptor of it.
static HELD: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    /// The open lock file (`None` once released).
    file: Option<File>,
    dir_id: (u64, u64),
}

impl DirLock {
    /// Takes the lock on `dir` without waiting, or fails with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let meta = std::fs::metadata(dir).map_err(|e| Error::io("stat", dir, e))?;
        let dir_id = (meta.dev(), meta.ino());
        let path = dir.join(LOCK);
        let locked = || {
            Error::Locked(format!(
                "{} is held by another opener (this process or another); close that \
                 handle first: one process at a time may open a database directory",
                path.display()
            ))
        };
        let mut held = HELD.lock();
        if held.contains(&dir_id) {
            // Opening LOCK here and closing it again would release the
            // holder's record lock.
            return Err(locked());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        match set_lock(&file, libc::F_WRLCK) {
            Ok(()) => {
                held.push(dir_id);
                Ok(DirLock {
                    file: Some(file),
                    dir_id,
                })
            }
            Err(e) if is_contended(&e) => Err(locked()),
            Err(e) => Err(Error::io("lock", &path, e)),
        }
    }
}

/// Sets (`F_WRLCK`) or clears (`F_UNLCK`) a record lock on the whole file,
/// without waiting.
fn set_lock(file: &File, kind: libc::c_int) -> io::Result<()> {
    // SAFETY: an all-zero flock is a valid value of this plain C struct.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // l_start 0, l_len 0: the whole file, however long it grows.
    loop {
        // SAFETY: fcntl on a descriptor `file` owns, with a pointer to a
        // flock that lives across the call.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn is_contended(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EACCES))
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let mut held = HELD.lock();
        if let Some(file) = self.file.take() {
            // Closing the descriptor releases the lock as well; unlocking
            // first makes the release explicit.
            let _ = set_lock(&file, libc::F_UNLCK);
            // Closed before the directory leaves the registry: no other
            // thread may have its own lock on this file yet, which this
            // close would release.
            drop(file);
        }
        held.retain(|id| *id != self.dir_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_in_one_process_is_refused_until_the_first_is_dropped() {
        let dir = std::env::temp_dir().join(format!("bitcask-lock-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DirLock::acquire(&dir).unwrap();
        assert!(matches!(DirLock::acquire(&dir), Err(Error::Locked(_))));
        drop(first);
        let again = DirLock::acquire(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

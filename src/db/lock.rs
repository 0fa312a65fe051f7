//! The directory lock: an exclusive `flock` on `LOCK` in the database
//! directory keeps one opener per directory, in this process or any other.
//! The kernel drops a flock when its holder dies, so a crashed process never
//! blocks the next open.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use fs2::FileExt;

use crate::error::{Error, Result};
use crate::log::filename::LOCK;

/// A held directory lock; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    file: File,
}

impl DirLock {
    /// Takes the lock on `dir` without waiting, or fails with [`Error::Locked`].
    pub fn acquire(dir: &Path) -> Result<DirLock> {
        let path = dir.join(LOCK);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open lock file", &path, e))?;
        // A flock belongs to the open file description, so a second open in
        // the same process conflicts with the first just as another process does.
        match FileExt::try_lock_exclusive(&file) {
            Ok(()) => Ok(DirLock { file }),
            Err(e) if is_contended(&e) => Err(Error::Locked(format!(
                "{} is held by another opener (this process or another); close that \
                 handle first: one process at a time may open a database directory",
                path.display()
            ))),
            Err(e) => Err(Error::io("lock", &path, e)),
        }
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.raw_os_error() == Some(libc::EWOULDBLOCK)
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Closing the file releases the lock as well; unlocking first makes
        // the release immediate even if the descriptor were duplicated.
        let _ = FileExt::unlock(&self.file);
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

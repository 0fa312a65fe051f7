//! Maintenance of a database that is not open: repair and verify take the
//! directory lock themselves (so they fail with [`Error::Locked`] while the
//! database is open) and do their work through the log layer
//! (`log/repair.rs`, `log/verify.rs`).

use std::io;
use std::path::Path;

use crate::db::lock::DirLock;
use crate::error::{Error, Result};
use crate::log::repair::{repair_dir, RepairOptions, RepairReport};
use crate::log::verify::{verify_dir, VerifyReport};

/// Repairs the database in `dir` (see [`crate::repair`]).
pub fn repair(dir: &Path, options: &RepairOptions) -> Result<RepairReport> {
    existing_dir(dir)?;
    let _lock = DirLock::acquire(dir)?;
    repair_dir(dir, options)
}

/// Verifies the database in `dir` (see [`crate::verify`]).
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    existing_dir(dir)?;
    // A directory no one can write to (read-only media, another user's)
    // cannot be written while it is checked either: no lock needed.
    let _lock = match DirLock::acquire(dir) {
        Ok(lock) => Some(lock),
        Err(Error::Io { source, .. })
            if matches!(
                source.raw_os_error(),
                Some(libc::EROFS | libc::EACCES | libc::EPERM)
            ) =>
        {
            None
        }
        Err(e) => return Err(e),
    };
    verify_dir(dir)
}

/// Fails unless `dir` is an existing directory: repair and verify never
/// create one.
fn existing_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::io(
            "open database directory",
            dir,
            io::Error::from_raw_os_error(libc::ENOTDIR),
        )),
        Err(e) => Err(Error::io("open database directory", dir, e)),
    }
}

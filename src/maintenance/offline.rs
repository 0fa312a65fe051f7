//! Maintenance of a database that is not open, or that another handle has
//! open: repair takes the directory lock (so it fails with
//! [`Error::Locked`] while the database is open); verify tries it, and
//! without it runs beside the writer (`log/verify.rs` says what that
//! changes). Both do their work through the log layer (`log/repair.rs`,
//! `log/verify.rs`).

use std::io;
use std::path::Path;

use crate::db::lock::DirLock;
use crate::error::{Error, Result};
use crate::log::repair::{repair_dir, RepairOptions, RepairReport};
use crate::log::verify::verify_dir;
use crate::log::verify_report::VerifyReport;

/// Repairs the database in `dir` (see [`crate::repair`]).
pub fn repair(
    dir: &Path,
    options: &RepairOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RepairReport> {
    existing_dir(dir)?;
    let _lock = DirLock::acquire(dir)?;
    repair_dir(dir, options, progress)
}

/// Verifies the database in `dir` (see [`crate::verify`]).
pub fn verify(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<VerifyReport> {
    existing_dir(dir)?;
    // With the lock, no one writes while verify reads. Without it, someone
    // may: a handle that holds it, or, where this process may not write the
    // lock file, a writer it cannot see. On read-only media no one can.
    let (_lock, beside_writer) = match DirLock::acquire(dir) {
        Ok(lock) => (Some(lock), false),
        Err(Error::Locked(_)) => (None, true),
        Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EROFS) => {
            (None, false)
        }
        Err(Error::Io { source, .. })
            if matches!(source.raw_os_error(), Some(libc::EACCES | libc::EPERM)) =>
        {
            (None, true)
        }
        Err(e) => return Err(e),
    };
    verify_dir(dir, beside_writer, progress)
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

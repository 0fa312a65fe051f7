//! Maintenance of a database opened for writing: merge, backup.

use std::path::Path;

use crate::args::{close, open, DbArgs};
use crate::failure::{lib, Outcome};

/// Merges, and prints the files and bytes before and after.
pub fn merge(db: &DbArgs) -> Outcome {
    let handle = open(db, false)?;
    let before = lib("stats", handle.stats())?;
    lib("merge", handle.merge())?;
    let after = lib("stats", handle.stats())?;
    println!(
        "merged: {} data files, {} bytes on disk (were {} data files, {} bytes, {} of \
         them reclaimable)",
        after.data_file_count,
        after.disk_bytes,
        before.data_file_count,
        before.disk_bytes,
        before.reclaimable_bytes
    );
    close(handle)
}

/// Copies the database into `dest`.
pub fn backup(db: &DbArgs, dest: &Path) -> Outcome {
    let handle = open(db, false)?;
    lib(
        &format!("backup to {}", dest.display()),
        handle.backup(dest),
    )?;
    close(handle)
}

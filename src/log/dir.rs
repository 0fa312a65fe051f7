//! The database directory as a whole: creating it, listing what it holds,
//! and making changes to it (files created, renamed, removed) durable.

use std::fs::{self, File};
use std::io;
use std::path::Path;

use super::filename::FileName;
use crate::error::{Error, Result};
use crate::failpoint;

/// Syncs a directory, so that files created, renamed or removed in it stay
/// so after a power loss.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| failpoint::fail("dir:sync").and_then(|()| d.sync_all()))
        .map_err(|e| Error::io("sync directory", dir, e))
}

/// Creates `dir` if it is missing, and syncs its parent so the new
/// directory survives a power loss.
pub fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            sync_dir(parent)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if dir.is_dir() {
                Ok(())
            } else {
                Err(Error::io(
                    "open database directory",
                    dir,
                    io::Error::from_raw_os_error(libc::ENOTDIR),
                ))
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| Error::io("create database directory", dir, e))
        }
        Err(e) => Err(Error::io("create database directory", dir, e)),
    }
}

/// Every name in `dir` that is the library's, with the name as found.
pub fn list(dir: &Path) -> Result<Vec<(FileName, String)>> {
    let mut found = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if let Some(parsed) = FileName::parse(&name) {
            found.push((parsed, name));
        }
    }
    Ok(found)
}

/// The ids of the data files in `dir`, ascending.
pub fn data_file_ids(dir: &Path) -> Result<Vec<u32>> {
    let mut ids: Vec<u32> = list(dir)?
        .into_iter()
        .filter_map(|(name, _)| match name {
            FileName::Data(id) => Some(id),
            _ => None,
        })
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Total size of the regular files in `dir` (not descending).
pub fn directory_bytes(dir: &Path) -> Result<u64> {
    let mut total = 0;
    let entries = fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        match entry.metadata() {
            Ok(meta) if meta.is_file() => total += meta.len(),
            Ok(_) => {}
            // Removed between the listing and the stat (a merge retiring it).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("stat", &entry.path(), e)),
        }
    }
    Ok(total)
}

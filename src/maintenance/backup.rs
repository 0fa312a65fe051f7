//! Backup: a consistent copy of an open database that opens as a database,
//! made while writes go on. The copy holds every write acknowledged before
//! the backup began (and possibly none after): the immutable data files and
//! their hint files as they are, and the active file up to the end of its
//! last record at that moment. Immutable files are hard-linked where the
//! file system allows it (they are never written again, only deleted by a
//! merge, which waits for the backup), and copied otherwise. The lock file
//! is never copied.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::db::engine::Engine;
use crate::db::files::FileMap;
use crate::error::{Error, Result};
use crate::log::data_file::DataFile;
use crate::log::dir::sync_dir;
use crate::log::filename::{data_file_name, hint_file_name};

/// Copies the database of `engine` into `dest`, a directory that must be
/// missing (it is created, parents included) or empty. The copy is
/// consistent: it opens as a database holding every write acknowledged
/// before this call. Writes and reads go on meanwhile; a merge waits for
/// the backup. On failure, what was created in `dest` is removed again.
pub fn backup(engine: &Engine, dest: &Path) -> Result<()> {
    let created_dir = prepare_destination(dest, engine.dir())?;
    let _maintenance = engine.maintenance();
    let (files, active) = {
        let writer = engine.writer();
        writer.check_open()?;
        (engine.files().snapshot(), writer.active())
    };
    crate::failpoint::hit("backup:files-listed");
    let mut made = Vec::new();
    let copied = copy_files(engine.dir(), dest, &files, active, &mut made)
        .and_then(|()| sync_dir(dest))
        .and_then(|()| match (created_dir, dest.parent()) {
            (true, Some(parent)) if !parent.as_os_str().is_empty() => sync_dir(parent),
            _ => Ok(()),
        });
    if copied.is_err() {
        for path in &made {
            let _ = fs::remove_file(path);
        }
        if created_dir {
            let _ = fs::remove_dir(dest);
        }
    }
    copied
}

/// Checks that `dest` is an empty directory or missing (then creates it);
/// returns whether it was created.
fn prepare_destination(dest: &Path, source: &Path) -> Result<bool> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "backup destination {} {why}",
            dest.display()
        )))
    };
    match fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                let same = fs::canonicalize(dest).ok() == fs::canonicalize(source).ok();
                return bad(if same {
                    "is the database itself"
                } else {
                    "is not empty: back up into a new or empty directory"
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest).map_err(|e| Error::io("create backup directory", dest, e))?;
            Ok(true)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            bad("is not a directory (or lies under a file)")
        }
        Err(e) => Err(Error::io("open backup directory", dest, e)),
    }
}

/// Links or copies every data file (and hint file) into `dest`; the active
/// file only up to `active.1`. Each file made is pushed onto `made`.
fn copy_files(
    source: &Path,
    dest: &Path,
    files: &FileMap,
    active: (u32, u64),
    made: &mut Vec<PathBuf>,
) -> Result<()> {
    for (&id, file) in files {
        let name = data_file_name(id);
        let target = dest.join(&name);
        if id == active.0 {
            made.push(target.clone());
            copy_prefix(file, &target, active.1)?;
            continue;
        }
        made.push(target.clone());
        link_or_copy(file.path(), &target)?;
        let hint_name = hint_file_name(id);
        let hint_target = dest.join(&hint_name);
        match link_or_copy(&source.join(&hint_name), &hint_target) {
            Ok(()) => made.push(hint_target),
            // No hint file (yet): the copy's open scans that data file.
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Hard-links `from` as `to`, or copies it (synced) where links do not work.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::io("link", from, e)),
        // Another file system, or one without hard links: copy instead.
        Err(_) => {
            let mut source = File::open(from).map_err(|e| Error::io("open", from, e))?;
            let len = source
                .metadata()
                .map_err(|e| Error::io("stat", from, e))?
                .len();
            write_copy(&mut source, from, to, len)
        }
    }
}

/// Copies the first `len` bytes of the active file into a new file `to`.
fn copy_prefix(file: &DataFile, to: &Path, len: u64) -> Result<()> {
    let mut source = File::open(file.path()).map_err(|e| Error::io("open", file.path(), e))?;
    write_copy(&mut source, file.path(), to, len)
}

/// Writes the first `len` bytes of `source` into a new file `to`, synced.
fn write_copy(source: &mut File, from: &Path, to: &Path, len: u64) -> Result<()> {
    let mut target = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| Error::io("create", to, e))?;
    let copied = io::copy(&mut source.take(len), &mut target)
        .map_err(|e| Error::io(&format!("copy {} to", from.display()), to, e))?;
    if copied != len {
        return Err(Error::io(
            &format!("copy {} to", from.display()),
            to,
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ended after {copied} of {len} bytes"),
            ),
        ));
    }
    target.sync_all().map_err(|e| Error::io("sync", to, e))
}

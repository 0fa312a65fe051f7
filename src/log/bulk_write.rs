//! Writing a large file beside a running writer, and replacing one, so that
//! the writer's own I/O does not wait behind it: what a checkpoint of the
//! index does (`maintenance/checkpoint.rs`), whose keydir file is about 40
//! bytes a key, 2 GB at 50M keys.
//!
//! Two ways such a file stalled the writer for hundreds of milliseconds
//! (measured with a probe writing 2 GB the way a checkpoint does, beside a
//! thread that appends at 140 MB/s and seals a file every 64 MiB: its
//! longest append 216-385 ms and seal 80-190 ms, against 2 ms and 4 ms
//! with no such file being written):
//!
//! - **Dirty pages.** Written at the speed of a copy, 2 GB of page cache
//!   lands dirty in a second or two, past the kernel's dirty limits, and
//!   every thread that dirties pages is then throttled
//!   (`balance_dirty_pages`), the writer's copies into its map too: the
//!   appends' stalls. [`PacedWriter`] starts the writeback of each
//!   [`PACE_STEP`] written and waits for the one before it, so the file
//!   never holds more than two steps of dirty pages (the probe's longest
//!   append: 1-12 ms).
//! - **Freeing the file it replaces.** A rename over a 2 GB predecessor
//!   frees its blocks in that one call, and on a file system mounted with
//!   `discard` (this project's machines) the device then discards 2 GB
//!   (0.3-0.5 s), during which the writer's fdatasync and directory sync
//!   wait: the seals' stalls. [`replace_gradually`] keeps the old file
//!   open across the rename and cuts it down [`FREE_STEP`] at a time, so
//!   no step holds the device long (the probe's longest seal: 13 ms).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How much a [`PacedWriter`] writes between two writeback steps: small
/// next to the kernel's dirty limits (gigabytes here), large enough that
/// each step is one sizeable request to the device.
pub const PACE_STEP: u64 = 8 << 20;
/// How much of a replaced file [`replace_gradually`] frees at a time: 32
/// MiB discarded took about 7 ms here (2 GB: 0.45 s).
pub const FREE_STEP: u64 = 32 << 20;

/// A file written front to back whose dirty pages are written back as it
/// goes, [`PACE_STEP`] at a time, waiting for each step before the last
/// (see the module documentation). Makes nothing durable: the caller syncs.
pub struct PacedWriter {
    file: File,
    /// Bytes written so far.
    written: u64,
    /// Where the step whose writeback was started last begins, and ends
    /// (up to there, writeback has been started).
    started_from: u64,
    started_to: u64,
    /// False for a writer made unpaced, or once the file system refused
    /// `sync_file_range` as unsupported: writes then go at copy speed.
    pacing: bool,
}

impl PacedWriter {
    /// Paces writes to `file`, which is empty and written from its start.
    pub fn new(file: File) -> PacedWriter {
        PacedWriter {
            file,
            written: 0,
            started_from: 0,
            started_to: 0,
            pacing: true,
        }
    }

    /// Writes to `file` unpaced: what a file that no writer runs beside
    /// needs (close's keydir file), in the same type as a paced one.
    pub fn unpaced(file: File) -> PacedWriter {
        PacedWriter {
            pacing: false,
            ..PacedWriter::new(file)
        }
    }

    /// The file, to sync it.
    pub fn get_ref(&self) -> &File {
        &self.file
    }

    /// Starts writeback of what was written since the last step, then
    /// waits until the step before it is on the device. An error is the
    /// file's write error: with a wait flag `sync_file_range` consumes it,
    /// so a later fdatasync would not report it, and it is returned here.
    fn step(&mut self) -> io::Result<()> {
        let (from, to) = (self.started_to, self.written);
        sync_file_range(&self.file, from, to - from, libc::SYNC_FILE_RANGE_WRITE)?;
        let (before_from, before_to) = (self.started_from, self.started_to);
        self.started_from = from;
        self.started_to = to;
        if before_to > before_from {
            sync_file_range(
                &self.file,
                before_from,
                before_to - before_from,
                libc::SYNC_FILE_RANGE_WAIT_BEFORE
                    | libc::SYNC_FILE_RANGE_WRITE
                    | libc::SYNC_FILE_RANGE_WAIT_AFTER,
            )?;
        }
        Ok(())
    }
}

impl Write for PacedWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.pacing && self.written - self.started_to >= PACE_STEP {
            match self.step() {
                Ok(()) => {}
                Err(e) if unsupported(&e) => self.pacing = false,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Whether `sync_file_range` failed because this file system (or file)
/// does not do it, not because the writes failed.
fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ESPIPE)
    )
}

fn sync_file_range(file: &File, from: u64, len: u64, flags: libc::c_uint) -> io::Result<()> {
    let (Ok(from), Ok(len)) = (libc::off64_t::try_from(from), libc::off64_t::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    // SAFETY: a plain system call on a descriptor `file` owns, no pointers.
    if unsafe { libc::sync_file_range(file.as_raw_fd(), from, len, flags) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Renames `from` over `to`, then frees the file `to` named before,
/// [`FREE_STEP`] at a time, instead of in the rename (see the module
/// documentation). Only the rename can fail: the old file, once renamed
/// over, has no name, and whatever a failed cut leaves of it is freed when
/// it is closed here. A process that had the old file open (a copy of the
/// directory in progress) sees it cut short: for a keydir file, a copy that
/// fails its checksum, which open does not use.
pub fn replace_gradually(from: &Path, to: &Path) -> io::Result<()> {
    // Open, the old file outlives its name; a file that cannot be opened
    // for writing is freed by the rename, as before.
    let old = OpenOptions::new().write(true).open(to).ok();
    fs::rename(from, to)?;
    if let Some(old) = old {
        free_in_steps(&old);
    }
    Ok(())
}

/// Cuts `file` down to nothing, [`FREE_STEP`] at a time, if no name is
/// left on it: a hard link elsewhere (a copy of the directory made with
/// `cp -al`) keeps its bytes.
fn free_in_steps(file: &File) {
    let Ok(meta) = file.metadata() else {
        return;
    };
    if meta.nlink() != 0 {
        return;
    }
    let mut len = meta.len();
    while len > 0 {
        len = len.saturating_sub(FREE_STEP);
        if file.set_len(len).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bitcask-bulk-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes across many steps, in pieces that straddle step boundaries,
    /// land whole and in order, and every step's writeback was started.
    #[test]
    fn paced_writes_keep_every_byte() {
        let dir = temp_dir("paced");
        let path = dir.join("f");
        let mut out = PacedWriter::new(File::create(&path).unwrap());
        let total = 3 * PACE_STEP as usize + 12_345;
        let bytes: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
        for piece in bytes.chunks(1_000_003) {
            out.write_all(piece).unwrap();
        }
        out.flush().unwrap();
        assert!(
            out.pacing,
            "sync_file_range refused on the temp directory's file system"
        );
        // Steps were taken all along: the last started within a step (and
        // a piece) of the end, the one before it waited for.
        assert!(out.started_to + PACE_STEP + 1_000_003 > total as u64);
        assert!(out.started_from >= PACE_STEP);
        drop(out);
        let mut back = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut back).unwrap();
        assert!(back == bytes, "paced writes changed the file's bytes");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The replaced file is cut to nothing, not only unlinked: a reader that
    /// had it open sees it empty, and the new file has the name.
    #[test]
    fn replace_frees_the_old_file() {
        let dir = temp_dir("replace");
        let (from, to) = (dir.join("new"), dir.join("old"));
        fs::write(&to, vec![1u8; 3 * FREE_STEP as usize + 5]).unwrap();
        fs::write(&from, b"new contents").unwrap();
        let reader = File::open(&to).unwrap();
        replace_gradually(&from, &to).unwrap();
        assert_eq!(
            reader.metadata().unwrap().len(),
            0,
            "the old file was not cut"
        );
        assert_eq!(fs::read(&to).unwrap(), b"new contents");
        assert!(!from.exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A replaced file that another name still links keeps its bytes.
    #[test]
    fn replace_keeps_a_linked_old_file() {
        let dir = temp_dir("linked");
        let (from, to, link) = (dir.join("new"), dir.join("old"), dir.join("link"));
        let old = vec![3u8; FREE_STEP as usize + 7];
        fs::write(&to, &old).unwrap();
        fs::hard_link(&to, &link).unwrap();
        fs::write(&from, b"new").unwrap();
        replace_gradually(&from, &to).unwrap();
        assert!(
            fs::read(&link).unwrap() == old,
            "a hard link's bytes were cut"
        );
        assert_eq!(fs::read(&to).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// With nothing to replace, it is a rename.
    #[test]
    fn replace_without_a_predecessor_renames() {
        let dir = temp_dir("fresh");
        let (from, to) = (dir.join("new"), dir.join("old"));
        fs::write(&from, b"x").unwrap();
        replace_gradually(&from, &to).unwrap();
        assert_eq!(fs::read(&to).unwrap(), b"x");
        fs::remove_dir_all(&dir).unwrap();
    }
}

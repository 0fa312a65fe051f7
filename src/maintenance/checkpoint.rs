//! Checkpoints: the index saved while the database runs, as the keydir file
//! (`db/saved_keydir.rs`, version 6), so that an open after a crash loads
//! it and scans only the records written after it, instead of loading
//! every hint file and scanning the whole newest data file.
//!
//! The writer queues one every `Options::checkpoint_bytes` of records (and
//! never after fewer bytes than the last checkpoint's file took); the
//! background thread takes it:
//!
//! 1. Under the writer lock, a few microseconds: the index's shards (a
//!    reference to each; a writer copies a shard still held before it
//!    changes it), the position the index describes (the active file's
//!    end), every data file with its length and live bytes, and the largest
//!    batch sequence number. No change is half applied under that lock, so
//!    the index describes exactly the records before the position.
//! 2. Without the lock: the active file is synced (fdatasync). The sealed
//!    files were synced when they were sealed, and every file's name when it
//!    was created. So everything the checkpoint names is durable before it
//!    exists: a power cut cannot leave a checkpoint naming bytes that are
//!    gone. A failed sync refuses further writes, as any failed sync does.
//! 3. The keydir file is written under a temporary name, each shard let go
//!    as soon as it is written, synced (so that a power cut leaves it to
//!    load), and renamed into place; written at the device's pace, the one
//!    it replaces freed in steps (`log/bulk_write.rs`), so that neither
//!    stalls the writer. The directory is not synced: a rename
//!    lost leaves the checkpoint before, which describes a shorter prefix
//!    of the log, or none.
//!
//! It runs under the maintenance lock, so no merge changes the files
//! meanwhile; once close has begun it stops at its next write (close then
//! writes the index itself). A merge that retires files later makes the checkpoint name
//! files that are gone: open then does not use it. Close writes its own
//! keydir file over the last checkpoint.

use std::fs;
use std::io::{self, Write};
use std::sync::Arc;

use crate::db::engine::Engine;
use crate::db::saved_keydir;
use crate::error::{Error, Result};
use crate::log::filename::KEYDIR;

/// Takes a checkpoint of `engine`'s index (see the module documentation).
/// Returns the size of the file written, or `None` if the index type has no
/// saved form.
pub fn take(engine: &Engine) -> Result<Option<u64>> {
    let _maintenance = engine.maintenance();
    engine.check_not_closing()?;
    let (layout, files, max_batch_seq, active) = {
        let mut writer = engine.writer();
        writer.check_writable()?;
        let Some(layout) = engine.index().checkpoint() else {
            return Ok(None);
        };
        let files = engine.saved_files(&writer)?;
        writer.checkpoint_taken();
        let active = Arc::clone(writer.active_file());
        (layout, files, writer.last_batch_seq(), active)
    };
    crate::failpoint::hit("checkpoint:taken");
    // Durable before anything names it (step 2).
    if let Err(e) = active.file().sync_data() {
        let err = Error::io("sync", active.path(), e);
        engine.writer().refuse_after(&err);
        return Err(err);
    }
    crate::failpoint::hit("checkpoint:synced");
    let dir = engine.dir();
    saved_keydir::save(
        dir,
        saved_keydir::Writer::Checkpoint,
        &files,
        max_batch_seq,
        |out| layout(&mut StopAtClose { out, engine }),
    )?;
    crate::failpoint::hit("checkpoint:written");
    let path = dir.join(KEYDIR);
    let size = fs::metadata(&path).map_err(|e| Error::io("stat", &path, e))?;
    Ok(Some(size.len()))
}

/// The keydir file's writer, failing once close has begun: close waits for
/// the maintenance lock, and writes the index itself, so a checkpoint of a
/// large index (hundreds of MB at 10M keys) stops at its next write instead
/// of holding close up.
struct StopAtClose<'a> {
    out: &'a mut dyn Write,
    engine: &'a Engine,
}

impl Write for StopAtClose<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.engine
            .check_not_closing()
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

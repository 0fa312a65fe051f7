//! The engine: a directory of append-only data files and the keydir that
//! points into them. A put or delete is one append under the writer lock
//! (`writer.rs`); a get is one keydir lookup and one positioned read, in
//! parallel with other gets and with writes. Iterators and folds read a
//! snapshot of the keydir (`iter.rs`); a write batch is one append ending
//! in a commit record; synced puts are committed in groups
//! (`group_commit.rs`). Opening is in `open.rs`; merge, backup and the
//! background thread (in `maintenance/`) work on the engine through the
//! accessors at the end of its `impl`.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};

use super::batch::Batch;
use super::files::{not_open, Files};
use super::group_commit::CommitQueue;
use super::iter::Iter;
use super::jobs::Jobs;
use super::lock::DirLock;
use super::saved_keydir::{self, SavedFile};
use super::writer::Writer;
use crate::error::{Error, Result};
use crate::keydir::{self, Index};
use crate::log::data_file::DataFile;
use crate::log::dir::directory_bytes;
use crate::log::format::{self, check_key, check_value, FILE_HEADER_LEN};
use crate::log::io_helper::{IoHelper, IoHint};
use crate::log::recovery_report::RecoveryReport;
use crate::log::{hint, recovery, RecordPos, RecordStart};
use crate::options::Options;

/// The engine behind a [`crate::Bitcask`] handle, shared with its
/// background thread.
///
/// Lock order: `maintenance` → `writer` → `files` → the index's own locks
/// (its shards). A thread that holds one of these may take the ones after
/// it, never one before it. The commit queue's lock is taken before the
/// writer lock and never while holding it.
pub struct Engine {
    pub(super) dir: PathBuf,
    pub(super) options: Options,
    /// The keydir. Shared with the writer, which changes it.
    pub(super) index: Arc<dyn Index>,
    /// Every data file, the active one included. Shared with the writer,
    /// which adds a file at each rollover.
    pub(super) files: Arc<Files>,
    pub(super) writer: Mutex<Writer>,
    /// Held by whatever adds or removes files other than the writer: a
    /// merge, a hint write, a backup. One at a time; the others wait.
    pub(super) maintenance: Mutex<()>,
    /// Work for the background thread. Shared with the writer, which
    /// queues the hint file of each file it seals.
    pub(super) jobs: Arc<Jobs>,
    /// Puts under `sync_writes` waiting to be committed together.
    pub(super) commit_queue: CommitQueue,
    /// The thread that starts writeback and prefaults grown space for the
    /// writer (see `log/io_helper.rs`); stopped at shutdown.
    pub(super) io: IoHelper,
    /// Set when shutdown begins: a running merge stops at its next step.
    pub(super) closing: AtomicBool,
    /// What open found and did (files from hints, a tail cut, ...).
    pub(super) recovery: RecoveryReport,
    /// Taken (released) by close, which may come while iterators still hold
    /// the engine's files: the next opener must not wait for them. Declared
    /// last so that otherwise it is released after everything else is dropped.
    pub(super) lock: Mutex<Option<DirLock>>,
}

/// A snapshot of a database's size and shape, from [`crate::Bitcask::stats`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live keys.
    pub key_count: u64,
    /// Data files on disk (the active one included).
    pub data_file_count: u64,
    /// Bytes of data files that hold no live record: what a merge would free.
    pub reclaimable_bytes: u64,
    /// Total size of the regular files in the database directory.
    pub disk_bytes: u64,
}

impl Engine {
    /// Stores `value` under `key` (see [`crate::Bitcask::put`]).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        let done = if self.options.sync_writes() {
            self.commit_queue.put(&self.writer, key, value)
        } else {
            self.writer.lock().put(key, value)
        };
        self.warm_up_index_memory();
        done
    }

    /// Deletes `key` (see [`crate::Bitcask::delete`]).
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        let done = self.writer.lock().delete(key);
        self.warm_up_index_memory();
        done
    }

    /// Calls `f` with the value of `key` (see [`crate::Bitcask::get_with`]).
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        check_key(key)?;
        let Some((start, file)) = self.locate_start(key) else {
            return Ok(None);
        };
        if let Some(file) = &file {
            if let Some(value) = file.value_at(start.offset, key)? {
                return Ok(Some(f(value)));
            }
        }
        // Another key's record (a tag alike), or one outside the map.
        let Some((pos, file)) = self.locate(key)? else {
            return Ok(None);
        };
        with_scratch(|buf| file.with_value(pos, key, buf, f).map(Some))
    }

    /// Copies the value of `key` into `buf` (see [`crate::Bitcask::get_into`]).
    pub fn get_into(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        check_key(key)?;
        // The files lock is held across the read instead of taking a
        // reference to the file: no user code runs inside, and a get is short.
        let files = self.files.read();
        let Some(start) = self.index.locate(key) else {
            return Ok(None);
        };
        if let Some(file) = files.get(&start.file_id) {
            if let Some(value) = file.value_at(start.offset, key)? {
                let needed = value.len();
                if needed > buf.len() {
                    return Err(Error::BufferTooSmall { needed });
                }
                buf[..needed].copy_from_slice(value);
                return Ok(Some(needed));
            }
        }
        // Another key's record (a tag alike), or one outside the map.
        let Some(pos) = self.index.get(key) else {
            return Ok(None);
        };
        let file = files
            .get(&pos.file_id)
            .ok_or_else(|| not_open(pos.file_id))?;
        let needed = format::value_len_of(pos.size, key.len()).ok_or_else(|| {
            Error::Internal(format!(
                "keydir entry {pos:?} cannot hold a key of {} bytes",
                key.len()
            ))
        })?;
        // A lost value's marker holds a description, not a value: the read
        // below reports it.
        if needed > buf.len() && !file.is_lost_value(pos) {
            return Err(Error::BufferTooSmall { needed });
        }
        with_scratch(|scratch| {
            file.with_value(pos, key, scratch, |value| {
                buf[..needed].copy_from_slice(value);
                Some(needed)
            })
        })
    }

    /// Makes every write so far durable (see [`crate::Bitcask::sync`]).
    pub fn sync(&self) -> Result<()> {
        self.writer.lock().sync()
    }

    /// A snapshot iterator (see [`crate::Bitcask::iter`]).
    pub fn iter(&self, prefix: &[u8], reverse: bool) -> Iter {
        // Under the writer lock no write is half applied: the snapshot is
        // taken between two writes (every acknowledged one in, none after),
        // and every file its positions point into is open. The keys are
        // copied after the lock is let go; writers go on meanwhile.
        let (files, snapshot) = {
            let _writer = self.writer.lock();
            (self.files.snapshot(), self.index.snapshot(prefix))
        };
        Iter::new(snapshot.collect(), files, reverse)
    }

    /// Walks a snapshot with `f` (see [`crate::Bitcask::fold`]).
    pub fn fold(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut iter = self.iter(prefix, false);
        while iter.valid() {
            // The value lives in the iterator's own buffer, not the thread's
            // scratch buffer, so gets made by `f` cannot overwrite it.
            let (key, value) = iter.current()?;
            if f(key, value).is_break() {
                break;
            }
            iter.next();
        }
        Ok(())
    }

    /// An empty write batch, limited to this database's `max_batch_bytes`.
    pub fn batch(&self) -> Batch {
        Batch::new(self.options.max_batch_bytes())
    }

    /// Commits `batch` (see [`crate::Bitcask::write`]).
    pub fn write(&self, batch: &mut Batch) -> Result<()> {
        let done = self.writer.lock().commit_batch(batch);
        self.warm_up_index_memory();
        done?;
        batch.clear();
        Ok(())
    }

    /// After a write, outside the writer lock: if the index took memory it
    /// had faulted in ahead of need, the I/O thread faults in more, so that
    /// no later write waits for it (see `keydir/hash/pages.rs`). Never on
    /// the caller's thread: without an I/O thread (a read-only open, whose
    /// writes are refused) nothing is done.
    fn warm_up_index_memory(&self) {
        if self.io.is_threaded() && keydir::index_memory_wanted() {
            self.io
                .give(IoHint::Call(Box::new(keydir::warm_up_index_memory)));
        }
    }

    /// Number of live keys.
    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    /// Number of data files.
    pub fn data_file_count(&self) -> usize {
        self.files.len()
    }

    /// How many syncs (fdatasync) the writer has issued since open.
    pub fn sync_count(&self) -> u64 {
        self.writer.lock().syncs()
    }

    /// How many data files open loaded from their hint files.
    pub fn hint_files_used(&self) -> usize {
        self.recovery.files_from_hint as usize
    }

    /// What open found and did.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// The database's size and shape now (see [`crate::Bitcask::stats`]).
    pub fn stats(&self) -> Result<Stats> {
        let (_, reclaimable_bytes) = self.writer.lock().usage_totals();
        Ok(Stats {
            key_count: self.index.len() as u64,
            data_file_count: self.data_file_count() as u64,
            reclaimable_bytes,
            disk_bytes: directory_bytes(&self.dir)?,
        })
    }

    /// The second half of close, once the background thread has stopped:
    /// refuses later writes, syncs, waits for a merge, hint write or backup
    /// running on another thread to stop, and releases the directory lock.
    /// A second call does nothing.
    pub fn shutdown(&self) -> Result<()> {
        let Some((active, sealed)) = self.writer.lock().close() else {
            return Ok(());
        };
        // Nothing appends any more: the hints still queued are only hints.
        self.io.stop();
        // A merge on another thread sees `closing` and stops at its next step.
        let maintenance = self.maintenance.lock();
        // The active file gets a hint too, so that the next open reads no
        // values at all. It is used only while the file keeps this length,
        // which the next write changes. Only a shortcut: failures are ignored.
        if sealed.is_ok() && active.len().is_ok_and(|len| len > FILE_HEADER_LEN) {
            if let Ok(bytes) = recovery::build_hint(&active) {
                let _ = hint::write_hint_file(&self.dir, active.id(), &bytes);
            }
        }
        // And the index itself, which the next open loads instead of every
        // hint file, if nothing changes meanwhile. A shortcut too.
        if sealed.is_ok() {
            let _ = self.save_keydir();
        }
        drop(maintenance);
        // Released now, not when the last iterator lets go of the engine.
        drop(self.lock.lock().take());
        sealed
    }

    /// Writes the keydir file (see `saved_keydir.rs`), with every data
    /// file as it is on disk. At close, when nothing changes any more.
    fn save_keydir(&self) -> Result<bool> {
        let writer = self.writer.lock();
        let Some(layout) = self.index.checkpoint() else {
            return Ok(false);
        };
        let files = self.saved_files(&writer)?;
        saved_keydir::save(
            &self.dir,
            saved_keydir::Writer::Close,
            &files,
            writer.last_batch_seq(),
            layout,
        )
        .map(|()| true)
    }

    /// Every data file as a keydir file records it, for the index as it is
    /// under `writer` (close's, or a checkpoint's): the active file up to
    /// its last record (what is grown ahead of it is not log), the others
    /// as long as they are.
    pub fn saved_files(&self, writer: &Writer) -> Result<Vec<SavedFile>> {
        let (active_id, end) = writer.active();
        self.files
            .snapshot()
            .iter()
            .map(|(&id, file)| {
                let len = if id == active_id { end } else { file.len()? };
                let live = writer.usage(id).live;
                Ok(SavedFile { id, len, live })
            })
            .collect()
    }

    /// Where `key`'s record probably starts (see [`Index::locate`]) and the
    /// file, if it is open; `None` if the key has no record. Both are
    /// taken under the files lock, as [`Engine::locate`]'s.
    fn locate_start(&self, key: &[u8]) -> Option<(RecordStart, Option<Arc<DataFile>>)> {
        let files = self.files.read();
        let start = self.index.locate(key)?;
        Some((start, files.get(&start.file_id).map(Arc::clone)))
    }

    /// The position of `key`'s record and the file it lies in. Both are
    /// taken under the files lock, so a merge that retires the file cannot
    /// come in between.
    fn locate(&self, key: &[u8]) -> Result<Option<(RecordPos, Arc<DataFile>)>> {
        let files = self.files.read();
        let Some(pos) = self.index.get(key) else {
            return Ok(None);
        };
        match files.get(&pos.file_id) {
            Some(file) => Ok(Some((pos, Arc::clone(file)))),
            None => Err(not_open(pos.file_id)),
        }
    }

    // What maintenance (merge, backup, the background thread) works with,
    // in the lock order.

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Takes the maintenance lock: one merge, hint write or backup at a time.
    pub fn maintenance(&self) -> MutexGuard<'_, ()> {
        if let Some(free) = self.maintenance.try_lock() {
            return free;
        }
        crate::failpoint::hit("maintenance:waiting");
        self.maintenance.lock()
    }

    /// Takes the writer lock.
    pub fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock()
    }

    /// The open data files.
    pub fn files(&self) -> &Files {
        &self.files
    }

    /// The keydir, for lookups (changes go through the writer).
    pub fn index(&self) -> &dyn Index {
        &*self.index
    }

    /// Work queued for the background thread.
    pub fn jobs(&self) -> &Jobs {
        &self.jobs
    }

    /// Marks the engine as closing: a running merge stops at its next step.
    pub fn begin_closing(&self) {
        self.closing.store(true, Ordering::Release);
        crate::failpoint::hit("close:begun");
    }

    /// Fails with [`Error::Closed`] once close has begun.
    pub fn check_not_closing(&self) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::Closed(
                "the database is closing; the operation stopped".to_string(),
            ));
        }
        Ok(())
    }
}

thread_local! {
    /// Each thread's read buffer, reused across gets.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `f` with this thread's read buffer, taken out of its slot for the
/// call so that a nested get (from inside `f`) gets a buffer of its own.
fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    let result = f(&mut buf);
    // A buffer grown by a large value is not kept around.
    if buf.capacity() <= 1 << 20 {
        let _ = SCRATCH.try_with(|slot| slot.set(buf));
    }
    result
}

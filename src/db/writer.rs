//! The writer: the one place where the log and the index change together.
//! It lives behind the engine's writer lock, so that every change reaches
//! the index in the order its record reached the log, and holds what changes
//! with them: the active file's appender, the liveness counts, the batch
//! sequence, and whether the database is closed.
//!
//! Puts, deletes and batches come here from the database (`engine.rs`), a
//! group of synced puts from group commit, the switch of index entries from
//! merge, and the active file's end from backup. A rollover (the active file
//! is full) seals the old file, creates the next one and queues the old
//! one's hint file for the background thread.

use std::path::PathBuf;
use std::sync::Arc;

use super::batch::Batch;
use super::files::Files;
use super::jobs::Jobs;
use super::liveness::{FileUsage, Liveness};
use crate::error::{Error, Result};
use crate::failpoint;
use crate::keydir::Index;
use crate::log::appender::Appender;
use crate::log::data_file::DataFile;
use crate::log::format::{self, RecordKind, FILE_HEADER_LEN};
use crate::log::{Change, RecordPos};

/// The writer's state: see the module documentation.
pub struct Writer {
    appender: Appender,
    /// Set by close: writes are refused, and drop does not sync a second time.
    closed: bool,
    /// Sequence number of the next write batch: one more than the largest
    /// found at open, so it keeps growing across reopens.
    next_batch_seq: u64,
    /// Live bytes per data file, for `reclaimable_bytes` and merge.
    liveness: Liveness,
    /// What a rollover needs: where new files go and how large they grow,
    /// the set it adds them to, and the queue of hint files to write.
    dir: PathBuf,
    data_file_size: u64,
    index: Arc<dyn Index>,
    files: Arc<Files>,
    jobs: Arc<Jobs>,
    checkpoints: CheckpointClock,
}

/// When the next checkpoint of the index is due: after
/// `Options::checkpoint_bytes` of records, and never after fewer bytes than
/// the last checkpoint took (so that checkpoints never write more than
/// they save a scan of).
#[derive(Debug, Default)]
struct CheckpointClock {
    /// `checkpoint_bytes`; 0: none.
    every: u64,
    /// Bytes appended since the last checkpoint was taken.
    since: u64,
    /// Size of the last checkpoint's file.
    last_size: u64,
    /// Queued for the background thread and not yet done.
    queued: bool,
}

/// Where the writer's state comes from at open.
pub struct WriterParts {
    pub appender: Appender,
    pub next_batch_seq: u64,
    pub liveness: Liveness,
    pub dir: PathBuf,
    pub data_file_size: u64,
    pub index: Arc<dyn Index>,
    pub files: Arc<Files>,
    pub jobs: Arc<Jobs>,
    /// `Options::checkpoint_bytes`, or 0 for no checkpoints.
    pub checkpoint_bytes: u64,
}

/// One record of a group of synced puts: its key, and its encoded bytes.
pub struct EncodedPut<'a> {
    pub key: &'a [u8],
    pub record: &'a [u8],
}

impl Writer {
    /// The writer of a database just opened.
    pub fn new(parts: WriterParts) -> Writer {
        Writer {
            appender: parts.appender,
            closed: false,
            next_batch_seq: parts.next_batch_seq,
            liveness: parts.liveness,
            dir: parts.dir,
            data_file_size: parts.data_file_size,
            index: parts.index,
            files: parts.files,
            jobs: parts.jobs,
            checkpoints: CheckpointClock {
                every: parts.checkpoint_bytes,
                ..CheckpointClock::default()
            },
        }
    }

    /// Fails with [`Error::Closed`] once the database is closed, and with
    /// [`Error::WritesRefused`] once an unrecoverable failure happened.
    pub fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        self.appender.check_usable()
    }

    /// Fails with [`Error::Closed`] once the database is closed.
    pub fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed("the database is closed".to_string()));
        }
        Ok(())
    }

    /// Appends a put and points the index at it.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_writable()?;
        // The slot's cache miss overlaps encoding the record and copying it
        // into the file. (Asking for an overwritten key's entry as well,
        // between the two, measured no faster for overwrites and slower
        // for new keys: it waits for the slot.)
        self.index.prefetch(key);
        self.appender.encode(RecordKind::Put, key, value);
        let pos = self.append_buffered()?;
        let old = self.index.put(key, pos);
        self.liveness.replaced(Some(pos), old);
        Ok(())
    }

    /// Appends a tombstone for `key` and removes it from the index. An
    /// absent key writes nothing.
    pub fn delete(&mut self, key: &[u8]) -> Result<()> {
        self.check_writable()?;
        // The slot's cache miss overlaps the tombstone's encoding, which an
        // absent key leaves unused.
        self.index.prefetch(key);
        self.appender.encode(RecordKind::Delete, key, &[]);
        if self.index.get(key).is_none() {
            return Ok(());
        }
        self.append_buffered()?;
        let old = self.index.remove(key);
        self.liveness.replaced(None, old);
        Ok(())
    }

    /// Writes `batch` as one append ending in its commit record, then
    /// applies it to the index. The caller empties the batch on success.
    pub fn commit_batch(&mut self, batch: &Batch) -> Result<()> {
        self.check_writable()?;
        let mut applied: Vec<(&[u8], Option<PutAt>)> = Vec::with_capacity(batch.len());
        let mut buf = Vec::with_capacity(batch.encoded_len() as usize);
        for (key, op) in batch.ops() {
            let start = buf.len();
            match op {
                Some(value) => {
                    format::encode_record(RecordKind::BatchPut, key, value, &mut buf);
                    applied.push((key, Some((start, buf.len() - start))));
                }
                // Deleting an absent key writes nothing, as a plain delete.
                None if self.index.get(key).is_none() => {}
                None => {
                    format::encode_record(RecordKind::BatchDelete, key, &[], &mut buf);
                    applied.push((key, None));
                }
            }
        }
        if applied.is_empty() {
            return Ok(());
        }
        let count = u32::try_from(applied.len()).map_err(|_| {
            Error::InvalidArgument(format!("a batch of {} records is too many", applied.len()))
        })?;
        let seq = self.next_batch_seq;
        // Taken even if the write fails, so that a number is never reused.
        self.next_batch_seq = seq.saturating_add(1);
        format::encode_batch_commit(seq, count, &mut buf);
        // The whole batch goes into one file: open applies a batch only at
        // its commit record, and counts its records back from there.
        self.make_room(buf.len() as u64)?;
        let base = self.appender.append_encoded(&buf)?;
        self.appended(buf.len() as u64);
        let file_id = self.appender.file().id();
        let mut changes = Vec::with_capacity(applied.len());
        for (key, op) in applied {
            let (start, size) = op.unwrap_or((0, 0));
            let offset = base + start as u64;
            // Batches are at most 2 GiB (Options::MAX_MAX_BATCH_BYTES) and
            // start below 2 GiB, or at the start of a file.
            let (Ok(offset), Ok(size)) = (u32::try_from(offset), u32::try_from(size)) else {
                return Err(Error::Internal(format!(
                    "batch record at offset {offset} lies beyond 4 GiB"
                )));
            };
            changes.push(Change {
                key,
                pos: RecordPos {
                    file_id,
                    offset,
                    size,
                },
                delete: op.is_none(),
            });
        }
        // All at once: no reader sees part of the batch.
        let liveness = &mut self.liveness;
        self.index.apply(&changes, &mut |change, old| {
            liveness.replaced((!change.delete).then_some(change.pos), old);
        });
        Ok(())
    }

    /// Appends `run` (records of puts, `len` bytes in all, that fit one
    /// data file) with one write, and, by the sync policy, one fdatasync;
    /// then points the index at them, in order. Group commit's step.
    pub fn append_puts(&mut self, run: &[EncodedPut<'_>], len: u64) -> Result<()> {
        self.check_writable()?;
        self.make_room(len)?;
        let mut bytes = Vec::with_capacity(len as usize);
        for put in run {
            bytes.extend_from_slice(put.record);
        }
        let base = self.appender.append_encoded(&bytes)?;
        self.appended(len);
        let file_id = self.appender.file().id();
        let mut offset = base;
        for put in run {
            // Below 2^31 + one record (see Options::MAX_DATA_FILE_SIZE).
            let pos = RecordPos {
                file_id,
                offset: offset as u32,
                size: put.record.len() as u32,
            };
            offset += put.record.len() as u64;
            let old = self.index.put(put.key, pos);
            self.liveness.replaced(Some(pos), old);
        }
        Ok(())
    }

    /// Where the next append of `len` bytes goes: the active file's end,
    /// or the start of the next file if it does not fit (see
    /// [`Writer::make_room`]).
    pub fn next_append_at(&self, len: u64) -> u64 {
        let offset = self.appender.offset();
        if offset > FILE_HEADER_LEN && offset + len > self.data_file_size {
            FILE_HEADER_LEN
        } else {
            offset
        }
    }

    /// The size at which the active file rolls over.
    pub fn data_file_size(&self) -> u64 {
        self.data_file_size
    }

    /// Points `key` at `new` if it still points at `old`, moving the live
    /// bytes with it; returns whether it did. A merge moves the entries of
    /// the records it copied with it.
    pub fn replace_if(&mut self, key: &[u8], old: RecordPos, new: RecordPos) -> bool {
        let replaced = self.index.replace_if(key, old, new);
        if replaced {
            self.liveness.replaced(Some(new), Some(old));
        }
        replaced
    }

    /// Appends the record [`Appender::encode`] left in the appender's
    /// buffer, rolling over to a new data file first when the record would
    /// take the active one past `data_file_size`.
    fn append_buffered(&mut self) -> Result<RecordPos> {
        let len = self.appender.buffered_len();
        self.make_room(len)?;
        let offset = self.appender.append_buffered()?;
        self.appended(len);
        // Offsets stay below 2^31 + one record (see Options::MAX_DATA_FILE_SIZE).
        Ok(RecordPos {
            file_id: self.appender.file().id(),
            offset: offset as u32,
            size: len as u32,
        })
    }

    /// Counts `bytes` appended, and queues a checkpoint of the index for
    /// the background thread when one is due.
    fn appended(&mut self, bytes: u64) {
        let clock = &mut self.checkpoints;
        if clock.every == 0 {
            return;
        }
        clock.since = clock.since.saturating_add(bytes);
        if !clock.queued && clock.since >= clock.every.max(clock.last_size) {
            clock.queued = true;
            self.jobs.checkpoint();
        }
    }

    /// A checkpoint is being taken of the index as it is now: bytes
    /// appended from here on count toward the next.
    pub fn checkpoint_taken(&mut self) {
        self.checkpoints.since = 0;
    }

    /// The checkpoint queued is done: it wrote a file of `size` bytes, or
    /// none (`None`: it failed, or there was nothing to write).
    pub fn checkpoint_done(&mut self, size: Option<u64>) {
        let clock = &mut self.checkpoints;
        clock.queued = false;
        if let Some(size) = size {
            clock.last_size = size;
        }
    }

    /// Rolls over to a new data file first when `len` more bytes would take
    /// the active one past `data_file_size` (unless it is empty: what does
    /// not fit in an empty file gets a file of its own).
    fn make_room(&mut self, len: u64) -> Result<()> {
        if self.next_append_at(len) != self.appender.offset() {
            let next = self
                .appender
                .file()
                .id()
                .checked_add(1)
                .ok_or_else(ids_exhausted)?;
            self.roll_over(next)?;
        }
        Ok(())
    }

    /// Seals the active file (cut to its last record, synced) and starts
    /// data file `id` (larger than every existing one). The old file
    /// becomes immutable, and the background thread writes its hint file.
    pub fn roll_over(&mut self, id: u32) -> Result<()> {
        self.appender.seal()?;
        failpoint::hit("rollover:sealed");
        let file = Arc::new(DataFile::create(&self.dir, id)?);
        file.map_ahead(self.data_file_size);
        self.files.insert(Arc::clone(&file));
        let (old_id, old_end) = self.active();
        self.liveness.set_len(old_id, old_end);
        self.liveness.set_len(id, FILE_HEADER_LEN);
        let old_file = Arc::clone(self.appender.file());
        self.appender.switch_to(file);
        old_file.map_for_reads();
        self.jobs.write_hint(old_id);
        Ok(())
    }

    /// Makes every write so far durable (fdatasync of the active file).
    pub fn sync(&mut self) -> Result<()> {
        self.appender.sync()
    }

    /// Closes the writer: later writes are refused with [`Error::Closed`];
    /// the active file is sealed (cut to its last record, synced). Returns
    /// the active file with the seal's outcome, or `None` if it was closed
    /// already.
    pub fn close(&mut self) -> Option<(Arc<DataFile>, Result<()>)> {
        if self.closed {
            return None;
        }
        self.closed = true;
        let sealed = self.appender.seal();
        Some((Arc::clone(self.appender.file()), sealed))
    }

    /// Refuses further writes after a sync of the active file, made
    /// outside the writer, failed.
    pub fn refuse_after(&mut self, error: &Error) {
        self.appender.refuse_after(error);
    }

    /// The active file.
    pub fn active_file(&self) -> &Arc<DataFile> {
        self.appender.file()
    }

    /// The active file's id and where its records end.
    pub fn active(&self) -> (u32, u64) {
        (self.appender.file().id(), self.appender.offset())
    }

    /// The usage of data file `id`.
    pub fn usage(&self, id: u32) -> FileUsage {
        self.liveness.usage(id, self.active())
    }

    /// Bytes in data files, and how many of them a merge would free.
    pub fn usage_totals(&self) -> (u64, u64) {
        self.liveness.totals(self.active())
    }

    /// Records the length of a file a merge just installed.
    pub fn set_file_len(&mut self, id: u32, len: u64) {
        self.liveness.set_len(id, len);
    }

    /// Forgets the files a merge retired.
    pub fn forget_files(&mut self, ids: impl IntoIterator<Item = u32>) {
        for id in ids {
            self.liveness.remove(id);
        }
    }

    /// The largest batch sequence number used so far (0: none).
    pub fn last_batch_seq(&self) -> u64 {
        self.next_batch_seq.saturating_sub(1)
    }

    /// How many syncs (fdatasync) the appender has issued since open.
    pub fn syncs(&self) -> u64 {
        self.appender.syncs()
    }
}

/// Where a batch put lies in the encoded batch: (offset, size); a batch
/// delete has none.
type PutAt = (usize, usize);

/// The error for a database that has used up every data file id.
pub fn ids_exhausted() -> Error {
    Error::Internal("data file ids are exhausted (2^32 files)".to_string())
}

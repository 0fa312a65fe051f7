//! The engine: a directory of append-only data files and the keydir that
//! points into them. A put or delete is one append under the writer lock; a
//! get is one keydir lookup and one positioned read, in parallel with other
//! gets and with writes. Iterators and folds read a snapshot of the keydir
//! (see `iter.rs`); a write batch is one append ending in a commit record,
//! applied to the keydir under the writer lock. Merge (`merge.rs`), backup
//! (`backup.rs`) and the background thread (`worker.rs`) work on the same
//! [`Engine`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Mutex, MutexGuard, RwLock};

use crate::batch::Batch;
use crate::data_file::{self, DataFile};
use crate::error::{Error, Result};
use crate::format::{self, RecordKind, FILE_HEADER_LEN, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::group_commit::CommitQueue;
use crate::iter::Iter;
use crate::keydir::{new_index, Index, RecordPos};
use crate::liveness::Liveness;
use crate::load::{self, KeydirLoader};
use crate::lock::DirLock;
use crate::options::Options;
use crate::worker::{self, Jobs};
use crate::writer::{SyncPolicy, Writer};

/// An open database. Share it between threads by reference (or in an `Arc`):
/// every method takes `&self` except [`Bitcask::close`]. The operations are
/// those of [`Engine`], which it dereferences to; the handle itself owns the
/// background thread that writes hint files and merges automatically.
pub struct Bitcask {
    engine: Arc<Engine>,
    /// The background thread, until shutdown joins it.
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// The engine behind a [`Bitcask`] handle, shared with its background thread.
pub struct Engine {
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) index: Box<dyn Index>,
    /// Every data file, the active one included, by id.
    pub(crate) files: RwLock<BTreeMap<u32, Arc<DataFile>>>,
    pub(crate) writer: Mutex<WriterState>,
    /// Held by whatever adds or removes files other than the writer: a
    /// merge, a hint write, a backup. One at a time; the others wait.
    pub(crate) maintenance: Mutex<()>,
    /// Work for the background thread.
    pub(crate) jobs: Jobs,
    /// Puts under `sync_writes` waiting to be committed together.
    pub(crate) commit_queue: CommitQueue,
    /// Set when shutdown begins: a running merge stops at its next step.
    pub(crate) closing: AtomicBool,
    /// How many data files open loaded from their hint files.
    hints_used: usize,
    /// Taken (released) by close, which may come while iterators still hold
    /// the engine's files: the next opener must not wait for them. Declared
    /// last so that otherwise it is released after everything else is dropped.
    lock: Mutex<Option<DirLock>>,
}

/// What the writer lock guards: the active file and everything that changes
/// with the keydir.
pub(crate) struct WriterState {
    pub(crate) writer: Writer,
    /// Set by close: writes are refused, and drop does not sync a second time.
    pub(crate) closed: bool,
    /// Sequence number of the next write batch: one more than the largest
    /// found at open, so it keeps growing across reopens.
    pub(crate) next_batch_seq: u64,
    /// Live bytes per data file, for `reclaimable_bytes` and merge.
    pub(crate) liveness: Liveness,
}

impl WriterState {
    /// The active file's id and where its records end.
    pub(crate) fn active(&self) -> (u32, u64) {
        (self.writer.file().id(), self.writer.offset())
    }
}

/// A snapshot of a database's size and shape, from [`Engine::stats`].
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

impl Bitcask {
    /// Opens (creating if missing) the database in `dir`: takes the
    /// directory lock, loads the data files in id order (from their hint
    /// files where valid ones exist), rebuilds the keydir, cuts a torn tail
    /// off the newest file, and starts the background thread.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Bitcask> {
        let engine = Arc::new(Engine::open(dir.as_ref(), options)?);
        let worker = worker::spawn(Arc::clone(&engine))
            .map_err(|e| Error::io("start the background thread for", dir.as_ref(), e))?;
        Ok(Bitcask {
            engine,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Syncs and closes the database: stops the background thread (a merge
    /// in progress stops at its next step, leaving a consistent directory)
    /// and releases the directory lock. The database is closed even when
    /// the final sync fails, and the error says so.
    pub fn close(self) -> Result<()> {
        self.shutdown()
    }

    /// What [`Bitcask::close`] does, through a shared reference: for the C
    /// interface, whose iterators and batches may outlive the handle. Later
    /// writes fail with [`Error::Closed`]; a second call does nothing.
    pub(crate) fn shutdown(&self) -> Result<()> {
        self.engine.closing.store(true, Ordering::Release);
        self.engine.jobs.stop();
        if let Some(worker) = self.worker.lock().take() {
            // A panic there was already caught and reported by the thread.
            let _ = worker.join();
        }
        self.engine.shutdown()
    }
}

impl std::ops::Deref for Bitcask {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}

impl Drop for Bitcask {
    fn drop(&mut self) {
        // A Rust caller that never called close still gets its writes synced
        // and the thread stopped; there is no one to report a failure to.
        let _ = self.shutdown();
    }
}

impl Engine {
    fn open(dir: &Path, options: Options) -> Result<Engine> {
        let dir = dir.to_path_buf();
        ensure_dir(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let index = new_index(options.index_type());
        let ids = load::list_data_files(&dir)?;
        load::remove_leftovers(&dir, &ids)?;
        let mut files = BTreeMap::new();
        let mut liveness = Liveness::default();
        let mut active = None;
        let mut max_batch_seq = 0;
        let mut hints_used = 0;
        let mut unhinted = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let newest = i + 1 == ids.len();
            let mut sink = KeydirLoader {
                index: &*index,
                liveness: &mut liveness,
            };
            let loaded = load::load_file(&dir, id, newest, options.mmap_at_startup(), &mut sink)?;
            max_batch_seq = max_batch_seq.max(loaded.max_batch_seq);
            if loaded.from_hint {
                hints_used += 1;
            } else if !newest {
                unhinted.push(id);
            }
            liveness.set_len(id, loaded.end);
            if newest {
                loaded.file.map_ahead(options.data_file_size());
            } else {
                loaded.file.map_for_reads();
            }
            let (file, end) = (Arc::new(loaded.file), loaded.end);
            if newest {
                active = Some((Arc::clone(&file), end));
            }
            files.insert(id, file);
        }
        // Loading may have reserved more room than the keys took (a hint
        // file that puts one key several times) and freed large buffers:
        // give both back.
        index.shrink_to_fit();
        let (active, end) = match active {
            Some(found) => found,
            None => {
                let file = Arc::new(DataFile::create(&dir, 1)?);
                file.map_ahead(options.data_file_size());
                files.insert(1, Arc::clone(&file));
                (file, FILE_HEADER_LEN)
            }
        };
        let policy = SyncPolicy {
            every_write: options.sync_writes(),
            bytes_per_sync: options.bytes_per_sync(),
        };
        let jobs = Jobs::default();
        // Immutable files without a valid hint get one in the background.
        for id in unhinted {
            jobs.write_hint(id);
        }
        Ok(Engine {
            dir,
            options,
            index,
            files: RwLock::new(files),
            writer: Mutex::new(WriterState {
                writer: Writer::new(active, end, policy),
                closed: false,
                next_batch_seq: max_batch_seq.saturating_add(1),
                liveness,
            }),
            maintenance: Mutex::new(()),
            jobs,
            commit_queue: CommitQueue::default(),
            closing: AtomicBool::new(false),
            hints_used,
            lock: Mutex::new(Some(lock)),
        })
    }

    /// Stores `value` under `key`. The key must be 1 to [`MAX_KEY_LEN`]
    /// bytes, the value at most [`MAX_VALUE_LEN`] (empty is fine).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        check_key(key)?;
        check_value(value)?;
        if self.options.sync_writes() {
            return self.put_synced(key, value);
        }
        let mut state = self.writer.lock();
        check_open(&state)?;
        let pos = self.append(&mut state, RecordKind::Put, key, value)?;
        // Updated under the writer lock, so the keydir follows the log's order.
        let old = self.index.put(key, pos);
        state.liveness.replaced(Some(pos), old);
        start_writeback(state);
        Ok(())
    }

    /// Deletes `key`. Deleting an absent key succeeds and writes nothing.
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        check_key(key)?;
        let mut state = self.writer.lock();
        check_open(&state)?;
        if self.index.get(key).is_none() {
            return Ok(());
        }
        self.append(&mut state, RecordKind::Delete, key, &[])?;
        let old = self.index.remove(key);
        state.liveness.replaced(None, old);
        start_writeback(state);
        Ok(())
    }

    /// The value of `key`, or `None` if it is absent.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get_with(key, <[u8]>::to_vec)
    }

    /// Calls `f` with the value of `key` (borrowed for the call) and returns
    /// what it returns, or `None` if the key is absent.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        check_key(key)?;
        let Some((pos, file)) = self.locate(key)? else {
            return Ok(None);
        };
        with_scratch(|buf| file.with_value(pos, key, buf, f).map(Some))
    }

    /// Copies the value of `key` into the front of `buf` and returns its
    /// length, or `None` if the key is absent. When `buf` is too small this
    /// is [`Error::BufferTooSmall`] with the length needed, found without
    /// reading the value.
    pub fn get_into(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        check_key(key)?;
        // The files lock is held across the read instead of taking a
        // reference to the file: no user code runs inside, and a get is short.
        let files = self.files.read();
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
        if needed > buf.len() {
            return Err(Error::BufferTooSmall { needed });
        }
        with_scratch(|scratch| {
            file.with_value(pos, key, scratch, |value| {
                buf[..needed].copy_from_slice(value);
                Some(needed)
            })
        })
    }

    /// Makes every write so far durable (fdatasync of the active file; older
    /// files were synced when they filled up).
    pub fn sync(&self) -> Result<()> {
        self.writer.lock().writer.sync()
    }

    /// The second half of [`Bitcask::close`], once the background thread
    /// has stopped: refuses later writes, syncs, waits for a merge, hint
    /// write or backup running on another thread to stop, and releases the
    /// directory lock. A second call does nothing.
    fn shutdown(&self) -> Result<()> {
        let mut state = self.writer.lock();
        if state.closed {
            return Ok(());
        }
        state.closed = true;
        let synced = state.writer.seal();
        let active = Arc::clone(state.writer.file());
        drop(state);
        // A merge on another thread sees `closing` and stops at its next step.
        let maintenance = self.maintenance.lock();
        // The active file gets a hint too, so that the next open reads no
        // values at all. It is used only while the file keeps this length,
        // which the next write changes. Only a shortcut: failures are ignored.
        if synced.is_ok() && active.len().is_ok_and(|len| len > FILE_HEADER_LEN) {
            if let Ok(hint) = load::build_hint(&active) {
                let _ = crate::hint::write_hint_file(&self.dir, active.id(), &hint);
            }
        }
        drop(maintenance);
        // Released now, not when the last iterator lets go of the engine.
        drop(self.lock.lock().take());
        synced
    }

    /// An iterator over the keys that start with `prefix` (every key for an
    /// empty prefix) as they are now, in ascending unsigned byte order, or
    /// descending if `reverse`. Later writes do not change what it sees.
    pub fn iter(&self, prefix: &[u8], reverse: bool) -> Result<Iter> {
        // The files lock is held across the copy, so that every file the
        // copied positions point into is among the files the iterator keeps.
        let files = self.files.read();
        Ok(Iter::new(&*self.index, &files, prefix, reverse))
    }

    /// Calls `f` with each key that starts with `prefix`, and its value, in
    /// ascending key order, over a snapshot taken at the start (as
    /// [`Bitcask::iter`]). No engine lock is held while `f` runs, so it may
    /// call any method of this database. `ControlFlow::Break` stops the walk,
    /// which still returns `Ok`.
    pub fn fold(
        &self,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        let mut iter = self.iter(prefix, false)?;
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

    /// Commits `batch`: its puts and deletes become visible together, and
    /// after a crash at any moment either all of them or none are found at
    /// open. With `sync_writes` on, they are on stable storage when this
    /// returns `Ok`. On success the batch is emptied for reuse; on failure
    /// it is left as it was and nothing of it is visible.
    pub fn write(&self, batch: &mut Batch) -> Result<()> {
        let mut state = self.writer.lock();
        check_open(&state)?;
        state.writer.check_usable()?;
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
            drop(state);
            batch.clear();
            return Ok(());
        }
        let count = u32::try_from(applied.len()).map_err(|_| {
            Error::InvalidArgument(format!("a batch of {} records is too many", applied.len()))
        })?;
        let seq = state.next_batch_seq;
        // Taken even if the write fails, so that a number is never reused.
        state.next_batch_seq = seq.saturating_add(1);
        format::encode_batch_commit(seq, count, &mut buf);
        // The whole batch goes into one file: open applies a batch only at
        // its commit record, and counts its records back from there.
        self.make_room(&mut state, buf.len() as u64)?;
        let base = state.writer.append_encoded(&buf)?;
        let file_id = state.writer.file().id();
        for (key, op) in applied {
            match op {
                Some((start, size)) => {
                    let offset = base + start as u64;
                    // Batches are at most 2 GiB (Options::MAX_MAX_BATCH_BYTES)
                    // and start below 2 GiB, or at the start of a file.
                    let (Ok(offset), Ok(size)) = (u32::try_from(offset), u32::try_from(size))
                    else {
                        return Err(Error::Internal(format!(
                            "batch record at offset {offset} lies beyond 4 GiB"
                        )));
                    };
                    let pos = RecordPos {
                        file_id,
                        offset,
                        size,
                    };
                    let old = self.index.put(key, pos);
                    state.liveness.replaced(Some(pos), old);
                }
                None => {
                    let old = self.index.remove(key);
                    state.liveness.replaced(None, old);
                }
            }
        }
        start_writeback(state);
        batch.clear();
        Ok(())
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Number of live keys.
    pub fn key_count(&self) -> usize {
        self.index.len()
    }

    /// Number of data files.
    pub fn data_file_count(&self) -> usize {
        self.files.read().len()
    }

    /// How many syncs (fdatasync) the writer has issued since open: a
    /// measure of what `sync_writes` and `bytes_per_sync` cost.
    pub fn sync_count(&self) -> u64 {
        self.writer.lock().writer.syncs()
    }

    /// How many data files open loaded from their hint files instead of
    /// scanning them.
    pub fn hint_files_used(&self) -> usize {
        self.hints_used
    }

    /// The database's size and shape now. `reclaimable_bytes` is kept up
    /// to date by every write, never computed by a scan; `disk_bytes` is the
    /// size of every regular file in the directory (one `stat` each).
    pub fn stats(&self) -> Result<Stats> {
        let (_, reclaimable_bytes) = self.usage_totals();
        Ok(Stats {
            key_count: self.index.len() as u64,
            data_file_count: self.data_file_count() as u64,
            reclaimable_bytes,
            disk_bytes: directory_bytes(&self.dir)?,
        })
    }

    /// Bytes in data files, and how many of them a merge would free.
    pub(crate) fn usage_totals(&self) -> (u64, u64) {
        let state = self.writer.lock();
        state.liveness.totals(state.active())
    }

    /// Appends one record, rolling over to a new data file first when the
    /// record would take the active one past `data_file_size`.
    fn append(
        &self,
        state: &mut WriterState,
        kind: RecordKind,
        key: &[u8],
        value: &[u8],
    ) -> Result<RecordPos> {
        state.writer.check_usable()?;
        let len = format::record_len(key.len(), value.len()) as u64;
        self.make_room(state, len)?;
        let offset = state.writer.append(kind, key, value)?;
        // Offsets stay below 2^31 + one record (see Options::MAX_DATA_FILE_SIZE).
        Ok(RecordPos {
            file_id: state.writer.file().id(),
            offset: offset as u32,
            size: len as u32,
        })
    }

    /// Rolls over to a new data file first when `len` more bytes would take
    /// the active one past `data_file_size` (unless it is empty: what does
    /// not fit in an empty file gets a file of its own).
    pub(crate) fn make_room(&self, state: &mut WriterState, len: u64) -> Result<()> {
        let writer = &state.writer;
        if writer.offset() > FILE_HEADER_LEN
            && writer.offset() + len > self.options.data_file_size()
        {
            let next = writer
                .file()
                .id()
                .checked_add(1)
                .ok_or_else(ids_exhausted)?;
            self.roll_over(state, next)?;
        }
        Ok(())
    }

    /// Seals the active file (cut to its last record, synced) and starts data file `id` (larger than every
    /// existing one). The old file becomes immutable, and the background
    /// thread writes its hint file.
    pub(crate) fn roll_over(&self, state: &mut WriterState, id: u32) -> Result<()> {
        state.writer.seal()?;
        let file = Arc::new(DataFile::create(&self.dir, id)?);
        file.map_ahead(self.options.data_file_size());
        self.files.write().insert(id, Arc::clone(&file));
        let (old_id, old_end) = state.active();
        state.liveness.set_len(old_id, old_end);
        state.liveness.set_len(id, FILE_HEADER_LEN);
        let old_file = Arc::clone(state.writer.file());
        state.writer.switch_to(file);
        old_file.map_for_reads();
        self.jobs.write_hint(old_id);
        Ok(())
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
}

/// The error for a keydir entry that points into a file that is not open.
fn not_open(file_id: u32) -> Error {
    Error::Internal(format!(
        "the keydir points into data file {}, which is not open",
        data_file::data_file_name(file_id)
    ))
}

/// Where a batch put lies in the encoded batch: (offset, size); a batch
/// delete has none.
type PutAt = (usize, usize);

/// Lets go of the writer lock, then starts the writeback of what the
/// writer has appended since the last one, if that is due: the system call
/// may wait for the device's queue, and other writers should not wait too.
fn start_writeback(mut state: MutexGuard<'_, WriterState>) {
    let due = state.writer.writeback_due();
    drop(state);
    if let Some(range) = due {
        range.start();
    }
}

/// The error for a database that has used up every data file id.
pub(crate) fn ids_exhausted() -> Error {
    Error::Internal("data file ids are exhausted (2^32 files)".to_string())
}

/// Refuses writes once the database is closed.
pub(crate) fn check_open(state: &WriterState) -> Result<()> {
    if state.closed {
        return Err(Error::Closed("the database is closed".to_string()));
    }
    Ok(())
}

/// Checks a value's length.
pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidArgument(format!(
            "value is {} bytes, longer than the {MAX_VALUE_LEN} allowed",
            value.len()
        )));
    }
    Ok(())
}

/// Checks a key's length.
pub(crate) fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key is empty".to_string()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidArgument(format!(
            "key is {} bytes, longer than the {MAX_KEY_LEN} allowed",
            key.len()
        )));
    }
    Ok(())
}

/// Creates `dir` if it is missing, and syncs its parent so the new
/// directory survives a power loss.
fn ensure_dir(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => {
            let parent = match dir.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            data_file::sync_dir(parent)
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

/// Total size of the regular files in `dir` (not descending).
fn directory_bytes(dir: &Path) -> Result<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bitcask-engine-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn put_get_delete_and_reopen() {
        let dir = temp_dir("basic");
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        db.put(b"k", b"v1").unwrap();
        db.put(b"k", b"v2").unwrap();
        db.put(b"empty", b"").unwrap();
        db.put(b"gone", b"x").unwrap();
        db.delete(b"gone").unwrap();
        db.delete(b"never").unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
        assert_eq!(db.get(b"empty").unwrap().as_deref(), Some(&b""[..]));
        assert_eq!(db.get(b"gone").unwrap(), None);
        db.close().unwrap();
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
        assert_eq!(db.get(b"gone").unwrap(), None);
        assert_eq!(db.key_count(), 2);
        drop(db);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn get_into_reports_the_size_needed_without_changing_the_buffer() {
        let dir = temp_dir("into");
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        db.put(b"k", b"hello").unwrap();
        let mut small = [7u8; 4];
        assert!(matches!(
            db.get_into(b"k", &mut small),
            Err(Error::BufferTooSmall { needed: 5 })
        ));
        assert_eq!(small, [7; 4]);
        let mut exact = [0u8; 5];
        assert_eq!(db.get_into(b"k", &mut exact).unwrap(), Some(5));
        assert_eq!(&exact, b"hello");
        assert_eq!(db.get_into(b"missing", &mut exact).unwrap(), None);
        drop(db);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_keys_and_values_are_refused_and_change_nothing() {
        let dir = temp_dir("bad");
        let db = Bitcask::open(&dir, Options::default()).unwrap();
        db.put(b"k", b"v").unwrap();
        assert!(matches!(db.put(b"", b"v"), Err(Error::InvalidArgument(_))));
        assert!(matches!(
            db.put(&vec![1u8; MAX_KEY_LEN + 1], b"v"),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(db.delete(b""), Err(Error::InvalidArgument(_))));
        db.put(&vec![1u8; MAX_KEY_LEN], b"longest key").unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(db.key_count(), 2);
        drop(db);
        fs::remove_dir_all(&dir).unwrap();
    }
}

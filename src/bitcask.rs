//! [`Bitcask`], the handle a Rust program opens: the engine (`db/`) with its
//! background thread (`maintenance/worker.rs`), and every operation of the
//! database as a method. The C interface (`ffi/`) wraps this handle.

use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use crate::db::batch::Batch;
use crate::db::engine::{Engine, Stats};
use crate::db::follow::{self, Follower};
use crate::db::iter::Iter;
use crate::error::{Error, Result};
use crate::log::recovery_report::RecoveryReport;
use crate::log::repair::{RepairOptions, RepairReport};
use crate::log::verify_report::VerifyReport;
use crate::maintenance::{backup, merge, offline, worker};
use crate::options::Options;

/// An open database. Share it between threads by reference (or in an `Arc`):
/// every method takes `&self` except [`Bitcask::close`]. The handle owns
/// the background thread that writes hint files and merges automatically.
pub struct Bitcask {
    engine: Arc<Engine>,
    /// The background thread, until shutdown joins it (none when read-only).
    worker: Mutex<Option<JoinHandle<()>>>,
    /// For a read-only open: what it has read of the directory so far.
    follower: Option<Mutex<Follower>>,
}

impl Bitcask {
    /// Opens (creating if missing) the database in `dir`: takes the
    /// directory lock, loads the data files in id order (from their hint
    /// files where valid ones exist), rebuilds the keydir, cuts a torn tail
    /// off the newest file, and starts the background thread.
    ///
    /// With [`Options::set_read_only`] it takes no lock, writes nothing,
    /// starts no thread, and reads the newest file only up to its last
    /// complete record; the directory must hold a database already.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Bitcask> {
        if options.read_only() {
            let (engine, follower) = follow::open(dir.as_ref(), options)?;
            return Ok(Bitcask {
                engine: Arc::new(engine),
                worker: Mutex::new(None),
                follower: Some(Mutex::new(follower)),
            });
        }
        let engine = Arc::new(Engine::open(dir.as_ref(), options)?);
        let worker = worker::spawn(Arc::clone(&engine))
            .map_err(|e| Error::io("start the background thread for", dir.as_ref(), e))?;
        Ok(Bitcask {
            engine,
            worker: Mutex::new(Some(worker)),
            follower: None,
        })
    }

    /// Whether the handle was opened read-only ([`Options::set_read_only`]).
    pub fn is_read_only(&self) -> bool {
        self.follower.is_some()
    }

    /// Catches a read-only handle up with the process that writes the
    /// database: from then on it sees every record that process had
    /// completely written when this call read the directory. Cheap when the
    /// writer only appended, rolled over or merged since (it reads what is
    /// new); when it meets a merge's outputs out of order it loads the
    /// directory again, at about the cost of an open, and moves its index
    /// over key by key: a get meanwhile finds each key at its old or its
    /// new value. Iterators made before keep their snapshot. On a handle
    /// opened for writing, which always sees its own writes, this does
    /// nothing.
    pub fn refresh(&self) -> Result<()> {
        match &self.follower {
            Some(follower) => follower.lock().refresh(&self.engine).map(drop),
            None => Ok(()),
        }
    }

    /// Fails with [`Error::ReadOnly`] on a read-only handle, naming `what`
    /// was refused.
    pub(crate) fn check_writable(&self, what: &str) -> Result<()> {
        if self.follower.is_some() {
            return Err(Error::ReadOnly(format!(
                "{what} refused: {} was opened read-only (Options::set_read_only, \
                 bitcask_options_set_read_only); open it without that option to write",
                self.engine.dir().display()
            )));
        }
        Ok(())
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
        self.engine.begin_closing();
        self.engine.jobs().stop();
        if let Some(worker) = self.worker.lock().take() {
            // A panic there was already caught and reported by the thread.
            let _ = worker.join();
        }
        self.engine.shutdown()
    }

    /// Stores `value` under `key`. The key must be 1 to
    /// [`crate::MAX_KEY_LEN`] bytes, the value at most
    /// [`crate::MAX_VALUE_LEN`] (empty is fine). With `sync_writes` on, the
    /// write is on stable storage when this returns `Ok`.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.check_writable("put")?;
        self.engine.put(key, value)
    }

    /// Deletes `key`. Deleting an absent key succeeds and writes nothing.
    pub fn delete(&self, key: &[u8]) -> Result<()> {
        self.check_writable("delete")?;
        self.engine.delete(key)
    }

    /// The value of `key`, or `None` if it is absent.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.engine.get_with(key, <[u8]>::to_vec)
    }

    /// Calls `f` with the value of `key` (borrowed for the call) and returns
    /// what it returns, or `None` if the key is absent.
    pub fn get_with<R>(&self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.engine.get_with(key, f)
    }

    /// Copies the value of `key` into the front of `buf` and returns its
    /// length, or `None` if the key is absent. When `buf` is too small this
    /// is [`Error::BufferTooSmall`] with the length needed, found without
    /// reading the value.
    pub fn get_into(&self, key: &[u8], buf: &mut [u8]) -> Result<Option<usize>> {
        self.engine.get_into(key, buf)
    }

    /// Makes every write so far durable (fdatasync of the active file; older
    /// files were synced when they filled up).
    pub fn sync(&self) -> Result<()> {
        self.check_writable("sync")?;
        self.engine.sync()
    }

    /// An iterator over the keys that start with `prefix` (every key for an
    /// empty prefix) as they are now, in ascending unsigned byte order, or
    /// descending if `reverse`. Later writes do not change what it sees.
    pub fn iter(&self, prefix: &[u8], reverse: bool) -> Result<Iter> {
        Ok(self.engine.iter(prefix, reverse))
    }

    /// Calls `f` with each key that starts with `prefix`, and its value, in
    /// ascending key order, over a snapshot taken at the start (as
    /// [`Bitcask::iter`]). No engine lock is held while `f` runs, so it may
    /// call any method of this database. `ControlFlow::Break` stops the walk,
    /// which still returns `Ok`.
    pub fn fold(
        &self,
        prefix: &[u8],
        f: impl FnMut(&[u8], &[u8]) -> ControlFlow<()>,
    ) -> Result<()> {
        self.engine.fold(prefix, f)
    }

    /// An empty write batch, limited to this database's `max_batch_bytes`.
    pub fn batch(&self) -> Batch {
        self.engine.batch()
    }

    /// Commits `batch`: its puts and deletes become visible together, and
    /// after a crash at any moment either all of them or none are found at
    /// open. With `sync_writes` on, they are on stable storage when this
    /// returns `Ok`. On success the batch is emptied for reuse; on failure
    /// it is left as it was and nothing of it is visible.
    pub fn write(&self, batch: &mut Batch) -> Result<()> {
        self.check_writable("batch commit")?;
        self.engine.write(batch)
    }

    /// Merges, online: rewrites the live records of every data file that
    /// holds reclaimable bytes into new files, and deletes the old ones.
    /// Reads and writes go on meanwhile; a writer waits only while the
    /// keydir entries of an output are moved, a chunk at a time. Space is
    /// freed at once (a file held by a live iterator is freed when the
    /// iterator is). With nothing to reclaim this returns at once.
    ///
    /// One merge runs at a time: a second caller waits for the first to
    /// finish, then merges what is left. Close stops a merge at its next
    /// step ([`Error::Closed`]); so does a failure, and in both cases the
    /// directory stays consistent and opens with every key at its latest value.
    pub fn merge(&self) -> Result<()> {
        self.check_writable("merge")?;
        merge::merge(&self.engine)
    }

    /// Copies the database into `dest`, a directory that must be missing
    /// (it is created, parents included) or empty. The copy is consistent:
    /// it opens as a database holding every write acknowledged before this
    /// call. Writes and reads go on meanwhile; a merge waits for the backup.
    /// On failure, what was created in `dest` is removed again.
    pub fn backup(&self, dest: &Path) -> Result<()> {
        // It keeps the handle's own merges out while it links files, which
        // a read-only handle cannot do for the writer's.
        self.check_writable("backup")?;
        backup::backup(&self.engine, dest)
    }

    /// The database directory.
    pub fn dir(&self) -> &Path {
        self.engine.dir()
    }

    /// The options the database was opened with.
    pub fn options(&self) -> &Options {
        self.engine.options()
    }

    /// Number of live keys.
    pub fn key_count(&self) -> usize {
        self.engine.key_count()
    }

    /// Number of data files.
    pub fn data_file_count(&self) -> usize {
        self.engine.data_file_count()
    }

    /// How many syncs (fdatasync) the writer has issued since open: a
    /// measure of what `sync_writes` and `bytes_per_sync` cost.
    pub fn sync_count(&self) -> u64 {
        self.engine.sync_count()
    }

    /// How many data files open loaded from their hint files instead of
    /// scanning them.
    pub fn hint_files_used(&self) -> usize {
        self.engine.hint_files_used()
    }

    /// What open found and did: how many data files it loaded from hint
    /// files and how many it read, and whatever it changed: a tail cut off
    /// the newest data file (with the quarantine file that keeps its bytes,
    /// and how many intact records lay after the first bad one), zeros cut
    /// off sealed files, a torn header written again. `Display` gives it in
    /// one line; [`RecoveryReport::changed_nothing`] says whether there is
    /// anything to tell.
    pub fn recovery(&self) -> &RecoveryReport {
        self.engine.recovery()
    }

    /// The database's size and shape now. `reclaimable_bytes` is kept up
    /// to date by every write, never computed by a scan; `disk_bytes` is the
    /// size of every regular file in the directory (one `stat` each).
    pub fn stats(&self) -> Result<Stats> {
        if let Some(follower) = &self.follower {
            return follower.lock().stats(&self.engine);
        }
        self.engine.stats()
    }
}

/// Repairs the database in `dir`, which must not be open (this takes its
/// directory lock: [`Error::Locked`] while a handle has it open). Every data
/// file is read in full; a file with damaged ranges is rewritten with every
/// record that passes its checks, in order, stepping over each damaged
/// range to the next good record; the damaged bytes go to quarantine files
/// first (`NNNNNNNNN-OFFSET.quarantine`, never loaded, never removed by the
/// library); zeros at the end of a file are cut; every data file gets a
/// fresh hint file. With [`RepairOptions::restore_quarantined`], the intact
/// records of tails that open cut into quarantine come back too.
///
/// Afterwards the database opens (a sealed file no longer stops it), with
/// every intact record. A damaged range may have held the latest write of a
/// key: that key then shows its previous value, or comes back if the lost
/// write deleted it; the report lists every range. The write batches a
/// damaged range cut are taken out whole (their intact records go to the
/// quarantine file too, and are counted).
///
/// Fails with [`Error::Io`] if `dir` is not a directory or a file cannot be
/// read or written (what was done so far stays consistent: run it again),
/// and [`Error::Corruption`] for a data file of another format version.
pub fn repair(dir: impl AsRef<Path>, options: &RepairOptions) -> Result<RepairReport> {
    offline::repair(dir.as_ref(), options, &mut |_, _| {})
}

/// [`repair`], calling `progress(read, total)` as it reads the data files:
/// the bytes read so far, and the data files' bytes in all (about every
/// MiB, and after each file). Rewriting the damaged files afterwards is
/// not counted.
pub fn repair_with_progress(
    dir: impl AsRef<Path>,
    options: &RepairOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RepairReport> {
    offline::repair(dir.as_ref(), options, progress)
}

/// Checks the database in `dir` without changing anything: reads every
/// data file in full (finding every damaged range, not only the first, and
/// saying what open would do with each), checks every entry of every usable
/// hint file against the record it points at, and lists the quarantine
/// files. [`VerifyReport::is_clean`] says whether anything is damaged;
/// [`VerifyReport::notes`] lists what is not damage but worth knowing.
///
/// It first tries the directory lock. With it (the database is not open),
/// it runs alone: an open of the database meanwhile fails with
/// [`Error::Locked`], and the report is what open would find. Without it,
/// because a handle (of this process or another) has the database open for
/// writing, it runs beside that writer and takes no lock
/// ([`VerifyReport::beside_writer`]); so it does too where it may not write
/// the lock file, since a writer it cannot see may hold it. Beside a writer
/// it reads the data files listed when it starts, each as it is when opened:
///
/// - What it can conclude: every data file but the newest is immutable (a
///   writer seals a file before the next one begins, and a merge renames an
///   output into place only once it is complete), so each damaged range
///   reported in one is damage on disk, as alone; so is every hint problem
///   (hint files are written whole and renamed into place); and every record
///   of the newest file up to its first record that fails a check is good.
/// - What it cannot: what lies past that point in the newest file is not
///   read and is reported as a note, not damage (a record the writer is
///   appending, the space it allocated ahead, or damage: only a verify
///   without the writer can tell). Files the writer creates after the
///   listing (new data files, merge outputs) are not read; a file its merge
///   deletes before verify opens it is skipped, with a note. A damaged
///   range's [`crate::log::verify_report::DamagedRange::at_open`] is what an open would do now; the
///   writer's close writes hint files that may change it. The report says
///   nothing about which values the writer's keys hold.
///
/// Fails with [`Error::InvalidArgument`] if `dir` holds no data file,
/// [`Error::Io`] if it is not a directory or a file cannot be read, and
/// [`Error::Corruption`] for a data file of another format version.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    offline::verify(dir.as_ref(), &mut |_, _| {})
}

/// [`verify`], calling `progress(read, total)` as it reads: the bytes of
/// data files read so far, and in all (their lengths when it began), about
/// every MiB and after each file.
pub fn verify_with_progress(
    dir: impl AsRef<Path>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    offline::verify(dir.as_ref(), progress)
}

impl Drop for Bitcask {
    fn drop(&mut self) {
        // A Rust caller that never called close still gets its writes synced
        // and the thread stopped; there is no one to report a failure to.
        let _ = self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::fs;
    use std::path::PathBuf;

    use crate::log::format::MAX_KEY_LEN;

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

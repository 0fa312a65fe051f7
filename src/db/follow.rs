//! Read-only opens: an engine over a database directory that another
//! process may have open for writing, and [`Follower`], which catches it up
//! with that writer.
//!
//! A read-only engine takes no lock and never creates, writes, renames or
//! deletes anything: it loads every data file through `log/follow.rs`,
//! which reads the newest file up to its last good record and cuts nothing.
//! Its writer is closed from the start, so every write path refuses (the
//! handle, `bitcask.rs`, refuses first with a read-only error), and there is
//! no background thread.
//!
//! The files of the directory may change while they are loaded: a merge of
//! the writer deletes its inputs. Opening a file that the listing named and
//! that is gone since restarts the load; a file opened before it is deleted
//! stays readable through its descriptor, as an iterator's files do. Any
//! listing of the directory is a state that a writable open could meet
//! after a crash at that moment, and loading it in id order gives every key
//! its latest value (see `maintenance/merge/mod.rs` for why that holds at each
//! step of a merge).
//!
//! [`Follower::refresh`] first tries to go on from where the last load
//! stopped, at the cost of the records written since: that works while the
//! writer only appends, rolls over and finishes merges whose outputs it
//! read in order. Otherwise (a merge output appeared below the newest file
//! read, a file was replaced) it loads the directory again into a new index
//! and moves the handle's index to it key by key, so that a get in the
//! meantime finds every key at its old or its new position, never missing.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;

use super::engine::{Engine, Stats};
use super::files::{FileMap, Files};
use super::group_commit::CommitQueue;
use super::jobs::Jobs;
use super::liveness::Liveness;
use super::open::KeydirLoader;
use super::writer::{Writer, WriterParts};
use crate::error::{Error, Result};
use crate::keydir::{new_index, Index};
use crate::log::appender::{Appender, SyncPolicy};
use crate::log::data_file::DataFile;
use crate::log::dir::{data_file_ids, directory_bytes};
use crate::log::follow::{follow_file, FollowMode, Followed, Following};
use crate::log::format::FILE_HEADER_LEN;
use crate::log::io_helper::IoHelper;
use crate::log::recovery_report::RecoveryReport;
use crate::options::Options;

/// How many times a load starts again because a file it listed was deleted
/// before it could be opened (a merge finishing meanwhile), before it fails.
const LOAD_ATTEMPTS: usize = 16;

/// What a read-only handle has read of the directory so far.
pub struct Follower {
    /// The newest data file read.
    newest: u32,
    /// Where the next read of the newest file starts (0: its header was
    /// not completely written yet).
    resume: u64,
    /// Live bytes per file, for the statistics.
    liveness: Liveness,
    /// Set when a refresh failed after it had begun to change the index:
    /// the next one loads everything again.
    needs_reload: bool,
    /// Data files whose hint file turned out not to decode: read without it.
    rejected_hints: Vec<u32>,
}

/// A database directory loaded from scratch.
struct View {
    index: Arc<dyn Index>,
    files: FileMap,
    liveness: Liveness,
    newest: u32,
    resume: u64,
    hints_used: usize,
    hints_ignored: usize,
}

/// How a refresh went, for the tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refreshed {
    /// Went on from where the last load stopped.
    CaughtUp,
    /// Loaded the directory again.
    Reloaded,
}

/// Opens the database in `dir` read-only (see the module documentation).
pub fn open(dir: &Path, options: Options) -> Result<(Engine, Follower)> {
    let dir = dir.to_path_buf();
    let mut rejected_hints = Vec::new();
    let view = load_view(&dir, &options, &FileMap::new(), &mut rejected_hints)?;
    let newest_file = Arc::clone(&view.files[&view.newest]);
    let file_count = view.files.len();
    let files = Arc::new(Files::new(view.files));
    let jobs = Arc::new(Jobs::default());
    let mut writer = Writer::new(WriterParts {
        appender: Appender::new(
            newest_file,
            view.resume.max(FILE_HEADER_LEN),
            SyncPolicy {
                every_write: false,
                bytes_per_sync: 0,
            },
        ),
        next_batch_seq: 1,
        liveness: Liveness::default(),
        dir: dir.clone(),
        data_file_size: options.data_file_size(),
        index: Arc::clone(&view.index),
        files: Arc::clone(&files),
        jobs: Arc::clone(&jobs),
        checkpoint_bytes: 0,
    });
    // Closed from the start, so that every path through the writer refuses
    // to write. Closing does no I/O here: nothing was appended, and the
    // appender never grew the file.
    let _ = writer.close();
    let engine = Engine {
        dir,
        options,
        index: view.index,
        files,
        writer: Mutex::new(writer),
        maintenance: Mutex::new(()),
        jobs,
        // Nothing is ever appended: no thread for hints.
        io: IoHelper::none(),
        commit_queue: CommitQueue::default(),
        closing: AtomicBool::new(false),
        // A read-only open changes nothing: it only loads.
        recovery: RecoveryReport {
            files_from_hint: view.hints_used as u64,
            files_scanned: (file_count - view.hints_used) as u64,
            hints_ignored: view.hints_ignored as u64,
            ..RecoveryReport::default()
        },
        lock: Mutex::new(None),
    };
    let follower = Follower {
        newest: view.newest,
        resume: view.resume,
        liveness: view.liveness,
        needs_reload: false,
        rejected_hints,
    };
    Ok((engine, follower))
}

impl Follower {
    /// Catches `engine` (the read-only engine this follower was opened
    /// with) up with the directory as it is now.
    pub fn refresh(&mut self, engine: &Engine) -> Result<Refreshed> {
        if !self.needs_reload {
            match self.catch_up(engine) {
                Ok(true) => return Ok(Refreshed::CaughtUp),
                Ok(false) => {}
                Err(e) => {
                    self.needs_reload = true;
                    return Err(e);
                }
            }
        }
        self.reload(engine)?;
        Ok(Refreshed::Reloaded)
    }

    /// The database's size and shape as this handle sees it.
    pub fn stats(&self, engine: &Engine) -> Result<Stats> {
        let (_, reclaimable_bytes) = self.liveness.totals(self.newest_end());
        Ok(Stats {
            key_count: engine.index().len() as u64,
            data_file_count: engine.files().len() as u64,
            reclaimable_bytes,
            disk_bytes: directory_bytes(engine.dir())?,
        })
    }

    /// The newest file read, and where its read records end.
    fn newest_end(&self) -> (u32, u64) {
        (self.newest, self.resume.max(FILE_HEADER_LEN))
    }

    /// Goes on from where the last load stopped, if the directory has only
    /// grown since: files newer than the newest read, and files deleted
    /// that no key points into any more once the new ones are read. Returns
    /// false, having changed nothing, if that is not so, or once a new
    /// file's hint file turned out not to decode part-way (the reload that
    /// follows sets right the entries it applied); an error once it has
    /// begun to change the index.
    fn catch_up(&mut self, engine: &Engine) -> Result<bool> {
        let dir = engine.dir();
        let held = engine.files().snapshot();
        let listed = data_file_ids(dir)?;
        let mut new_files = Vec::new();
        for &id in &listed {
            // Either the file read before under this name, or a new one.
            let Some(file) = open_listed(dir, id, &held)? else {
                return Ok(false);
            };
            match held.get(&id) {
                Some(old) if Arc::ptr_eq(old, &file) => {}
                Some(_) => return Ok(false),
                None if id < self.newest => return Ok(false),
                None => new_files.push(file),
            }
        }
        // The newest file read is gone with nothing newer: the directory
        // was emptied or replaced.
        let Some(newest) = held.get(&self.newest).map(Arc::clone) else {
            return Ok(false);
        };
        if new_files.is_empty() && !listed.contains(&self.newest) {
            return Ok(false);
        }
        let use_mmap = engine.options().mmap_at_startup();
        let mode = |newest: bool, id: u32| FollowMode {
            newest,
            use_mmap,
            ignore_hint: self.rejected_hints.contains(&id),
        };
        let still_newest = new_files.is_empty();
        let mut sink = KeydirLoader::live(engine.index(), &mut self.liveness);
        let newest_mode = mode(still_newest, newest.id());
        // Only a file read from its start (its header was still being
        // written last time) may use its hint file, and so have it rejected.
        let Following::Read(followed) =
            follow_file(dir, &newest, self.resume, newest_mode, &mut sink)?
        else {
            self.rejected_hints.push(newest.id());
            return Ok(false);
        };
        self.resume = followed.resume;
        self.liveness
            .set_len(self.newest, self.resume.max(FILE_HEADER_LEN));
        let last = new_files.len();
        for (i, file) in new_files.into_iter().enumerate() {
            // Readable before any key points into it.
            file.map_for_reads();
            engine.files().insert(Arc::clone(&file));
            let mut sink = KeydirLoader::live(engine.index(), &mut self.liveness);
            let file_mode = mode(i + 1 == last, file.id());
            let followed = match follow_file(dir, &file, 0, file_mode, &mut sink)? {
                Following::Read(followed) => followed,
                Following::HintRejected => {
                    self.rejected_hints.push(file.id());
                    return Ok(false);
                }
            };
            self.newest = file.id();
            self.resume = followed.resume;
            self.liveness
                .set_len(self.newest, self.resume.max(FILE_HEADER_LEN));
        }
        // Files a merge deleted: once every output is read, no key points
        // into them, and they are forgotten. A key that still does had its
        // tombstone in a file the merge deleted before this handle read it
        // (a merge drops tombstones): only a full load can tell.
        let listed: BTreeSet<u32> = listed.into_iter().collect();
        let gone: Vec<u32> = held
            .keys()
            .filter(|id| !listed.contains(id))
            .copied()
            .collect();
        let active = self.newest_end();
        if gone
            .iter()
            .any(|&id| self.liveness.usage(id, active).live > 0)
        {
            self.needs_reload = true;
            return Ok(false);
        }
        engine.files().remove_all(gone.iter().copied());
        for id in gone {
            self.liveness.remove(id);
        }
        Ok(true)
    }

    /// Loads the directory again and moves the engine's index to it.
    fn reload(&mut self, engine: &Engine) -> Result<()> {
        let held = engine.files().snapshot();
        let view = load_view(
            engine.dir(),
            engine.options(),
            &held,
            &mut self.rejected_hints,
        )?;
        // The new view's files first, so that every position it holds
        // can be read as soon as a key points at it.
        for (id, file) in &view.files {
            if !held.get(id).is_some_and(|old| Arc::ptr_eq(old, file)) {
                engine.files().insert(Arc::clone(file));
            }
        }
        // This refresh is the only thread that changes either index: no
        // change is half applied while a snapshot is taken.
        let index = engine.index();
        for (key, pos) in view.index.snapshot(&[]).collect().iter() {
            if index.get(key) != Some(pos) {
                index.put(key, pos);
            }
        }
        let gone: Vec<Vec<u8>> = index
            .snapshot(&[])
            .collect()
            .iter()
            .filter(|(key, _)| view.index.get(key).is_none())
            .map(|(key, _)| key.to_vec())
            .collect();
        for key in gone {
            index.remove(&key);
        }
        let stale = held.keys().filter(|id| !view.files.contains_key(id));
        engine.files().remove_all(stale.copied());
        self.liveness = view.liveness;
        self.newest = view.newest;
        self.resume = view.resume;
        self.needs_reload = false;
        Ok(())
    }
}

/// Loads the database in `dir` from scratch, reusing the files of `held`
/// that are still the same; starts again when a listed file is deleted
/// before it is opened.
/// A file whose hint file turns out not to decode part-way (its id joins
/// `rejected_hints`) also starts the load again, without that hint, as a
/// writable open does; that does not count as an attempt.
fn load_view(
    dir: &Path,
    options: &Options,
    held: &FileMap,
    rejected_hints: &mut Vec<u32>,
) -> Result<View> {
    let mut attempts = 0;
    while attempts < LOAD_ATTEMPTS {
        match try_load(dir, options, held, rejected_hints)? {
            Attempt::Loaded(view) => return Ok(view),
            Attempt::FileGone => attempts += 1,
            Attempt::HintRejected(id) => rejected_hints.push(id),
        }
    }
    Err(Error::Io {
        context: format!(
            "load {} read-only: its data files kept being deleted while they were \
                 opened ({LOAD_ATTEMPTS} attempts)",
            dir.display()
        ),
        source: std::io::Error::from(std::io::ErrorKind::NotFound),
    })
}

/// How one attempt of [`load_view`] went.
enum Attempt {
    Loaded(View),
    /// A listed file was deleted before it could be opened.
    FileGone,
    /// The hint file of this data file did not decode.
    HintRejected(u32),
}

/// One attempt of [`load_view`].
fn try_load(
    dir: &Path,
    options: &Options,
    held: &FileMap,
    rejected_hints: &[u32],
) -> Result<Attempt> {
    let ids = data_file_ids(dir)?;
    let Some(&newest) = ids.last() else {
        return Err(no_database(dir));
    };
    let index: Arc<dyn Index> = new_index(options.index_type()).into();
    let mut liveness = Liveness::default();
    let mut files = FileMap::new();
    let (mut resume, mut hints_used, mut hints_ignored) = (0, 0, 0);
    for &id in &ids {
        let Some(file) = open_listed(dir, id, held)? else {
            return Ok(Attempt::FileGone);
        };
        let mut sink = KeydirLoader::unseen(&*index, &mut liveness);
        let is_newest = id == newest;
        let mode = FollowMode {
            newest: is_newest,
            use_mmap: options.mmap_at_startup(),
            ignore_hint: rejected_hints.contains(&id),
        };
        let followed: Followed = match follow_file(dir, &file, 0, mode, &mut sink)? {
            Following::Read(followed) => followed,
            Following::HintRejected => return Ok(Attempt::HintRejected(id)),
        };
        hints_used += usize::from(followed.from_hint);
        hints_ignored += usize::from(followed.hint_ignored);
        liveness.set_len(id, followed.resume.max(FILE_HEADER_LEN));
        if is_newest {
            resume = followed.resume;
        }
        file.map_for_reads();
        files.insert(id, file);
    }
    index.shrink_to_fit();
    Ok(Attempt::Loaded(View {
        index,
        files,
        liveness,
        newest,
        resume,
        hints_used,
        hints_ignored,
    }))
}

/// Data file `id` of `dir`, opened for reading: the one of `held` if it is
/// still the file of that name; `None` if it is gone.
fn open_listed(dir: &Path, id: u32, held: &FileMap) -> Result<Option<Arc<DataFile>>> {
    let fresh = match DataFile::open(dir, id, false) {
        Ok(file) => file,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    if let Some(old) = held.get(&id) {
        let identity = |file: &DataFile| {
            file.file()
                .metadata()
                .map(|m| (m.dev(), m.ino()))
                .map_err(|e| Error::io("stat", file.path(), e))
        };
        if identity(old)? == identity(&fresh)? {
            return Ok(Some(Arc::clone(old)));
        }
    }
    Ok(Some(Arc::new(fresh)))
}

/// The error for a directory without data files: a read-only open never
/// creates a database.
fn no_database(dir: &Path) -> Error {
    Error::InvalidArgument(format!(
        "{} holds no libbitcask data file, so there is no database to open read-only \
         (a read-only open never creates one)",
        dir.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bitcask-follow-db-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn appends_are_caught_up_and_a_tombstone_merged_away_unseen_loads_again() {
        let dir = temp_dir("paths");
        let mut opts = Options::default();
        opts.set_data_file_size(4096).unwrap();
        let writer = Engine::open(&dir, opts.clone()).unwrap();
        writer.put(b"kept", b"1").unwrap();
        writer.put(b"doomed", b"2").unwrap();
        opts.set_read_only(true);
        let (reader, mut follower) = open(&dir, opts).unwrap();
        // Appends and rollovers: read on from where it stopped.
        for i in 0..200u32 {
            writer.put(format!("k{i}").as_bytes(), &[7; 40]).unwrap();
        }
        assert!(writer.data_file_count() > 1);
        assert_eq!(follower.refresh(&reader).unwrap(), Refreshed::CaughtUp);
        assert_eq!(reader.key_count(), 202);
        // The tombstone goes into a file the reader never reads: the merge
        // deletes it with the files it merges.
        for i in 0..200u32 {
            writer.put(format!("k{i}").as_bytes(), &[8; 40]).unwrap();
        }
        writer.delete(b"doomed").unwrap();
        crate::maintenance::merge::merge(&writer).unwrap();
        assert_eq!(follower.refresh(&reader).unwrap(), Refreshed::Reloaded);
        assert!(reader.get_with(b"doomed", |_| ()).unwrap().is_none());
        assert_eq!(reader.key_count(), 201);
        assert_eq!(follower.stats(&reader).unwrap().key_count, 201);
        // Nothing new: caught up, with nothing to read.
        assert_eq!(follower.refresh(&reader).unwrap(), Refreshed::CaughtUp);
        writer.shutdown().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Opening a database: take the directory lock, load the keydir file close
//! wrote if it describes the data files as they are (`saved_keydir.rs`),
//! else load every data file in id order into the keydir (from hint files
//! where valid ones exist, see `log/recovery.rs`), and build the engine
//! around it. This file holds the
//! keydir's side of loading: the sink that applies each file's records to
//! the index and the liveness counts.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use parking_lot::Mutex;

use super::engine::Engine;
use super::files::{FileMap, Files};
use super::group_commit::CommitQueue;
use super::jobs::Jobs;
use super::liveness::{FileUsage, Liveness};
use super::lock::DirLock;
use super::saved_keydir::{self, Saved};
use super::writer::{Writer, WriterParts};
use crate::error::Result;
use crate::keydir::{new_index, Index};
use crate::log::appender::{Appender, SyncPolicy};
use crate::log::data_file::{read_header, DataFile, Header};
use crate::log::dir::{data_file_ids, ensure_dir};
use crate::log::filename::hint_file_name;
use crate::log::format::FILE_HEADER_LEN;
use crate::log::hint::{Hint, HintKind};
use crate::log::io_helper::IoHelper;
use crate::log::recovery::{self, LoadMode, Loading};
use crate::log::recovery_report::RecoveryReport;
use crate::log::replay::Apply;
use crate::log::{Change, RecordPos};
use crate::options::{IndexType, Options};

impl Engine {
    /// Opens (creating if missing) the database in `dir`: takes the
    /// directory lock, loads the data files in id order (from their hint
    /// files where valid ones exist), rebuilds the keydir, and cuts a torn
    /// tail off the newest file. The caller starts the background thread.
    pub fn open(dir: &Path, options: Options) -> Result<Engine> {
        let dir = dir.to_path_buf();
        ensure_dir(&dir)?;
        let lock = DirLock::acquire(&dir)?;
        let ids = data_file_ids(&dir)?;
        recovery::remove_leftovers(&dir, &ids)?;
        // The keydir file close or a checkpoint wrote, if it describes
        // these files as they are (see `saved_keydir.rs`).
        saved_keydir::remove_temp(&dir)?;
        let mut saved = match saved_keydir::load(&dir, &ids, options.index_type()) {
            Some(saved) => saved_files_with_headers(&dir, saved)?,
            None => None,
        };
        let from_saved = saved.is_some();
        // A hint file rejected part-way (see `load_files`) is ignored when
        // everything is loaded again.
        let mut rejected = Vec::new();
        let Loaded {
            index,
            mut files,
            liveness,
            active,
            max_batch_seq,
            report,
            unhinted,
        } = loop {
            let resume = match saved.take() {
                Some((saved, opened)) if saved.complete => {
                    break load_saved(saved, opened, &options);
                }
                Some(resume) => Some(resume),
                // Loading without it: gone (durably) before anything is
                // cut or written, which could make it wrong.
                None => {
                    saved_keydir::remove(&dir)?;
                    None
                }
            };
            if let Some(loaded) = load_files(&dir, &ids, &options, &mut rejected, resume)? {
                break loaded;
            }
        };
        // Loading may have reserved more room than the keys took (a hint
        // file that puts one key several times) and freed large buffers:
        // give both back. (A saved index is as it was.)
        if !from_saved {
            index.shrink_to_fit();
        }
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
        let jobs = Arc::new(Jobs::default());
        // Immutable files without a valid hint get one in the background.
        for id in unhinted {
            jobs.write_hint(id);
        }
        let files = Arc::new(Files::new(files));
        let io = IoHelper::start();
        let writer = Writer::new(WriterParts {
            appender: Appender::new(active, end, policy).with_hints(io.sink()),
            next_batch_seq: max_batch_seq.saturating_add(1),
            liveness,
            dir: dir.clone(),
            data_file_size: options.data_file_size(),
            index: Arc::clone(&index),
            files: Arc::clone(&files),
            jobs: Arc::clone(&jobs),
            // Only the hash index has a form a checkpoint can save.
            checkpoint_bytes: match options.index_type() {
                IndexType::Hash => options.checkpoint_bytes(),
                IndexType::Ordered => 0,
            },
        });
        Ok(Engine {
            dir,
            options,
            index,
            files,
            writer: Mutex::new(writer),
            maintenance: Mutex::new(()),
            jobs,
            io,
            commit_queue: CommitQueue::default(),
            closing: AtomicBool::new(false),
            recovery: report,
            lock: Mutex::new(Some(lock)),
        })
    }
}

/// Every data file of a directory, loaded.
struct Loaded {
    index: Arc<dyn Index>,
    files: FileMap,
    liveness: Liveness,
    /// The newest file and where its records end.
    active: Option<(Arc<DataFile>, u64)>,
    max_batch_seq: u64,
    report: RecoveryReport,
    /// Immutable files loaded without a hint: their hints are to be written.
    unhinted: Vec<u32>,
}

/// Loads the data files `ids` of `dir` in id order into a new keydir, each
/// from its hint file where a usable one exists (not for the ids in
/// `rejected`); or, given a checkpoint (`resume`, with its files opened),
/// into the checkpoint's keydir, from where it ends. `None` when a hint
/// file turned out not to decode after part of it was applied: its id is
/// added to `rejected`, and the caller loads everything again into a fresh
/// keydir.
fn load_files(
    dir: &Path,
    ids: &[u32],
    options: &Options,
    rejected: &mut Vec<u32>,
    resume: Option<(Saved, Vec<DataFile>)>,
) -> Result<Option<Loaded>> {
    let mut files = FileMap::new();
    let mut liveness = Liveness::default();
    let mut report = RecoveryReport::default();
    // Where loading starts: the index of the first id to load, and the
    // offset in it.
    let (index, mut max_batch_seq, first, from): (Arc<dyn Index>, _, _, _) = match resume {
        None => (
            new_index(options.index_type()).into(),
            0,
            0,
            FILE_HEADER_LEN,
        ),
        Some((saved, opened)) => {
            report.resumed_from_keydir = true;
            let last = saved.files.len() - 1;
            for (f, file) in saved.files.iter().zip(opened) {
                liveness.restore(
                    f.id,
                    FileUsage {
                        len: f.len,
                        live: f.live,
                    },
                );
                // The last is loaded below, from its named length on.
                if f.id != saved.files[last].id {
                    file.map_for_reads();
                    files.insert(f.id, Arc::new(file));
                }
            }
            let from = saved.files[last].len;
            (saved.index.into(), saved.max_batch_seq, last, from)
        }
    };
    let mut active = None;
    let mut unhinted = Vec::new();
    for (i, &id) in ids.iter().enumerate().skip(first) {
        let newest = i + 1 == ids.len();
        let mut sink = KeydirLoader::unseen(&*index, &mut liveness);
        let mode = LoadMode {
            ignore_hint: rejected.contains(&id),
            from: if i == first { from } else { FILE_HEADER_LEN },
            ..LoadMode::whole(newest, options.mmap_at_startup(), options.strict_recovery())
        };
        let loaded = match recovery::load_file(dir, id, mode, &mut sink)? {
            Loading::Loaded(loaded) => *loaded,
            Loading::HintRejected(hint) => {
                rejected.push(hint.id);
                return Ok(None);
            }
        };
        max_batch_seq = max_batch_seq.max(loaded.max_batch_seq);
        report.add(loaded.from_hint, &loaded.recovered);
        // A file scanned from a checkpoint's end may have its hint already.
        let hint_missing = mode.from == FILE_HEADER_LEN || !dir.join(hint_file_name(id)).exists();
        if !loaded.from_hint && !newest && hint_missing {
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
    Ok(Some(Loaded {
        index,
        files,
        liveness,
        active,
        max_batch_seq,
        report,
        unhinted,
    }))
}

/// The data files a keydir file names, opened, if every one has a valid
/// header and every one that holds records still has its hint file;
/// `None` if not (open then loads from hints and scans, which deals with a
/// torn header). A hint file gone since close means the directory was
/// changed by hand, or a crash is being simulated: open then does what it
/// does without a clean close, and what verify predicts for such a file
/// (refusing damage in it) stays true. A header of another format version
/// is the error it is on any open.
fn saved_files_with_headers(dir: &Path, saved: Saved) -> Result<Option<(Saved, Vec<DataFile>)>> {
    let mut opened = Vec::with_capacity(saved.files.len());
    for (i, f) in saved.files.iter().enumerate() {
        let newest = i + 1 == saved.files.len();
        // A checkpoint's last file is read from its named length on.
        let read_anyway = saved.checkpoint && newest;
        if f.len > FILE_HEADER_LEN && !read_anyway && !dir.join(hint_file_name(f.id)).exists() {
            return Ok(None);
        }
        let file = DataFile::open(dir, f.id, newest)?;
        if let Header::Invalid(_) = read_header(file.file(), file.path(), f.len)? {
            return Ok(None);
        }
        opened.push(file);
    }
    Ok(Some((saved, opened)))
}

/// The data files as a keydir file describes them, with its index: nothing
/// to recover (close sealed and synced every file), as the report says.
fn load_saved(saved: Saved, opened: Vec<DataFile>, options: &Options) -> Loaded {
    let mut files = FileMap::new();
    let mut liveness = Liveness::default();
    let mut active = None;
    let count = saved.files.len();
    for (i, (f, file)) in saved.files.iter().zip(opened).enumerate() {
        let newest = i + 1 == count;
        let file = Arc::new(file);
        liveness.restore(
            f.id,
            FileUsage {
                len: f.len,
                live: f.live,
            },
        );
        if newest {
            file.map_ahead(options.data_file_size());
            active = Some((Arc::clone(&file), f.len));
        } else {
            file.map_for_reads();
        }
        files.insert(f.id, file);
    }
    Loaded {
        index: saved.index.into(),
        files,
        liveness,
        active,
        max_batch_seq: saved.max_batch_seq,
        report: RecoveryReport {
            from_saved_keydir: true,
            ..RecoveryReport::default()
        },
        // Every file with records has its hint (see above).
        unhinted: Vec::new(),
    }
}

/// Every how many puts of a hint file one is looked up in the keydir, to
/// estimate how many of the file's keys the keydir holds already.
const SAMPLE_EVERY: usize = 64;

/// About how many keys loading `hint` adds to `index`: its puts, less the
/// share of a sample of them (every [`SAMPLE_EVERY`]th) that the index holds
/// already. A key put several times in the file counts each time: the
/// estimate overshoots then, and [`Index::shrink_to_fit`] after loading
/// gives the room back.
fn new_keys(index: &dyn Index, hint: &Hint) -> usize {
    let probe = !index.is_empty();
    let (mut puts, mut sampled, mut present) = (0usize, 0usize, 0usize);
    hint.for_each(|kind, key, _, _| {
        if kind == HintKind::Put {
            if probe && puts % SAMPLE_EVERY == 0 {
                sampled += 1;
                present += usize::from(index.get(key).is_some());
            }
            puts += 1;
        }
    });
    match sampled {
        0 => puts,
        _ => (puts as u128 * (sampled - present) as u128 / sampled as u128) as usize,
    }
}

/// Open's sink: the keydir, and how many bytes of each file stay live.
/// Read-only opens (`follow.rs`) load through it too.
pub(super) struct KeydirLoader<'a> {
    index: &'a dyn Index,
    liveness: &'a mut Liveness,
    /// How many changes go to the index at a time.
    run_len: usize,
}

/// How many changes a load gives an index that no reader sees yet at a
/// time (at least): long runs, so that the hash index applies each on two
/// threads; starting a thread costs hundreds of microseconds on a VM
/// (measured: in runs of 4096, a 10M-key reopen on two threads took 1.9x
/// as long as on one; in runs of 65536, 0.7x).
const UNSEEN_RUN_LEN: usize = 1 << 16;

impl<'a> KeydirLoader<'a> {
    /// Loads into `index`, which no reader sees yet (an open's, a read-only
    /// handle's reload): in long runs.
    pub(super) fn unseen(index: &'a dyn Index, liveness: &'a mut Liveness) -> Self {
        let mut loader = KeydirLoader::live(index, liveness);
        loader.run_len = loader.run_len.max(UNSEEN_RUN_LEN);
        loader
    }

    /// Loads into `index` while readers use it (a read-only handle's
    /// refresh): in the index's own runs, during each of which the shards
    /// it touches are locked.
    pub(super) fn live(index: &'a dyn Index, liveness: &'a mut Liveness) -> Self {
        KeydirLoader {
            index,
            liveness,
            run_len: index.run_len(),
        }
    }
}

impl Apply for KeydirLoader<'_> {
    fn put(&mut self, key: &[u8], pos: RecordPos) {
        let old = self.index.put(key, pos);
        self.liveness.replaced(Some(pos), old);
    }

    fn delete(&mut self, key: &[u8], _pos: RecordPos) {
        let old = self.index.remove(key);
        self.liveness.replaced(None, old);
    }

    fn reserve(&mut self, hint: &Hint) {
        // The estimate walks the hint and looks keys up: only if it is used.
        if self.index.reserves() {
            self.index.reserve(new_keys(self.index, hint));
        }
    }

    fn run_len(&self) -> usize {
        self.run_len
    }

    fn apply_run(&mut self, changes: &[Change<'_>]) {
        let liveness = &mut *self.liveness;
        self.index.apply(changes, &mut |change, old| {
            liveness.replaced((!change.delete).then_some(change.pos), old);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keydir::HashIndex;
    use crate::log::hint::HintBuilder;

    fn pos(n: u32) -> RecordPos {
        RecordPos {
            file_id: 1,
            offset: n,
            size: 10,
        }
    }

    fn hint_of(entries: &[(HintKind, String)]) -> Hint {
        let mut builder = HintBuilder::new(1);
        for (n, (kind, key)) in entries.iter().enumerate() {
            builder.push(*kind, key.as_bytes(), pos(n as u32));
        }
        Hint::trusted(builder.finish(1000, 0))
    }

    #[test]
    fn the_new_key_estimate_counts_puts_less_the_keys_already_loaded() {
        let index = HashIndex::default();
        // 20,000 puts of distinct keys and 5,000 deletes: into an empty
        // index, every put is a new key (nothing is looked up).
        let mut entries: Vec<_> = (0..20_000)
            .map(|i| (HintKind::Put, format!("key{i}")))
            .collect();
        entries.extend((0..5_000).map(|i| (HintKind::Delete, format!("gone{i}"))));
        assert_eq!(new_keys(&index, &hint_of(&entries)), 20_000);
        // With every third key loaded already, two thirds are new (the
        // sample, every 64th put, sees every third of its keys present).
        for i in (0..20_000).step_by(3) {
            index.put(format!("key{i}").as_bytes(), pos(i));
        }
        let estimate = new_keys(&index, &hint_of(&entries));
        assert!((12_500..=14_000).contains(&estimate), "{estimate}");
        // With all of them loaded, none is new.
        for i in 0..20_000 {
            index.put(format!("key{i}").as_bytes(), pos(i));
        }
        assert_eq!(new_keys(&index, &hint_of(&entries)), 0);
        // A key put twice in the file counts twice (shrink_to_fit makes up
        // for it after loading).
        let empty = HashIndex::default();
        let twice = [
            (HintKind::Put, "a".to_string()),
            (HintKind::Put, "a".to_string()),
        ];
        assert_eq!(new_keys(&empty, &hint_of(&twice)), 2);
    }
}

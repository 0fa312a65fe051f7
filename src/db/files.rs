//! The data files a database has open, by id: the active one and every
//! immutable one. Gets look a file up here by the id in a keydir entry;
//! the writer adds a file at rollover, a merge adds its outputs and removes
//! its inputs. A file removed here stays readable by whoever still holds
//! its `Arc` (an iterator, a get in flight): removing a file from the
//! directory only unlinks it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

use crate::error::Error;
use crate::log::data_file::DataFile;
use crate::log::filename::data_file_name;

/// The open data files, behind reader-writer locks (in the lock order,
/// after the writer lock and before the index's locks).
///
/// Held as [`STRIPES`] identical copies, each under a lock of its own on a
/// cache line of its own, and a thread reads the copy of its stripe: every
/// get takes a read lock, which writes the lock's word, and with one lock
/// two threads doing gets handed that line back and forth on every get.
/// A change (rare: a rollover, a merge) write-locks every copy, in stripe
/// order, and goes into all of them before it lets go, so two changes
/// reach the copies in one order.
pub struct Files {
    stripes: Box<[Stripe]>,
}

/// How many copies of the map [`Files`] keeps: more than the threads that
/// usually read at once, few enough that a change stays cheap.
const STRIPES: usize = 8;

/// One copy of the map, on a cache line of its own.
#[repr(align(64))]
struct Stripe(RwLock<FileMap>);

/// Open data files by id, as read under the lock.
pub type FileMap = BTreeMap<u32, Arc<DataFile>>;

/// The stripe of the calling thread: threads take stripes in turn as they
/// first read, so the first [`STRIPES`] threads have one each.
fn own_stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    STRIPE.with(|stripe| *stripe)
}

impl Files {
    /// The files as loaded at open.
    pub fn new(by_id: FileMap) -> Files {
        Files {
            stripes: (0..STRIPES)
                .map(|_| Stripe(RwLock::new(by_id.clone())))
                .collect(),
        }
    }

    /// Holds the lock for reading: no file is added or removed until the
    /// guard is dropped. A get holds it across its lookup and read, so that
    /// a merge cannot retire the file in between.
    pub fn read(&self) -> RwLockReadGuard<'_, FileMap> {
        self.stripes[own_stripe()].0.read()
    }

    /// Data file `id`, if it is open.
    pub fn get(&self, id: u32) -> Option<Arc<DataFile>> {
        self.read().get(&id).cloned()
    }

    /// Every open file, by id, as of now.
    pub fn snapshot(&self) -> FileMap {
        self.read().clone()
    }

    /// How many files are open.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Adds a file (a new active file, or a merge output).
    pub fn insert(&self, file: Arc<DataFile>) {
        self.change(|by_id| {
            by_id.insert(file.id(), Arc::clone(&file));
        });
    }

    /// Removes the files of `ids` (a merge's inputs) at once.
    pub fn remove_all(&self, ids: impl IntoIterator<Item = u32>) {
        let ids: Vec<u32> = ids.into_iter().collect();
        self.change(|by_id| {
            for id in &ids {
                by_id.remove(id);
            }
        });
    }

    /// Makes `change` to every copy, all locked; returns when all have it.
    fn change(&self, change: impl Fn(&mut FileMap)) {
        let mut all: Vec<_> = self.stripes.iter().map(|s| s.0.write()).collect();
        for by_id in &mut all {
            change(by_id);
        }
    }
}

impl Default for Files {
    fn default() -> Files {
        Files::new(FileMap::new())
    }
}

/// The error for a keydir entry that points into a file that is not open.
pub fn not_open(file_id: u32) -> Error {
    Error::Internal(format!(
        "the keydir points into data file {}, which is not open",
        data_file_name(file_id)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// Runs `look` on as many threads as there are stripes at once, so
    /// that each reads a different copy.
    fn on_every_stripe(files: &Files, look: impl Fn(&Files) + Sync) {
        let all_started = Barrier::new(STRIPES);
        std::thread::scope(|s| {
            for _ in 0..STRIPES {
                s.spawn(|| {
                    // Each thread takes its stripe before any ends: they
                    // take consecutive stripes unless another thread of the
                    // process takes one in between.
                    let _ = files.len();
                    all_started.wait();
                    look(files);
                });
            }
        });
    }

    #[test]
    fn a_change_reaches_every_copy_before_it_returns() {
        let dir = std::env::temp_dir().join(format!("bitcask-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let files = Files::default();
        for id in [1, 2, 3] {
            files.insert(Arc::new(DataFile::create(&dir, id).unwrap()));
        }
        on_every_stripe(&files, |files| {
            assert_eq!(
                files.snapshot().keys().copied().collect::<Vec<_>>(),
                [1, 2, 3]
            );
        });
        files.remove_all([1, 3]);
        on_every_stripe(&files, |files| {
            assert!(files.get(1).is_none() && files.get(3).is_none());
            assert_eq!(files.get(2).map(|f| f.id()), Some(2));
            assert_eq!(files.len(), 1);
        });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

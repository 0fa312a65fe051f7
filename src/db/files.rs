//! The data files a database has open, by id: the active one and every
//! immutable one. Gets look a file up here by the id in a keydir entry;
//! the writer adds a file at rollover, a merge adds its outputs and removes
//! its inputs. A file removed here stays readable by whoever still holds
//! its `Arc` (an iterator, a get in flight): removing a file from the
//! directory only unlinks it.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard};

use crate::error::Error;
use crate::log::data_file::DataFile;
use crate::log::filename::data_file_name;

/// The open data files, behind a reader-writer lock (in the lock order,
/// after the writer lock and before the index's locks).
#[derive(Default)]
pub struct Files {
    by_id: RwLock<BTreeMap<u32, Arc<DataFile>>>,
}

/// Open data files by id, as read under the lock.
pub type FileMap = BTreeMap<u32, Arc<DataFile>>;

impl Files {
    /// The files as loaded at open.
    pub fn new(by_id: FileMap) -> Files {
        Files {
            by_id: RwLock::new(by_id),
        }
    }

    /// Holds the lock for reading: no file is added or removed until the
    /// guard is dropped. A get holds it across its lookup and read, so that
    /// a merge cannot retire the file in between.
    pub fn read(&self) -> RwLockReadGuard<'_, FileMap> {
        self.by_id.read()
    }

    /// Data file `id`, if it is open.
    pub fn get(&self, id: u32) -> Option<Arc<DataFile>> {
        self.by_id.read().get(&id).cloned()
    }

    /// Every open file, by id, as of now.
    pub fn snapshot(&self) -> FileMap {
        self.by_id.read().clone()
    }

    /// How many files are open.
    pub fn len(&self) -> usize {
        self.by_id.read().len()
    }

    /// Adds a file (a new active file, or a merge output).
    pub fn insert(&self, file: Arc<DataFile>) {
        self.by_id.write().insert(file.id(), file);
    }

    /// Removes the files of `ids` (a merge's inputs) at once.
    pub fn remove_all(&self, ids: impl IntoIterator<Item = u32>) {
        let mut by_id = self.by_id.write();
        for id in ids {
            by_id.remove(&id);
        }
    }
}

/// The error for a keydir entry that points into a file that is not open.
pub fn not_open(file_id: u32) -> Error {
    Error::Internal(format!(
        "the keydir points into data file {}, which is not open",
        data_file_name(file_id)
    ))
}

//! How many bytes of each data file are live: the records the keydir points
//! at. Everything else after the file header (overwritten and deleted
//! values, tombstones, batch commit records, dead batch records) is what a
//! merge would free. Kept up to date as the keydir changes, never by
//! scanning: every keydir change already says which position it replaced.

use std::collections::BTreeMap;

use crate::log::format::FILE_HEADER_LEN;
use crate::log::RecordPos;

/// The usage of one data file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileUsage {
    /// The file's length: where its records end. For the active file this
    /// is its length when it stopped being written, or 0 while it is written
    /// (the writer knows its end).
    pub len: u64,
    /// Bytes of the records the keydir points at.
    pub live: u64,
}

impl FileUsage {
    /// Bytes after the header that no live record holds.
    pub fn dead(&self) -> u64 {
        self.len
            .saturating_sub(FILE_HEADER_LEN)
            .saturating_sub(self.live)
    }
}

/// Usage of every data file, by id.
#[derive(Debug, Default)]
pub struct Liveness {
    files: BTreeMap<u32, FileUsage>,
}

impl Liveness {
    /// Records that the keydir now points at `new` instead of `old`.
    pub fn replaced(&mut self, new: Option<RecordPos>, old: Option<RecordPos>) {
        if let Some(new) = new {
            self.files.entry(new.file_id).or_default().live += u64::from(new.size);
        }
        if let Some(old) = old {
            if let Some(usage) = self.files.get_mut(&old.file_id) {
                usage.live = usage.live.saturating_sub(u64::from(old.size));
            }
        }
    }

    /// Sets the length of data file `id` (which need not have records yet).
    pub fn set_len(&mut self, id: u32, len: u64) {
        self.files.entry(id).or_default().len = len;
    }

    /// Sets both counts of data file `id`, as a keydir file saved them.
    pub fn restore(&mut self, id: u32, usage: FileUsage) {
        self.files.insert(id, usage);
    }

    /// Forgets a data file that was deleted.
    pub fn remove(&mut self, id: u32) {
        self.files.remove(&id);
    }

    /// The usage of data file `id`, with `active` = (id, end) of the file
    /// being written, whose length is the writer's.
    pub fn usage(&self, id: u32, active: (u32, u64)) -> FileUsage {
        let mut usage = self.files.get(&id).copied().unwrap_or_default();
        if id == active.0 {
            usage.len = active.1;
        }
        usage
    }

    /// Totals over every data file: (bytes in data files, bytes a merge
    /// would free), with `active` as for [`Liveness::usage`].
    pub fn totals(&self, active: (u32, u64)) -> (u64, u64) {
        self.files.keys().fold((0, 0), |(len, dead), &id| {
            let usage = self.usage(id, active);
            (len + usage.len, dead + usage.dead())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(file_id: u32, size: u32) -> RecordPos {
        RecordPos {
            file_id,
            offset: 16,
            size,
        }
    }

    #[test]
    fn overwrites_and_deletes_become_dead_bytes() {
        let mut l = Liveness::default();
        l.set_len(1, FILE_HEADER_LEN + 300);
        l.replaced(Some(pos(1, 100)), None);
        l.replaced(Some(pos(1, 100)), None);
        l.replaced(Some(pos(1, 100)), Some(pos(1, 100))); // an overwrite
        assert_eq!(l.usage(1, (9, 0)).live, 200);
        assert_eq!(l.usage(1, (9, 0)).dead(), 100);
        l.replaced(None, Some(pos(1, 100))); // a delete
        assert_eq!(l.usage(1, (9, 0)).dead(), 200);
        // The active file's length is the writer's.
        l.replaced(Some(pos(2, 50)), None);
        assert_eq!(
            l.totals((2, FILE_HEADER_LEN + 80)),
            (2 * 16 + 380, 200 + 30)
        );
        l.remove(1);
        assert_eq!(
            l.totals((2, FILE_HEADER_LEN + 50)),
            (FILE_HEADER_LEN + 50, 0)
        );
    }
}

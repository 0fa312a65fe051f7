//! The log: everything about the files on disk, and nothing about the
//! in-memory index or the database built on top of them.
//!
//! A database directory holds numbered data files of CRC-checked records,
//! appended to and never rewritten, a hint file beside each immutable one,
//! and a lock file. This layer owns:
//!
//! - [`format`]: the bytes of a data file (file header, record header,
//!   record kinds, varints) and the limits on keys and values;
//! - [`filename`]: every name the directory holds, built and parsed in one
//!   place;
//! - [`dir`]: listing the directory and making changes to it durable;
//! - [`data_file`]: one open data file: creating it, mapping it, and the
//!   checked read of one record;
//! - [`scanner`]: walking a file's records in order, telling a torn tail
//!   (what a crash leaves; not an error) from corruption (an error);
//! - [`appender`]: appending to the active data file, its sync policy, and
//!   refusing writes after a failure that cannot be undone;
//! - [`growth`]: the space allocated ahead of the active file's last
//!   record, and the one lock under which the file's length changes;
//! - [`io_helper`]: the thread that does the appender's work ahead of need
//!   (start writeback, allocate and prefault space ahead) off the writer's
//!   path;
//! - [`bulk_write`]: writing and replacing a large file (the keydir
//!   file of a checkpoint) without stalling the writer's I/O;
//! - [`hint`]: hint files, the keys and positions of an immutable data file;
//! - [`quarantine`]: quarantine files, the bytes taken out of data files
//!   (a cut tail, a damaged range), kept and never loaded;
//! - [`replay`]: applying one file's records to a sink in log order, from
//!   its hint file or from a scan, write batches only at their commit
//!   record: the one way both kinds of open load a file;
//! - [`recovery`]: what open does with each file: load it (through
//!   [`replay`]), quarantine and cut the newest file's tail, cut zeros off
//!   sealed files, refuse damage no crash explains;
//! - [`recovery_report`]: what open recovered, reported;
//! - [`salvage`]: the scan of repair and verify, which steps over damaged
//!   ranges to the next record that passes its checks;
//! - [`verify`]: a read-only check of every data file and hint entry,
//!   saying what open does with each damaged range; alone, or beside a
//!   writer that has the database open;
//! - [`verify_report`]: what verify found (and how repair names a damaged
//!   range);
//! - [`repair`]: rewriting damaged data files with every intact record,
//!   the damaged bytes to quarantine files, hint files written again;
//! - [`follow`]: what a read-only open does with each file instead: load
//!   it without writing anything, stop at the newest file's last good
//!   record, and go on from there later.
//!
//! The layers above see records only as [`RecordPos`] (where one lies) and
//! [`Change`] (what one does to its key).

pub mod appender;
pub mod bulk_write;
pub mod data_file;
pub mod dir;
pub mod filename;
pub mod follow;
pub mod format;
#[cfg(test)]
mod fuzz;
pub mod growth;
pub mod hint;
pub mod io_helper;
pub mod quarantine;
pub mod recovery;
pub mod recovery_report;
pub mod repair;
pub mod replay;
pub mod salvage;
pub mod scanner;
pub mod verify;
pub mod verify_report;

/// Where a key's latest record lies: which data file, where in it, how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPos {
    /// The data file's id (the number in its name).
    pub file_id: u32,
    /// Offset of the record's first byte. Data files are at most 2 GiB plus
    /// one record, so 32 bits hold every offset.
    pub offset: u32,
    /// Length of the whole record, header included.
    pub size: u32,
}

impl RecordPos {
    /// Where the record starts.
    pub fn start(self) -> RecordStart {
        RecordStart {
            file_id: self.file_id,
            offset: self.offset,
        }
    }
}

/// Where a record starts: a [`RecordPos`] without the size, which the
/// record's header gives. What a get needs to find its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordStart {
    /// The data file's id.
    pub file_id: u32,
    /// Offset of the record's first byte.
    pub offset: u32,
}

impl RecordStart {
    /// The position of the record starting here that is `size` bytes long.
    pub fn with_size(self, size: u32) -> RecordPos {
        RecordPos {
            file_id: self.file_id,
            offset: self.offset,
            size,
        }
    }
}

/// What one committed record does to its key: `key` now has the record at
/// `pos`, or, if `delete`, is deleted by the tombstone at `pos`. Open hands
/// the index runs of these, in log order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// The key the record is for.
    pub key: &'a [u8],
    /// The record's position: the value's, or the tombstone's.
    pub pos: RecordPos,
    /// Whether the record is a tombstone.
    pub delete: bool,
}

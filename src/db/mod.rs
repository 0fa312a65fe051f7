//! The database: an open directory of data files with its keydir, and what
//! reads and changes them while it is open.
//!
//! - [`engine`]: the engine itself: gets, puts, deletes, batches, iterators,
//!   sync, close, and the lock order;
//! - [`open`]: opening: the directory lock, loading every data file into
//!   the keydir (through `log/recovery.rs`);
//! - [`writer`]: the writer: the one place where the log and the keydir
//!   change, in the same order, and where the active file rolls over;
//! - [`group_commit`]: synced puts committed together, one fdatasync a group;
//! - [`batch`]: write batches, applied all or nothing;
//! - [`iter`]: snapshot iterators;
//! - [`files`]: the open data files by id;
//! - [`liveness`]: the live bytes of each file, for `reclaimable_bytes` and
//!   merge;
//! - [`jobs`]: work queued for the background thread;
//! - [`lock`]: the directory lock;
//! - [`follow`]: read-only opens, which take no lock, and catching them up
//!   with the process that writes the database.
//!
//! It builds on the log (`log/`) and the keydir (`keydir/`); maintenance
//! (`maintenance/`) builds on it.

pub mod batch;
pub mod engine;
pub mod files;
pub mod follow;
pub mod group_commit;
pub mod iter;
pub mod jobs;
pub mod liveness;
pub mod lock;
pub mod open;
pub mod writer;

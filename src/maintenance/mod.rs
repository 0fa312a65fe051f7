//! Maintenance of an open database, on top of the database layer (`db/`):
//!
//! - [`merge`]: online merge: rewrite the live records of files with dead
//!   bytes into new files, switch the keydir over, delete the old files,
//!   every step durable before the one that depends on it;
//! - [`backup`]: a consistent copy of the open database;
//! - [`checkpoint`]: the index saved while the database runs, so that an
//!   open after a crash scans only what was written after it;
//! - [`worker`]: the background thread: hint files of sealed data files,
//!   and automatic merges;
//! - [`offline`]: repair and verify of a database that is not open.

pub mod backup;
pub mod checkpoint;
pub mod merge;
pub mod offline;
pub mod worker;

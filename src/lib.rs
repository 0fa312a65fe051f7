//! libbitcask: a Bitcask key-value storage engine, shipped as a C library.
//!
//! Data lives in append-only data files of CRC-checked records; an
//! in-memory index (the keydir) maps every key to its latest record, so a
//! read is one positioned read and a write is one append. The C interface is
//! in [`ffi`] (and `include/bitcask.h`); Rust programs use [`Bitcask`].
//!
//! ```no_run
//! use bitcask::{Bitcask, Options};
//! let db = Bitcask::open("/tmp/example-db", Options::default())?;
//! db.put(b"key", b"value")?;
//! assert_eq!(db.get(b"key")?.as_deref(), Some(&b"value"[..]));
//! db.close()?;
//! # Ok::<(), bitcask::Error>(())
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]

// Only `ffi` is the C interface: cbindgen skips the engine's modules.
/// cbindgen:ignore
mod backup;
/// cbindgen:ignore
mod batch;
/// cbindgen:ignore
mod data_file;
/// cbindgen:ignore
mod engine;
/// cbindgen:ignore
mod error;
/// cbindgen:ignore
mod failpoint;
pub mod ffi;
/// cbindgen:ignore
mod format;
/// cbindgen:ignore
mod group_commit;
/// cbindgen:ignore
mod hint;
/// cbindgen:ignore
mod iter;
/// cbindgen:ignore
mod keydir;
/// cbindgen:ignore
mod liveness;
/// cbindgen:ignore
mod load;
/// cbindgen:ignore
mod lock;
/// cbindgen:ignore
mod merge;
/// cbindgen:ignore
mod options;
/// cbindgen:ignore
mod reader;
/// cbindgen:ignore
mod worker;
/// cbindgen:ignore
mod writer;

pub use batch::Batch;
pub use engine::{Bitcask, Engine, Stats};
pub use error::{Error, Result};
pub use format::{FORMAT_VERSION, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use iter::Iter;
pub use options::{IndexType, Options};

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

// The layers, each above the ones before it (a module imports only from
// the layers below it): the log (files on disk), the keydir (the index in
// memory), the database (open, reads, writes), maintenance (merge, backup,
// the background thread), the Rust handle, and the C interface. See
// docs/architecture.md. Only `ffi` is the C interface: cbindgen skips the
// others.
/// cbindgen:ignore
mod error;
/// cbindgen:ignore
mod failpoint;
/// cbindgen:ignore
mod options;

/// cbindgen:ignore
mod log;

/// cbindgen:ignore
mod keydir;

/// cbindgen:ignore
mod db;

/// cbindgen:ignore
mod maintenance;

/// cbindgen:ignore
mod bitcask;

pub mod ffi;

pub use bitcask::{repair, repair_with_progress, verify, verify_with_progress, Bitcask};
pub use db::batch::Batch;
pub use db::engine::Stats;
pub use db::iter::Iter;
pub use error::{Error, Result};
pub use log::format::{FORMAT_VERSION, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use log::recovery_report::{RecoveryReport, TailCut};
pub use log::repair::{RepairOptions, RepairReport};
pub use log::verify_report::{
    AtOpen, DamagedRange, HintProblem, VerifyNote, VerifyReport, ZeroTail,
};
pub use options::{IndexType, Options};

/// The test points of `src/failpoint.rs` (feature `failpoints`, for the
/// tests only): arm a point to count its hits, pause there, or fail the I/O
/// step behind it. Not a stable API.
#[cfg(feature = "failpoints")]
#[doc(hidden)]
/// cbindgen:ignore
pub mod failpoints {
    pub use crate::failpoint::{arm, hit_log, serial, Action, Armed};
}

/// The index types on their own, for the index benchmark
/// (`benches/keydir.rs`, feature `bench-internals`): not a stable API.
#[cfg(feature = "bench-internals")]
#[doc(hidden)]
pub mod bench_internals {
    pub use crate::keydir::{new_index, HashIndex, Index, KeyHasher, SHARDS};
    pub use crate::log::{Change, RecordPos};
}

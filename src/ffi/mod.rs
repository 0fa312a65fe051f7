//! The C interface: plain `extern "C"` functions over opaque handles,
//! returning `bitcask_status`. cbindgen turns this module into
//! `include/bitcask.h`, and the rustdoc here becomes the header's comments.
//!
//! Every entry point runs its body through `boundary::run` (or `run_or`,
//! for the few that return a value instead of a status), which catches
//! panics, maps the engine's [`crate::Error`] onto a status and records
//! `bitcask_last_error()`. Handles are made, borrowed and freed one way
//! (`handle.rs`); every other pointer is checked before it is used
//! (`boundary.rs`).

// The C names (bitcask_db, bitcask_status, ...) are the contract's.
#![allow(non_camel_case_types)]

// In the order the header presents them (rustfmt.toml keeps it).
mod status;
mod boundary;
mod handle;
mod options;
mod db;
mod iter;
mod batch;
mod maintenance;
mod recovery;

pub use batch::*;
pub use boundary::bitcask_last_error;
pub use db::*;
pub use iter::*;
pub use maintenance::*;
pub use options::*;
pub use recovery::*;
pub use status::*;

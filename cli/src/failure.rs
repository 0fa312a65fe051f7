//! Why a command did not finish, and how that is told: the library's
//! status and text for its errors, exit statuses for the rest (see
//! `main`).

use std::io;

use bitcask::{ffi, Error};

/// Why a command did not finish.
pub enum Failure {
    /// A usage error found after parsing (a bad escape): exit 2.
    Usage(String),
    /// The library failed: exit 3, with its status.
    Library(String, Error),
    /// Anything else (standard input or output failed): exit 3.
    Other(String),
    /// Exit 1 with this message (missing key, damage found).
    Answer(String),
}

/// What a command returns.
pub type Outcome = Result<(), Failure>;

/// The C status of a library error: its name and number.
pub fn status_of(e: &Error) -> (&'static str, i32) {
    match e {
        Error::NotFound => ("BITCASK_NOT_FOUND", ffi::BITCASK_NOT_FOUND),
        Error::InvalidArgument(_) => ("BITCASK_INVALID_ARGUMENT", ffi::BITCASK_INVALID_ARGUMENT),
        Error::Io { .. } => ("BITCASK_IO", ffi::BITCASK_IO),
        Error::Corruption(_) => ("BITCASK_CORRUPTION", ffi::BITCASK_CORRUPTION),
        Error::Locked(_) => ("BITCASK_LOCKED", ffi::BITCASK_LOCKED),
        Error::BufferTooSmall { .. } => ("BITCASK_BUFFER_TOO_SMALL", ffi::BITCASK_BUFFER_TOO_SMALL),
        Error::Closed(_) | Error::WritesRefused(_) => ("BITCASK_CLOSED", ffi::BITCASK_CLOSED),
        Error::ReadOnly(_) => ("BITCASK_READ_ONLY", ffi::BITCASK_READ_ONLY),
        _ => ("BITCASK_INTERNAL", ffi::BITCASK_INTERNAL),
    }
}

/// Attaches what was being done to a library error.
pub fn lib<T>(what: &str, result: bitcask::Result<T>) -> Result<T, Failure> {
    result.map_err(|e| Failure::Library(what.to_string(), e))
}

/// A failed write to standard output.
pub fn output_failed(e: io::Error) -> Failure {
    Failure::Other(format!("write to standard output: {e}"))
}

//! The one error type of the engine. Each variant is one status of the C
//! interface (see `ffi::status`), and each message says what went wrong, where,
//! and what the caller can do about it.

use std::fmt;
use std::io;
use std::path::Path;

/// Everything that can go wrong in a libbitcask call. More variants may
/// come: match with a wildcard arm.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The key is absent or deleted (only the C interface reports this as an error).
    NotFound,
    /// The caller passed something unusable; nothing was changed.
    InvalidArgument(String),
    /// The operating system refused a read, write, sync, open or rename.
    Io {
        /// What libbitcask was doing, with the path involved.
        context: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// Stored data fails its checksum or format check where it cannot be a torn tail.
    Corruption(String),
    /// Another opener holds the database directory.
    Locked(String),
    /// The caller's buffer is smaller than the value; `needed` is the value's length.
    BufferTooSmall {
        /// The length of the value.
        needed: usize,
    },
    /// A bug in libbitcask: a caught panic or a broken invariant.
    Internal(String),
    /// The database (or the iterator's or batch's database) is closed, or
    /// is closing and stopped the operation.
    Closed(String),
    /// The database refuses writes after a write or sync failure it could
    /// not undo (the kernel may have dropped unsynced data): close and
    /// reopen it. Reads still work. `BITCASK_CLOSED` in C.
    WritesRefused(String),
    /// A write (put, delete, batch, sync, merge) on a handle opened
    /// read-only ([`crate::Options::set_read_only`]). `BITCASK_READ_ONLY` in C.
    ReadOnly(String),
}

/// Shorthand for results whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error, with what was being done to which path.
    pub(crate) fn io(what: &str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }

    /// Data that fails a check, located by file and offset.
    pub(crate) fn corruption(path: &Path, offset: u64, what: &str) -> Error {
        Error::Corruption(format!(
            "{}: {what} at offset {offset}; the data there cannot be trusted: run repair on the \
             closed database (bitcask_repair, or `bitcask repair DIR`) to keep every intact \
             record and move the damaged bytes to a quarantine file, or restore this file from \
             a backup",
            path.display()
        ))
    }
}

impl Error {
    /// The same error again, for each of several callers that one failure
    /// answers (a group commit). An I/O error keeps its OS error code.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::NotFound => Error::NotFound,
            Error::InvalidArgument(s) => Error::InvalidArgument(s.clone()),
            Error::Io { context, source } => Error::Io {
                context: context.clone(),
                source: match source.raw_os_error() {
                    Some(code) => io::Error::from_raw_os_error(code),
                    None => io::Error::new(source.kind(), source.to_string()),
                },
            },
            Error::Corruption(s) => Error::Corruption(s.clone()),
            Error::Locked(s) => Error::Locked(s.clone()),
            Error::BufferTooSmall { needed } => Error::BufferTooSmall { needed: *needed },
            Error::Internal(s) => Error::Internal(s.clone()),
            Error::Closed(s) => Error::Closed(s.clone()),
            Error::WritesRefused(s) => Error::WritesRefused(s.clone()),
            Error::ReadOnly(s) => Error::ReadOnly(s.clone()),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotFound => f.write_str("key not found"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Io { context, source } => write!(f, "I/O error: {context}: {source}"),
            Error::Corruption(what) => write!(f, "corruption: {what}"),
            Error::Locked(what) => write!(f, "locked: {what}"),
            Error::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the value needs {needed} bytes")
            }
            Error::Internal(what) => {
                write!(
                    f,
                    "internal error (a libbitcask bug; please report it): {what}"
                )
            }
            Error::Closed(what) => write!(f, "closed: {what}"),
            Error::WritesRefused(what) => write!(f, "writes refused: {what}"),
            Error::ReadOnly(what) => write!(f, "read-only: {what}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_and_the_cause() {
        let e = Error::io(
            "open",
            Path::new("/db/000000001.data"),
            io::Error::from_raw_os_error(libc::EACCES),
        );
        let text = e.to_string();
        assert!(text.contains("/db/000000001.data"), "{text}");
        assert!(text.contains("ermission denied"), "{text}");
        let c = Error::corruption(Path::new("/db/000000002.data"), 4096, "checksum mismatch");
        let text = c.to_string();
        assert!(
            text.contains("000000002.data") && text.contains("4096"),
            "{text}"
        );
    }
}

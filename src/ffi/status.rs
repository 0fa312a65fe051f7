//! Status codes, their names, and the library version.

use std::ffi::c_char;

use crate::error::Error;

/// The result of every fallible libbitcask call: `BITCASK_OK` (0) or one of
/// the `BITCASK_*` status codes below. The numeric values never change.
pub type bitcask_status = i32;

/// Success.
pub const BITCASK_OK: bitcask_status = 0;
/// The key is absent (never written, or deleted). Does not set `bitcask_last_error()`.
pub const BITCASK_NOT_FOUND: bitcask_status = 1;
/// A NULL handle or pointer, an empty or over-limit key or value, an invalid
/// option value, or a path that is not UTF-8. Nothing was changed.
pub const BITCASK_INVALID_ARGUMENT: bitcask_status = 2;
/// The operating system refused a read, write, sync, open or rename;
/// `bitcask_last_error()` names the file and the OS error.
pub const BITCASK_IO: bitcask_status = 3;
/// Stored data fails its checksum or format check where it cannot be a torn
/// tail; `bitcask_last_error()` names the file and offset. No wrong data is
/// ever returned in its place.
pub const BITCASK_CORRUPTION: bitcask_status = 4;
/// Another opener (in this process or another) holds the database directory.
pub const BITCASK_LOCKED: bitcask_status = 5;
/// `bitcask_get_into`'s buffer is too small; `*value_len_out` holds the size
/// needed. Does not set `bitcask_last_error()`.
pub const BITCASK_BUFFER_TOO_SMALL: bitcask_status = 6;
/// A bug in libbitcask: a caught panic or a broken invariant. Please report
/// it with the text of `bitcask_last_error()`.
pub const BITCASK_INTERNAL: bitcask_status = 7;
/// The database was closed under an iterator or batch, or it refuses writes
/// after an unrecoverable write or sync failure: close and reopen it.
pub const BITCASK_CLOSED: bitcask_status = 8;
/// A write (put, delete, batch, sync, merge) on a handle opened read-only
/// (`bitcask_options_set_read_only`); `bitcask_last_error()` names the
/// call. Nothing was written.
pub const BITCASK_READ_ONLY: bitcask_status = 9;

/// Major version of this header; see `bitcask_version_number()` for the
/// linked library's.
pub const BITCASK_VERSION_MAJOR: u32 = 0;
/// Minor version of this header.
pub const BITCASK_VERSION_MINOR: u32 = 1;
/// Patch version of this header.
pub const BITCASK_VERSION_PATCH: u32 = 0;
/// `BITCASK_VERSION_MAJOR * 1000000 + BITCASK_VERSION_MINOR * 1000 +
/// BITCASK_VERSION_PATCH`: compare with `bitcask_version_number()` to check
/// that the library at run time is at least the one compiled against.
pub const BITCASK_VERSION_NUMBER: u32 = 1000;

/// The longest key accepted, in bytes (64 KiB). Keys are 1 to
/// `BITCASK_MAX_KEY_LEN` bytes of any value, 0x00 included.
pub const BITCASK_MAX_KEY_LEN: usize = 65536;
/// The longest value accepted, in bytes (1 GiB). Values may be empty.
pub const BITCASK_MAX_VALUE_LEN: usize = 1073741824;

/// The status a call returns for an error.
pub(crate) fn status_of(error: &Error) -> bitcask_status {
    match error {
        Error::NotFound => BITCASK_NOT_FOUND,
        Error::InvalidArgument(_) => BITCASK_INVALID_ARGUMENT,
        Error::Io { .. } => BITCASK_IO,
        Error::Corruption(_) => BITCASK_CORRUPTION,
        Error::Locked(_) => BITCASK_LOCKED,
        Error::BufferTooSmall { .. } => BITCASK_BUFFER_TOO_SMALL,
        Error::Internal(_) => BITCASK_INTERNAL,
        Error::Closed(_) | Error::WritesRefused(_) => BITCASK_CLOSED,
        Error::ReadOnly(_) => BITCASK_READ_ONLY,
    }
}

/// Returns a short static description of status `s`, such as `"not found"`.
/// Accepts any integer: a value that is not a known status gives
/// `"unknown status"`. Never NULL; the string is never freed.
#[no_mangle]
pub extern "C" fn bitcask_status_str(s: bitcask_status) -> *const c_char {
    let text: &'static std::ffi::CStr = match s {
        BITCASK_OK => c"ok",
        BITCASK_NOT_FOUND => c"not found",
        BITCASK_INVALID_ARGUMENT => c"invalid argument",
        BITCASK_IO => c"I/O error",
        BITCASK_CORRUPTION => c"corruption",
        BITCASK_LOCKED => c"locked by another opener",
        BITCASK_BUFFER_TOO_SMALL => c"buffer too small",
        BITCASK_INTERNAL => c"internal error",
        BITCASK_CLOSED => c"closed",
        BITCASK_READ_ONLY => c"read-only handle",
        _ => c"unknown status",
    };
    text.as_ptr()
}

/// Returns the version of the linked library as `"MAJOR.MINOR.PATCH"`.
/// Static, never NULL.
#[no_mangle]
pub extern "C" fn bitcask_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Returns the version of the linked library as MAJOR*1000000 + MINOR*1000
/// + PATCH, to compare with `BITCASK_VERSION_NUMBER` from the header.
#[no_mangle]
pub extern "C" fn bitcask_version_number() -> u32 {
    const fn parse(digits: &str) -> u32 {
        let bytes = digits.as_bytes();
        let mut value = 0;
        let mut i = 0;
        while i < bytes.len() {
            value = value * 10 + (bytes[i] - b'0') as u32;
            i += 1;
        }
        value
    }
    const NUMBER: u32 = parse(env!("CARGO_PKG_VERSION_MAJOR")) * 1_000_000
        + parse(env!("CARGO_PKG_VERSION_MINOR")) * 1_000
        + parse(env!("CARGO_PKG_VERSION_PATCH"));
    NUMBER
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn limit_macros_equal_the_engine_limits() {
        // Literals above, because cbindgen writes only literal macros.
        assert_eq!(BITCASK_MAX_KEY_LEN, crate::MAX_KEY_LEN);
        assert_eq!(BITCASK_MAX_VALUE_LEN, crate::MAX_VALUE_LEN);
    }

    #[test]
    fn version_macros_equal_cargo_toml() {
        assert_eq!(
            BITCASK_VERSION_MAJOR.to_string(),
            env!("CARGO_PKG_VERSION_MAJOR")
        );
        assert_eq!(
            BITCASK_VERSION_MINOR.to_string(),
            env!("CARGO_PKG_VERSION_MINOR")
        );
        assert_eq!(
            BITCASK_VERSION_PATCH.to_string(),
            env!("CARGO_PKG_VERSION_PATCH")
        );
        assert_eq!(
            BITCASK_VERSION_NUMBER,
            BITCASK_VERSION_MAJOR * 1_000_000
                + BITCASK_VERSION_MINOR * 1_000
                + BITCASK_VERSION_PATCH
        );
        assert_eq!(bitcask_version_number(), BITCASK_VERSION_NUMBER);
        // SAFETY: bitcask_version returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(bitcask_version()) };
        assert_eq!(text.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn every_status_has_a_distinct_name_and_unknown_ones_share_one() {
        let name = |s| {
            // SAFETY: bitcask_status_str returns a static NUL-terminated string.
            unsafe { CStr::from_ptr(bitcask_status_str(s)) }
                .to_str()
                .unwrap()
        };
        let names: Vec<_> = (0..=9).map(name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 10, "{names:?}");
        assert!(!names.contains(&"unknown status"));
        assert_eq!(name(BITCASK_READ_ONLY), "read-only handle");
        for s in [-1, 10, 1000, i32::MIN, i32::MAX] {
            assert_eq!(name(s), "unknown status");
        }
    }
}

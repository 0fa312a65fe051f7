//! What every C entry point does around its body, in one place: catch
//! panics, turn the body's error into a status, record the thread's last
//! error, and check the caller's pointers before anything is dereferenced.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{self, AssertUnwindSafe};

use crate::error::{Error, Result};

use super::status::{bitcask_status, status_of, BITCASK_INTERNAL, BITCASK_OK};
use super::status::{BITCASK_BUFFER_TOO_SMALL, BITCASK_NOT_FOUND};

thread_local! {
    /// Detail of the last failing call on this thread, for `bitcask_last_error()`.
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Runs the body of a C entry point: returns `BITCASK_OK` on success, the
/// error's status otherwise, and `BITCASK_INTERNAL` for a panic, which never
/// crosses into C.
pub(crate) fn run(body: impl FnOnce() -> Result<()>) -> bitcask_status {
    // The engine's locks do not poison and its state is updated only after
    // the I/O it depends on, so a caught panic leaves nothing half-changed.
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => BITCASK_OK,
        Ok(Err(error)) => {
            let status = status_of(&error);
            if status != BITCASK_NOT_FOUND && status != BITCASK_BUFFER_TOO_SMALL {
                set_last_error(&error.to_string());
            }
            status
        }
        Err(payload) => {
            record_panic(payload.as_ref());
            BITCASK_INTERNAL
        }
    }
}

/// Runs a body that returns a value instead of a status (a constructor or a
/// query); a panic gives `fallback`, with its message recorded as `run`
/// records it.
pub(crate) fn run_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        record_panic(payload.as_ref());
        fallback
    })
}

/// Records a caught panic's message as the thread's last error.
fn record_panic(payload: &(dyn std::any::Any + Send)) {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string());
    set_last_error(&Error::Internal(format!("panic: {what}")).to_string());
}

fn set_last_error(text: &str) {
    let text = CString::new(text.replace('\0', "\\0")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

/// Returns the detail of the last failed call on the calling thread: what
/// went wrong and where (which argument, which file and offset, which OS
/// error). Never NULL; `""` on a thread where no call has failed yet.
///
/// Set by every call that returns a status other than `BITCASK_OK`,
/// `BITCASK_NOT_FOUND` and `BITCASK_BUFFER_TOO_SMALL`; left unchanged by the
/// others. The string belongs to the library and stays valid until the next
/// failing call on the same thread (or the thread's end): copy it to keep it.
#[no_mangle]
pub extern "C" fn bitcask_last_error() -> *const c_char {
    run_or(c"".as_ptr(), || {
        LAST_ERROR
            .try_with(|slot| slot.borrow().as_ptr())
            .unwrap_or(c"".as_ptr())
    })
}

/// A required pointer argument: a NULL is `BITCASK_INVALID_ARGUMENT`.
pub(crate) fn non_null<T>(ptr: *const T, name: &str) -> Result<*const T> {
    if ptr.is_null() {
        Err(Error::InvalidArgument(format!("{name} is NULL")))
    } else {
        Ok(ptr)
    }
}

/// A required out-pointer argument: a NULL is `BITCASK_INVALID_ARGUMENT`.
pub(crate) fn non_null_mut<T>(ptr: *mut T, name: &str) -> Result<*mut T> {
    non_null(ptr.cast_const(), name).map(<*const T>::cast_mut)
}

/// A byte-buffer argument of at most `max` bytes. An empty buffer may have
/// a NULL pointer; a NULL pointer with a non-zero length is invalid.
///
/// # Safety
/// If `ptr` is not NULL and `len <= max`, it must point to `len` readable
/// bytes that stay unchanged for `'a`.
pub(crate) unsafe fn bytes<'a>(
    ptr: *const c_void,
    len: usize,
    name: &str,
    max: usize,
) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::InvalidArgument(format!(
            "{name} is NULL but its length is {len}"
        )));
    }
    if len > max {
        return Err(Error::InvalidArgument(format!(
            "{name} is {len} bytes, longer than the {max} allowed"
        )));
    }
    // SAFETY: ptr is not NULL, len <= max <= isize::MAX, and the caller
    // promises len readable bytes (the contract's rule for every buffer).
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// A key argument: 1 to `max` bytes, never NULL.
///
/// # Safety
/// As for [`bytes`].
pub(crate) unsafe fn key<'a>(ptr: *const c_void, len: usize, max: usize) -> Result<&'a [u8]> {
    if len == 0 {
        return Err(Error::InvalidArgument(
            "key is empty (key_len is 0)".to_string(),
        ));
    }
    // SAFETY: forwarded from the caller.
    unsafe { bytes(ptr, len, "key", max) }
}

/// A path argument: a NUL-terminated UTF-8 string.
///
/// # Safety
/// If not NULL, `ptr` must point to a NUL-terminated string.
pub(crate) unsafe fn path<'a>(ptr: *const c_char, name: &str) -> Result<&'a str> {
    let ptr = non_null(ptr, name)?;
    // SAFETY: not NULL, and the caller promises a NUL-terminated string.
    let text = unsafe { CStr::from_ptr(ptr) };
    let text = text
        .to_str()
        .map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8")))?;
    if text.is_empty() {
        return Err(Error::InvalidArgument(format!("{name} is an empty string")));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_error() -> String {
        // SAFETY: bitcask_last_error returns a NUL-terminated string valid until the next failure.
        unsafe { CStr::from_ptr(bitcask_last_error()) }
            .to_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn a_panic_becomes_internal_with_its_message() {
        let status = run(|| panic!("boom at the boundary"));
        assert_eq!(status, BITCASK_INTERNAL);
        assert!(
            last_error().contains("boom at the boundary"),
            "{}",
            last_error()
        );
    }

    #[test]
    fn a_panic_in_a_query_gives_the_fallback_and_records_its_message() {
        let value = run_or(17u32, || panic!("boom in a query"));
        assert_eq!(value, 17);
        assert!(last_error().contains("boom in a query"), "{}", last_error());
    }

    #[test]
    fn not_found_and_success_leave_the_last_error_alone() {
        run(|| Err(Error::InvalidArgument("first".into())));
        assert!(last_error().contains("first"));
        assert_eq!(run(|| Err(Error::NotFound)), BITCASK_NOT_FOUND);
        assert_eq!(
            run(|| Err(Error::BufferTooSmall { needed: 3 })),
            BITCASK_BUFFER_TOO_SMALL
        );
        assert_eq!(run(|| Ok(())), BITCASK_OK);
        assert!(last_error().contains("first"));
    }

    #[test]
    fn a_fresh_thread_has_an_empty_last_error() {
        run(|| Err(Error::InvalidArgument("here".into())));
        let other = std::thread::spawn(last_error).join().unwrap();
        assert_eq!(other, "");
    }

    #[test]
    fn buffers_check_null_and_length_before_reading() {
        // SAFETY: only NULL pointers and a zero length: nothing is read.
        unsafe {
            assert_eq!(
                bytes(std::ptr::null(), 0, "value", 10).unwrap(),
                &[] as &[u8]
            );
            assert!(bytes(std::ptr::null(), 1, "value", 10).is_err());
            assert!(key(std::ptr::null(), 0, 10).is_err());
        }
        let one = [1u8];
        // SAFETY: the pointer is never read, since the length is over the limit.
        let too_long = unsafe { bytes(one.as_ptr().cast(), 11, "value", 10) };
        assert!(too_long
            .unwrap_err()
            .to_string()
            .contains("value is 11 bytes"));
    }
}

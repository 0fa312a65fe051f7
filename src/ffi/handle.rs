//! The opaque handles of the C interface (`bitcask_db`, `bitcask_iter`,
//! `bitcask_batch`, `bitcask_options`), made, borrowed and freed in one way
//! (in the spirit of rustls-ffi's `Castable`): a handle is a heap object
//! the library allocates, hands out as a pointer, and frees once.
//!
//! - [`into_handle`] allocates one, and fails (instead of aborting the
//!   process) when memory is exhausted;
//! - [`handle_ref`] and [`handle_mut`] turn a pointer argument into a
//!   reference, with a NULL reported as `BITCASK_INVALID_ARGUMENT` naming
//!   the argument;
//! - [`free_handle`] frees one (NULL is a no-op).

use std::alloc::{self, Layout};

use crate::error::{Error, Result};

/// A type handed to C as an opaque handle.
pub(crate) trait Castable: Sized {
    /// What a NULL handle argument is called in error messages.
    const ARG: &'static str;
}

/// Moves `value` to the heap and returns the handle C will hold. When
/// memory is exhausted this is an error, not an abort.
pub(crate) fn into_handle<T: Castable>(value: T) -> Result<*mut T> {
    let layout = Layout::new::<T>();
    debug_assert!(layout.size() > 0, "every handle holds data");
    // SAFETY: the layout has a non-zero size (every handle type holds data).
    let ptr = unsafe { alloc::alloc(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(Error::Io {
            context: format!("allocate a {} handle", T::ARG),
            source: std::io::Error::from_raw_os_error(libc::ENOMEM),
        });
    }
    // SAFETY: a fresh allocation of T's layout, so aligned and writable.
    unsafe { ptr.write(value) };
    Ok(ptr)
}

/// The handle behind a pointer argument, borrowed for the call.
///
/// # Safety
/// `ptr` is NULL or a live handle from [`into_handle`], not freed during
/// `'a`, and not mutated by another thread meanwhile.
pub(crate) unsafe fn handle_ref<'a, T: Castable>(ptr: *const T) -> Result<&'a T> {
    // SAFETY: the caller's promise; `as_ref` maps NULL to None.
    unsafe { ptr.as_ref() }.ok_or_else(|| null::<T>())
}

/// The handle behind a pointer argument, borrowed mutably for the call.
///
/// # Safety
/// As [`handle_ref`], and no other reference to the handle exists during
/// `'a` (the contract's rule: an iterator, batch or options object is used
/// by one thread at a time).
pub(crate) unsafe fn handle_mut<'a, T: Castable>(ptr: *mut T) -> Result<&'a mut T> {
    // SAFETY: the caller's promise; `as_mut` maps NULL to None.
    unsafe { ptr.as_mut() }.ok_or_else(|| null::<T>())
}

/// Takes back ownership of a handle, to free it (or close it first).
///
/// # Safety
/// `ptr` is NULL or a live handle from [`into_handle`], not used again.
pub(crate) unsafe fn take_handle<T: Castable>(ptr: *mut T) -> Option<Box<T>> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: made by into_handle with the global allocator and T's
    // layout, which is what Box uses, and given up by the caller.
    Some(unsafe { Box::from_raw(ptr) })
}

/// Frees a handle. NULL is a no-op.
///
/// # Safety
/// As [`take_handle`].
pub(crate) unsafe fn free_handle<T: Castable>(ptr: *mut T) {
    // SAFETY: forwarded from the caller.
    drop(unsafe { take_handle(ptr) });
}

fn null<T: Castable>() -> Error {
    Error::InvalidArgument(format!("{} is NULL", T::ARG))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Thing(u64);

    impl Castable for Thing {
        const ARG: &'static str = "thing";
    }

    #[test]
    fn a_handle_round_trips_and_null_names_the_argument() {
        let ptr = into_handle(Thing(7)).unwrap();
        // SAFETY: a live handle, used by this thread alone, freed once below.
        unsafe {
            assert_eq!(handle_ref(ptr).unwrap().0, 7);
            handle_mut(ptr).unwrap().0 = 8;
            assert_eq!(handle_ref(ptr).unwrap().0, 8);
            free_handle(ptr);
            let err = handle_ref::<Thing>(std::ptr::null()).err().unwrap();
            assert!(err.to_string().contains("thing is NULL"), "{err}");
            free_handle::<Thing>(std::ptr::null_mut());
        }
    }
}

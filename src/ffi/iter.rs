//! `bitcask_iter` and `bitcask_fold`: ordered iteration over a snapshot.

use std::ffi::{c_int, c_void};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::Iter;
use crate::MAX_KEY_LEN;

use super::boundary::{self, non_null_mut, run, run_or};
use super::db::bitcask_db;
use super::handle::{free_handle, handle_mut, handle_ref, into_handle, Castable};
use super::status::bitcask_status;

/// An ordered iterator over the keys of a database as they were when it was
/// made: an opaque object made by `bitcask_iter_new` and released by
/// `bitcask_iter_free`. Used by one thread at a time, while other threads
/// keep using the database.
pub struct bitcask_iter {
    iter: Iter,
    /// The database handle's: once it is set, the iterator is exhausted.
    closed: Arc<AtomicBool>,
}

impl Castable for bitcask_iter {
    const ARG: &'static str = "it";
}

/// The iterator behind an argument: `BITCASK_INVALID_ARGUMENT` for NULL,
/// `BITCASK_CLOSED` once its database is closed.
///
/// # Safety
/// `it` is NULL or a live iterator from `bitcask_iter_new`, used by this
/// thread alone.
unsafe fn live<'a>(it: *mut bitcask_iter) -> Result<&'a mut Iter> {
    // SAFETY: the caller's promise: live, and used by one thread at a time.
    let it = unsafe { handle_mut(it) }?;
    if it.closed.load(Ordering::Acquire) {
        return Err(Error::Closed(
            "the iterator's database was closed".to_string(),
        ));
    }
    Ok(&mut it.iter)
}

/// Creates an iterator over the keys that start with `prefix` (every key
/// when `prefix_len` is 0; `prefix` may then be NULL), in ascending
/// unsigned byte order (0x00 first, 0xFF last; a key sorts before the keys
/// it is a prefix of), or descending if `reverse`. It starts at the first
/// key in that order.
///
/// It sees the database as of this call: later puts, deletes and batches
/// are invisible to it and never invalidate it. Making it copies the
/// matching keys (and their record positions) out of the index; values are
/// read from disk only when `bitcask_iter_value` asks for them. Release it
/// with `bitcask_iter_free`, also after `bitcask_close` of its database.
///
/// Returns:
/// - `BITCASK_OK`: `*iter_out` set
/// - `BITCASK_INVALID_ARGUMENT`: db or iter_out NULL, prefix NULL with a
///   non-zero length, prefix longer than `BITCASK_MAX_KEY_LEN`
///
/// # Safety
/// `db` is NULL or a live handle; `prefix` is NULL or points to `prefix_len`
/// readable bytes; `iter_out` is NULL or points to writable storage for a
/// pointer.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_new(
    db: *mut bitcask_db,
    prefix: *const c_void,
    prefix_len: usize,
    reverse: bool,
    iter_out: *mut *mut bitcask_iter,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, prefix) = unsafe {
            (
                handle_ref(db)?,
                boundary::bytes(prefix, prefix_len, "prefix", MAX_KEY_LEN)?,
            )
        };
        let iter_out = non_null_mut(iter_out, "iter_out")?;
        let iter = db.db.iter(prefix, reverse)?;
        let it = into_handle(bitcask_iter {
            iter,
            closed: Arc::clone(&db.closed),
        })?;
        // SAFETY: iter_out is not NULL and points to writable storage.
        unsafe { iter_out.write(it) };
        Ok(())
    })
}

/// Whether the iterator is at a key. False for NULL, once it has moved past
/// the last key, and once its database is closed.
///
/// # Safety
/// `it` is NULL or a live iterator, used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_valid(it: *const bitcask_iter) -> bool {
    run_or(false, || {
        // SAFETY: the caller's promise above; only read through this reference.
        unsafe { live(it.cast_mut()) }.is_ok_and(|it| it.valid())
    })
}

/// Moves to the next key. Does nothing on NULL, on an exhausted iterator,
/// or once its database is closed.
///
/// # Safety
/// `it` is NULL or a live iterator, used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_next(it: *mut bitcask_iter) {
    run_or((), || {
        // SAFETY: the caller's promise above.
        if let Ok(it) = unsafe { live(it) } {
            it.next();
        }
    })
}

/// Moves back to the first key (the smallest, or the largest if reverse).
/// Does nothing on NULL or once its database is closed.
///
/// # Safety
/// `it` is NULL or a live iterator, used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_rewind(it: *mut bitcask_iter) {
    run_or((), || {
        // SAFETY: the caller's promise above.
        if let Ok(it) = unsafe { live(it) } {
            it.rewind();
        }
    })
}

/// Moves to the first key `>= key` (for a reverse iterator: the first key
/// `<= key`, i.e. the largest not above it), among the iterator's keys
/// (those with its prefix); exhausted if there is none. `key` need not be
/// in the database. `key_len` 0 is the empty key, which sorts before every
/// key: a forward iterator goes to its first key, a reverse one is
/// exhausted. A NULL key with a non-zero length, or a key longer than
/// `BITCASK_MAX_KEY_LEN`, leaves the iterator exhausted. Does nothing on a
/// NULL iterator or once its database is closed.
///
/// # Safety
/// `it` is NULL or a live iterator, used by one thread at a time; `key` is
/// NULL or points to `key_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_seek(
    it: *mut bitcask_iter,
    key: *const c_void,
    key_len: usize,
) {
    run_or((), || {
        // SAFETY: the caller's promise above.
        let Ok(it) = (unsafe { live(it) }) else {
            return;
        };
        // SAFETY: the caller's promise above.
        match unsafe { boundary::bytes(key, key_len, "key", MAX_KEY_LEN) } {
            Ok(key) => it.seek(key),
            Err(_) => it.exhaust(),
        }
    })
}

/// The current key: returns a pointer to its bytes and stores its length
/// in `*key_len`. The bytes belong to the iterator and stay valid until its
/// next move (in this release, until it is freed). Returns NULL, with
/// `*key_len` 0, for a NULL or exhausted iterator or once its database is
/// closed. `key_len` may be NULL if the length is not wanted.
///
/// # Safety
/// `it` is NULL or a live iterator, used by one thread at a time; `key_len`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_key(
    it: *const bitcask_iter,
    key_len: *mut usize,
) -> *const c_void {
    run_or(std::ptr::null(), || {
        // SAFETY: the caller's promise above; only read through this reference.
        let key = unsafe { live(it.cast_mut()) }.ok().and_then(|it| it.key());
        let (ptr, len) = key.map_or((std::ptr::null(), 0), |k| (k.as_ptr().cast(), k.len()));
        if !key_len.is_null() {
            // SAFETY: not NULL and writable (the caller's promise).
            unsafe { key_len.write(len) };
        }
        ptr
    })
}

/// The current value: on `BITCASK_OK`, `*value` points to `*value_len`
/// bytes (never NULL, even for an empty value) that belong to the iterator
/// and stay valid until its next move or its free. The value is read from
/// its data file (one positioned read, both checksums checked) the first
/// time it is asked for at a position.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_NOT_FOUND`: the iterator is exhausted
/// - `BITCASK_INVALID_ARGUMENT`: it, value or value_len NULL
/// - `BITCASK_CLOSED`: its database was closed
/// - `BITCASK_IO`
/// - `BITCASK_CORRUPTION`: the record fails its checks: no data is returned
///
/// # Safety
/// `it` is NULL or a live iterator, used by one thread at a time; `value`
/// and `value_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_value(
    it: *mut bitcask_iter,
    value: *mut *const c_void,
    value_len: *mut usize,
) -> bitcask_status {
    run(|| {
        // NULL arguments first, then a closed database.
        // SAFETY: the caller's promise above.
        unsafe { handle_ref(it.cast_const()) }?;
        let value_out = non_null_mut(value, "value")?;
        let value_len_out = non_null_mut(value_len, "value_len")?;
        // SAFETY: the caller's promise above.
        let it = unsafe { live(it) }?;
        let value = it.value()?;
        // SAFETY: both are not NULL and writable (the caller's promise).
        unsafe {
            value_out.write(value.as_ptr().cast());
            value_len_out.write(value.len());
        }
        Ok(())
    })
}

/// Releases an iterator. NULL is a no-op. Safe also after `bitcask_close`
/// of its database (and needed then too).
///
/// # Safety
/// `it` is NULL or a live iterator from `bitcask_iter_new`, not used again.
#[no_mangle]
pub unsafe extern "C" fn bitcask_iter_free(it: *mut bitcask_iter) {
    // SAFETY: the caller's promise above.
    run_or((), || unsafe { free_handle(it) })
}

/// The callback of `bitcask_fold`: called with `ctx` as given to
/// `bitcask_fold`, and one key and its value, valid only during the call.
/// Return 0 to go on, anything else to stop the walk.
pub type bitcask_fold_fn = Option<
    unsafe extern "C" fn(
        ctx: *mut c_void,
        key: *const c_void,
        key_len: usize,
        value: *const c_void,
        value_len: usize,
    ) -> c_int,
>;

/// Calls `fn` for each key that starts with `prefix` (every key when
/// `prefix_len` is 0; `prefix` may then be NULL), with its value, in
/// ascending key order, over the database as of this call (as an iterator
/// sees it). `key` and `value` are valid only during the call (`value` is
/// never NULL). No lock is held while `fn` runs: it may call any `bitcask_*`
/// function on the same database except `bitcask_close`, and must not unwind
/// (longjmp, C++ exception) through the library. A non-zero return stops the
/// walk, and `bitcask_fold` still returns `BITCASK_OK`.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db or fn NULL, prefix NULL with a non-zero
///   length or longer than `BITCASK_MAX_KEY_LEN`
/// - `BITCASK_IO`
/// - `BITCASK_CORRUPTION`: a record fails its checks; the walk stops there,
///   after `fn` saw the keys before it
///
/// # Safety
/// `db` is NULL or a live handle; `prefix` is NULL or points to
/// `prefix_len` readable bytes; `fn` is NULL or a function of this type.
#[no_mangle]
pub unsafe extern "C" fn bitcask_fold(
    db: *mut bitcask_db,
    prefix: *const c_void,
    prefix_len: usize,
    r#fn: bitcask_fold_fn,
    ctx: *mut c_void,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, prefix) = unsafe {
            (
                handle_ref(db)?,
                boundary::bytes(prefix, prefix_len, "prefix", MAX_KEY_LEN)?,
            )
        };
        let callback = r#fn.ok_or_else(|| Error::InvalidArgument("fn is NULL".to_string()))?;
        db.db.fold(prefix, |key, value| {
            // SAFETY: a function of the documented type; key and value are
            // live for the call.
            let stop = unsafe {
                callback(
                    ctx,
                    key.as_ptr().cast(),
                    key.len(),
                    value.as_ptr().cast(),
                    value.len(),
                )
            };
            if stop != 0 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
    })
}

//! `bitcask_db`: open, close, put, get, delete, sync.

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::Bitcask;
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

use super::boundary::{self, non_null_mut, run};
use super::handle::{handle_ref, into_handle, take_handle, Castable};
use super::options::{bitcask_options, options_or_default};
use super::status::bitcask_status;

/// An open database: an opaque handle made by `bitcask_open` and released by
/// `bitcask_close`. Any number of threads may call any function on one handle
/// at the same time, except `bitcask_close`, which must be the last call.
/// Reads run in parallel with each other and with writes; writes are
/// serialized. A handle must not be used in a child after `fork()`.
pub struct bitcask_db {
    /// Shared with nothing that outlives the handle: batches hold a `Weak`,
    /// iterators only their snapshot and `closed`.
    pub(crate) db: Arc<Bitcask>,
    /// Set by `bitcask_close`, for the iterators made from this handle.
    pub(crate) closed: Arc<AtomicBool>,
}

impl Castable for bitcask_db {
    const ARG: &'static str = "db";
}

/// The database behind a handle argument.
///
/// # Safety
/// `db` is NULL or a live handle from `bitcask_open`, which stays alive
/// until `bitcask_close`, the last call on it.
pub(crate) unsafe fn database<'a>(db: *mut bitcask_db) -> Result<&'a Bitcask> {
    // SAFETY: forwarded from the caller; handles are only read through.
    Ok(&unsafe { handle_ref(db) }?.db)
}

/// Opens the database in directory `dir`, creating the directory if it is
/// missing, and stores the handle in `*db_out`.
///
/// `dir` is a NUL-terminated UTF-8 path. `opts` may be NULL for the
/// defaults; it is copied, so it may be freed right after. Open takes an
/// exclusive lock on the directory, loads the data files in order and
/// rebuilds the in-memory index. After a crash or a power cut, the newest
/// data file may end in bytes that are not good records: from the first
/// record that fails a check on, they are copied to a quarantine file in
/// the directory and cut off, and writing continues after the last good
/// record (every synced write lies before it). Zeros after the last record
/// of an older file are cut too. `bitcask_get_recovery_report` and
/// `bitcask_get_recovery_text` say what open did.
///
/// Returns:
/// - `BITCASK_OK`: `*db_out` set; release it with `bitcask_close`
/// - `BITCASK_INVALID_ARGUMENT`: dir or db_out NULL, dir empty or not UTF-8
/// - `BITCASK_LOCKED`: another handle, in this process or another, has the
///   directory open
/// - `BITCASK_IO`: the directory or a file cannot be created, read or locked;
///   also when `dir` exists and is not a directory
/// - `BITCASK_CORRUPTION`: an older (sealed) data file without a usable
///   hint file fails its checks: damage no crash explains;
///   `bitcask_last_error()` names the file and offset, and `bitcask_repair`
///   repairs it. Also a data file of an unknown format version, and, with
///   `bitcask_options_set_strict_recovery`, a newest data file that ends in
///   bytes that are not good records
///
/// With `bitcask_options_set_read_only` on, open takes no lock (so it never
/// returns `BITCASK_LOCKED`), creates and cuts nothing, and returns
/// `BITCASK_INVALID_ARGUMENT` for a directory without a database and
/// `BITCASK_IO` for a missing one.
///
/// On failure `*db_out` is not written.
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `opts` is NULL or a live options
/// object; `db_out` is NULL or points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn bitcask_open(
    dir: *const c_char,
    opts: *const bitcask_options,
    db_out: *mut *mut bitcask_db,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let dir = unsafe { boundary::path(dir, "dir") }?;
        let db_out = non_null_mut(db_out, "db_out")?;
        // SAFETY: as above.
        let options = unsafe { options_or_default(opts) }?;
        let db = Bitcask::open(dir, options)?;
        let handle = into_handle(bitcask_db {
            db: Arc::new(db),
            closed: Arc::new(AtomicBool::new(false)),
        })?;
        // SAFETY: db_out is not NULL and points to writable storage.
        unsafe { db_out.write(handle) };
        Ok(())
    })
}

/// Syncs every write, releases the directory lock and frees the handle.
/// The handle is gone even when the final sync fails: the status reports
/// that failure (`BITCASK_IO`, or `BITCASK_CLOSED` if writes were already
/// refused after an earlier failure, in which case not every write may be
/// on disk). `bitcask_close(NULL)` returns `BITCASK_OK`. Must be the last call on
/// the handle, made when no other thread is using it.
///
/// Iterators and batches made from the handle may still be alive: from now
/// on they return `BITCASK_CLOSED` (an iterator is no longer valid), and
/// must still be freed with `bitcask_iter_free` / `bitcask_batch_free`. The
/// directory lock is released here all the same; data files stay open (not
/// locked) until the last such iterator is freed.
///
/// # Safety
/// `db` is NULL or a live handle from `bitcask_open`, not used again.
#[no_mangle]
pub unsafe extern "C" fn bitcask_close(db: *mut bitcask_db) -> bitcask_status {
    run(|| {
        // SAFETY: NULL or a live handle from bitcask_open, closed once,
        // with no other call in flight.
        let Some(handle) = (unsafe { take_handle(db) }) else {
            return Ok(());
        };
        handle.closed.store(true, Ordering::Release);
        match Arc::try_unwrap(handle.db) {
            Ok(db) => db.close(),
            // A batch commit still in flight on another thread (a caller
            // bug): close through the shared reference, which refuses later
            // writes, and let the commit drop the last reference.
            Err(shared) => shared.shutdown(),
        }
    })
}

/// Stores `value` under `key`, replacing any earlier value.
///
/// `key` is 1 to `BITCASK_MAX_KEY_LEN` bytes; `value` is 0 to
/// `BITCASK_MAX_VALUE_LEN` bytes, and may be NULL when `value_len` is 0.
/// Both are copied before the call returns. With sync_writes on, the write
/// is on stable storage when this returns `BITCASK_OK`.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db NULL, key NULL or empty or too long, value
///   NULL with a non-zero length or too long; nothing is written
/// - `BITCASK_IO`: the write or its sync failed: the record is not stored, and
///   a failed sync makes later writes return `BITCASK_CLOSED`
/// - `BITCASK_CLOSED`: writes are refused after an earlier unrecoverable
///   failure: reopen the database
/// - `BITCASK_READ_ONLY`: the handle was opened read-only; nothing is written
///
/// # Safety
/// `db` is NULL or a live handle; `key` and `value` are NULL or point to
/// `key_len` and `value_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitcask_put(
    db: *mut bitcask_db,
    key: *const c_void,
    key_len: usize,
    value: *const c_void,
    value_len: usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, key, value) = unsafe {
            (
                database(db)?,
                boundary::key(key, key_len, MAX_KEY_LEN)?,
                boundary::bytes(value, value_len, "value", MAX_VALUE_LEN)?,
            )
        };
        db.put(key, value)
    })
}

/// Reads the value of `key` into a new buffer: on `BITCASK_OK`,
/// `*value_out` points to `*value_len_out` bytes, never NULL (even for an
/// empty value), which the caller releases with `bitcask_free` (not
/// `free`). The buffer is not NUL-terminated.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_NOT_FOUND`: the key is absent; the out parameters are not
///   written
/// - `BITCASK_INVALID_ARGUMENT`: db, key, value_out or value_len_out NULL, key
///   empty or too long
/// - `BITCASK_IO`
/// - `BITCASK_CORRUPTION`: the stored record fails its checksum: no data is
///   returned
///
/// # Safety
/// `db` is NULL or a live handle; `key` is NULL or points to `key_len`
/// readable bytes; `value_out` and `value_len_out` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get(
    db: *mut bitcask_db,
    key: *const c_void,
    key_len: usize,
    value_out: *mut *mut c_void,
    value_len_out: *mut usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, key) = unsafe { (database(db)?, boundary::key(key, key_len, MAX_KEY_LEN)?) };
        let value_out = non_null_mut(value_out, "value_out")?;
        let value_len_out = non_null_mut(value_len_out, "value_len_out")?;
        let copied = db.get_with(key, |value| {
            // One byte at least, so that an empty value still gets a non-NULL pointer.
            // SAFETY: malloc has no preconditions; the result is checked below.
            let buf = unsafe { libc::malloc(value.len().max(1)) };
            if !buf.is_null() {
                // SAFETY: buf holds at least value.len() bytes and is fresh,
                // so it does not overlap value.
                unsafe {
                    std::ptr::copy_nonoverlapping(value.as_ptr(), buf.cast::<u8>(), value.len())
                };
            }
            (buf, value.len())
        })?;
        let (buf, len) = copied.ok_or(Error::NotFound)?;
        if buf.is_null() {
            return Err(Error::Io {
                context: format!("allocate {len} bytes for the value"),
                source: std::io::Error::from_raw_os_error(libc::ENOMEM),
            });
        }
        // SAFETY: both out pointers are non-NULL and writable.
        unsafe {
            value_out.write(buf);
            value_len_out.write(len);
        }
        Ok(())
    })
}

/// Reads the value of `key` into the caller's buffer `buf` of `buf_len`
/// bytes, without allocating.
///
/// On `BITCASK_OK` the value fills the first `*value_len_out` bytes of
/// `buf`. If the value is longer than `buf_len`, returns
/// `BITCASK_BUFFER_TOO_SMALL` with the value's length in `*value_len_out`
/// and `buf` untouched. `buf` may be NULL when `buf_len` is 0: that is a
/// size query (`BITCASK_BUFFER_TOO_SMALL` with the size, or `BITCASK_OK`
/// with 0 for an empty value). Under concurrent writers the value may change
/// between a size query and the read that follows it.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_BUFFER_TOO_SMALL`
/// - `BITCASK_NOT_FOUND`: `*value_len_out` not written
/// - `BITCASK_INVALID_ARGUMENT`: db, key or value_len_out NULL, buf NULL with
///   a non-zero buf_len, key empty or too long
/// - `BITCASK_IO`
/// - `BITCASK_CORRUPTION`
///
/// # Safety
/// `db` is NULL or a live handle; `key` is NULL or points to `key_len`
/// readable bytes; `buf` is NULL or points to `buf_len` writable bytes;
/// `value_len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get_into(
    db: *mut bitcask_db,
    key: *const c_void,
    key_len: usize,
    buf: *mut c_void,
    buf_len: usize,
    value_len_out: *mut usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, key) = unsafe { (database(db)?, boundary::key(key, key_len, MAX_KEY_LEN)?) };
        let value_len_out = non_null_mut(value_len_out, "value_len_out")?;
        if buf.is_null() && buf_len != 0 {
            return Err(Error::InvalidArgument(format!(
                "buf is NULL but buf_len is {buf_len}"
            )));
        }
        // No value is longer than MAX_VALUE_LEN, so a larger buffer is not
        // needed in full (and a slice must stay under isize::MAX bytes).
        let usable = buf_len.min(MAX_VALUE_LEN);
        let buf: &mut [u8] = if usable == 0 {
            &mut []
        } else {
            // SAFETY: buf is not NULL and the caller promises buf_len >= usable writable bytes.
            unsafe { std::slice::from_raw_parts_mut(buf.cast::<u8>(), usable) }
        };
        let found = match db.get_into(key, buf) {
            Ok(found) => found,
            Err(Error::BufferTooSmall { needed }) => {
                // SAFETY: value_len_out is non-NULL and writable.
                unsafe { value_len_out.write(needed) };
                return Err(Error::BufferTooSmall { needed });
            }
            Err(e) => return Err(e),
        };
        let len = found.ok_or(Error::NotFound)?;
        // SAFETY: value_len_out is non-NULL and writable.
        unsafe { value_len_out.write(len) };
        Ok(())
    })
}

/// Releases a buffer returned by `bitcask_get`. NULL is a no-op.
///
/// # Safety
/// `ptr` is NULL or a buffer from `bitcask_get`, not yet released.
#[no_mangle]
pub unsafe extern "C" fn bitcask_free(ptr: *mut c_void) {
    // SAFETY: bitcask_get allocates with malloc; free accepts NULL.
    unsafe { libc::free(ptr) }
}

/// Deletes `key`. Deleting an absent key is `BITCASK_OK` and writes
/// nothing. With sync_writes on, the delete is on stable storage when this
/// returns `BITCASK_OK`.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db or key NULL, key empty or too long
/// - `BITCASK_IO`
/// - `BITCASK_CLOSED`: writes refused after an earlier unrecoverable failure
/// - `BITCASK_READ_ONLY`: the handle was opened read-only; nothing is written
///
/// # Safety
/// `db` is NULL or a live handle; `key` is NULL or points to `key_len`
/// readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitcask_delete(
    db: *mut bitcask_db,
    key: *const c_void,
    key_len: usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, key) = unsafe { (database(db)?, boundary::key(key, key_len, MAX_KEY_LEN)?) };
        db.delete(key)
    })
}

/// Makes every write acknowledged so far durable (fdatasync of the active
/// data file; full data files were synced when they filled up).
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db NULL
/// - `BITCASK_IO`: the sync failed: writes are refused from then on, since the
///   kernel may have dropped the unsynced data; reopen the database
/// - `BITCASK_CLOSED`: writes were already refused
/// - `BITCASK_READ_ONLY`: the handle was opened read-only
///
/// # Safety
/// `db` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn bitcask_sync(db: *mut bitcask_db) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { database(db) }?;
        db.sync()
    })
}

/// Catches a read-only handle (`bitcask_options_set_read_only`) up with the
/// process that writes the database: from then on gets, iterators made
/// afterwards and `bitcask_get_stats` see every record that process had
/// completely written when this call read the directory. Cheap when the
/// writer only appended, rolled over or merged since: it reads only what is
/// new. When it meets a merge's files out of order it loads the directory
/// again, at about the cost of an open, and moves its index over key by
/// key: a get from another thread meanwhile finds each key at its old or
/// its new value, never missing. Iterators made before keep their
/// snapshot. Never writes anything, and never waits for the writer. On a
/// handle opened for writing, which always sees its own writes, it does
/// nothing and returns `BITCASK_OK`.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db NULL; or the directory no longer holds
///   a database
/// - `BITCASK_IO`: a file could not be listed, opened or read; the handle
///   keeps what it saw before (a later refresh loads everything again)
/// - `BITCASK_CORRUPTION`: a data file that is no longer written fails its
///   checks; as for `BITCASK_IO`
///
/// # Safety
/// `db` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn bitcask_refresh(db: *mut bitcask_db) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { database(db) }?;
        db.refresh()
    })
}

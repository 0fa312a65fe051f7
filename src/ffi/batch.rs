//! `bitcask_batch`: atomic write batches.

use std::ffi::c_void;
use std::sync::{Arc, Weak};

use crate::error::{Error, Result};
use crate::Batch;
use crate::Bitcask;
use crate::{MAX_KEY_LEN, MAX_VALUE_LEN};

use super::boundary::{self, non_null_mut, run, run_or};
use super::db::bitcask_db;
use super::handle::{free_handle, handle_mut, handle_ref, into_handle, Castable};
use super::status::bitcask_status;

/// A write batch: puts and deletes buffered in memory, then committed so
/// that all of them become visible, and durable, together or not at all,
/// also across a crash. An opaque object made by `bitcask_batch_new` and
/// released by `bitcask_batch_free`. Used by one thread at a time, while
/// other threads keep using the database.
pub struct bitcask_batch {
    batch: Batch,
    /// Weak, so that a batch left alive does not keep a closed database
    /// alive: once the handle is closed, this no longer upgrades.
    db: Weak<Bitcask>,
}

impl Castable for bitcask_batch {
    const ARG: &'static str = "batch";
}

/// The batch behind an argument, with its database: `BITCASK_INVALID_ARGUMENT`
/// for NULL, `BITCASK_CLOSED` once the database is closed.
///
/// # Safety
/// `b` is NULL or a live batch from `bitcask_batch_new`, used by this thread
/// alone.
unsafe fn live<'a>(b: *mut bitcask_batch) -> Result<(&'a mut Batch, Arc<Bitcask>)> {
    // SAFETY: the caller's promise: live, and used by one thread at a time.
    let b = unsafe { handle_mut(b) }?;
    let db =
        b.db.upgrade()
            .ok_or_else(|| Error::Closed("the batch's database was closed".to_string()))?;
    Ok((&mut b.batch, db))
}

/// Creates an empty batch for `db` and stores it in `*batch_out`. The batch
/// may hold up to the database's `max_batch_bytes` (see
/// `bitcask_options_set_max_batch_bytes`). Release it with
/// `bitcask_batch_free`, also after `bitcask_close` of its database.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db or batch_out NULL
/// - `BITCASK_READ_ONLY`: db was opened read-only
///
/// # Safety
/// `db` is NULL or a live handle; `batch_out` is NULL or points to writable
/// storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_new(
    db: *mut bitcask_db,
    batch_out: *mut *mut bitcask_batch,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { handle_ref(db) }?;
        let batch_out = non_null_mut(batch_out, "batch_out")?;
        db.db.check_writable("batch")?;
        let b = into_handle(bitcask_batch {
            batch: db.db.batch(),
            db: Arc::downgrade(&db.db),
        })?;
        // SAFETY: batch_out is not NULL and points to writable storage.
        unsafe { batch_out.write(b) };
        Ok(())
    })
}

/// Adds a put of `value` under `key` to the batch; both are copied. Nothing
/// is written until `bitcask_batch_commit`. Within a batch the last
/// operation on a key wins.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: b or key NULL, key empty or longer than
///   `BITCASK_MAX_KEY_LEN`, value NULL with a non-zero length or longer than
///   `BITCASK_MAX_VALUE_LEN`, or the batch would grow past `max_batch_bytes`:
///   commit it and go on in the emptied batch; in every case the batch is
///   unchanged
/// - `BITCASK_CLOSED`: its database was closed
///
/// # Safety
/// `b` is NULL or a live batch, used by one thread at a time; `key` and
/// `value` are NULL or point to `key_len` and `value_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_put(
    b: *mut bitcask_batch,
    key: *const c_void,
    key_len: usize,
    value: *const c_void,
    value_len: usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let ((batch, _db), key, value) = unsafe {
            (
                live(b)?,
                boundary::key(key, key_len, MAX_KEY_LEN)?,
                boundary::bytes(value, value_len, "value", MAX_VALUE_LEN)?,
            )
        };
        batch.put(key, value)
    })
}

/// Adds a delete of `key` to the batch. Deleting a key that is absent when
/// the batch is committed writes nothing for it.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: b or key NULL, key empty or too long, or the
///   batch would grow past `max_batch_bytes`; the batch is unchanged
/// - `BITCASK_CLOSED`: its database was closed
///
/// # Safety
/// `b` is NULL or a live batch, used by one thread at a time; `key` is NULL
/// or points to `key_len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_delete(
    b: *mut bitcask_batch,
    key: *const c_void,
    key_len: usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let ((batch, _db), key) = unsafe { (live(b)?, boundary::key(key, key_len, MAX_KEY_LEN)?) };
        batch.delete(key)
    })
}

/// Commits the batch: all its puts and deletes become visible together, and
/// after a crash at any moment either all or none of them are found when
/// the database is reopened. The batch is written with one append; with
/// sync_writes on it is on stable storage when this returns `BITCASK_OK`.
/// On `BITCASK_OK` the batch is emptied and may be reused; an empty batch
/// commits as a no-op. On failure the batch keeps its operations and none
/// of them is visible.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: b NULL
/// - `BITCASK_IO`: the write or its sync failed: nothing of the batch is
///   visible now, and a failed sync makes later writes return `BITCASK_CLOSED`
/// - `BITCASK_CLOSED`: its database was closed, or refuses writes after an
///   earlier unrecoverable failure
/// - `BITCASK_READ_ONLY`: its database was opened read-only
///
/// # Safety
/// `b` is NULL or a live batch, used by one thread at a time.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_commit(b: *mut bitcask_batch) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let (batch, db) = unsafe { live(b) }?;
        db.write(batch)
    })
}

/// Releases a batch and whatever it still holds (uncommitted operations are
/// dropped). NULL is a no-op. Safe also after `bitcask_close` of its
/// database (and needed then too).
///
/// # Safety
/// `b` is NULL or a live batch from `bitcask_batch_new`, not used again.
#[no_mangle]
pub unsafe extern "C" fn bitcask_batch_free(b: *mut bitcask_batch) {
    // SAFETY: the caller's promise above.
    run_or((), || unsafe { free_handle(b) })
}

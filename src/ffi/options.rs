//! `bitcask_options`: the C handle for [`Options`].

use crate::error::{Error, Result};
use crate::options::{IndexType, Options};

use super::boundary::{run, run_or};
use super::handle::{free_handle, handle_mut, handle_ref, into_handle, Castable};
use super::status::bitcask_status;

/// Options for `bitcask_open`: an opaque object made by
/// `bitcask_options_new()` with every option at its default, changed by the
/// `bitcask_options_set_*` functions, and released by
/// `bitcask_options_free()`. `bitcask_open` copies it, so it may be freed or
/// reused right after. Used by one thread at a time.
pub struct bitcask_options {
    pub(crate) options: Options,
}

impl Castable for bitcask_options {
    const ARG: &'static str = "opts";
}

/// Creates an options object with every option at its default:
/// data_file_size 256 MiB, sync_writes off, bytes_per_sync 0 (off),
/// mmap_at_startup on, max_batch_bytes 64 MiB, auto_merge_ratio 0.5,
/// auto_merge_min_bytes 256 MiB, checkpoint_bytes 64 MiB, index_type
/// `BITCASK_INDEX_HASH`.
/// Returns NULL only when memory is exhausted. Release it with
/// `bitcask_options_free()`.
#[no_mangle]
pub extern "C" fn bitcask_options_new() -> *mut bitcask_options {
    run_or(std::ptr::null_mut(), || {
        into_handle(bitcask_options {
            options: Options::default(),
        })
        .unwrap_or(std::ptr::null_mut())
    })
}

/// Releases an options object. NULL is a no-op.
///
/// # Safety
/// `opts` is NULL or was returned by `bitcask_options_new()` and not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_free(opts: *mut bitcask_options) {
    // SAFETY: the caller's promise above.
    run_or((), || unsafe { free_handle(opts) })
}

/// Runs `change` on the options behind `opts`, after checking the pointer.
fn with_options(
    opts: *mut bitcask_options,
    change: impl FnOnce(&mut Options) -> Result<()>,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller passes NULL or a live object from
        // bitcask_options_new, used by one thread at a time.
        change(&mut unsafe { handle_mut(opts) }?.options)
    })
}

/// Sets the size at which the active data file is closed and a new one
/// begun: from 4096 (4 KiB) to 2147483648 (2 GiB); default 268435456
/// (256 MiB). A record larger than this gets a data file of its own.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL or `bytes` out of range; the
///   options are unchanged
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_data_file_size(
    opts: *mut bitcask_options,
    bytes: u64,
) -> bitcask_status {
    with_options(opts, |o| o.set_data_file_size(bytes).map(drop))
}

/// Sets whether every put and delete is on stable storage (fdatasync)
/// before it returns: with it on, an acknowledged write survives a power
/// loss. Default off: writes survive a crash of the process, and reach the
/// disk at `bitcask_sync`, at `bytes_per_sync`, when a data file fills up,
/// at `bitcask_close`, or when the kernel writes them back.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_sync_writes(
    opts: *mut bitcask_options,
    on: bool,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_sync_writes(on);
        Ok(())
    })
}

/// Sets how many bytes may be written between two syncs of the active data
/// file: once that many bytes have been appended since the last sync, the
/// write that crosses the mark syncs before it returns. This bounds what a
/// power loss can take to about `bytes` of acknowledged writes. Any value;
/// 0 (the default) turns it off. Has no effect while sync_writes is on.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_bytes_per_sync(
    opts: *mut bitcask_options,
    bytes: u64,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_bytes_per_sync(bytes);
        Ok(())
    })
}

/// Sets whether `bitcask_open` reads the data files and their hint files
/// through memory maps while it rebuilds the index (faster for large
/// files). Default on. After open, gets read records in place through maps
/// of the data files, and puts copy into the active file's map, whatever
/// this option says.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_mmap_at_startup(
    opts: *mut bitcask_options,
    on: bool,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_mmap_at_startup(on);
        Ok(())
    })
}

/// Sets the largest a write batch may grow, in bytes it takes in a data
/// file (keys, values, and a record header of at most 17 bytes per
/// operation, plus 23 bytes for the commit record): from 4096 (4 KiB) to
/// 2147483648 (2 GiB); default 67108864 (64 MiB). A batch is held in memory
/// until committed and written with one append, so this bounds both; a
/// `bitcask_batch_put` or `bitcask_batch_delete` that would pass it returns
/// `BITCASK_INVALID_ARGUMENT` and leaves the batch as it was.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL or `bytes` out of range; the
///   options are unchanged
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_max_batch_bytes(
    opts: *mut bitcask_options,
    bytes: u64,
) -> bitcask_status {
    with_options(opts, |o| o.set_max_batch_bytes(bytes).map(drop))
}

/// Sets the share of the data files' bytes that must be reclaimable (see
/// `reclaimable_bytes` in `bitcask_stats`) before the database merges on its
/// own, in a background thread, as `bitcask_merge` would: from 0 to 1;
/// default 0.5. 0 turns automatic merges off. A merge also needs
/// `auto_merge_min_bytes` reclaimable bytes. The thread checks about once a
/// second; `bitcask_close` stops a merge it is running.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL, or `ratio` below 0, above 1 or
///   NaN; the options are unchanged
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_auto_merge_ratio(
    opts: *mut bitcask_options,
    ratio: f64,
) -> bitcask_status {
    with_options(opts, |o| o.set_auto_merge_ratio(ratio).map(drop))
}

/// Sets the fewest reclaimable bytes for which an automatic merge runs,
/// whatever the ratio: any value; default 268435456 (256 MiB).
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_auto_merge_min_bytes(
    opts: *mut bitcask_options,
    bytes: u64,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_auto_merge_min_bytes(bytes);
        Ok(())
    })
}

/// Sets how many bytes of records are appended, at least, between two
/// checkpoints of the index: 0 (off) or any number; default 67108864
/// (64 MiB). A checkpoint saves the index (the hash index only) as the
/// database's `KEYDIR` file while it runs, in the background thread, after
/// syncing the records it describes; an open after a crash or power cut
/// loads it and reads only what was written after it, instead of every
/// hint file and the whole newest data file. The interval is never less
/// than the size of the last checkpoint (about 46 bytes a key for 16-byte
/// keys), so checkpoints never write more than the records they save a
/// read of. Off, an open after a crash reads every hint file and the
/// newest data file whole.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_checkpoint_bytes(
    opts: *mut bitcask_options,
    bytes: u64,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_checkpoint_bytes(bytes);
        Ok(())
    })
}

/// Sets whether `bitcask_open` opens the database read-only (default off).
/// A read-only open takes no lock and never creates, writes, renames or
/// deletes anything in the directory: it works while another process has
/// the database open for writing, any number of times at once (in this
/// process or others), and on a directory the process may only read. It
/// sees the database as of the open: every data file as it is, the newest
/// up to its last complete record (a torn or half-written end is not read,
/// and not cut); `bitcask_refresh` catches it up with the writer. Files the
/// writer's merges delete later stay readable through the handle. Writes
/// (put, delete, batches, sync, merge, backup) return `BITCASK_READ_ONLY`.
/// The directory must hold a database: a read-only open creates none.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_read_only(
    opts: *mut bitcask_options,
    on: bool,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_read_only(on);
        Ok(())
    })
}

/// Sets whether `bitcask_open` refuses a database whose newest data file
/// ends in bytes that are not good records (a torn write, pages written back
/// out of order before a power cut, garbage, damage) with
/// `BITCASK_CORRUPTION` (naming the file, the offset and the bytes), rather
/// than move them to a quarantine file and cut them off, which it does by
/// default. Zero-filled space is cut either way: it holds nothing. For
/// applications that would rather stop and look, as with LevelDB's
/// `paranoid_checks`; open again without it, or run `bitcask_repair`, to go
/// on. Default off.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_strict_recovery(
    opts: *mut bitcask_options,
    on: bool,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_strict_recovery(on);
        Ok(())
    })
}

/// The kind of in-memory index (keydir), for
/// `bitcask_options_set_index_type`: one of the `BITCASK_INDEX_*` values
/// below, which never change.
pub type bitcask_index_type = i32;

/// An ordered map (B-trees of a few hundred keys each, in key order):
/// iterators and folds copy their keys out of it already in order, and one
/// over a narrow prefix reads only that prefix's keys. Point reads and
/// writes are several times slower than `BITCASK_INDEX_HASH`'s, and a key
/// takes about twice the memory (measurements in the repository's
/// docs/bench/index-types.md).
pub const BITCASK_INDEX_ORDERED: bitcask_index_type = 0;
/// A hash table whose keys live in a few large buffers, the default: the
/// fastest gets, puts and deletes, and the least memory per key. Iterators
/// and folds still go in key order: each copies its keys out of the table
/// and sorts them when it is created (a million keys in about 50 ms).
pub const BITCASK_INDEX_HASH: bitcask_index_type = 1;

/// Sets the kind of in-memory index that maps keys to their records:
/// `BITCASK_INDEX_HASH` (the default) or `BITCASK_INDEX_ORDERED`. It is not
/// stored with the data: any index type opens any database.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: opts NULL, or `index_type` not one of the
///   `BITCASK_INDEX_*` values, which `bitcask_last_error()` names; the options
///   are unchanged
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_options_set_index_type(
    opts: *mut bitcask_options,
    index_type: bitcask_index_type,
) -> bitcask_status {
    with_options(opts, |o| {
        o.set_index_type(index_type_from_c(index_type)?);
        Ok(())
    })
}

/// The index type a C value names.
fn index_type_from_c(value: bitcask_index_type) -> Result<IndexType> {
    match value {
        BITCASK_INDEX_ORDERED => Ok(IndexType::Ordered),
        BITCASK_INDEX_HASH => Ok(IndexType::Hash),
        other => Err(Error::InvalidArgument(format!(
            "index_type {other} is not an index type: use BITCASK_INDEX_ORDERED (0) \
             or BITCASK_INDEX_HASH (1)"
        ))),
    }
}

/// The options of `opts`, or the defaults for NULL.
///
/// # Safety
/// `opts` is NULL or a live object from `bitcask_options_new()`.
pub(crate) unsafe fn options_or_default(opts: *const bitcask_options) -> Result<Options> {
    if opts.is_null() {
        return Ok(Options::default());
    }
    // SAFETY: the caller passes a live object. Its setters checked every
    // value, so it needs no checking here.
    Ok(unsafe { handle_ref(opts) }?.options.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{bitcask_last_error, BITCASK_INVALID_ARGUMENT, BITCASK_OK};

    fn last_error() -> String {
        // SAFETY: bitcask_last_error returns a NUL-terminated string valid
        // until the next failure on this thread.
        unsafe { std::ffi::CStr::from_ptr(bitcask_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn index_type_is_checked_at_once_and_a_bad_value_changes_nothing() {
        let opts = bitcask_options_new();
        assert!(!opts.is_null());
        // SAFETY: opts is a live object from bitcask_options_new, freed
        // once at the end; NULL is passed only where it is allowed.
        unsafe {
            assert_eq!((*opts).options.index_type(), IndexType::Hash);
            assert_eq!(
                bitcask_options_set_index_type(opts, BITCASK_INDEX_ORDERED),
                BITCASK_OK
            );
            assert_eq!((*opts).options.index_type(), IndexType::Ordered);
            for bad in [2, -1, 99, i32::MIN, i32::MAX] {
                let status = bitcask_options_set_index_type(opts, bad);
                assert_eq!(status, BITCASK_INVALID_ARGUMENT);
                let text = last_error();
                assert!(text.contains(&format!("index_type {bad} ")), "{text}");
                assert_eq!((*opts).options.index_type(), IndexType::Ordered);
            }
            assert_eq!(
                bitcask_options_set_index_type(opts, BITCASK_INDEX_HASH),
                BITCASK_OK
            );
            assert_eq!((*opts).options.index_type(), IndexType::Hash);
            let null = std::ptr::null_mut();
            let status = bitcask_options_set_index_type(null, BITCASK_INDEX_HASH);
            assert_eq!(status, BITCASK_INVALID_ARGUMENT);
            assert!(last_error().contains("opts is NULL"), "{}", last_error());
            bitcask_options_free(opts);
        }
    }
}

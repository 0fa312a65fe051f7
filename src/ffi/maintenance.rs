//! Maintenance: statistics, merge and backup.

use std::ffi::c_char;
use std::path::Path;

use super::boundary::{self, non_null_mut, run};
use super::db::{bitcask_db, database};
use super::status::bitcask_status;

/// Statistics of an open database, filled in by `bitcask_get_stats`.
/// Frozen: its size and fields never change; later statistics get new
/// functions.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct bitcask_stats {
    /// Live keys.
    pub key_count: u64,
    /// Data files on disk, the one being written included.
    pub data_file_count: u64,
    /// Bytes a merge would free: the records in data files that are no
    /// longer the latest for their key (overwritten or deleted values,
    /// tombstones, batch commit records). Kept up to date by every write,
    /// never found by a scan.
    pub reclaimable_bytes: u64,
    /// Total size of the files in the database directory (data files, hint
    /// files, the lock file).
    pub disk_bytes: u64,
}

/// Fills `*out` with the database's statistics now (for a read-only
/// handle: as of its open or last `bitcask_refresh`; `disk_bytes` is the
/// directory now). Cheap: no data is
/// read (one `stat` per file in the directory, for `disk_bytes`).
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db or out NULL
/// - `BITCASK_IO`: the directory cannot be listed
///
/// On failure `*out` is not written.
///
/// # Safety
/// `db` is NULL or a live handle; `out` is NULL or points to writable
/// storage for a `bitcask_stats`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get_stats(
    db: *mut bitcask_db,
    out: *mut bitcask_stats,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { database(db) }?;
        let out = non_null_mut(out, "out")?;
        let stats = db.stats()?;
        let filled = bitcask_stats {
            key_count: stats.key_count,
            data_file_count: stats.data_file_count,
            reclaimable_bytes: stats.reclaimable_bytes,
            disk_bytes: stats.disk_bytes,
        };
        // SAFETY: out is not NULL and points to writable storage.
        unsafe { out.write(filled) };
        Ok(())
    })
}

/// Merges, online: rewrites the live records of every data file that holds
/// reclaimable bytes into new data files (each with a hint file, so the
/// next open is fast) and deletes the old files, freeing their space at
/// once. Reads and writes from other threads go on meanwhile; a writer
/// waits only while the index entries of a new file are switched over, a
/// chunk of keys at a time. Iterators keep seeing their snapshot (a file
/// they still read is freed when they are). Deleted keys stay deleted.
/// With nothing to reclaim, returns at once.
///
/// One merge runs at a time: a call made while another merge runs (from
/// another thread, or the automatic one) waits for it to finish, then merges
/// what is left. A crash at any moment of a merge leaves a directory that
/// opens with every key at its latest value.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db NULL
/// - `BITCASK_IO`: a file could not be read, written or renamed: the merge
///   stopped and the database is consistent; the space of the files not yet
///   merged is not freed
/// - `BITCASK_CORRUPTION`: the merge finished, but stepped over damaged
///   records: their bytes went to quarantine files, and every other record
///   was merged; a key whose latest value lay there answers
///   `BITCASK_CORRUPTION`, never an older value, until it is written again.
///   `bitcask_last_error()` names each range and quarantine file
/// - `BITCASK_CLOSED`: writes are refused after an earlier failure
/// - `BITCASK_READ_ONLY`: the handle was opened read-only
///
/// # Safety
/// `db` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn bitcask_merge(db: *mut bitcask_db) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { database(db) }?;
        db.merge()
    })
}

/// Writes a consistent copy of the database into `dest_dir`, which must be
/// missing (it is created, with its parents) or an empty directory. The
/// copy opens as a database (with `bitcask_open`) holding every write
/// acknowledged before the call; writes and reads from other threads go on
/// meanwhile. Full data files are hard-linked when `dest_dir` is on the
/// same file system (they are never changed, only deleted by a merge, and a
/// merge waits for the backup), copied otherwise; the data file being
/// written is copied up to its last record. The lock file is not copied.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db or dest_dir NULL, dest_dir empty or not
///   UTF-8, dest_dir not empty, not a directory, or the database directory
///   itself
/// - `BITCASK_IO`: a file could not be created, linked, copied or synced: what
///   the backup had created in dest_dir is removed again
/// - `BITCASK_CLOSED`: the handle is closing
/// - `BITCASK_READ_ONLY`: the handle was opened read-only (a backup keeps
///   the handle's merges out while it links files, which a read-only handle
///   cannot do for the writer's); nothing is created
///
/// # Safety
/// `db` is NULL or a live handle; `dest_dir` is NULL or a NUL-terminated
/// string.
#[no_mangle]
pub unsafe extern "C" fn bitcask_backup(
    db: *mut bitcask_db,
    dest_dir: *const c_char,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promises above, for each pointer.
        let (db, dest) = unsafe { (database(db)?, boundary::path(dest_dir, "dest_dir")?) };
        db.backup(Path::new(dest))
    })
}

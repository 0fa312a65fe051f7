//! Recovery: what open recovered, and repair and verify of a database that
//! is not open.

use std::ffi::c_char;
use std::path::Path;

use crate::error::{Error, Result};
use crate::log::repair::RepairOptions;
use crate::log::verify_report::AtOpen;

use super::boundary::{self, non_null_mut, run};
use super::db::{bitcask_db, database};
use super::status::bitcask_status;

/// What `bitcask_open` found and did, filled in by
/// `bitcask_get_recovery_report`. Frozen: its size and fields never change;
/// more get a new struct and function. After a clean close, open usually
/// loads the index that close saved (the `KEYDIR` file) and reads no hint
/// or data file: every count is then 0, and `bitcask_get_recovery_text`
/// says so.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct bitcask_recovery_report {
    /// Data files loaded from their hint files (not read).
    pub files_from_hint: u64,
    /// Data files read in full (no usable hint file).
    pub files_scanned: u64,
    /// Hint files found but not used (damaged, stale, or with entries that
    /// do not decode): their data files were read instead.
    pub hints_ignored: u64,
    /// The id (the number in its name) of the data file whose tail open cut
    /// off, or 0 if open cut no tail. Data file ids start at 1.
    pub tail_file_id: u64,
    /// Where the cut began: the offset of the first record that failed a
    /// check (or of a write batch without its commit record).
    pub tail_offset: u64,
    /// Bytes cut off, zeros included.
    pub tail_bytes_cut: u64,
    /// Bytes of the tail kept in its quarantine file (the tail up to its last
    /// non-zero byte); 0 when the tail was all zeros and no quarantine file
    /// was written. `bitcask_get_recovery_text` names the file.
    pub tail_quarantined_bytes: u64,
    /// Records that pass every check found in the tail after the first one
    /// that fails: 0 for a torn write; more is a sign of damage, or of pages
    /// written back out of order before a power cut. `bitcask_repair` with
    /// `BITCASK_REPAIR_RESTORE_QUARANTINED` brings them back.
    pub tail_intact_records_after: u64,
    /// Zero bytes cut off the ends of sealed data files (space allocated and
    /// never written).
    pub zero_bytes_cut: u64,
    /// 1 if the newest data file's header was torn (its writer died while
    /// creating it) and was written again, else 0.
    pub header_rewritten: u64,
}

/// Fills `*out` with what `bitcask_open` found and did when it opened `db`:
/// how many data files it loaded from hint files and how many it read, and
/// what it changed: a tail cut off the newest data file (the bytes kept in
/// a quarantine file), zeros cut off sealed data files, a torn header
/// written again. All zero but the file counts when open changed nothing.
///
/// Returns:
/// - `BITCASK_OK`
/// - `BITCASK_INVALID_ARGUMENT`: db or out NULL
///
/// On failure `*out` is not written.
///
/// # Safety
/// `db` is NULL or a live handle; `out` is NULL or points to writable
/// storage for a `bitcask_recovery_report`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get_recovery_report(
    db: *mut bitcask_db,
    out: *mut bitcask_recovery_report,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { database(db) }?;
        let out = non_null_mut(out, "out")?;
        let r = db.recovery();
        let mut report = bitcask_recovery_report {
            files_from_hint: r.files_from_hint,
            files_scanned: r.files_scanned,
            hints_ignored: r.hints_ignored,
            zero_bytes_cut: r.zero_bytes_cut,
            header_rewritten: u64::from(r.header_rewritten),
            ..bitcask_recovery_report::default()
        };
        if let Some(tail) = &r.tail {
            report.tail_file_id = u64::from(tail.file_id);
            report.tail_offset = tail.offset;
            report.tail_bytes_cut = tail.bytes_cut;
            report.tail_quarantined_bytes = tail.quarantined_bytes;
            report.tail_intact_records_after = tail.intact_records_after;
        }
        // SAFETY: out is not NULL and points to writable storage.
        unsafe { out.write(report) };
        Ok(())
    })
}

/// Copies a one-line description of what `bitcask_open` found and did
/// (the files it loaded and read; the tail it cut, why, and the quarantine
/// file that keeps it; zeros cut; a header written again) into `buf`, with
/// a terminating NUL, for a log. `buf` may be NULL when `buf_len` is 0: a
/// size query.
///
/// Returns:
/// - `BITCASK_OK`: the text and its NUL fill the first `*len_out + 1`
///   bytes of `buf`
/// - `BITCASK_BUFFER_TOO_SMALL`: `*len_out` holds the bytes needed, NUL
///   included; `buf` is untouched
/// - `BITCASK_INVALID_ARGUMENT`: db or len_out NULL, buf NULL with a
///   non-zero buf_len
///
/// # Safety
/// `db` is NULL or a live handle; `buf` is NULL or points to `buf_len`
/// writable bytes; `len_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bitcask_get_recovery_text(
    db: *mut bitcask_db,
    buf: *mut c_char,
    buf_len: usize,
    len_out: *mut usize,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let db = unsafe { database(db) }?;
        let len_out = non_null_mut(len_out, "len_out")?;
        if buf.is_null() && buf_len != 0 {
            return Err(Error::InvalidArgument(format!(
                "buf is NULL but buf_len is {buf_len}"
            )));
        }
        let text = db.recovery().to_string().replace('\0', " ");
        if text.len() >= buf_len {
            // SAFETY: len_out is not NULL and writable.
            unsafe { len_out.write(text.len() + 1) };
            return Err(Error::BufferTooSmall {
                needed: text.len() + 1,
            });
        }
        // SAFETY: buf holds buf_len > text.len() writable bytes (checked
        // above) and is the caller's, so it does not overlap `text`.
        unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
            buf.add(text.len()).write(0);
            len_out.write(text.len());
        }
        Ok(())
    })
}

/// For `bitcask_repair`: also bring back the intact records of the tails
/// that open cut off the newest data file into quarantine files, each where
/// no later record of its key exists. Off by default: a tail is usually a
/// torn write whose records were never acknowledged as durable, but a tail
/// cut for damage in the middle of the newest file holds good records
/// (`tail_intact_records_after` of the recovery report counts them).
pub const BITCASK_REPAIR_RESTORE_QUARANTINED: u32 = 1;

/// What `bitcask_repair` did. Frozen: its size and fields never change.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct bitcask_repair_report {
    /// Data files read.
    pub data_files: u64,
    /// Data files rewritten without their damaged ranges (or zero tails).
    pub files_rewritten: u64,
    /// Records kept: every record that passes its checks.
    pub records_kept: u64,
    /// Damaged ranges taken out. Each may have held the latest write of some
    /// key: such a key now shows its previous value, or comes back if the
    /// lost write deleted it.
    pub damaged_ranges: u64,
    /// Bytes of those ranges.
    pub damaged_bytes: u64,
    /// Intact records of write batches that a damaged range cut (a batch is
    /// kept whole or not at all), and batch records that ended a file
    /// without their commit record: taken out, into the quarantine files.
    pub batch_records_dropped: u64,
    /// Bytes written to quarantine files (trailing zeros are not stored).
    pub bytes_quarantined: u64,
    /// Quarantine files written (`NNNNNNNNN-OFFSET.quarantine`).
    pub quarantine_files_written: u64,
    /// Zero bytes cut off the ends of data files.
    pub zero_bytes_cut: u64,
    /// Hint files written.
    pub hint_files_written: u64,
    /// Records brought back from quarantine files (with
    /// `BITCASK_REPAIR_RESTORE_QUARANTINED`).
    pub records_restored: u64,
    /// Keys whose value a merge found damaged: their lost-value marks are
    /// kept, so each answers `BITCASK_CORRUPTION` until it is written again
    /// or deleted.
    pub lost_values: u64,
}

/// Repairs the database in directory `dir`, which must not be open. Every
/// data file is read in full. A file with damaged ranges is rewritten with
/// every record that passes its checks, in order, stepping over each
/// damaged range to the next good record; the damaged bytes go to
/// quarantine files first (`NNNNNNNNN-OFFSET.quarantine` in the directory:
/// never loaded, never removed by the library); zeros at the end of a file
/// are cut; every data file gets a fresh hint file. Afterwards the database
/// opens, with every intact record. `flags` is 0 or
/// `BITCASK_REPAIR_RESTORE_QUARANTINED`. `*report_out` says what was done.
/// A crash during repair leaves a directory that opens as before or as
/// after, with the damaged bytes in quarantine files either way: run it
/// again.
///
/// Returns:
/// - `BITCASK_OK`: `*report_out` written
/// - `BITCASK_INVALID_ARGUMENT`: dir or report_out NULL, dir empty or not
///   UTF-8, an unknown flag
/// - `BITCASK_LOCKED`: a handle (in this process or another) has the
///   database open
/// - `BITCASK_IO`: `dir` is missing or not a directory, or a file could not
///   be read, written, renamed or synced
/// - `BITCASK_CORRUPTION`: a data file was written by another format version
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `report_out` is NULL or points
/// to writable storage for a `bitcask_repair_report`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_repair(
    dir: *const c_char,
    flags: u32,
    report_out: *mut bitcask_repair_report,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let dir = unsafe { boundary::path(dir, "dir") }?;
        let report_out = non_null_mut(report_out, "report_out")?;
        let options = repair_options(flags)?;
        let r = crate::repair(Path::new(dir), &options)?;
        let report = bitcask_repair_report {
            data_files: r.data_files,
            files_rewritten: r.files_rewritten.len() as u64,
            records_kept: r.records_kept,
            damaged_ranges: r.damaged.len() as u64,
            damaged_bytes: r.damaged.iter().map(|d| d.len).sum(),
            batch_records_dropped: r.batch_records_dropped,
            bytes_quarantined: r.bytes_quarantined,
            quarantine_files_written: r.quarantine_files_written.len() as u64,
            zero_bytes_cut: r.zero_bytes_cut,
            hint_files_written: r.hint_files_written,
            records_restored: r.records_restored,
            lost_values: r.lost_values,
        };
        // SAFETY: report_out is not NULL and points to writable storage.
        unsafe { report_out.write(report) };
        Ok(())
    })
}

fn repair_options(flags: u32) -> Result<RepairOptions> {
    let unknown = flags & !BITCASK_REPAIR_RESTORE_QUARANTINED;
    if unknown != 0 {
        return Err(Error::InvalidArgument(format!(
            "flags {flags:#x} has unknown bits {unknown:#x}: use 0 or \
             BITCASK_REPAIR_RESTORE_QUARANTINED (1)"
        )));
    }
    Ok(RepairOptions {
        restore_quarantined: flags & BITCASK_REPAIR_RESTORE_QUARANTINED != 0,
    })
}

/// What `bitcask_verify` found. Frozen: its size and fields never change.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct bitcask_verify_report {
    /// Data files read.
    pub data_files: u64,
    /// Records that pass every check.
    pub records: u64,
    /// Damaged ranges found (every one, not only the first).
    pub damaged_ranges: u64,
    /// Bytes of those ranges.
    pub damaged_bytes: u64,
    /// Of them, the ranges that make `bitcask_open` refuse the database
    /// (in a sealed data file without a usable hint file) until it is
    /// repaired. The others are cut off by open (in the newest file) or
    /// answer `BITCASK_CORRUPTION` to the get that reads them.
    pub ranges_refused_at_open: u64,
    /// The data file id and offset of the first damaged range (0 and 0
    /// when there is none).
    pub first_damaged_file_id: u64,
    /// See `first_damaged_file_id`.
    pub first_damaged_offset: u64,
    /// Zero bytes at the ends of data files (not damage: open cuts them).
    pub zero_tail_bytes: u64,
    /// Hint file entries checked against the records they point at.
    pub hint_entries_checked: u64,
    /// Hint files that open would ignore, and hint entries that disagree
    /// with their records.
    pub hint_problems: u64,
    /// Keys whose value a merge found damaged (they answer
    /// `BITCASK_CORRUPTION`).
    pub lost_values: u64,
    /// Quarantine files in the directory.
    pub quarantine_files: u64,
}

/// Checks the database in directory `dir` without changing anything: every
/// data file is read in full (every damaged range is found, not only the
/// first) and every entry of every usable hint file is checked against the
/// record it points at. Fills `*report_out`; the database is intact when
/// `damaged_ranges`, `hint_problems` and `lost_values` are all 0. The
/// `bitcask check` tool prints every range with its file and offset, and
/// the notes this struct has no room for.
///
/// It tries the directory lock first. With it (the database is not open) it
/// runs alone, and a `bitcask_open` of the database meanwhile returns
/// `BITCASK_LOCKED`. Without it (a handle of this process or another has the
/// database open for writing, or this process may not write the lock file)
/// it runs beside the writer, taking no lock, on the data files listed when
/// it starts. Then every file but the newest is immutable, so a damaged
/// range or hint problem found in one is damage on disk; the newest file is
/// read only up to its first record that fails a check, and what lies past
/// it (a record being appended, space allocated ahead, or damage: only a
/// check without the writer can tell) is neither read nor counted. Files
/// the writer creates after the listing are not read, and one its merge
/// deletes before it is opened is skipped.
///
/// Returns:
/// - `BITCASK_OK`: the check ran (whatever it found); `*report_out` written
/// - `BITCASK_INVALID_ARGUMENT`: dir or report_out NULL, dir empty or not
///   UTF-8, or `dir` holds no data file
/// - `BITCASK_IO`: `dir` is missing or not a directory, or a file could not
///   be read
/// - `BITCASK_CORRUPTION`: a data file was written by another format version
///
/// # Safety
/// `dir` is NULL or a NUL-terminated string; `report_out` is NULL or points
/// to writable storage for a `bitcask_verify_report`.
#[no_mangle]
pub unsafe extern "C" fn bitcask_verify(
    dir: *const c_char,
    report_out: *mut bitcask_verify_report,
) -> bitcask_status {
    run(|| {
        // SAFETY: the caller's promise above.
        let dir = unsafe { boundary::path(dir, "dir") }?;
        let report_out = non_null_mut(report_out, "report_out")?;
        let r = crate::verify(Path::new(dir))?;
        let first = r.damaged.first();
        let report = bitcask_verify_report {
            data_files: r.data_files,
            records: r.records,
            damaged_ranges: r.damaged.len() as u64,
            damaged_bytes: r.damaged.iter().map(|d| d.len).sum(),
            ranges_refused_at_open: r
                .damaged
                .iter()
                .filter(|d| d.at_open == AtOpen::Refused)
                .count() as u64,
            first_damaged_file_id: first.map_or(0, |d| u64::from(d.file_id)),
            first_damaged_offset: first.map_or(0, |d| d.offset),
            zero_tail_bytes: r.zero_tails.iter().map(|z| z.len).sum(),
            hint_entries_checked: r.hint_entries_checked,
            hint_problems: r.hint_problems.len() as u64,
            lost_values: r.lost_values,
            quarantine_files: r.quarantine_files.len() as u64,
        };
        // SAFETY: report_out is not NULL and points to writable storage.
        unsafe { report_out.write(report) };
        Ok(())
    })
}

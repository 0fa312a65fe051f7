//! The workloads that close and reopen the database (after close, after a
//! crash, without hints, after a merge), the merge itself, and the keydir's
//! memory.

use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use super::{
    anon_rss, check_count, dir_bytes, present_key, release_free_heap, remove_file_if_present,
    Bench, Measured, KEY_LEN, PROBE_PAUSE,
};
use crate::Res;

/// Closes the database (not timed) and times the open that rebuilds the
/// keydir by scanning every data file (warm page cache: the files were just
/// written or read), every hint file and the keydir file removed first.
/// MB/s is data file bytes scanned.
pub(crate) fn reopen_without_hints(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    for entry in fs::read_dir(b.dir.join("db"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "hint") {
            fs::remove_file(path)?;
        }
    }
    remove_file_if_present(&b.dir.join("db").join("KEYDIR"))?;
    reopen(b, "open after close, hint files and keydir file removed")
}

/// Closes the database (not timed) and times the next open, which loads
/// the keydir file close wrote. MB/s is the bytes of the directory.
pub(crate) fn reopen_after_close(b: &mut Bench) -> Res<Measured> {
    // The last checkpoint of the session that wrote the database: what a
    // kill now would leave, kept for `reopen_after_crash`.
    let checkpoint = b.dir.join(CHECKPOINT_AT_CRASH);
    if !checkpoint.exists() {
        let keydir = b.dir.join("db").join("KEYDIR");
        if keydir.exists() {
            fs::copy(&keydir, &checkpoint)?;
        }
    }
    b.close_db()?;
    let note = if b.dir.join("db").join("KEYDIR").exists() {
        "open after close (from the keydir file)"
    } else {
        "open after close (no keydir file)"
    };
    reopen(b, note)
}

/// Where `reopen_after_close` keeps the keydir file the writing session
/// left (its last checkpoint), beside the database.
const CHECKPOINT_AT_CRASH: &str = "KEYDIR.at-crash";

/// Closes the database (not timed), then leaves the directory as the
/// session that wrote it (fillrandom, overwrite) would have if killed at
/// its end: its last checkpoint of the index as the keydir file, if it took
/// one (close's file removed), no hint file for the newest data file (close
/// writes that one; the background thread writes those of the files
/// before it), and 1 MiB of zeros after the newest file's last record (the
/// space the writer allocates ahead of its records); and times the open,
/// which loads the checkpoint and scans the newest file from where it ends
/// (without one: loads the older files from their hint files and scans the
/// newest whole), and cuts the zeros off.
pub(crate) fn reopen_after_crash(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    let dir = b.dir.join("db");
    remove_file_if_present(&dir.join("KEYDIR"))?;
    let checkpoint = b.dir.join(CHECKPOINT_AT_CRASH);
    if checkpoint.exists() {
        fs::rename(&checkpoint, dir.join("KEYDIR"))?;
    }
    let mut data: Vec<PathBuf> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    data.retain(|p| p.extension().is_some_and(|e| e == "data"));
    data.sort();
    let newest = data.last().ok_or("no data file")?;
    remove_file_if_present(&newest.with_extension("hint"))?;
    let file = fs::OpenOptions::new().write(true).open(newest)?;
    file.set_len(file.metadata()?.len() + (1 << 20))?;
    drop(file);
    reopen(
        b,
        "as a kill leaves it: the last checkpoint (if any), newest file without hint and with 1 MiB of zeros at its end",
    )
}

/// Times an open of the closed database (warm page cache).
fn reopen(b: &mut Bench, what: &str) -> Res<Measured> {
    let scanned = dir_bytes(&b.dir.join("db"))?;
    let start = Instant::now();
    let db = b.reopen_db()?;
    let elapsed = start.elapsed();
    check_count(&db, b.keys)?;
    let report = db.recovery();
    let loaded = if report.from_saved_keydir {
        "the index from the keydir file".to_string()
    } else if report.resumed_from_keydir {
        format!(
            "the index from the keydir file, then {} file(s) from hints, {} scanned",
            report.files_from_hint, report.files_scanned
        )
    } else {
        format!("{} from hint files", db.hint_files_used())
    };
    let note = format!(
        "{what}; warm cache; data files: {} ({loaded}), {:.1} MB on disk",
        db.data_file_count(),
        scanned as f64 / 1e6
    );
    b.db = Some(db);
    Ok(Measured::timed(b.keys, elapsed, Some(scanned), note))
}

/// Merges the overwritten database (half its bytes are dead) while one
/// thread overwrites keys with their current values and another reads, each
/// paced at about one operation per 100 µs (so that they probe for stalls
/// rather than compete for the 2 cores), and reports the longest single put
/// and get each saw during the merge. MB/s counts the data file bytes
/// before the merge.
pub(crate) fn merge(b: &mut Bench) -> Res<Measured> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = b.db()?;
    let before = db.stats()?;
    let stop = AtomicBool::new(false);
    let (keys, values) = (b.keys, &b.values);
    let (elapsed, writer, reader) = thread::scope(|s| -> Res<_> {
        // Each probe returns (operations, longest one).
        let writer = s.spawn(|| {
            let (mut ops, mut longest, mut i) = (0u64, Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let n = (i * 7919) % keys;
                let t = Instant::now();
                let put = db.put(&present_key(n), values.get(n, 1));
                longest = longest.max(t.elapsed());
                put.map_err(|e| e.to_string())?;
                ops += 1;
                i += 1;
                thread::sleep(PROBE_PAUSE);
            }
            Ok::<_, String>((ops, longest))
        });
        let reader = s.spawn(|| {
            let (mut ops, mut longest, mut i) = (0u64, Duration::ZERO, 0u64);
            let mut buf = vec![0u8; values.size];
            while !stop.load(Ordering::Relaxed) {
                let n = (i * 104_729) % keys;
                let t = Instant::now();
                let got = db.get_into(&present_key(n), &mut buf);
                longest = longest.max(t.elapsed());
                if !matches!(got, Ok(Some(_))) {
                    return Err(format!("get of stored key {n} during merge: {got:?}"));
                }
                ops += 1;
                i += 1;
                thread::sleep(PROBE_PAUSE);
            }
            Ok((ops, longest))
        });
        let start = Instant::now();
        let merged = db.merge();
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let writer = writer.join().map_err(|_| "writer panicked")??;
        let reader = reader.join().map_err(|_| "reader panicked")??;
        merged?;
        Ok((elapsed, writer, reader))
    })?;
    let after = db.stats()?;
    check_count(db, b.keys)?;
    let note = format!(
        "disk {:.1} -> {:.1} MB ({:.1} MB reclaimable before); during it: writer {} puts, \
         longest {:.2} ms; reader {} gets, longest {:.2} ms",
        before.disk_bytes as f64 / 1e6,
        after.disk_bytes as f64 / 1e6,
        before.reclaimable_bytes as f64 / 1e6,
        writer.0,
        writer.1.as_secs_f64() * 1e3,
        reader.0,
        reader.1.as_secs_f64() * 1e3,
    );
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(before.disk_bytes),
        note,
    ))
}

/// The process's anonymous resident memory (heap) grown by an open of the
/// filled database, per key: the keydir, plus whatever else open allocates
/// and keeps. The heap's free pages are handed back to the kernel first
/// (malloc_trim), so the freed keydir of the closed handle is not reused
/// for free. Not timed.
pub(crate) fn keydir_memory(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    release_free_heap();
    let before = anon_rss();
    let db = b.reopen_db()?;
    let after = anon_rss();
    check_count(&db, b.keys)?;
    b.db = Some(db);
    let note = match (before, after) {
        (Some(before), Some(after)) => {
            let per_key = after.saturating_sub(before) as f64 / b.keys as f64;
            format!(
                "{per_key:.1} B/key = anon RSS growth over open / keys \
                 ({KEY_LEN}-byte keys: {:.1} B/key besides the key bytes)",
                per_key - KEY_LEN as f64
            )
        }
        _ => "unavailable: no /proc/self/statm".to_string(),
    };
    Ok(Measured {
        ops: b.keys,
        elapsed: None,
        bytes: None,
        note,
    })
}

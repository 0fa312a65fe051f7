//! The background thread of an open database. It writes the hint file of
//! each data file that stops being written (rollover, or a file open found
//! without a valid hint), and merges when the auto-merge options say the
//! reclaimable share of the data files is large enough. Close stops it: a
//! merge in progress stops at its next step, and the hint files still
//! queued are written first (the next open would otherwise scan those files).

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::merge::merge;
use crate::db::engine::Engine;
use crate::db::jobs::Job;
use crate::error::Result;
use crate::log::{hint, recovery};

/// How often the thread checks whether an automatic merge is due.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long the thread waits before trying an automatic merge again after
/// one failed (a full disk should not be hammered once a second).
const RETRY_FAILED_MERGE_AFTER: Duration = Duration::from_secs(60);

/// Starts the background thread of `engine`.
pub fn spawn(engine: Arc<Engine>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("bitcask-background".to_string())
        .spawn(move || run(&engine))
}

fn run(engine: &Engine) {
    let mut next_merge_attempt = Instant::now();
    loop {
        match engine.jobs().next(CHECK_EVERY) {
            Job::Stop(hints) => {
                // Written now rather than scanned for at the next open.
                write_hints(engine, hints);
                return;
            }
            Job::WriteHints(ids) => write_hints(engine, ids),
            Job::Tick => {}
        }
        if Instant::now() >= next_merge_attempt && auto_merge_due(engine) {
            let merged = panic::catch_unwind(AssertUnwindSafe(|| merge(engine)));
            if !matches!(merged, Ok(Ok(()))) {
                next_merge_attempt = Instant::now() + RETRY_FAILED_MERGE_AFTER;
            }
        }
        crate::failpoint::hit("worker:checked");
    }
}

/// Writes the hint files of `ids`. A hint that fails to be written is only
/// a slower open; a panic is a bug, but must not end the thread.
fn write_hints(engine: &Engine, ids: Vec<u32>) {
    for id in ids {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| write_hint(engine, id)));
    }
}

/// Writes the hint file of immutable data file `id`, unless it is gone
/// (merged away) or is the active file.
pub fn write_hint(engine: &Engine, id: u32) -> Result<()> {
    let _maintenance = engine.maintenance();
    let file = {
        let writer = engine.writer();
        let active = writer.active_file().id();
        engine.files().get(id).filter(|_| id != active)
    };
    let Some(file) = file else {
        return Ok(());
    };
    let bytes = recovery::build_hint(&file)?;
    crate::failpoint::hit("hint:before-write");
    hint::write_hint_file(engine.dir(), id, &bytes)
}

/// Whether the auto-merge options call for a merge now.
fn auto_merge_due(engine: &Engine) -> bool {
    let ratio = engine.options().auto_merge_ratio();
    if ratio <= 0.0 {
        return false;
    }
    let (total, reclaimable) = engine.writer().usage_totals();
    reclaimable >= engine.options().auto_merge_min_bytes()
        && reclaimable as f64 >= ratio * total as f64
}

//! The background thread of an open database. It writes the hint file of
//! each data file that stops being written (rollover, or a file open found
//! without a valid hint), takes checkpoints of the index (`checkpoint.rs`),
//! and merges when the auto-merge options say the
//! reclaimable share of the data files is large enough. Close stops it: a
//! merge in progress stops at its next step, and the hint files still
//! queued are written first (the next open would otherwise scan those files).

use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::checkpoint;
use super::merge::merge;
use crate::db::engine::Engine;
use crate::db::jobs::Job;
use crate::error::Result;
use crate::log::{hint, recovery};

/// How often the thread checks whether an automatic merge is due.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long the thread waits before trying an automatic merge again after
/// one failed (a full disk should not be hammered once a second); each
/// further failure in a row doubles the wait, up to [`MAX_MERGE_RETRY`]. A
/// failed merge may leave copies it installed, so retrying a failure that
/// repeats every minute would grow the disk it is meant to shrink.
const FIRST_MERGE_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between two automatic merges that fail.
const MAX_MERGE_RETRY: Duration = Duration::from_secs(3600);

/// Starts the background thread of `engine`.
pub fn spawn(engine: Arc<Engine>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        // At most 15 bytes: the kernel cuts a thread's name there (ps, top).
        .name("bitcask-worker".to_string())
        .spawn(move || run(&engine))
}

fn run(engine: &Engine) {
    let mut backoff = MergeBackoff::default();
    loop {
        match engine.jobs().next(CHECK_EVERY) {
            Job::Stop(hints) => {
                // Written now rather than scanned for at the next open.
                write_hints(engine, hints);
                return;
            }
            Job::WriteHints(ids) => write_hints(engine, ids),
            Job::Checkpoint => {
                // A checkpoint not taken is only a slower open after a crash.
                let taken = panic::catch_unwind(AssertUnwindSafe(|| checkpoint::take(engine)));
                let size = match taken {
                    Ok(Ok(size)) => size,
                    _ => None,
                };
                engine.writer().checkpoint_done(size);
            }
            Job::Tick => {}
        }
        if backoff.due(Instant::now()) && auto_merge_due(engine) {
            let merged = panic::catch_unwind(AssertUnwindSafe(|| merge(engine)));
            match merged {
                Ok(Ok(())) => backoff.succeeded(),
                _ => backoff.failed(Instant::now()),
            }
        }
        crate::failpoint::hit("worker:checked");
    }
}

/// When the next automatic merge may start: at once, or after a wait that
/// doubles with each failure in a row.
#[derive(Debug, Default)]
struct MergeBackoff {
    /// Failures since the last merge that succeeded.
    failures: u32,
    /// No automatic merge before this.
    not_before: Option<Instant>,
}

impl MergeBackoff {
    fn due(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.not_before = Some(now + retry_delay(self.failures));
    }

    fn succeeded(&mut self) {
        *self = MergeBackoff::default();
    }
}

/// The wait after `failures` automatic merges in a row failed (at least 1).
fn retry_delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_MERGE_RETRY
        .saturating_mul(1 << doublings)
        .min(MAX_MERGE_RETRY)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_automatic_merges_are_retried_less_and_less_often() {
        let waits: Vec<u64> = (1..=9).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(retry_delay(u32::MAX), MAX_MERGE_RETRY);

        let start = Instant::now();
        let mut backoff = MergeBackoff::default();
        assert!(backoff.due(start));
        backoff.failed(start);
        assert!(!backoff.due(start + Duration::from_secs(59)));
        assert!(backoff.due(start + Duration::from_secs(60)));
        let later = start + Duration::from_secs(60);
        backoff.failed(later);
        assert!(!backoff.due(later + Duration::from_secs(119)));
        assert!(backoff.due(later + Duration::from_secs(120)));
        // A merge that succeeds resets the wait.
        backoff.succeeded();
        assert!(backoff.due(later));
        backoff.failed(later);
        assert!(backoff.due(later + FIRST_MERGE_RETRY));
    }
}

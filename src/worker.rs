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

use parking_lot::{Condvar, Mutex};

use crate::data_file::DataFile;
use crate::engine::Engine;
use crate::error::Result;
use crate::hint;
use crate::load;

/// How often the thread checks whether an automatic merge is due.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long the thread waits before trying an automatic merge again after
/// one failed (a full disk should not be hammered once a second).
const RETRY_FAILED_MERGE_AFTER: Duration = Duration::from_secs(60);

/// Work queued for the background thread.
#[derive(Default)]
pub struct Jobs {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Data files whose hint file is to be written.
    hints: Vec<u32>,
    stop: bool,
}

enum Job {
    /// Stop, after writing the hint files still queued.
    Stop(Vec<u32>),
    WriteHints(Vec<u32>),
    /// Nothing queued: time to check whether a merge is due.
    Tick,
}

impl Jobs {
    /// Queues the writing of data file `id`'s hint file.
    pub fn write_hint(&self, id: u32) {
        self.queue.lock().hints.push(id);
        self.wake.notify_one();
    }

    /// Tells the thread to stop.
    pub fn stop(&self) {
        self.queue.lock().stop = true;
        self.wake.notify_one();
    }

    fn next(&self, timeout: Duration) -> Job {
        let mut queue = self.queue.lock();
        if !queue.stop && queue.hints.is_empty() {
            self.wake.wait_for(&mut queue, timeout);
        }
        if queue.stop {
            Job::Stop(std::mem::take(&mut queue.hints))
        } else if queue.hints.is_empty() {
            Job::Tick
        } else {
            Job::WriteHints(std::mem::take(&mut queue.hints))
        }
    }
}

/// Starts the background thread of `engine`.
pub fn spawn(engine: Arc<Engine>) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("bitcask-background".to_string())
        .spawn(move || run(&engine))
}

fn run(engine: &Engine) {
    let mut next_merge_attempt = Instant::now();
    loop {
        match engine.jobs.next(CHECK_EVERY) {
            Job::Stop(hints) => {
                // Written now rather than scanned for at the next open.
                write_hints(engine, hints);
                return;
            }
            Job::WriteHints(ids) => write_hints(engine, ids),
            Job::Tick => {}
        }
        if Instant::now() >= next_merge_attempt && engine.auto_merge_due() {
            let merged = panic::catch_unwind(AssertUnwindSafe(|| engine.merge()));
            if !matches!(merged, Ok(Ok(()))) {
                next_merge_attempt = Instant::now() + RETRY_FAILED_MERGE_AFTER;
            }
        }
    }
}

/// Writes the hint files of `ids`. A hint that fails to be written is only
/// a slower open; a panic is a bug, but must not end the thread.
fn write_hints(engine: &Engine, ids: Vec<u32>) {
    for id in ids {
        let _ = panic::catch_unwind(AssertUnwindSafe(|| engine.write_hint(id)));
    }
}

impl Engine {
    /// Writes the hint file of immutable data file `id`, unless it is gone
    /// (merged away).
    pub(crate) fn write_hint(&self, id: u32) -> Result<()> {
        let _maintenance = self.maintenance.lock();
        let file: Option<Arc<DataFile>> = {
            let state = self.writer.lock();
            let active = state.writer.file().id();
            self.files.read().get(&id).filter(|_| id != active).cloned()
        };
        let Some(file) = file else {
            return Ok(());
        };
        let bytes = load::build_hint(&file)?;
        crate::failpoint::hit("hint:before-write");
        hint::write_hint_file(&self.dir, id, &bytes)
    }

    /// Whether the auto-merge options call for a merge now.
    fn auto_merge_due(&self) -> bool {
        let ratio = self.options.auto_merge_ratio();
        if ratio <= 0.0 {
            return false;
        }
        let (total, reclaimable) = self.usage_totals();
        reclaimable >= self.options.auto_merge_min_bytes()
            && reclaimable as f64 >= ratio * total as f64
    }
}

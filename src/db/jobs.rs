//! Work for the background thread, queued by the database (a data file
//! that stopped being written needs its hint file; a checkpoint of the
//! index is due) and taken by the thread
//! (`maintenance/worker.rs`). Lives here, below the thread, so that the
//! database queues work without knowing who does it.

use std::time::Duration;

use parking_lot::{Condvar, Mutex};

/// The queue of background work.
#[derive(Default)]
pub struct Jobs {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    /// Data files whose hint file is to be written.
    hints: Vec<u32>,
    /// A checkpoint of the index is due.
    checkpoint: bool,
    stop: bool,
}

/// What the background thread is to do next.
pub enum Job {
    /// Stop, after writing the hint files of these data files.
    Stop(Vec<u32>),
    /// Write the hint files of these data files.
    WriteHints(Vec<u32>),
    /// Take a checkpoint of the index (after any hint files queued: a
    /// checkpoint is used only if the sealed files it names have theirs).
    Checkpoint,
    /// Nothing queued: time for the periodic checks.
    Tick,
}

impl Jobs {
    /// Queues the writing of data file `id`'s hint file.
    pub fn write_hint(&self, id: u32) {
        self.queue.lock().hints.push(id);
        self.wake.notify_one();
    }

    /// Queues a checkpoint of the index.
    pub fn checkpoint(&self) {
        self.queue.lock().checkpoint = true;
        self.wake.notify_one();
    }

    /// Tells the thread to stop.
    pub fn stop(&self) {
        self.queue.lock().stop = true;
        self.wake.notify_one();
    }

    /// The next job, waiting at most `timeout` for one (then [`Job::Tick`]).
    pub fn next(&self, timeout: Duration) -> Job {
        let mut queue = self.queue.lock();
        if !queue.stop && queue.hints.is_empty() && !queue.checkpoint {
            self.wake.wait_for(&mut queue, timeout);
        }
        if queue.stop {
            // Close saves the index itself.
            Job::Stop(std::mem::take(&mut queue.hints))
        } else if !queue.hints.is_empty() {
            Job::WriteHints(std::mem::take(&mut queue.hints))
        } else if std::mem::take(&mut queue.checkpoint) {
            Job::Checkpoint
        } else {
            Job::Tick
        }
    }
}

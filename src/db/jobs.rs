//! Work for the background thread, queued by the database (a data file
//! that stopped being written needs its hint file) and taken by the thread
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
    stop: bool,
}

/// What the background thread is to do next.
pub enum Job {
    /// Stop, after writing the hint files of these data files.
    Stop(Vec<u32>),
    /// Write the hint files of these data files.
    WriteHints(Vec<u32>),
    /// Nothing queued: time for the periodic checks.
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

    /// The next job, waiting at most `timeout` for one (then [`Job::Tick`]).
    pub fn next(&self, timeout: Duration) -> Job {
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

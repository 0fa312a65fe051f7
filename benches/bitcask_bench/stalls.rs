//! What made an operation long: the time its thread spent waiting for a
//! core (on a shared machine, often most of a long operation) and, for
//! runs of puts, where the time of the longest one went.

use std::fs;
use std::time::{Duration, Instant};

/// The longest of a run of puts, and how many took over 10 and over 20 ms:
/// the longest alone is one event, which on a shared machine may be the
/// host's; the counts say how often a put waits that long.
///
/// Where the longest put's time went: reading the thread's scheduler times
/// around every put would cost more than the put, so the puts are counted
/// in windows of [`WINDOW`], and the times are read at each window's end
/// (one read a thousand puts). The window that held the longest put says
/// how much of its time the thread was on a core, waiting for one, or
/// neither: blocked in the kernel (I/O, a page fault that reads, a lock).
///
/// Each window also notes whether the count of data files changed in it
/// (read at the window's ends): a rollover, which seals a file (an
/// fdatasync) and creates the next one under the writer lock, or a merge
/// installing its outputs. The puts over 20 ms are counted apart when
/// their window held one.
pub(crate) struct SlowPuts {
    longest: Duration,
    over_10ms: u64,
    over_20ms: u64,
    /// Of `over_20ms`, those in a window in which the data files changed.
    over_20ms_at_rollover: u64,
    /// The window being counted; `None` where the scheduler's times are
    /// unreadable.
    window: Option<Window>,
    /// Where the time of the window that held the longest put went.
    longest_window: Option<WindowTimes>,
}

/// Puts per window of [`SlowPuts`].
const WINDOW: u32 = 1000;

/// A window of puts being counted.
struct Window {
    started: Instant,
    on_core: Duration,
    waited: Duration,
    puts: u32,
    longest: Duration,
    /// Puts over 20 ms in this window.
    over_20ms: u64,
    /// How many data files there were when the window started.
    files: usize,
}

/// Where a window's time went.
struct WindowTimes {
    puts: u32,
    took: Duration,
    on_core: Duration,
    waited: Duration,
    files_changed: bool,
}

impl SlowPuts {
    /// Starts counting: the first window begins now, before the first put,
    /// with `files` data files.
    pub(crate) fn new(files: usize) -> SlowPuts {
        SlowPuts {
            longest: Duration::ZERO,
            over_10ms: 0,
            over_20ms: 0,
            over_20ms_at_rollover: 0,
            window: Window::start(files),
            longest_window: None,
        }
    }

    /// Counts a put that took `took`; `files` says how many data files
    /// there are now (called only at a window's end).
    pub(crate) fn add(&mut self, took: Duration, files: impl Fn() -> usize) {
        self.longest = self.longest.max(took);
        self.over_10ms += u64::from(took > Duration::from_millis(10));
        let over_20ms = u64::from(took > Duration::from_millis(20));
        self.over_20ms += over_20ms;
        let Some(window) = &mut self.window else {
            return;
        };
        window.puts += 1;
        window.over_20ms += over_20ms;
        window.longest = window.longest.max(took);
        if window.puts == WINDOW {
            self.end_window(files());
        }
    }

    /// Ends the window being counted (call after the last put), with
    /// `files` data files.
    pub(crate) fn finish(&mut self, files: usize) {
        self.end_window(files);
    }

    fn end_window(&mut self, files: usize) {
        let Some(window) = self.window.take() else {
            return;
        };
        let Some((on_core, waited)) = sched_times() else {
            return;
        };
        let files_changed = files != window.files;
        if files_changed {
            self.over_20ms_at_rollover += window.over_20ms;
        }
        let holds_longest = window.puts > 0 && window.longest == self.longest;
        if holds_longest {
            self.longest_window = Some(WindowTimes {
                puts: window.puts,
                took: window.started.elapsed(),
                on_core: on_core.saturating_sub(window.on_core),
                waited: waited.saturating_sub(window.waited),
                files_changed,
            });
        }
        self.window = Window::start(files);
    }
}

impl Window {
    fn start(files: usize) -> Option<Window> {
        let (on_core, waited) = sched_times()?;
        Some(Window {
            started: Instant::now(),
            on_core,
            waited,
            puts: 0,
            longest: Duration::ZERO,
            over_20ms: 0,
            files,
        })
    }
}

impl std::fmt::Display for SlowPuts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(f, "longest put {:.2} ms", ms(self.longest))?;
        if let Some(w) = &self.longest_window {
            let blocked = w.took.saturating_sub(w.on_core + w.waited);
            write!(
                f,
                " (its window of {} puts: {:.2} ms, {:.2} on a core, {:.2} waiting for one, \
                 {:.2} blocked{})",
                w.puts,
                ms(w.took),
                ms(w.on_core),
                ms(w.waited),
                ms(blocked),
                if w.files_changed {
                    "; the data files changed in it"
                } else {
                    ""
                }
            )?;
        }
        write!(
            f,
            "; puts over 10 ms: {}, over 20 ms: {} ({} in a window in which the data files \
             changed: a rollover or a merge)",
            self.over_10ms, self.over_20ms, self.over_20ms_at_rollover
        )
    }
}

/// How long one operation took, and how much of that its thread spent
/// waiting for a core (ready to run while other threads had both): on a
/// shared machine, a long operation is often one whose thread was not
/// running, rather than one the engine made wait.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stall {
    took: Duration,
    queued: Duration,
}

/// A [`Stall`] being measured.
pub(crate) struct StallStart {
    at: Instant,
    queued: Duration,
}

impl Stall {
    pub(crate) fn start() -> StallStart {
        StallStart {
            queued: run_queue_time(),
            at: Instant::now(),
        }
    }
}

impl StallStart {
    pub(crate) fn end(self) -> Stall {
        let took = self.at.elapsed();
        Stall {
            took,
            queued: run_queue_time().saturating_sub(self.queued),
        }
    }
}

impl std::fmt::Display for Stall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} ms ({:.2} ms of it waiting for a core)",
            self.took.as_secs_f64() * 1e3,
            self.queued.as_secs_f64() * 1e3
        )
    }
}

/// How long the calling thread has waited for a core so far (the second
/// field of /proc/thread-self/schedstat); zero where that is unreadable.
pub(crate) fn run_queue_time() -> Duration {
    fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// The calling thread's time on a core and time waiting for one so far,
/// if readable. The first comes from the thread's CPU clock: schedstat's
/// own first field lags by up to a scheduler tick for a running thread.
fn sched_times() -> Option<(Duration, Duration)> {
    let text = fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let waited = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((thread_cpu_time(), Duration::from_nanos(waited)))
}

/// CPU time of the calling thread so far.
pub(crate) fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

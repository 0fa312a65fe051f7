//! Progress of a long command on standard error, only when it is a
//! terminal: one line rewritten in place at most ten times a second, and
//! wiped at the end. Nothing at all when standard error is not a terminal,
//! so that scripts and logs see only what the command prints.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(100);

/// One progress line.
pub struct Progress {
    what: &'static str,
    shown: Option<Instant>,
    on: bool,
}

impl Progress {
    /// A progress line saying `what` (e.g. "loaded"), shown only on a terminal.
    pub fn new(what: &'static str) -> Progress {
        Progress {
            what,
            shown: None,
            on: std::io::stderr().is_terminal(),
        }
    }

    /// Shows `done` (with `total`, if known), unless it was shown lately.
    pub fn update(&mut self, done: u64, total: Option<u64>, unit: &str) {
        if !self.on || self.shown.is_some_and(|at| at.elapsed() < EVERY) {
            return;
        }
        self.shown = Some(Instant::now());
        let line = match total {
            Some(total) if total > 0 => format!(
                "{} {done} of {total} {unit} ({}%)",
                self.what,
                done.saturating_mul(100) / total
            ),
            _ => format!("{} {done} {unit}", self.what),
        };
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Shows `done` of `total` bytes, in MiB.
    pub fn bytes(&mut self, done: u64, total: u64) {
        self.update(done >> 20, Some(total >> 20), "MiB");
    }

    /// Wipes the line.
    pub fn finish(&mut self) {
        if self.on && self.shown.take().is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

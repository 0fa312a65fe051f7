//! Named crash points, compiled in only with the `failpoints` feature (the
//! crash tests turn it on; release builds never have it). A test child sets
//! `BITCASK_FAILPOINT=name` (or `name@N` for the N-th time that point is
//! reached) and the process aborts right there, as a `kill -9` would stop
//! it: no destructor runs, nothing more is written.

/// Aborts the process if the test asked to crash at `name`.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    let Ok(wanted) = std::env::var("BITCASK_FAILPOINT") else {
        return;
    };
    let (point, nth) = match wanted.split_once('@') {
        Some((point, n)) => (point.to_string(), n.parse::<u64>().unwrap_or(1)),
        None => (wanted, 1),
    };
    if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == nth {
        std::process::abort();
    }
}

/// Without the `failpoints` feature, crash points cost nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

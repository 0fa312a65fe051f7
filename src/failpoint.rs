//! Named crash points, compiled in only with the `failpoints` feature (the
//! crash tests turn it on; release builds never have it). A test child sets
//! `BITCASK_FAILPOINT=name` (or `name@N` for the N-th time that point is
//! reached) and the process aborts right there, as a `kill -9` would stop
//! it: no destructor runs, nothing more is written.
//!
//! A test may also run code of its own at a point ([`on`]): a write made
//! while a merge is between two of its steps, for instance, which no timing
//! could place there reliably.

#[cfg(feature = "failpoints")]
mod armed {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, OnceLock};

    use parking_lot::Mutex;

    type Hook = Arc<dyn Fn() + Send + Sync>;

    /// The point `BITCASK_FAILPOINT` names and the hit to abort at, read
    /// once: every append passes through a point.
    fn wanted() -> &'static Option<(String, u64)> {
        static WANTED: OnceLock<Option<(String, u64)>> = OnceLock::new();
        WANTED.get_or_init(|| {
            let wanted = std::env::var("BITCASK_FAILPOINT").ok()?;
            Some(match wanted.split_once('@') {
                Some((point, n)) => (point.to_string(), n.parse::<u64>().unwrap_or(1)),
                None => (wanted, 1),
            })
        })
    }

    fn hooks() -> &'static Mutex<HashMap<String, Hook>> {
        static HOOKS: OnceLock<Mutex<HashMap<String, Hook>>> = OnceLock::new();
        HOOKS.get_or_init(Mutex::default)
    }

    pub fn hit(name: &str) {
        static HITS: AtomicU64 = AtomicU64::new(0);
        if let Some((point, nth)) = wanted() {
            if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                std::process::abort();
            }
        }
        // Cloned out of the lock: the hook may reach other points.
        let hook = hooks().lock().get(name).cloned();
        if let Some(hook) = hook {
            hook();
        }
    }

    pub fn on(name: &str, hook: impl Fn() + Send + Sync + 'static) {
        hooks().lock().insert(name.to_string(), Arc::new(hook));
    }

    pub fn clear(name: &str) {
        hooks().lock().remove(name);
    }
}

/// Aborts the process if the test asked to crash at `name`, and runs the
/// code a test attached to it.
#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    armed::hit(name);
}

/// Runs `hook` each time the point `name` is reached, in the thread that
/// reaches it, until [`clear`]. Tests only (feature `failpoints`).
#[cfg(feature = "failpoints")]
pub fn on(name: &str, hook: impl Fn() + Send + Sync + 'static) {
    armed::on(name, hook);
}

/// Removes the code attached to `name`.
#[cfg(feature = "failpoints")]
pub fn clear(name: &str) {
    armed::clear(name);
}

/// Without the `failpoints` feature, crash points cost nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

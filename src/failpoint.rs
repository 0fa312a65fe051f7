//! Named points in the code where tests step in, compiled in only with the
//! `failpoints` feature (the tests turn it on; release builds never have
//! it, and without it every point is an empty inline function).
//!
//! Two ways to use a point:
//! - a crash test child sets `BITCASK_FAILPOINT=name` (or `name@N` for the
//!   N-th time that point is reached) and the process aborts right there,
//!   as a `kill -9` would stop it: no destructor runs, nothing more is
//!   written;
//! - a test in the same process arms a point with [`arm`]: to count how
//!   often it is reached (and wait for that), to hold the thread that
//!   reaches it until the test lets it go, or, for a point that guards an
//!   I/O step ([`fail`]), to make that step fail with an OS error. Points
//!   are process-wide, so a test binary that arms them runs its tests one
//!   at a time ([`serial`]).

/// Aborts the process if the test asked to crash at `name`, and does what
/// an armed `name` asks (count, pause).
#[cfg(feature = "failpoints")]
pub fn hit(name: &'static str) {
    armed::crash_if_asked(name);
    let _ = armed::reached(name);
}

/// Without the `failpoints` feature, points cost nothing.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &'static str) {}

/// A point in front of an I/O step: as [`hit`], and an `Err` with the OS
/// error a test armed it with ([`Action::Fail`]), which the caller returns
/// as the step's own failure.
#[cfg(feature = "failpoints")]
pub fn fail(name: &'static str) -> std::io::Result<()> {
    armed::crash_if_asked(name);
    match armed::reached(name) {
        Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
        None => Ok(()),
    }
}

/// Without the `failpoints` feature, I/O steps never fail here.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn fail(_name: &'static str) -> std::io::Result<()> {
    Ok(())
}

#[cfg(feature = "failpoints")]
pub use armed::{arm, hit_log, serial, Action, Armed};

#[cfg(feature = "failpoints")]
mod armed {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    use parking_lot::{Condvar, Mutex, MutexGuard};

    /// What an armed point does when it is reached.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Action {
        /// Counts the hit, nothing more.
        Count,
        /// Holds the thread that makes the N-th hit until the test has
        /// called [`Armed::release`] N times (or disarmed the point).
        Pause,
        /// Makes the I/O step behind the point fail with this OS error
        /// (`errno`), every time while armed. At a point that guards no
        /// I/O step ([`super::hit`]) it only counts.
        Fail(i32),
    }

    struct Point {
        id: u64,
        name: &'static str,
        action: Action,
        hits: u64,
        releases: u64,
    }

    #[derive(Default)]
    struct Registry {
        points: Vec<Point>,
        /// Every hit of an armed point, in order, by name.
        log: Vec<&'static str>,
    }

    /// How long [`Armed::wait_for_hits`] waits before it takes the test for
    /// hung and fails it.
    pub const HANG_GUARD: Duration = Duration::from_secs(120);

    /// Whether any point is armed: the fast path of every hit.
    static ANY: AtomicBool = AtomicBool::new(false);
    static NEXT_ID: AtomicU64 = AtomicU64::new(1);
    static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
        points: Vec::new(),
        log: Vec::new(),
    });
    /// Signalled at every hit and every release.
    static CHANGED: Condvar = Condvar::new();
    static SERIAL: Mutex<()> = Mutex::new(());

    /// The crash a child process asked for in `BITCASK_FAILPOINT`, read once.
    pub(super) fn crash_if_asked(name: &str) {
        static WANTED: OnceLock<Option<(String, u64)>> = OnceLock::new();
        static HITS: AtomicU64 = AtomicU64::new(0);
        let wanted = WANTED.get_or_init(|| {
            let wanted = std::env::var("BITCASK_FAILPOINT").ok()?;
            Some(match wanted.split_once('@') {
                Some((point, n)) => (point.to_string(), n.parse::<u64>().unwrap_or(1)),
                None => (wanted, 1),
            })
        });
        if let Some((point, nth)) = wanted {
            if point == name && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
                std::process::abort();
            }
        }
    }

    /// Counts a hit of `name` if it is armed, pauses if asked, and returns
    /// the OS error to fail with, if any.
    pub(super) fn reached(name: &'static str) -> Option<i32> {
        if !ANY.load(Ordering::Acquire) {
            return None;
        }
        let mut registry = REGISTRY.lock();
        let index = registry.points.iter().position(|p| p.name == name)?;
        registry.log.push(name);
        let point = &mut registry.points[index];
        point.hits += 1;
        let (id, nth, action) = (point.id, point.hits, point.action);
        CHANGED.notify_all();
        match action {
            Action::Count => None,
            Action::Fail(errno) => Some(errno),
            Action::Pause => {
                loop {
                    match registry.points.iter().find(|p| p.id == id) {
                        Some(p) if p.releases < nth => {}
                        _ => break,
                    }
                    CHANGED.wait(&mut registry);
                }
                None
            }
        }
    }

    /// Arms point `name` with `action` until the returned guard is dropped.
    /// One arming per name at a time.
    pub fn arm(name: &'static str, action: Action) -> Armed {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut registry = REGISTRY.lock();
        assert!(
            registry.points.iter().all(|p| p.name != name),
            "failpoint {name} is armed twice"
        );
        registry.points.push(Point {
            id,
            name,
            action,
            hits: 0,
            releases: 0,
        });
        ANY.store(true, Ordering::Release);
        Armed { id }
    }

    /// The hits of armed points so far, in order, by name; and forgets them.
    pub fn hit_log() -> Vec<&'static str> {
        std::mem::take(&mut REGISTRY.lock().log)
    }

    /// Serializes the tests of one binary that arm points (points are
    /// process-wide): hold the guard for the whole test.
    pub fn serial() -> MutexGuard<'static, ()> {
        SERIAL.lock()
    }

    /// An armed point; dropping it disarms the point and lets go of every
    /// thread paused there.
    #[derive(Debug)]
    pub struct Armed {
        id: u64,
    }

    impl Armed {
        fn with<R>(&self, f: impl FnOnce(&mut Point) -> R) -> R {
            let mut registry = REGISTRY.lock();
            let point = registry
                .points
                .iter_mut()
                .find(|p| p.id == self.id)
                .expect("an armed point stays registered until dropped");
            f(point)
        }

        /// How many times the point was reached since it was armed.
        pub fn hits(&self) -> u64 {
            self.with(|p| p.hits)
        }

        /// Waits until the point was reached at least `n` times. Panics
        /// after [`HANG_GUARD`], which only a hang reaches: a guard against
        /// a test that would otherwise wait forever, not a time limit.
        pub fn wait_for_hits(&self, n: u64) {
            let deadline = Instant::now() + HANG_GUARD;
            let mut registry = REGISTRY.lock();
            loop {
                let point = registry.points.iter().find(|p| p.id == self.id);
                let (name, hits) = point.map_or(("?", 0), |p| (p.name, p.hits));
                if hits >= n {
                    return;
                }
                if CHANGED.wait_until(&mut registry, deadline).timed_out() {
                    panic!("failpoint {name}: still {hits} hits of the {n} waited for after {HANG_GUARD:?} (hang guard)");
                }
            }
        }

        /// Lets the next paused hit (of [`Action::Pause`]) go on.
        pub fn release(&self) {
            self.with(|p| p.releases += 1);
            CHANGED.notify_all();
        }

        /// Lets every hit go on, now and later, while still counting them.
        pub fn release_all(&self) {
            self.with(|p| p.releases = u64::MAX);
            CHANGED.notify_all();
        }
    }

    impl Drop for Armed {
        fn drop(&mut self) {
            let mut registry = REGISTRY.lock();
            registry.points.retain(|p| p.id != self.id);
            ANY.store(!registry.points.is_empty(), Ordering::Release);
            CHANGED.notify_all();
        }
    }
}

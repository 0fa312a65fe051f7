//! Two pieces of work at once: one on a short-lived helper thread, the
//! other on the calling thread, or both on the calling thread when no
//! thread can be started (a process at its thread limit still gets its
//! answer, only later).

use std::thread;

use parking_lot::Mutex;

/// Runs `on_helper` on a new thread named `name` while this thread runs
/// `here`, and returns both results once both are done. If the thread
/// cannot be started, this thread runs `on_helper` after `here`. A panic
/// in `on_helper` is resumed on this thread.
pub(crate) fn in_two<H, R>(
    name: &str,
    on_helper: impl FnOnce() -> H + Send,
    here: impl FnOnce() -> R,
) -> (H, R)
where
    H: Default + Send,
{
    // Taken once: by the helper, or by this thread when none started.
    // `spawn_scoped` consumes the closure it is given even when it fails,
    // so the work sits behind a lock that `take_and_run` only borrows (it
    // is a copy, which this thread can still call). `H: Default` stands in
    // for the work found already taken, which cannot happen, so that
    // nothing here needs a panic.
    let work = Mutex::new(Some(on_helper));
    let take_and_run = || work.lock().take().map(|f| f()).unwrap_or_default();
    thread::scope(|scope| {
        let helper = thread::Builder::new()
            .name(name.to_string())
            .spawn_scoped(scope, take_and_run);
        let mine = here();
        let theirs = match helper {
            Ok(helper) => helper
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Err(_) => take_and_run(),
        };
        (theirs, mine)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_results_come_back_and_the_helper_runs_on_its_own_thread() {
        let caller = thread::current().id();
        let (helper_thread, here) = in_two("bitcask-test", || Some(thread::current().id()), || 7);
        assert_eq!(here, 7);
        assert_ne!(helper_thread, Some(caller));
    }
}

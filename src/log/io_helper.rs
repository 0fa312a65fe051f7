//! A thread that does the appender's work ahead of need off the writer's
//! path: start writing appended bytes to disk (`sync_file_range` with
//! `SYNC_FILE_RANGE_WRITE`), allocate space ahead of the last record
//! (`fallocate`, see `growth.rs`) and fault in its pages
//! (`MADV_POPULATE_WRITE`) before the copies that fill them.
//!
//! All are speed-ups that promise nothing (the writer allocates itself
//! when the thread has not), and all can take tens of milliseconds when
//! the device is busy: `sync_file_range` waits for room in the device's
//! queue, `fallocate` may read a block bitmap, and a 1 MiB prefault
//! allocates and zeroes 256 pages. Run by the writer, each made the put
//! that happened to cross a step wait that long (with `strace -T` on a
//! 3M-key fill: 5-25 ms for a 4 MiB writeback start, 5-15 ms for a 1 MiB
//! prefault, on a loaded 2-core machine), which is what the longest put
//! measured. Here they cost the writer one channel send.
//!
//! A hint that cannot reach the thread (it could not be started, or has
//! stopped) is run by the caller, as before.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::Mutex;

use super::data_file::DataFile;
use super::growth::Growth;

/// How much of a prefault the kernel does under one hold of the memory map
/// lock (see [`IoHint::run`]): an eighth of a grow step, whose prefault
/// took 1.6 ms at the median and up to 13 ms here (`strace -T`).
const PREFAULT_PIECE: u64 = 128 << 10;

/// One piece of work for the I/O thread: a hint to the kernel about a range
/// of a data file, or other work no writer should wait for.
pub enum IoHint {
    /// Start writing `len` bytes at `start` to disk, without waiting, their
    /// whole pages first dropped from the writable map (see
    /// [`DataFile::unmap_written`]). Makes nothing durable: only fdatasync
    /// does. Errors are ignored: a write
    /// error stays recorded for the file and the next fdatasync reports it
    /// (without a wait flag `sync_file_range` does not consume it).
    Writeback {
        file: Arc<DataFile>,
        start: u64,
        len: u64,
    },
    /// Map the pages of `len` bytes at `start` into the file's writable map
    /// (see [`DataFile::prefault`]). The range is allocated (`fallocate`)
    /// before the hint is given, so this never meets a hole; should the
    /// file have been cut meanwhile (a seal), the kernel refuses the pages
    /// past its end with an error, which is ignored. With `huge`, the
    /// range's whole huge pages are first advised to come in huge pages
    /// ([`DataFile::advise_huge`]).
    Prefault {
        file: Arc<DataFile>,
        start: u64,
        len: u64,
        huge: bool,
    },
    /// Allocate `file` up to `to` bytes and prefault the new pages (in huge
    /// pages with `huge`, as [`IoHint::Prefault`]), unless
    /// it is that long already or was sealed or cut since the appender
    /// asked (`generation`; see [`Growth::allocate_ahead`]).
    Allocate {
        file: Arc<DataFile>,
        growth: Arc<Growth>,
        to: u64,
        generation: u64,
        huge: bool,
    },
    /// Anything else that only saves a writer time later (the index's
    /// memory faulted in ahead of need).
    Call(Box<dyn FnOnce() + Send>),
}

impl IoHint {
    /// Gives the hint to the kernel (or does the work), on the calling
    /// thread.
    pub fn run(self) {
        match self {
            IoHint::Writeback { file, start, len } => {
                let (Ok(start), Ok(len)) =
                    (libc::off64_t::try_from(start), libc::off64_t::try_from(len))
                else {
                    return;
                };
                file.unmap_written(start as u64, len as u64);
                // SAFETY: a plain system call on a descriptor the file owns
                // (kept open by the Arc), with no pointers.
                unsafe {
                    libc::sync_file_range(
                        file.file().as_raw_fd(),
                        start,
                        len,
                        libc::SYNC_FILE_RANGE_WRITE,
                    );
                }
            }
            IoHint::Prefault {
                file,
                start,
                len,
                huge,
            } => prefault(&file, start, len, huge),
            IoHint::Allocate {
                file,
                growth,
                to,
                generation,
                huge,
            } => {
                if let Some((from, to)) = growth.allocate_ahead(file.file(), to, generation) {
                    prefault(&file, from, to - from, huge);
                }
            }
            IoHint::Call(work) => work(),
        }
    }
}

/// Faults the pages of `len` bytes at `start` into the file's writable
/// map, in pieces: the kernel holds the process's memory map lock while it
/// faults a range in, and a writer that maps or unmaps memory meanwhile
/// (the index growing) waits for it. With `huge`, in huge pages where the
/// range holds whole ones.
fn prefault(file: &DataFile, start: u64, len: u64, huge: bool) {
    if huge {
        file.advise_huge(start, len);
    }
    let end = start.saturating_add(len);
    let mut at = start;
    while at < end {
        let piece = (end - at).min(PREFAULT_PIECE);
        file.prefault(at, piece);
        at += piece;
    }
}

/// Where the appender sends its hints: the helper thread, or the caller
/// itself when there is none.
#[derive(Clone, Default)]
pub struct HintSink {
    to_thread: Option<Sender<Option<IoHint>>>,
}

impl HintSink {
    /// A sink that runs every hint on the calling thread.
    pub fn inline() -> HintSink {
        HintSink { to_thread: None }
    }

    /// Whether hints run on another thread, so that giving one early costs
    /// the caller nothing.
    pub fn is_threaded(&self) -> bool {
        self.to_thread.is_some()
    }

    /// Hands `hint` to the thread, or runs it here if the thread is gone.
    pub fn give(&self, hint: IoHint) {
        let hint = match &self.to_thread {
            Some(tx) => match tx.send(Some(hint)) {
                Ok(()) => return,
                Err(mpsc::SendError(hint)) => hint,
            },
            None => Some(hint),
        };
        if let Some(hint) = hint {
            hint.run();
        }
    }
}

/// The helper thread of one open database.
pub struct IoHelper {
    sink: HintSink,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Set by [`IoHelper::stop`]: the thread drops what is still queued
    /// rather than running it, so that close does not wait for a backlog
    /// of writeback starts (the device may be slower than the writer).
    stopping: Arc<AtomicBool>,
}

impl IoHelper {
    /// Starts the thread. If it cannot be started (the process is out of
    /// threads), hints run on the caller's thread instead: slower, not
    /// wrong.
    pub fn start() -> IoHelper {
        let (tx, rx) = mpsc::channel::<Option<IoHint>>();
        let stopping = Arc::new(AtomicBool::new(false));
        let stop_seen = Arc::clone(&stopping);
        let spawned = std::thread::Builder::new()
            .name("bitcask-io".to_string())
            .spawn(move || {
                // `None` (from `stop`) or every sender gone ends the thread.
                while let Ok(Some(hint)) = rx.recv() {
                    if stop_seen.load(Ordering::Acquire) {
                        break;
                    }
                    hint.run();
                }
            });
        match spawned {
            Ok(handle) => IoHelper {
                sink: HintSink {
                    to_thread: Some(tx),
                },
                thread: Mutex::new(Some(handle)),
                stopping,
            },
            Err(_) => IoHelper::none(),
        }
    }

    /// No thread: hints run on the caller's thread. For a database that
    /// never appends (a read-only open).
    pub fn none() -> IoHelper {
        IoHelper {
            sink: HintSink::inline(),
            thread: Mutex::new(None),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Where to send hints.
    pub fn sink(&self) -> HintSink {
        self.sink.clone()
    }

    /// Whether there is a thread (see [`HintSink::is_threaded`]).
    pub fn is_threaded(&self) -> bool {
        self.sink.is_threaded()
    }

    /// Hands `hint` to the thread (see [`HintSink::give`]).
    pub fn give(&self, hint: IoHint) {
        self.sink.give(hint);
    }

    /// Stops the thread once it has finished the hint it is running, and
    /// waits for it. Hints still queued, or sent later, are dropped or run
    /// on their sender's thread (hints only: either is fine). A second call
    /// does nothing.
    pub fn stop(&self) {
        let Some(handle) = self.thread.lock().take() else {
            return;
        };
        self.stopping.store(true, Ordering::Release);
        if let Some(tx) = &self.sink.to_thread {
            let _ = tx.send(None);
        }
        // The thread runs nothing that panics; were it to, its hints were
        // only hints.
        let _ = handle.join();
    }
}

impl Drop for IoHelper {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Close waits for the hint being run, not for a backlog behind it.
    #[test]
    fn stop_drops_what_is_still_queued() {
        let helper = Arc::new(IoHelper::start());
        let (release, wait) = mpsc::channel::<()>();
        let (started, running) = mpsc::channel::<()>();
        helper.give(IoHint::Call(Box::new(move || {
            started.send(()).unwrap();
            wait.recv().unwrap();
        })));
        let queued_ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&queued_ran);
        helper.give(IoHint::Call(Box::new(move || {
            flag.store(true, Ordering::SeqCst);
        })));
        running.recv().unwrap();
        let stopper = {
            let helper = Arc::clone(&helper);
            std::thread::spawn(move || helper.stop())
        };
        while !helper.stopping.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        release.send(()).unwrap();
        stopper.join().unwrap();
        assert!(!queued_ran.load(Ordering::SeqCst));
    }

    #[test]
    fn hints_sent_after_stop_run_on_the_sender_and_stop_twice_is_harmless() {
        let dir = std::env::temp_dir().join(format!("bitcask-io-helper-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = Arc::new(DataFile::create(&dir, 1).unwrap());
        let helper = IoHelper::start();
        let sink = helper.sink();
        assert!(sink.is_threaded());
        sink.give(IoHint::Writeback {
            file: Arc::clone(&file),
            start: 0,
            len: 16,
        });
        helper.stop();
        helper.stop();
        // The thread is gone: the send fails and the hint runs here.
        sink.give(IoHint::Writeback {
            file: Arc::clone(&file),
            start: 0,
            len: 16,
        });
        // Only the hints' Arcs were dropped: the test holds the last one.
        assert_eq!(Arc::strong_count(&file), 1);
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

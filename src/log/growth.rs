//! The space allocated ahead of the active file's last record: how far it
//! reaches, and the one lock under which anyone changes the file's length.
//!
//! The appender copies records into the file's map, which needs the file
//! to be at least as long as what is copied, with its blocks allocated
//! (see `appender.rs`). Allocating (`fallocate`) is usually quick, but it
//! can wait on the disk: ext4 reads a block group's bitmap the first time
//! it allocates from it (33 ms once under `perf sched` on a 10M-key fill,
//! 146 ms once in another profile), and a put that happened to grow the
//! file waited that long. So with an I/O thread the allocation is asked of
//! it well ahead of need ([`Growth::allocate_ahead`], run on that thread),
//! and the writer only reads how far it has got ([`Growth::ready`]); it
//! allocates itself only when the thread has not got there in time, or
//! failed.
//!
//! Every change of the file's length happens under [`Growth::lock`]: the
//! thread's `fallocate`, the writer's own, the cut of a seal and of a
//! failed append. So the writer never cuts the file while the thread
//! extends it, nor the thread extends a file just sealed: a seal starts a
//! new generation, and an allocation asked for in an earlier one does
//! nothing.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, MutexGuard};

/// How far the active file is allocated, shared by the writer and the I/O
/// thread. One per active file.
#[derive(Debug)]
pub struct Growth {
    /// How long the file is, all of it allocated: what the writer may copy
    /// into. Stored after the allocation returned, under the lock; read
    /// without it.
    ready: AtomicU64,
    /// Set when an allocation on the I/O thread failed (a nearly full
    /// disk, a file system that cannot allocate ahead): the writer stops
    /// asking for more and grows the file itself, which reports the error.
    ahead_failed: AtomicBool,
    /// Which seal or cut the allocations asked for now come after: changed
    /// under the lock, read without it (the writer reads it to ask).
    generation: AtomicU64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The same as `ready`.
    len: u64,
}

/// The lock on the file's length (see the module documentation).
pub struct Allocated<'a> {
    growth: &'a Growth,
    state: MutexGuard<'a, State>,
}

impl Allocated<'_> {
    /// How long the file is, all of it allocated.
    pub fn len(&self) -> u64 {
        self.state.len
    }

    /// Records that the file is now `len` long, all of it allocated, and
    /// that the writer's own allocation succeeded (so allocating ahead is
    /// worth trying again).
    pub fn grown_to(&mut self, len: u64) {
        self.set(len);
        self.growth.ahead_failed.store(false, Ordering::Relaxed);
    }

    /// Records that the file was cut to `len` (a seal, or the cut after a
    /// failed append): allocations asked for before now do nothing.
    pub fn cut_to(&mut self, len: u64) {
        self.set(len);
        self.growth.generation.fetch_add(1, Ordering::Relaxed);
    }

    fn set(&mut self, len: u64) {
        self.state.len = len;
        self.growth.ready.store(len, Ordering::Release);
    }
}

impl Growth {
    /// The growth of a file `len` bytes long, all of them allocated (a new
    /// file, or one cut to its last record at open).
    pub fn new(len: u64) -> Growth {
        Growth {
            ready: AtomicU64::new(len),
            ahead_failed: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            state: Mutex::new(State { len }),
        }
    }

    /// Which seal or cut an allocation asked for now comes after (see
    /// [`Growth::allocate_ahead`]).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    /// How long the file is, all of it allocated: the writer may copy into
    /// the map up to here without taking the lock.
    pub fn ready(&self) -> u64 {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether an allocation ahead failed since the writer last grew the
    /// file itself.
    pub fn ahead_failed(&self) -> bool {
        self.ahead_failed.load(Ordering::Relaxed)
    }

    /// Takes the lock on the file's length, waiting for an allocation in
    /// progress on the I/O thread.
    pub fn lock(&self) -> Allocated<'_> {
        Allocated {
            growth: self,
            state: self.state.lock(),
        }
    }

    /// Allocates `file` up to `to` bytes, unless it is that long already
    /// or the allocation was asked for before a seal or cut (`generation`).
    /// Returns the range newly allocated, for its pages to be faulted in.
    /// On the I/O thread. A failure only sets [`Growth::ahead_failed`]:
    /// the file is left as `fallocate` left it (ext4 may have extended it
    /// part-way; a seal cuts the file to its last record whatever its
    /// length).
    pub fn allocate_ahead(&self, file: &File, to: u64, generation: u64) -> Option<(u64, u64)> {
        let mut allocated = self.lock();
        let from = allocated.len();
        if self.generation() != generation || from >= to {
            return None;
        }
        match allocate(file, from, to) {
            Ok(true) => {
                allocated.set(to);
                Some((from, to))
            }
            Ok(false) | Err(_) => {
                self.ahead_failed.store(true, Ordering::Relaxed);
                None
            }
        }
    }
}

/// Grows `file` from `len` to `new_len` bytes with the new blocks
/// allocated, so that copies into them through a map cannot fail for want
/// of space; retried when a signal interrupts it. Returns false, with the
/// file left as it was, where the file system cannot allocate ahead (the
/// caller must then not copy through the map: extending the file would
/// leave it sparse, and a copy into a hole faults with SIGBUS once the disk
/// is full). Call it under [`Growth::lock`].
pub fn allocate(file: &File, len: u64, new_len: u64) -> io::Result<bool> {
    let (Ok(start), Ok(grow)) = (
        libc::off_t::try_from(len),
        libc::off_t::try_from(new_len.saturating_sub(len)),
    ) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    if grow == 0 {
        return Ok(true);
    }
    loop {
        // SAFETY: a plain system call on a descriptor `file` owns, with no
        // pointers.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, start, grow) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => return Ok(false),
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> (std::path::PathBuf, File) {
        let dir =
            std::env::temp_dir().join(format!("bitcask-growth-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(dir.join("f"))
            .unwrap();
        (dir, file)
    }

    /// An allocation asked for before a cut must not extend the file cut
    /// since: a sealed file would end in zeros after its last record.
    #[test]
    fn an_allocation_asked_for_before_a_cut_does_nothing() {
        let (dir, file) = scratch("cut");
        let growth = Growth::new(0);
        let asked_in = growth.generation();
        assert_eq!(
            growth.allocate_ahead(&file, 4096, asked_in),
            Some((0, 4096))
        );
        assert_eq!(growth.ready(), 4096);
        assert_eq!(file.metadata().unwrap().len(), 4096);
        let later = growth.generation();
        {
            let mut allocated = growth.lock();
            file.set_len(100).unwrap();
            allocated.cut_to(100);
        }
        assert_eq!(growth.ready(), 100);
        assert_eq!(growth.allocate_ahead(&file, 8192, later), None);
        assert_eq!(file.metadata().unwrap().len(), 100);
        // Asked for after the cut, it allocates from the cut.
        let now = growth.generation();
        assert_eq!(growth.allocate_ahead(&file, 8192, now), Some((100, 8192)));
        assert_eq!(file.metadata().unwrap().len(), 8192);
        // Already that long: nothing to do.
        assert_eq!(growth.allocate_ahead(&file, 4096, now), None);
        assert!(!growth.ahead_failed());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_allocation_ahead_is_remembered_until_the_writer_grows_the_file() {
        let (dir, file) = scratch("failed");
        let growth = Growth::new(0);
        // Past the largest file length: EFBIG (or EINVAL), without a change.
        assert_eq!(growth.allocate_ahead(&file, u64::MAX, 0), None);
        assert!(growth.ahead_failed());
        assert_eq!(growth.ready(), 0);
        growth.lock().grown_to(0);
        assert!(!growth.ahead_failed());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

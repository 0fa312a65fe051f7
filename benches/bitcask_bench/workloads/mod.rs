//! The workloads of the benchmark, in the order they run against one
//! database, and what they share: keys, values, checks. The workloads
//! themselves: `point.rs` (puts, gets, deletes, synced puts, batches),
//! `iterate.rs` (iterators), `reopen.rs` (reopens, merge, keydir memory).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcask::{Bitcask, Options};

use crate::Res;

use iterate::{iterate_keys, iterate_keys_values, iterate_while_writing};
use point::{
    batch_of_1, batch_of_100, batch_of_10000, delete_random, fill_random, fill_sync_1,
    fill_sync_every_mib, fill_sync_n, overwrite, read_missing, read_random, read_random_2_threads,
};
use reopen::{keydir_memory, merge, reopen_after_close, reopen_after_crash, reopen_without_hints};

mod iterate;
mod point;
mod reopen;

/// The pause of the threads that probe for stalls (during a merge, while
/// iterators are created) between two operations.
pub(crate) const PROBE_PAUSE: Duration = Duration::from_micros(100);

/// Every key is 16 bytes: a zero-padded decimal number.
pub(crate) const KEY_LEN: usize = 16;

/// Values are slices of one random buffer, starting at one of this many offsets.
pub(crate) const VALUE_WINDOW: usize = 4096;

/// The workloads, in the order they run against one database. Each one
/// finds the database as the previous one left it: fillrandom creates it
/// and leaves it open; delete empties it and removes it; the fillsync ones
/// use databases of their own. `{threads}` in a name is `--sync-threads`.
pub(crate) const WORKLOADS: &[(&str, Workload)] = &[
    ("fillrandom", fill_random),
    ("overwrite", overwrite),
    ("readrandom", read_random),
    ("readrandom 2 threads", read_random_2_threads),
    ("readmissing", read_missing),
    ("iterate keys", iterate_keys),
    ("iterate keys+values", iterate_keys_values),
    ("iterate while writing", iterate_while_writing),
    ("reopen after close", reopen_after_close),
    ("reopen after a crash", reopen_after_crash),
    ("reopen (no hints)", reopen_without_hints),
    ("merge", merge),
    ("reopen after merge", reopen_after_close),
    ("keydir memory", keydir_memory),
    ("delete", delete_random),
    ("fillsync 1 thread", fill_sync_1),
    ("fillsync {threads} threads", fill_sync_n),
    ("fillsync every 1 MiB", fill_sync_every_mib),
    ("batch of 1", batch_of_1),
    ("batch of 100", batch_of_100),
    ("batch of 10000", batch_of_10000),
];

pub(crate) type Workload = fn(&mut Bench) -> Res<Measured>;

/// What one workload measured: `ops` operations in `elapsed` (None: not a
/// timed workload), moving `bytes` bytes of keys and values (None: MB/s does
/// not apply).
pub(crate) struct Measured {
    pub(crate) ops: u64,
    pub(crate) elapsed: Option<Duration>,
    pub(crate) bytes: Option<u64>,
    pub(crate) note: String,
}

impl Measured {
    pub(crate) fn timed(
        ops: u64,
        elapsed: Duration,
        bytes: Option<u64>,
        note: impl Into<String>,
    ) -> Self {
        Measured {
            ops,
            elapsed: Some(elapsed),
            bytes,
            note: note.into(),
        }
    }
}

/// One table's state: its scratch directory, the options every open starts
/// from, its sizes, and the database the workloads share.
pub(crate) struct Bench {
    pub(crate) dir: PathBuf,
    /// Every open starts from a clone of this (fillsync turns sync_writes on).
    pub(crate) opts: Options,
    pub(crate) keys: u64,
    pub(crate) sync_keys: u64,
    pub(crate) sync_threads: usize,
    pub(crate) values: Values,
    pub(crate) rng: Rng,
    /// The main database ("db" under `dir`), open between fillrandom and delete.
    pub(crate) db: Option<Bitcask>,
    /// readrandom's rate (gets per second) on the clock and per CPU second
    /// of its thread, for the 2-thread row's ratios.
    pub(crate) read_rate: Option<(f64, f64)>,
}

impl Bench {
    pub(crate) fn db(&self) -> Res<&Bitcask> {
        self.db
            .as_ref()
            .ok_or_else(|| "no open database: fillrandom must run first".into())
    }

    /// Opens an empty database `name` under the table's directory.
    pub(crate) fn open_fresh(&self, name: &str, opts: Options) -> Res<Bitcask> {
        let path = self.dir.join(name);
        remove_if_present(&path)?;
        Ok(Bitcask::open(&path, opts)?)
    }

    /// Closes the main database, which workloads reopen with [`Bench::reopen_db`].
    pub(crate) fn close_db(&mut self) -> Res<()> {
        if let Some(db) = self.db.take() {
            db.close()?;
        }
        Ok(())
    }

    pub(crate) fn reopen_db(&self) -> Res<Bitcask> {
        Ok(Bitcask::open(self.dir.join("db"), self.opts.clone())?)
    }

    /// 0..n in a random order.
    pub(crate) fn shuffled(&mut self, n: u64) -> Vec<u64> {
        let mut order: Vec<u64> = (0..n).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        order
    }

    /// Key and value bytes of `ops` puts or reads.
    pub(crate) fn payload(&self, ops: u64) -> u64 {
        ops * (KEY_LEN + self.values.size) as u64
    }
}

/// The key of the i-th stored key: stored keys are the even numbers, so
/// that the odd ones (spread across the same range) are the missing keys.
pub(crate) fn present_key(i: u64) -> [u8; KEY_LEN] {
    key(2 * i)
}

pub(crate) fn missing_key(i: u64) -> [u8; KEY_LEN] {
    key(2 * i + 1)
}

pub(crate) fn key(n: u64) -> [u8; KEY_LEN] {
    let mut k = [b'0'; KEY_LEN];
    let mut n = n;
    for b in k.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// Random value bytes: value `n` of pass `pass` is a `size`-byte slice of one
/// buffer, at an offset that depends on both (so successive values differ).
pub(crate) struct Values {
    pub(crate) buf: Vec<u8>,
    pub(crate) size: usize,
}

impl Values {
    pub(crate) fn new(size: usize, rng: &mut Rng) -> Values {
        let buf = (0..size + VALUE_WINDOW).map(|_| rng.next() as u8).collect();
        Values { buf, size }
    }

    pub(crate) fn get(&self, n: u64, pass: u64) -> &[u8] {
        let at = (n.wrapping_mul(31).wrapping_add(pass * 977) % VALUE_WINDOW as u64) as usize;
        &self.buf[at..at + self.size]
    }
}

/// xorshift64: fixed seed, so every run uses the same orders.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in 0..n.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

pub(crate) fn check_count(db: &Bitcask, expected: u64) -> Res<()> {
    match db.key_count() as u64 {
        n if n == expected => Ok(()),
        n => Err(format!("the database holds {n} keys, not {expected}").into()),
    }
}

pub(crate) fn check_walk(count: u64, expected: u64) -> Res<()> {
    match count {
        n if n == expected => Ok(()),
        n => Err(format!("the iterator walked {n} keys, not {expected}").into()),
    }
}

pub(crate) fn show(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

// ---------------------------------------------------------------- memory

/// Resident anonymous memory of this process in bytes: resident minus
/// file-backed ("shared") pages, from /proc/self/statm. None if unreadable.
pub(crate) fn anon_rss() -> Option<u64> {
    let statm = fs::read_to_string("/proc/self/statm").ok()?;
    let mut fields = statm.split_whitespace().skip(1).map(str::parse::<u64>);
    let resident = fields.next()?.ok()?;
    let shared = fields.next()?.ok()?;
    Some(resident.saturating_sub(shared) * page_size())
}

pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Gives the heap's free pages back to the kernel (glibc), so that memory
/// a later allocation takes shows up as new resident memory.
pub(crate) fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; nothing points into it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Total bytes of the files directly in `dir`.
pub(crate) fn dir_bytes(dir: &Path) -> Res<u64> {
    let mut total = 0;
    for entry in fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

pub(crate) fn remove_file_if_present(path: &Path) -> Res<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", path.display()).into())
        }
        _ => Ok(()),
    }
}

pub(crate) fn remove_if_present(path: &Path) -> Res<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(format!("remove {}: {e}", path.display()).into())
        }
        _ => Ok(()),
    }
}

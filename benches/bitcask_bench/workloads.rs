//! The workloads of the benchmark, in the order they run against one
//! database, and what they share: keys, values, checks.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use bitcask::{Bitcask, Options};

use crate::stalls::{thread_cpu_time, SlowPuts, Stall};
use crate::Res;

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

// ---------------------------------------------------------------- workloads

/// Puts every key once, in random order, into an empty database; then one sync.
pub(crate) fn fill_random(b: &mut Bench) -> Res<Measured> {
    let db = b.open_fresh("db", b.opts.clone())?;
    let order = b.shuffled(b.keys);
    let start = Instant::now();
    // The longest single put, and how many were slow (see SlowPuts).
    let mut slow = SlowPuts::new();
    for &i in &order {
        let t = Instant::now();
        db.put(&present_key(i), b.values.get(i, 0))?;
        slow.add(t.elapsed());
    }
    slow.finish();
    db.sync()?;
    let elapsed = start.elapsed();
    check_count(&db, b.keys)?;
    b.db = Some(db);
    let note = format!("random order, empty db; one final sync; {slow}");
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(b.payload(b.keys)),
        note,
    ))
}

/// Puts every key again with a new value, in another random order; then one sync.
pub(crate) fn overwrite(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let start = Instant::now();
    // The longest single put, to compare with the stalls during a merge.
    let mut slow = SlowPuts::new();
    for &i in &order {
        let t = Instant::now();
        db.put(&present_key(i), b.values.get(i, 1))?;
        slow.add(t.elapsed());
    }
    slow.finish();
    db.sync()?;
    let elapsed = start.elapsed();
    check_count(db, b.keys)?;
    let note = format!(
        "every key once, random order; one final sync; data files: {}; {slow}",
        db.data_file_count(),
    );
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(b.payload(b.keys)),
        note,
    ))
}

/// Gets every key once, in random order, copying the value into one reused buffer.
pub(crate) fn read_random(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let mut buf = vec![0u8; b.values.size];
    let mut bytes = 0u64;
    let start = Instant::now();
    let start_cpu = thread_cpu_time();
    for &i in &order {
        let key = present_key(i);
        match db.get_into(&key, &mut buf)? {
            Some(len) => bytes += (KEY_LEN + len) as u64,
            None => return Err(format!("key {} is missing", show(&key)).into()),
        }
    }
    let elapsed = start.elapsed();
    black_box(&buf);
    let cpu = thread_cpu_time().saturating_sub(start_cpu);
    b.read_rate = Some((
        b.keys as f64 / elapsed.as_secs_f64().max(1e-9),
        b.keys as f64 / cpu.as_secs_f64().max(1e-9),
    ));
    let note = "get_into, value copied out; every key once";
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(black_box(bytes)),
        note,
    ))
}

/// readrandom from two threads at once, each getting every key once in an
/// order of its own: ops/s counts both threads' gets. The note compares it
/// with readrandom's rate (one thread), on the clock and per CPU second
/// (each thread's gets divided by its CPU time, added up): on a machine
/// whose cores are busy with other work, the clock ratio is what the
/// threads were given, the CPU ratio what the engine allows.
pub(crate) fn read_random_2_threads(b: &mut Bench) -> Res<Measured> {
    let orders = [b.shuffled(b.keys), b.shuffled(b.keys)];
    let db = b.db()?;
    let size = b.values.size;
    let start = Instant::now();
    let results: Vec<Result<(u64, Duration), String>> = thread::scope(|s| {
        let workers: Vec<_> = orders
            .iter()
            .map(|order| {
                s.spawn(move || {
                    let mut buf = vec![0u8; size];
                    let mut bytes = 0u64;
                    let cpu = thread_cpu_time();
                    for &i in order {
                        let key = present_key(i);
                        match db.get_into(&key, &mut buf) {
                            Ok(Some(len)) => bytes += (KEY_LEN + len) as u64,
                            other => return Err(format!("get of {}: {other:?}", show(&key))),
                        }
                    }
                    Ok((bytes, thread_cpu_time().saturating_sub(cpu)))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("reader panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut bytes = 0;
    let mut per_cpu_second = 0.0;
    for r in results {
        let (n, cpu) = r?;
        bytes += n;
        per_cpu_second += b.keys as f64 / cpu.as_secs_f64().max(1e-9);
    }
    let ops = 2 * b.keys;
    let rate = ops as f64 / elapsed.as_secs_f64().max(1e-9);
    let note = match b.read_rate {
        Some((one, one_per_cpu)) => format!(
            "2 threads, each every key once; {:.2}x readrandom's rate (1 thread); per CPU \
             second of the readers: {:.2}x",
            rate / one,
            per_cpu_second / one_per_cpu
        ),
        None => "2 threads, each every key once".to_string(),
    };
    Ok(Measured::timed(ops, elapsed, Some(black_box(bytes)), note))
}

/// Gets keys that are not there (odd numbers, spread among the stored ones).
pub(crate) fn read_missing(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let mut buf = vec![0u8; b.values.size];
    let start = Instant::now();
    for &i in &order {
        let key = missing_key(i);
        if db.get_into(&key, &mut buf)?.is_some() {
            return Err(format!("key {} was never written but is found", show(&key)).into());
        }
    }
    let elapsed = start.elapsed();
    let note = "absent keys interleaved with the stored ones";
    Ok(Measured::timed(b.keys, elapsed, None, note))
}

/// Walks every key in order, without reading values.
pub(crate) fn iterate_keys(b: &mut Bench) -> Res<Measured> {
    let db = b.db()?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut it = db.iter(b"", false)?;
    while let Some(k) = it.key() {
        count += 1;
        bytes += k.len() as u64;
        it.next();
    }
    let elapsed = start.elapsed();
    check_walk(count, b.keys)?;
    let note = "iter(\"\", false); key snapshot included";
    Ok(Measured::timed(
        count,
        elapsed,
        Some(black_box(bytes)),
        note,
    ))
}

/// Walks every key in order and reads each value (one pread per value).
pub(crate) fn iterate_keys_values(b: &mut Bench) -> Res<Measured> {
    let db = b.db()?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut it = db.iter(b"", false)?;
    while it.valid() {
        let (k, v) = it.current()?;
        count += 1;
        bytes += (k.len() + v.len()) as u64;
        it.next();
    }
    let elapsed = start.elapsed();
    check_walk(count, b.keys)?;
    let note = "values in key order, i.e. random file positions";
    Ok(Measured::timed(
        count,
        elapsed,
        Some(black_box(bytes)),
        note,
    ))
}

/// Iterators over every key, created one after the other by one thread,
/// while a second thread puts (each key again with the value it has) and a
/// third gets, both paced at one operation per [`PROBE_PAUSE`] so that
/// they probe for stalls rather than compete for the cores: the time to
/// create an iterator (its snapshot of every key), and the longest put and
/// get meanwhile. Then the same paced puts and gets for as long again
/// without iterators: the longest operations the machine gives anyway (a
/// thread that loses its core to another process waits for it). ops/s
/// counts iterators created.
pub(crate) fn iterate_while_writing(b: &mut Bench) -> Res<Measured> {
    use std::sync::atomic::{AtomicBool, Ordering};
    const ITERATORS: usize = 8;
    let db = b.db()?;
    let (keys, values) = (b.keys, &b.values);
    // (puts, longest put, gets, longest get) while `stop` is clear.
    let probe = |stop: &AtomicBool| {
        thread::scope(|s| {
            let writer = s.spawn(|| -> Result<(u64, Stall), String> {
                let (mut ops, mut longest) = (0u64, Stall::default());
                while !stop.load(Ordering::Relaxed) {
                    let n = (ops * 7919) % keys;
                    let t = Stall::start();
                    let put = db.put(&present_key(n), values.get(n, 1));
                    put.map_err(|e| e.to_string())?;
                    longest = longest.max(t.end());
                    ops += 1;
                    thread::sleep(PROBE_PAUSE);
                }
                Ok((ops, longest))
            });
            let reader = s.spawn(|| -> Result<(u64, Stall), String> {
                let (mut ops, mut longest) = (0u64, Stall::default());
                let mut buf = vec![0u8; values.size];
                while !stop.load(Ordering::Relaxed) {
                    let n = (ops * 104_729) % keys;
                    let t = Stall::start();
                    let got = db.get_into(&present_key(n), &mut buf);
                    longest = longest.max(t.end());
                    if !matches!(got, Ok(Some(_))) {
                        return Err(format!("get of stored key {n}: {got:?}"));
                    }
                    ops += 1;
                    thread::sleep(PROBE_PAUSE);
                }
                Ok((ops, longest))
            });
            let w = writer.join().map_err(|_| "writer panicked")??;
            let r = reader.join().map_err(|_| "reader panicked")??;
            Ok::<_, String>((w, r))
        })
    };
    let stop = AtomicBool::new(false);
    let mut made = Vec::new();
    let ((puts, gets), started) = thread::scope(|s| -> Res<_> {
        let probes = s.spawn(|| probe(&stop));
        let started = Instant::now();
        for _ in 0..ITERATORS {
            let t = Instant::now();
            let it = db.iter(b"", false);
            made.push(t.elapsed());
            let it = it?;
            if it.len() as u64 != keys {
                stop.store(true, Ordering::Relaxed);
                return Err(format!("an iterator holds {} keys, not {keys}", it.len()).into());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let probed = probes.join().map_err(|_| "probe panicked")??;
        Ok((probed, elapsed))
    })?;
    // The same probes, as long again, without iterators.
    let stop = AtomicBool::new(false);
    let (calm_puts, calm_gets) = thread::scope(|s| -> Res<_> {
        let probes = s.spawn(|| probe(&stop));
        thread::sleep(started);
        stop.store(true, Ordering::Relaxed);
        Ok(probes.join().map_err(|_| "probe panicked")??)
    })?;
    made.sort();
    let total: Duration = made.iter().sum();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let note = format!(
        "iterator over every key made in best {:.1} ms, median {:.1} ms; meanwhile {} puts, \
         longest {}, {} gets, longest {}; without iterators: longest put {}, longest get {}",
        ms(made[0]),
        ms(made[made.len() / 2]),
        puts.0,
        puts.1,
        gets.0,
        gets.1,
        calm_puts.1,
        calm_gets.1,
    );
    Ok(Measured::timed(ITERATORS as u64, total, None, note))
}

/// Closes the database (not timed) and times the open that rebuilds the
/// keydir by scanning every data file (warm page cache: the files were just
/// written or read), every hint file and the keydir file removed first.
/// MB/s is data file bytes scanned.
pub(crate) fn reopen_without_hints(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    for entry in fs::read_dir(b.dir.join("db"))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "hint") {
            fs::remove_file(path)?;
        }
    }
    remove_file_if_present(&b.dir.join("db").join("KEYDIR"))?;
    reopen(b, "open after close, hint files and keydir file removed")
}

/// Closes the database (not timed) and times the next open, which loads
/// the keydir file close wrote. MB/s is the bytes of the directory.
pub(crate) fn reopen_after_close(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    let note = if b.dir.join("db").join("KEYDIR").exists() {
        "open after close (from the keydir file)"
    } else {
        "open after close (no keydir file)"
    };
    reopen(b, note)
}

/// Closes the database (not timed), then leaves the directory as a
/// process killed at that moment would: no keydir file (close writes it),
/// no hint file for the newest data file (close writes that one too; the
/// background thread writes those of the files before it), and 1 MiB of
/// zeros after the newest file's last record (the space the writer grows
/// the file by ahead of its records); and times the open, which loads the
/// older files from their hint files, scans the newest one and cuts the
/// zeros off it.
pub(crate) fn reopen_after_crash(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    let dir = b.dir.join("db");
    remove_file_if_present(&dir.join("KEYDIR"))?;
    let mut data: Vec<PathBuf> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    data.retain(|p| p.extension().is_some_and(|e| e == "data"));
    data.sort();
    let newest = data.last().ok_or("no data file")?;
    remove_file_if_present(&newest.with_extension("hint"))?;
    let file = fs::OpenOptions::new().write(true).open(newest)?;
    file.set_len(file.metadata()?.len() + (1 << 20))?;
    drop(file);
    reopen(
        b,
        "as a kill leaves it: no keydir file, newest file without hint and with 1 MiB of zeros at its end",
    )
}

/// Times an open of the closed database (warm page cache).
fn reopen(b: &mut Bench, what: &str) -> Res<Measured> {
    let scanned = dir_bytes(&b.dir.join("db"))?;
    let start = Instant::now();
    let db = b.reopen_db()?;
    let elapsed = start.elapsed();
    check_count(&db, b.keys)?;
    let loaded = if db.recovery().from_saved_keydir {
        "the index from the keydir file".to_string()
    } else {
        format!("{} from hint files", db.hint_files_used())
    };
    let note = format!(
        "{what}; warm cache; data files: {} ({loaded}), {:.1} MB on disk",
        db.data_file_count(),
        scanned as f64 / 1e6
    );
    b.db = Some(db);
    Ok(Measured::timed(b.keys, elapsed, Some(scanned), note))
}

/// Merges the overwritten database (half its bytes are dead) while one
/// thread overwrites keys with their current values and another reads, each
/// paced at about one operation per 100 µs (so that they probe for stalls
/// rather than compete for the 2 cores), and reports the longest single put
/// and get each saw during the merge. MB/s counts the data file bytes
/// before the merge.
pub(crate) fn merge(b: &mut Bench) -> Res<Measured> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let db = b.db()?;
    let before = db.stats()?;
    let stop = AtomicBool::new(false);
    let (keys, values) = (b.keys, &b.values);
    let (elapsed, writer, reader) = thread::scope(|s| -> Res<_> {
        // Each probe returns (operations, longest one).
        let writer = s.spawn(|| {
            let (mut ops, mut longest, mut i) = (0u64, Duration::ZERO, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let n = (i * 7919) % keys;
                let t = Instant::now();
                let put = db.put(&present_key(n), values.get(n, 1));
                longest = longest.max(t.elapsed());
                put.map_err(|e| e.to_string())?;
                ops += 1;
                i += 1;
                thread::sleep(PROBE_PAUSE);
            }
            Ok::<_, String>((ops, longest))
        });
        let reader = s.spawn(|| {
            let (mut ops, mut longest, mut i) = (0u64, Duration::ZERO, 0u64);
            let mut buf = vec![0u8; values.size];
            while !stop.load(Ordering::Relaxed) {
                let n = (i * 104_729) % keys;
                let t = Instant::now();
                let got = db.get_into(&present_key(n), &mut buf);
                longest = longest.max(t.elapsed());
                if !matches!(got, Ok(Some(_))) {
                    return Err(format!("get of stored key {n} during merge: {got:?}"));
                }
                ops += 1;
                i += 1;
                thread::sleep(PROBE_PAUSE);
            }
            Ok((ops, longest))
        });
        let start = Instant::now();
        let merged = db.merge();
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let writer = writer.join().map_err(|_| "writer panicked")??;
        let reader = reader.join().map_err(|_| "reader panicked")??;
        merged?;
        Ok((elapsed, writer, reader))
    })?;
    let after = db.stats()?;
    check_count(db, b.keys)?;
    let note = format!(
        "disk {:.1} -> {:.1} MB ({:.1} MB reclaimable before); during it: writer {} puts, \
         longest {:.2} ms; reader {} gets, longest {:.2} ms",
        before.disk_bytes as f64 / 1e6,
        after.disk_bytes as f64 / 1e6,
        before.reclaimable_bytes as f64 / 1e6,
        writer.0,
        writer.1.as_secs_f64() * 1e3,
        reader.0,
        reader.1.as_secs_f64() * 1e3,
    );
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(before.disk_bytes),
        note,
    ))
}

/// The process's anonymous resident memory (heap) grown by an open of the
/// filled database, per key: the keydir, plus whatever else open allocates
/// and keeps. The heap's free pages are handed back to the kernel first
/// (malloc_trim), so the freed keydir of the closed handle is not reused
/// for free. Not timed.
pub(crate) fn keydir_memory(b: &mut Bench) -> Res<Measured> {
    b.close_db()?;
    release_free_heap();
    let before = anon_rss();
    let db = b.reopen_db()?;
    let after = anon_rss();
    check_count(&db, b.keys)?;
    b.db = Some(db);
    let note = match (before, after) {
        (Some(before), Some(after)) => {
            let per_key = after.saturating_sub(before) as f64 / b.keys as f64;
            format!(
                "{per_key:.1} B/key = anon RSS growth over open / keys \
                 ({KEY_LEN}-byte keys: {:.1} B/key besides the key bytes)",
                per_key - KEY_LEN as f64
            )
        }
        _ => "unavailable: no /proc/self/statm".to_string(),
    };
    Ok(Measured {
        ops: b.keys,
        elapsed: None,
        bytes: None,
        note,
    })
}

/// Deletes every key, in random order; then one sync. Removes the database.
pub(crate) fn delete_random(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let start = Instant::now();
    for &i in &order {
        db.delete(&present_key(i))?;
    }
    db.sync()?;
    let elapsed = start.elapsed();
    check_count(db, 0)?;
    b.close_db()?;
    remove_if_present(&b.dir.join("db"))?;
    let note = "every key once, random order; one final sync";
    Ok(Measured::timed(b.keys, elapsed, None, note))
}

pub(crate) fn fill_sync_1(b: &mut Bench) -> Res<Measured> {
    fill_sync(b, 1)
}

pub(crate) fn fill_sync_n(b: &mut Bench) -> Res<Measured> {
    fill_sync(b, b.sync_threads)
}

/// `--sync-keys` puts with sync_writes on (each one durable before it
/// returns) into an empty database, from `threads` threads sharing one
/// handle, each putting its share of the keys in random order.
pub(crate) fn fill_sync(b: &mut Bench, threads: usize) -> Res<Measured> {
    let mut opts = b.opts.clone();
    opts.set_sync_writes(true);
    let name = format!("sync-{threads}");
    let db = b.open_fresh(&name, opts)?;
    let order = b.shuffled(b.sync_keys);
    let share = order.len().div_ceil(threads);
    let (db_ref, values) = (&db, &b.values);
    let start = Instant::now();
    let results: Vec<bitcask::Result<()>> = thread::scope(|s| {
        let workers: Vec<_> = order
            .chunks(share)
            .map(|chunk| {
                s.spawn(move || {
                    for &i in chunk {
                        db_ref.put(&present_key(i), values.get(i, 2))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<bitcask::Result<()>>()?;
    check_count(&db, b.sync_keys)?;
    let note = format!(
        "sync_writes on; {threads} thread(s) on one handle; {} fdatasyncs",
        db.sync_count()
    );
    db.close()?;
    remove_if_present(&b.dir.join(&name))?;
    Ok(Measured::timed(
        b.sync_keys,
        elapsed,
        Some(b.payload(b.sync_keys)),
        note,
    ))
}

pub(crate) fn batch_of_1(b: &mut Bench) -> Res<Measured> {
    batch_commits(b, 1)
}

pub(crate) fn batch_of_100(b: &mut Bench) -> Res<Measured> {
    batch_commits(b, 100)
}

pub(crate) fn batch_of_10000(b: &mut Bench) -> Res<Measured> {
    batch_commits(b, 10_000)
}

/// 200,000 puts (or the table's key count, if fewer) into an empty database
/// (sync_writes off), in write batches of `size`, in random key order. The
/// note adds the rate per CPU second of the committing thread, which another
/// process taking the core does not lower.
pub(crate) fn batch_commits(b: &mut Bench, size: u64) -> Res<Measured> {
    let name = format!("batch-{size}");
    let db = b.open_fresh(&name, b.opts.clone())?;
    let total = b.keys.min(200_000);
    let order = b.shuffled(total);
    let mut batch = db.batch();
    let start = Instant::now();
    let start_cpu = thread_cpu_time();
    for chunk in order.chunks(size as usize) {
        for &i in chunk {
            batch.put(&present_key(i), b.values.get(i, 3))?;
        }
        db.write(&mut batch)?;
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_time().saturating_sub(start_cpu);
    check_count(&db, total)?;
    db.close()?;
    remove_if_present(&b.dir.join(&name))?;
    let note = format!(
        "{:.0} commits/s; {:.0} ops per CPU second of the committing thread",
        total.div_ceil(size) as f64 / elapsed.as_secs_f64(),
        total as f64 / cpu.as_secs_f64().max(1e-9)
    );
    Ok(Measured::timed(
        total,
        elapsed,
        Some(b.payload(total)),
        note,
    ))
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

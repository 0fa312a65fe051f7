//! Engine micro-benchmarks through the Rust API: iteration, batch
//! commits, point operations per index type, reopen from hint files. They
//! print numbers and assert nothing about time. Run in release with
//! `make bench-micro` (all of them) or `make bench-micro ARGS="reopen"`
//! (those whose name contains an argument):
//! `cargo bench --bench micro -- [FILTER...]`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use bitcask::{Bitcask, IndexType, Options};
use common::TempDir;

fn with_index(index_type: IndexType) -> Options {
    let mut opts = Options::default();
    opts.set_index_type(index_type);
    opts
}

fn iteration_over_1m_keys() {
    for index_type in [IndexType::Ordered, IndexType::Hash] {
        iteration_over_1m_keys_with(index_type);
    }
}

fn iteration_over_1m_keys_with(index_type: IndexType) {
    let tmp = TempDir::new("bench-iter");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    let n = 1_000_000u32;
    let mut b = db.batch();
    for i in 0..n {
        b.put(format!("key{i:010}").as_bytes(), &[7u8; 100])
            .unwrap();
        if b.len() == 10_000 {
            db.write(&mut b).unwrap();
        }
    }
    db.write(&mut b).unwrap();
    let start = Instant::now();
    let mut it = db.iter(b"", false).unwrap();
    let made = start.elapsed();
    let mut count = 0u64;
    while let Some(k) = it.key() {
        count += k.len() as u64;
        it.next();
    }
    let keys_only = start.elapsed();
    assert_eq!(count, u64::from(n) * 13);
    let start = Instant::now();
    let mut it = db.iter(b"", false).unwrap();
    let mut bytes = 0u64;
    while it.valid() {
        bytes += it.value().unwrap().len() as u64;
        it.next();
    }
    let with_values = start.elapsed();
    assert_eq!(bytes, u64::from(n) * 100);
    let rate = |d: std::time::Duration| f64::from(n) / d.as_secs_f64();
    println!(
        "{index_type:?} index: iteration over {n} keys (13-byte keys, 100-byte values): snapshot {:.0} ms; \
         keys only {:.2} M keys/s ({:.0} ms incl. snapshot); keys+values {:.2} M keys/s ({:.0} ms)",
        made.as_secs_f64() * 1e3,
        rate(keys_only) / 1e6,
        keys_only.as_secs_f64() * 1e3,
        rate(with_values) / 1e6,
        with_values.as_secs_f64() * 1e3
    );
}

fn batch_commit_throughput() {
    batch_commits(false);
}

fn batch_commit_synced() {
    batch_commits(true);
}

/// Puts in write batches of 1, 100 and 10,000, on each index type: 200,000
/// of them unsynced, 20,000 synced.
fn batch_commits(sync: bool) {
    for index_type in [IndexType::Ordered, IndexType::Hash] {
        for size in [1u32, 100, 10_000] {
            let tmp = TempDir::new("bench-batch");
            let mut opts = with_index(index_type);
            opts.set_sync_writes(sync);
            let db = Bitcask::open(tmp.db(), opts).unwrap();
            let total = if sync { 20_000 } else { 200_000 }.max(size);
            let mut b = db.batch();
            let start = Instant::now();
            let start_cpu = thread_cpu_time();
            let mut i = 0u32;
            while i < total {
                for _ in 0..size {
                    b.put(format!("key{i:010}").as_bytes(), &[7u8; 100])
                        .unwrap();
                    i += 1;
                }
                db.write(&mut b).unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            let cpu = (thread_cpu_time() - start_cpu).as_secs_f64();
            println!(
                "{index_type:?} index, batches of {size:>5} (sync_writes {sync}): {:>10.0} ops/s, {:>8.0} commits/s ({total} ops); \
                 per CPU second of the committing thread: {:>10.0} ops",
                f64::from(total) / secs,
                f64::from(total / size) / secs,
                f64::from(total) / cpu
            );
        }
    }
}

/// Point operations through the engine on each index type: 1M puts of
/// 16-byte keys with 100-byte values (sync_writes off), then 1M gets of
/// present keys and 1M of absent ones (between present ones in key order),
/// in a random order; twice, with the hash index's rate relative to the
/// ordered one's from the same round.
fn point_operations_by_index_type() {
    let n = 1_000_000u64;
    let key = |i: u64| format!("key{i:013}").into_bytes();
    // A random order (xorshift), the same for every round.
    let mut order: Vec<u64> = (0..n).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    for round in 1..=2 {
        let mut ordered = [0.0f64; 3];
        for index_type in [IndexType::Ordered, IndexType::Hash] {
            let tmp = TempDir::new("bench-point");
            let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
            let rate = |start: Instant| n as f64 / start.elapsed().as_secs_f64() / 1e3;
            let start = Instant::now();
            for &i in &order {
                db.put(&key(2 * i), &[7u8; 100]).unwrap();
            }
            let put = rate(start);
            let mut buf = [0u8; 128];
            let start = Instant::now();
            for &i in order.iter().rev() {
                assert_eq!(db.get_into(&key(2 * i), &mut buf).unwrap(), Some(100));
            }
            let hit = rate(start);
            let start = Instant::now();
            for &i in &order {
                assert_eq!(db.get_into(&key(2 * i + 1), &mut buf).unwrap(), None);
            }
            let miss = rate(start);
            if index_type == IndexType::Ordered {
                ordered = [put, hit, miss];
            }
            println!(
                "round {round}: {index_type:?}: put {put:.0} k/s ({:.2}x), get hit {hit:.0} k/s ({:.2}x), \
                 get miss {miss:.0} k/s ({:.2}x)",
                put / ordered[0],
                hit / ordered[1],
                miss / ordered[2]
            );
        }
    }
}

/// CPU time of the calling thread: open loads on the caller's thread, and
/// unlike the time on the clock this does not count the time another
/// process had the core, so it varies less on a shared machine.
fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Reopen of databases whose every data file has its hint file (close
/// writes the active file's), so open reads no values and its time is the
/// keydir's rebuild: 1M 16-byte keys with 100-byte values put in a random
/// order (one data file); the same after every key is overwritten once in
/// another order (2M hint entries in the one file); and that database
/// written with 128 MiB data files (two files, the second all overwrites).
/// Each opened 5 times with each index type; best and median wall time and
/// best CPU time of the open, warm page cache.
fn reopen_from_hint_files() {
    let n = 1_000_000u64;
    let shuffled = |seed: u64| {
        let mut order: Vec<u64> = (0..n).collect();
        let mut x = seed;
        for i in (1..order.len()).rev() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            order.swap(i, (x % (i as u64 + 1)) as usize);
        }
        order
    };
    let (first, second) = (
        shuffled(0x2545_F491_4F6C_DD1D),
        shuffled(0x9E37_79B9_7F4A_7C15),
    );
    let key = |i: u64| format!("key{i:013}").into_bytes();
    let fill = |dir: &std::path::Path, file_size: u64, order: &[u64]| {
        let mut opts = Options::default();
        opts.set_data_file_size(file_size).unwrap();
        opts.set_auto_merge_ratio(0.0).unwrap();
        let db = Bitcask::open(dir, opts).unwrap();
        for &i in order {
            db.put(&key(i), &[7u8; 100]).unwrap();
        }
        db.close().unwrap();
    };
    let time = |dir: &std::path::Path, what: &str| {
        for index_type in [IndexType::Hash, IndexType::Ordered] {
            let mut wall = Vec::new();
            let mut cpu = std::time::Duration::MAX;
            let mut files = (0, 0);
            for _ in 0..5 {
                // The previous handle freed a million small allocations:
                // merged now, not by the first large allocation of the open.
                #[cfg(all(target_os = "linux", target_env = "gnu"))]
                // SAFETY: malloc_trim only returns free memory.
                unsafe {
                    libc::malloc_trim(0);
                }
                let start = Instant::now();
                let start_cpu = thread_cpu_time();
                let db = Bitcask::open(dir, with_index(index_type)).unwrap();
                wall.push(start.elapsed());
                cpu = cpu.min(thread_cpu_time() - start_cpu);
                assert_eq!(db.key_count() as u64, n);
                files = (db.data_file_count(), db.hint_files_used());
                db.close().unwrap();
            }
            wall.sort();
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
            println!(
                "{what} ({} data files, {} from hints), {index_type:?} index: best {:.1} ms, \
                 median {:.1} ms, best CPU {:.1} ms",
                files.0,
                files.1,
                ms(wall[0]),
                ms(wall[2]),
                ms(cpu)
            );
        }
    };
    let tmp = TempDir::new("bench-reopen");
    let one = tmp.path().join("one");
    fill(&one, Options::DEFAULT_DATA_FILE_SIZE, &first);
    time(&one, "1M keys put once");
    fill(&one, Options::DEFAULT_DATA_FILE_SIZE, &second);
    time(&one, "1M keys put twice");
    let two = tmp.path().join("two");
    fill(&two, 128 << 20, &first);
    fill(&two, 128 << 20, &second);
    time(&two, "1M keys put twice, 128 MiB files");
}

/// The benchmarks, by name.
const BENCHES: [(&str, fn()); 5] = [
    ("iteration_over_1m_keys", iteration_over_1m_keys),
    ("batch_commit_throughput", batch_commit_throughput),
    ("batch_commit_synced", batch_commit_synced),
    (
        "point_operations_by_index_type",
        point_operations_by_index_type,
    ),
    ("reopen_from_hint_files", reopen_from_hint_files),
];

fn main() {
    // cargo bench passes `--bench`; every other argument is a filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for (name, run) in BENCHES {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            println!("== {name}");
            run();
        }
    }
}

//! Measurements of the index types on their own (no data files): point
//! operations, memory per key, loading as open does. They print numbers and
//! assert nothing about time. Run in release with `make bench-keydir`, or
//! `make bench-keydir ARGS="memory"` for those whose name contains an
//! argument: `cargo bench --bench keydir --features bench-internals -- [FILTER...]`.
//!
//! Keys are 16 bytes (`key` and 13 digits), accessed in a random order;
//! missing keys lie between present ones.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcask::bench_internals::{new_index, Change, HashIndex, Index, KeyHasher, RecordPos, SHARDS};
use bitcask::IndexType;

const KEY_LEN: usize = 16;

/// Key `i` written into `out`: `key` and `i` in 13 digits.
fn write_key(out: &mut [u8; KEY_LEN], i: u64) {
    out[..3].copy_from_slice(b"key");
    let mut n = i;
    for byte in out[3..].iter_mut().rev() {
        *byte = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `n` keys: the even-numbered ones, or the odd-numbered ones, which lie
/// between them in key order (so a miss walks as deep as a hit).
fn keys(n: usize, odd: bool) -> Vec<[u8; KEY_LEN]> {
    let mut out = vec![[0u8; KEY_LEN]; n];
    for (i, key) in out.iter_mut().enumerate() {
        write_key(key, 2 * i as u64 + u64::from(odd));
    }
    out
}

/// A random permutation of 0..n (xorshift, fixed seed).
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

fn pos(i: usize) -> RecordPos {
    RecordPos {
        file_id: 1 + (i >> 20) as u32,
        offset: i as u32,
        size: 127,
    }
}

fn mops(ops: usize, took: Duration) -> f64 {
    ops as f64 / took.as_secs_f64() / 1e6
}

/// A fresh index of the kind named: "ordered", or "hash N" for N shards.
fn make(kind: &str) -> Box<dyn Index> {
    match kind.strip_prefix("hash ") {
        Some(shards) => Box::new(HashIndex::with_shards(
            shards.parse().expect("a shard count"),
        )),
        None => new_index(IndexType::Ordered),
    }
}

/// The index types compared ("ordered" first: the others are relative to it).
const CANDIDATES: [&str; 4] = ["ordered", "hash 1024", "hash 64", "hash 8"];

/// Rates in M ops/s: insert, get hit, get miss, get hit from 2 threads at
/// once, overwrite, remove.
fn point_rates(
    index: &dyn Index,
    present: &[[u8; KEY_LEN]],
    missing: &[[u8; KEY_LEN]],
) -> [f64; 6] {
    let n = present.len();
    let order = shuffled(n, 0x9E37_79B9);
    let probe = shuffled(n, 0x7F4A_7C15);

    let start = Instant::now();
    for &i in &order {
        index.put(&present[i], pos(i));
    }
    let insert = mops(n, start.elapsed());

    let start = Instant::now();
    for &i in &probe {
        black_box(index.get(&present[i]));
    }
    let hit = mops(n, start.elapsed());

    let start = Instant::now();
    for &i in &probe {
        black_box(index.get(&missing[i]));
    }
    let miss = mops(n, start.elapsed());

    let start = Instant::now();
    std::thread::scope(|s| {
        for half in probe.chunks(n.div_ceil(2)) {
            s.spawn(move || {
                for &i in half {
                    black_box(index.get(&present[i]));
                }
            });
        }
    });
    let hit_2_threads = mops(n, start.elapsed());

    let start = Instant::now();
    for &i in &probe {
        index.put(&present[i], pos(i + 1));
    }
    let overwrite = mops(n, start.elapsed());

    let start = Instant::now();
    for &i in &order {
        index.remove(&present[i]);
    }
    let remove = mops(n, start.elapsed());
    assert_eq!(index.len(), 0);
    [insert, hit, miss, hit_2_threads, overwrite, remove]
}

fn point_operations_on_1m_keys() {
    let n = 1_000_000;
    let present = keys(n, false);
    let missing = keys(n, true);
    println!("point operations on {n} keys of {KEY_LEN} bytes, M ops/s (IndexType::Hash is hash {SHARDS})");
    println!("columns: insert, get hit, get miss, get hit from 2 threads, overwrite, remove");
    for round in 1..=2 {
        let mut ordered = [0.0; 6];
        for name in CANDIDATES {
            let rates = point_rates(&*make(name), &present, &missing);
            if name == "ordered" {
                ordered = rates;
            }
            let cell = |i: usize| format!("{:.2} ({:.1}x)", rates[i], rates[i] / ordered[i]);
            println!(
                "round {round}: {name:<14} {} {} {} {} {} {}",
                cell(0),
                cell(1),
                cell(2),
                cell(3),
                cell(4),
                cell(5)
            );
        }
    }
}

fn hash_rate_of_16_byte_keys() {
    use std::hash::{BuildHasher, RandomState};
    let keys = keys(1 << 20, false);
    let ours = KeyHasher::new();
    let sip = RandomState::new();
    for round in 1..=2 {
        let start = Instant::now();
        for k in &keys {
            black_box(ours.hash(black_box(k)));
        }
        let ours_ns = start.elapsed().as_nanos() as f64 / keys.len() as f64;
        let start = Instant::now();
        for k in &keys {
            black_box(sip.hash_one(black_box(k)));
        }
        let sip_ns = start.elapsed().as_nanos() as f64 / keys.len() as f64;
        println!(
            "round {round}: KeyHasher {ours_ns:.1} ns/key, std SipHash-1-3 {sip_ns:.1} ns/key"
        );
    }
}

/// Resident set size of this process, from /proc/self/status (kB there).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

const CHILD_INDEX: &str = "BITCASK_BENCH_INDEX";
const CHILD_KEYS: &str = "BITCASK_BENCH_KEYS";

/// Memory per key and the longest single insert, each index type and size
/// measured in a fresh child process (this test binary re-run), so that no
/// earlier allocation is reused: RSS after filling minus RSS before, and for
/// the hash index also the bytes it counts itself (tables, arena chunks).
fn memory_per_key_and_longest_insert() {
    if let (Ok(kind), Ok(n)) = (std::env::var(CHILD_INDEX), std::env::var(CHILD_KEYS)) {
        let n: usize = n.parse().expect("a key count");
        return measure_in_child(&kind, n);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    // At 13M keys every shard of the hash index has just doubled its
    // table: its worst case for memory per key.
    let sizes: [(usize, &[&str]); 3] = [
        (1_000_000, &["ordered", "hash", "hash1"]),
        (10_000_000, &["ordered", "hash", "hash1"]),
        (13_000_000, &["hash"]),
    ];
    for (n, kinds) in sizes {
        for round in 1..=2 {
            for &kind in kinds {
                let out = std::process::Command::new(&exe)
                    .arg("memory_per_key_and_longest_insert")
                    .env(CHILD_INDEX, kind)
                    .env(CHILD_KEYS, n.to_string())
                    .output()
                    .expect("run the child");
                let text = String::from_utf8_lossy(&out.stdout);
                let line = text
                    .lines()
                    .find_map(|l| l.find("MEM ").map(|at| &l[at + 4..]))
                    .unwrap_or("(no output)");
                println!("round {round}: {line}");
            }
        }
    }
}

fn measure_in_child(kind: &str, n: usize) {
    let order = shuffled(n, 0x5151);
    let before = rss_bytes();
    let hash = match kind {
        "hash" => Some(HashIndex::default()),
        "hash1" => Some(HashIndex::with_shards(1)),
        _ => None,
    };
    let ordered = new_index(IndexType::Ordered);
    let index: &dyn Index = match &hash {
        Some(hash) => hash,
        None => &*ordered,
    };
    let mut key = [0u8; KEY_LEN];
    let mut longest = Duration::ZERO;
    let start = Instant::now();
    for &i in &order {
        write_key(&mut key, i as u64);
        let t = Instant::now();
        index.put(&key, pos(i));
        longest = longest.max(t.elapsed());
    }
    let fill = start.elapsed();
    let rss_per_key = (rss_bytes() - before) as f64 / n as f64;
    let counted = hash.as_ref().map_or(String::new(), |hash| {
        let stats = hash.stats();
        format!(
            "; counted {:.1} B/key (table {:.1}, arena {:.1}, of which {:.1} in entries)",
            stats.total_bytes as f64 / n as f64,
            (stats.slots * 8) as f64 / n as f64,
            stats.arena_allocated as f64 / n as f64,
            stats.arena_live as f64 / n as f64
        )
    });
    println!(
        "MEM {kind:<7} {n:>8} keys: RSS {rss_per_key:.1} B/key ({:.1} beyond the key){counted}; \
         fill {:.2} s, longest insert {:.1} ms",
        rss_per_key - KEY_LEN as f64,
        fill.as_secs_f64(),
        longest.as_secs_f64() * 1e3
    );
    black_box(index.len());
}

/// The keydir's part of an open from hint files: 1M keys put in random
/// order (a hint written by close), then the same keys overwritten in
/// another order (2M entries), then a tenth of them deleted; and 1M keys
/// put, then half of them deleted; one change at
/// a time (`put`/`remove`) and in runs (`apply`, as open does).
/// The keys lie in memory in the order of the changes, as in a hint file.
/// Best of 5 runs each, in ms on the clock and of CPU time: the machine is
/// shared.
fn load_like_open_hash() {
    load_like_open("hash 64");
}

/// [`load_like_open_hash`] for the ordered index.
fn load_like_open_ordered() {
    load_like_open("ordered");
}

/// CPU time of the calling thread: unlike the time on the clock, it does not
/// count the time another process had the core, so it varies less on the
/// shared machine.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `ts` is.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn load_like_open(kind: &str) {
    let n = 1_000_000;
    let first = shuffled(n, 0x1111);
    let second = shuffled(n, 0x2222);
    // (key number, position number, delete) in hint order.
    fn puts(order: &[usize], seq: usize) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
        order.iter().map(move |&i| (i, seq + i, false))
    }
    fn deletes(
        order: &[usize],
        every: usize,
        seq: usize,
    ) -> impl Iterator<Item = (usize, usize, bool)> + '_ {
        order
            .iter()
            .filter(move |&&i| i % every == 0)
            .map(move |&i| (i, seq + i, true))
    }
    type Ops = Vec<(usize, usize, bool)>;
    let scenarios: [(&str, Ops); 4] = [
        ("1M", puts(&first, 0).collect()),
        (
            "2M, 1M keys",
            puts(&first, 0).chain(puts(&second, n)).collect(),
        ),
        (
            "+10% deletes",
            puts(&first, 0)
                .chain(puts(&second, n))
                .chain(deletes(&first, 10, 2 * n))
                .collect(),
        ),
        (
            "1M, half deleted",
            puts(&first, 0).chain(deletes(&second, 2, n)).collect(),
        ),
    ];
    for (name, ops) in &scenarios {
        let mut bytes = vec![[0u8; KEY_LEN]; ops.len()];
        for (key, &(i, _, _)) in bytes.iter_mut().zip(ops) {
            write_key(key, 2 * i as u64);
        }
        let changes: Vec<_> = ops
            .iter()
            .zip(&bytes)
            .map(|(&(_, seq, delete), key)| Change {
                key: &key[..],
                pos: pos(seq),
                delete,
            })
            .collect();
        let mut best = [Duration::MAX; 2];
        let mut best_cpu = [Duration::MAX; 2];
        for _ in 0..5 {
            for (way, (best, best_cpu)) in best.iter_mut().zip(&mut best_cpu).enumerate() {
                let index = make(kind);
                let start = Instant::now();
                let start_cpu = thread_cpu_time();
                let mut count = 0usize;
                if way == 0 {
                    for c in &changes {
                        let old = if c.delete {
                            index.remove(c.key)
                        } else {
                            index.put(c.key, c.pos)
                        };
                        count += usize::from(old.is_some());
                    }
                } else {
                    for run in changes.chunks(index.run_len()) {
                        index.apply(run, &mut |_, old| count += usize::from(old.is_some()));
                    }
                }
                *best = (*best).min(start.elapsed());
                *best_cpu = (*best_cpu).min(thread_cpu_time() - start_cpu);
                black_box(count);
                black_box(index.len());
                drop(index);
                // Freeing the index leaves a million small chunks in
                // malloc's free lists, which it would merge, slowly, at the
                // next large allocation: within the next run's timing.
                // SAFETY: malloc_trim only returns free memory.
                unsafe { libc::malloc_trim(0) };
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{kind:<8} {name:<14} one by one {:>7.1} ms (CPU {:>7.1}), apply {:>7.1} ms (CPU {:>7.1})",
            ms(best[0]),
            ms(best_cpu[0]),
            ms(best[1]),
            ms(best_cpu[1]),
        );
    }
}

/// A snapshot of every key (what an iterator over the whole database
/// copies and sorts when it is made), of 1M keys put in a random order:
/// best and median of 7, wall time and CPU time of the thread.
fn snapshot_of_1m_keys() {
    let n = 1_000_000;
    let present = keys(n, false);
    let order = shuffled(n, 0x5EED_5EED);
    for name in ["ordered", "hash 64"] {
        let index = make(name);
        for &i in &order {
            index.put(&present[i], pos(i));
        }
        let mut wall = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..7 {
            let start = Instant::now();
            let start_cpu = thread_cpu_time();
            let snapshot = index.snapshot(b"").collect();
            wall.push(start.elapsed());
            cpu.push(thread_cpu_time() - start_cpu);
            assert_eq!(snapshot.len(), n);
            drop(black_box(snapshot));
        }
        wall.sort();
        cpu.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "{name}: snapshot of {n} keys: best {:.1} ms (CPU {:.1} ms), median {:.1} ms (CPU {:.1} ms)",
            ms(wall[0]),
            ms(cpu[0]),
            ms(wall[3]),
            ms(cpu[3])
        );
    }
}

/// The benchmarks, by name.
const BENCHES: [(&str, fn()); 6] = [
    ("snapshot_of_1m_keys", snapshot_of_1m_keys),
    ("point_operations_on_1m_keys", point_operations_on_1m_keys),
    ("hash_rate_of_16_byte_keys", hash_rate_of_16_byte_keys),
    (
        "memory_per_key_and_longest_insert",
        memory_per_key_and_longest_insert,
    ),
    ("load_like_open_hash", load_like_open_hash),
    ("load_like_open_ordered", load_like_open_ordered),
];

fn main() {
    // cargo bench passes `--bench`; every other argument is a filter.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    for (name, run) in BENCHES {
        if filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())) {
            // A child measuring memory prints only its own line.
            if std::env::var_os(CHILD_INDEX).is_none() {
                println!("== {name}");
            }
            run();
        }
    }
}

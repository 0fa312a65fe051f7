//! `make bench`: libbitcask's own benchmark, through the Rust API.
//!
//! For each configuration (by default 1,000,000 keys x 100-byte values, then
//! 100,000 keys x 4096-byte values; 16-byte keys) it runs the workloads of
//! [`WORKLOADS`] in order against one database and prints one table row per
//! workload. Nothing here asserts on time; a run fails only when the engine
//! returns an error or a wrong answer (a read that misses, a count that is off).
//!
//! Run: `make bench [ARGS="..."]`, or
//! `cargo bench --locked --bench bitcask_bench -- [--keys N] [--value-size B[,B...]]
//! [--sync-keys N] [--sync-threads T] [--dir DIR]` (`--help` lists them).
//!
//! A workload is one function of the table [`WORKLOADS`]: it gets the
//! [`Bench`] (directory, options template, sizes, the open database left by
//! the workloads before it) and returns what it measured.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::thread;
use std::time::Instant;

use bitcask::Options;

mod args;
mod stalls;
mod workloads;

use args::{default_keys, parse_args, Args};
use workloads::*;

pub(crate) type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The run's scratch directory, removed when dropped (also after an error).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("bitcask_bench: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bitcask_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Res<()> {
    let scratch = Scratch(
        args.dir
            .join(format!("bitcask-bench-{}", std::process::id())),
    );
    remove_if_present(&scratch.0)?;
    fs::create_dir_all(&scratch.0).map_err(|e| format!("create {}: {e}", scratch.0.display()))?;
    print_machine(args, &scratch.0);
    let started = Instant::now();
    for &value_size in &args.value_sizes {
        let keys = args.keys.unwrap_or_else(|| default_keys(value_size));
        run_table(args, &scratch.0, keys, value_size)?;
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn run_table(args: &Args, scratch: &Path, keys: u64, value_size: usize) -> Res<()> {
    let dir = scratch.join(format!("{keys}x{value_size}"));
    fs::create_dir_all(&dir)?;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let values = Values::new(value_size, &mut rng);
    let mut bench = Bench {
        dir: dir.clone(),
        opts: {
            let mut o = Options::default();
            o.set_index_type(args.index);
            if let Some(bytes) = args.checkpoint_bytes {
                o.set_checkpoint_bytes(bytes);
            }
            o
        },
        keys,
        sync_keys: args.sync_keys,
        sync_threads: args.sync_threads,
        values,
        rng,
        db: None,
        read_rate: None,
    };
    println!();
    println!("### {keys} keys x {value_size}-byte values ({KEY_LEN}-byte keys)");
    println!();
    println!(
        "fillsync rows: {} puts each. MB/s counts key+value bytes (reopen: data file bytes scanned).",
        args.sync_keys
    );
    println!();
    println!(
        "| {:<22} | {:>9} | {:>8} | {:>10} | {:>8} | {:>8} | notes |",
        "workload", "ops", "seconds", "ops/s", "MB/s", "us/op"
    );
    println!(
        "|{:-<24}|{:->11}|{:->10}|{:->12}|{:->10}|{:->10}|-------|",
        ":", ":", ":", ":", ":", ":"
    );
    for &(name, workload) in WORKLOADS {
        if args.skip.iter().any(|w| name.starts_with(w.as_str())) {
            continue;
        }
        let name = name.replace("{threads}", &args.sync_threads.to_string());
        let m = workload(&mut bench).map_err(|e| format!("{name}: {e}"))?;
        print_row(&name, &m);
    }
    bench.close_db()?;
    remove_if_present(&dir)?;
    Ok(())
}

fn print_row(name: &str, m: &Measured) {
    let dash = || "-".to_string();
    let (secs, rate, mbs, us) = match m.elapsed {
        Some(d) => {
            let s = d.as_secs_f64().max(1e-9);
            (
                format!("{s:.3}"),
                format!("{:.0}", m.ops as f64 / s),
                m.bytes
                    .map_or_else(dash, |b| format!("{:.1}", b as f64 / s / 1e6)),
                format!("{:.2}", s * 1e6 / m.ops.max(1) as f64),
            )
        }
        None => (dash(), dash(), dash(), dash()),
    };
    println!(
        "| {name:<22} | {:>9} | {secs:>8} | {rate:>10} | {mbs:>8} | {us:>8} | {} |",
        m.ops, m.note
    );
    let _ = std::io::stdout().flush();
}

fn print_machine(args: &Args, scratch: &Path) {
    let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown", |(_, m)| m.trim());
    let meminfo = read("/proc/meminfo");
    let mem = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().strip_suffix(" kB")?.trim().parse::<u64>().ok())
        .map_or("unknown".to_string(), |kb| {
            format!("{:.1} GiB", kb as f64 / 1048576.0)
        });
    let nproc = thread::available_parallelism().map_or(0, |n| n.get());
    println!("## libbitcask {} benchmark", env!("CARGO_PKG_VERSION"));
    println!();
    println!(
        "- machine: {nproc} cores ({cpu}), {mem} RAM, kernel {}, load average {}",
        read("/proc/sys/kernel/osrelease").trim(),
        read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "- databases under {} ({})",
        scratch.display(),
        file_system(scratch)
    );
    println!(
        "- build: {}",
        if cfg!(debug_assertions) {
            "DEBUG (numbers are meaningless; use make bench)"
        } else {
            "release"
        }
    );
    let sizes: Vec<String> = args
        .value_sizes
        .iter()
        .map(|&v| {
            format!(
                "{} keys x {v} B",
                args.keys.unwrap_or_else(|| default_keys(v))
            )
        })
        .collect();
    println!(
        "- {KEY_LEN}-byte keys; tables: {}; fillsync: {} puts, 1 and {} threads",
        sizes.join(", "),
        args.sync_keys,
        args.sync_threads
    );
    println!(
        "- options: Options::default() with index type {:?}{} (sync_writes off except in fillsync)",
        args.index,
        args.checkpoint_bytes
            .map(|b| format!(", checkpoint_bytes {b}"))
            .unwrap_or_default()
    );
}

/// The file system holding `path`: the longest mount point that contains it.
fn file_system(path: &Path) -> String {
    let path = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.len() >= 3 && path.starts_with(f[1]))
                .then(|| (f[1].len(), format!("{} on {}", f[2], f[0])))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "file system unknown".to_string(), |(_, fs)| fs)
}

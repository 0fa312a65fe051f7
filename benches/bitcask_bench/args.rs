//! The benchmark's command line.

use std::path::PathBuf;

use bitcask::IndexType;

/// Command-line settings.
pub(crate) struct Args {
    /// None: the default for each value size.
    pub(crate) keys: Option<u64>,
    pub(crate) value_sizes: Vec<usize>,
    pub(crate) sync_keys: u64,
    pub(crate) sync_threads: usize,
    /// Parent of the run's scratch directory.
    pub(crate) dir: PathBuf,
    pub(crate) index: IndexType,
    /// Workloads not to run (see [`SKIPPABLE`]).
    pub(crate) skip: Vec<String>,
    /// `Options::set_checkpoint_bytes` for every open (None: the default).
    pub(crate) checkpoint_bytes: Option<u64>,
}

/// The workloads `--skip` may leave out: none of the others depends on
/// what they measure or leave behind.
pub(crate) const SKIPPABLE: &[&str] = &["iterate", "merge", "fillsync", "batch"];

pub(crate) const USAGE: &str = "\
usage: bitcask_bench [--keys N] [--value-size B[,B...]] [--sync-keys N] [--sync-threads T]
                     [--index ordered|hash] [--checkpoint-bytes N] [--dir DIR] [--skip W[,W...]]

  --keys N            keys per table (default: 1000000 for values up to 1024 bytes, 100000 above)
  --value-size B,...  value sizes in bytes, one table each (default: 100,4096)
  --sync-keys N       puts in each fillsync row (default: 20000)
  --sync-threads T    threads of the second fillsync row (default: 8)
  --index TYPE        the keydir: hash (the default of Options) or ordered
  --checkpoint-bytes N  Options::set_checkpoint_bytes (default: the Options default; 0: none),
                      to measure what checkpoints of the keydir cost
  --dir DIR           where the databases go: a fresh DIR/bitcask-bench-PID, removed at the end
                      (DIR itself is created if missing and left in place)
                      (default: the system temp directory)
  --skip W,...        leave out these workloads: iterate (the three rows), merge, fillsync
                      (the three rows), batch (the three rows); for long runs at large key counts
                      (the scale curve)
Keys are 16 bytes. Through make: make bench ARGS=\"--keys 100000 --value-size 100\"";

pub(crate) fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        keys: None,
        value_sizes: vec![100, 4096],
        sync_keys: 20_000,
        sync_threads: 8,
        dir: std::env::temp_dir(),
        index: IndexType::default(),
        skip: Vec::new(),
        checkpoint_bytes: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match name.as_str() {
            // cargo bench passes --bench to every benchmark program.
            "--bench" => {}
            "--keys" => args.keys = Some(number(&name, &value()?, 1, u64::from(u32::MAX))?),
            "--value-size" => {
                args.value_sizes = value()?
                    .split(',')
                    .map(|v| number(&name, v, 0, 64 << 20).map(|n| n as usize))
                    .collect::<Result<_, _>>()?;
            }
            "--sync-keys" => args.sync_keys = number(&name, &value()?, 1, u64::from(u32::MAX))?,
            "--sync-threads" => args.sync_threads = number(&name, &value()?, 1, 1024)? as usize,
            "--dir" => args.dir = PathBuf::from(value()?),
            "--checkpoint-bytes" => {
                args.checkpoint_bytes = Some(number(&name, &value()?, 0, u64::MAX)?)
            }
            "--index" => {
                args.index = match value()?.as_str() {
                    "ordered" => IndexType::Ordered,
                    "hash" => IndexType::Hash,
                    other => return Err(format!("--index {other:?}: ordered or hash")),
                }
            }
            "--skip" => {
                for w in value()?.split(',') {
                    if !SKIPPABLE.contains(&w) {
                        return Err(format!("--skip {w:?}: one of {}", SKIPPABLE.join(", ")));
                    }
                    args.skip.push(w.to_string());
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

pub(crate) fn number(name: &str, text: &str, min: u64, max: u64) -> Result<u64, String> {
    let n: u64 = text
        .replace('_', "")
        .parse()
        .map_err(|_| format!("{name}: {text:?} is not a number"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{name}: {n} is not within {min}..={max}"));
    }
    Ok(n)
}

pub(crate) fn default_keys(value_size: usize) -> u64 {
    if value_size <= 1024 {
        1_000_000
    } else {
        100_000
    }
}

//! The fault shim (`shim.c`, an `LD_PRELOAD` library that fails the Nth
//! I/O call of a function on the database's files) as the tests use it:
//! built once per test binary with the system C compiler, and configured
//! through the environment of a child process. Also its crash backend: the
//! bytes of each file and the listing of each directory as of their last
//! successful fsync, from which a test builds what a power cut leaves.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The shim, built on first use into this test binary's scratch directory.
pub fn shim() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultshim/shim.c");
        let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(out_dir).unwrap();
        let out = out_dir.join(format!("libfaultshim-{}.so", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
        let status = Command::new(&cc)
            .args([
                "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-o",
            ])
            .arg(&out)
            .arg(&source)
            .arg("-ldl")
            .status()
            .unwrap_or_else(|e| panic!("run {cc} to build the fault shim: {e}"));
        assert!(status.success(), "building {} failed", source.display());
        out
    })
}

/// How many times in a row the chosen call fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Times {
    /// The Nth call only.
    Once,
    /// The Nth call and every one after it.
    FromThenOn,
    /// The Nth call and the `k - 1` after it.
    Count(u32),
}

/// One fault: the `nth` call (from 1) of `function` on the database's
/// files fails with `errno`, `times` over.
#[derive(Clone, Debug)]
pub struct Fault {
    pub function: String,
    pub nth: u64,
    pub errno: i32,
    pub times: Times,
    /// A failing fallocate allocates half its range first; a failing
    /// write returns a short count first.
    pub partial: bool,
}

impl Fault {
    pub fn new(function: &str, nth: u64, errno: i32, times: Times) -> Fault {
        Fault {
            function: function.to_string(),
            nth,
            errno,
            times,
            partial: false,
        }
    }
}

/// What the shim of one child process does: its scope (the files it
/// touches), the fault, and what it records.
#[derive(Clone, Debug, Default)]
pub struct ShimConfig {
    pub scope: PathBuf,
    pub fault: Option<Fault>,
    /// Where it writes the count of calls per function at exit.
    pub counts: Option<PathBuf>,
    /// Where it logs each failure injected.
    pub log: Option<PathBuf>,
    /// Where the crash backend keeps what each fsync made durable.
    pub shadow: Option<PathBuf>,
}

impl ShimConfig {
    pub fn new(scope: &Path) -> ShimConfig {
        ShimConfig {
            scope: scope.to_path_buf(),
            ..ShimConfig::default()
        }
    }

    /// The environment of a child run under the shim.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.to_str().unwrap().to_string();
        let mut env = vec![
            ("LD_PRELOAD", path(shim())),
            ("BITCASK_FAULT_SCOPE", path(&self.scope)),
        ];
        if let Some(f) = &self.fault {
            env.push(("BITCASK_FAULT_FN", f.function.clone()));
            env.push(("BITCASK_FAULT_NTH", f.nth.to_string()));
            env.push(("BITCASK_FAULT_ERRNO", f.errno.to_string()));
            let times = match f.times {
                Times::Once => 1,
                Times::FromThenOn => -1,
                Times::Count(k) => i64::from(k),
            };
            env.push(("BITCASK_FAULT_TIMES", times.to_string()));
            env.push(("BITCASK_FAULT_PARTIAL", u8::from(f.partial).to_string()));
        }
        if let Some(p) = &self.counts {
            env.push(("BITCASK_FAULT_COUNTS", path(p)));
        }
        if let Some(p) = &self.log {
            env.push(("BITCASK_FAULT_LOG", path(p)));
        }
        if let Some(p) = &self.shadow {
            std::fs::create_dir_all(p).unwrap();
            env.push(("BITCASK_FAULT_SHADOW", path(p)));
        }
        env
    }
}

/// The counts a child's shim wrote at exit: calls in scope per function.
pub fn read_counts(path: &Path) -> BTreeMap<String, u64> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("the shim wrote no counts to {}: {e}", path.display()));
    text.lines()
        .filter_map(|l| {
            let (name, n) = l.split_once(' ')?;
            Some((name.to_string(), n.parse().ok()?))
        })
        .collect()
}

/// The failures a child's shim injected, one line each (none if the log
/// was never written).
pub fn injected(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .map(|t| t.lines().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The crash backend's record of one child: for each file, its bytes as
/// of its last successful fsync or fdatasync, and for each directory, its
/// names as of its last fsync. That is the least a power cut leaves
/// (as LevelDB's fault-injection test drops whatever was not synced).
pub struct Shadow {
    dir: PathBuf,
}

impl Shadow {
    pub fn new(dir: &Path) -> Shadow {
        Shadow {
            dir: dir.to_path_buf(),
        }
    }

    /// The names in `dir` (and their inodes) as of its last fsync, if it
    /// was ever synced.
    pub fn synced_listing(&self, dir: &Path) -> Option<BTreeMap<String, u64>> {
        let ino = std::fs::metadata(dir).unwrap().ino();
        let text = std::fs::read_to_string(self.dir.join(format!("dir-{ino}.list"))).ok()?;
        Some(
            text.lines()
                .filter_map(|l| {
                    let (ino, name) = l.split_once(' ')?;
                    Some((name.to_string(), ino.parse().ok()?))
                })
                .collect(),
        )
    }

    /// The bytes of inode `ino` as of its last sync (empty if never synced).
    pub fn synced_bytes(&self, ino: u64) -> Vec<u8> {
        std::fs::read(self.dir.join(ino.to_string())).unwrap_or_default()
    }

    /// Writes into `to` (created) the directory `names` describes, each
    /// file with its synced bytes.
    pub fn materialize(&self, names: &BTreeMap<String, u64>, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for (name, &ino) in names {
            std::fs::write(to.join(name), self.synced_bytes(ino)).unwrap();
        }
    }
}

/// The names in `dir` now, with their inodes.
pub fn listing(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().ino(),
            )
        })
        .collect()
}

//! Helpers shared by the integration tests: scratch directories, and child
//! processes that are this same test binary re-run in a given role.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use bitcask::{IndexType, Options};

/// A scratch directory, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        TempDir::new_in(&std::env::temp_dir(), name)
    }

    /// A scratch directory in memory (/dev/shm) where there is one, for
    /// tests that sync often and check only what a process crash leaves.
    pub fn in_memory(name: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        let writable =
            std::fs::metadata(shm).is_ok_and(|m| m.is_dir() && !m.permissions().readonly());
        if writable {
            TempDir::new_in(shm, name)
        } else {
            TempDir::new(name)
        }
    }

    /// A scratch directory under `base`.
    pub fn new_in(base: &Path, name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "bitcask-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = base.join(unique);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// A scratch directory on another file system than `than`: /dev/shm
    /// (tmpfs) or the build's own temporary directory, whichever differs.
    /// Panics if neither does: the test needs two file systems.
    pub fn on_another_file_system(than: &Path, name: &str) -> TempDir {
        use std::os::unix::fs::MetadataExt;
        let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev()).ok();
        let here = dev(than).expect("stat the first directory");
        let candidates = [
            PathBuf::from("/dev/shm"),
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")),
            PathBuf::from("/var/tmp"),
            PathBuf::from("/tmp"),
        ];
        let base = candidates
            .iter()
            .find(|c| dev(c).is_some_and(|d| d != here))
            .unwrap_or_else(|| {
                panic!(
                    "no directory on another file system than {} among {candidates:?}: this \
                     test needs two (e.g. /dev/shm as tmpfs)",
                    than.display()
                )
            });
        TempDir::new_in(base, name)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A database directory inside the scratch directory (not yet created).
    pub fn db(&self) -> PathBuf {
        self.0.join("db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Who wrote a keydir file; as a number (1, 2), the index of a tally.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeydirWriter {
    Close = 1,
    Checkpoint = 2,
}

/// Who wrote the keydir file in `dir`, by its version (5: close, 6: a
/// checkpoint), if there is one. Panics at any other version: the library
/// writes no other.
pub fn keydir_writer(dir: &Path) -> Option<KeydirWriter> {
    let bytes = std::fs::read(dir.join("KEYDIR")).ok()?;
    match u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) {
        5 => Some(KeydirWriter::Close),
        6 => Some(KeydirWriter::Checkpoint),
        other => panic!("{}/KEYDIR has version {other}", dir.display()),
    }
}

/// Removes the keydir file close writes, so that the next open rebuilds the
/// index from the hint files and data files (what a test of those needs).
pub fn remove_keydir_file(dir: &Path) {
    match std::fs::remove_file(dir.join("KEYDIR")) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove {}/KEYDIR: {e}", dir.display()),
    }
}

/// Default options with the given index type.
pub fn with_index(index_type: IndexType) -> Options {
    let mut opts = Options::default();
    opts.set_index_type(index_type);
    opts
}

/// For each function `name(IndexType)` listed, declares the tests
/// `name::ordered` and `name::hash`, which run it on each index type.
#[macro_export]
macro_rules! test_each_index_type {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn ordered() {
                    super::$name(bitcask::IndexType::Ordered)
                }
                #[test]
                fn hash() {
                    super::$name(bitcask::IndexType::Hash)
                }
            }
        )*
    };
}

const ROLE_VAR: &str = "BITCASK_TEST_CHILD_ROLE";
const DIR_VAR: &str = "BITCASK_TEST_CHILD_DIR";

/// In a child started by [`spawn_child`] with this role: its directory.
pub fn child_role(role: &str) -> Option<PathBuf> {
    match std::env::var(ROLE_VAR) {
        Ok(r) if r == role => Some(PathBuf::from(std::env::var(DIR_VAR).unwrap())),
        _ => None,
    }
}

/// Re-runs this test binary for the single test `test_name`, which finds
/// itself in `role` (see [`child_role`]) and works on `dir`. Its stdout is
/// piped; `extra_env` is passed along.
pub fn spawn_child(test_name: &str, role: &str, dir: &Path, extra_env: &[(&str, String)]) -> Child {
    child_command(test_name, role, dir, extra_env)
        .spawn()
        .expect("spawn child test process")
}

/// The command [`spawn_child`] runs, for a test that sets more of it
/// (stdin, say) before spawning it.
pub fn child_command(
    test_name: &str,
    role: &str,
    dir: &Path,
    extra_env: &[(&str, String)],
) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd
}

/// A small deterministic generator (xorshift64*), so a failing run can be
/// repeated from its printed seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn from_time() -> (Rng, u64) {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            ^ u64::from(std::process::id());
        (Rng::new(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The generator of a random test and its seed: BITCASK_TEST_SEED if set
/// (to replay a failing run), else one from the clock. Prints the seed, so
/// that a failure's output says how to replay it.
pub fn test_seed(name: &str) -> (Rng, u64) {
    let (rng, seed) = match std::env::var("BITCASK_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => (Rng::new(seed), seed),
        None => Rng::from_time(),
    };
    eprintln!("{name}: seed {seed} (BITCASK_TEST_SEED={seed} replays it)");
    (rng, seed)
}

/// The data files of a database directory, in id order.
pub fn data_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "data"))
        .collect();
    // By id, not by name: ids from 1,000,000,000 on have ten digits.
    files.sort_by_key(|p| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u64>().ok())
    });
    files
}

/// Copies every file of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// In a writer child: tells the parent the database is open, on a line of
/// its own (libtest printed `test NAME ... ` without a newline before it).
pub fn child_opened() {
    println!("\n{OPENED}");
}

/// What a writer child prints once its database is open.
const OPENED: &str = "OPENED";

/// In a writer child: after the last op it was asked for, waits for the
/// parent's kill, so that a writer never exits on its own.
pub fn child_wait_for_kill() -> ! {
    loop {
        std::thread::park();
    }
}

/// Runs a writer child (this test binary in `role`, continuing from op
/// `start`) that says when its database is open ([`child_opened`]) and then
/// prints `ACK n` after each acknowledged op n. The parent SIGKILLs it once
/// it has read `kill_after` acknowledgements after the open (0: as soon as
/// the child says it opened), reads what the child printed to the end, and
/// returns the last op acknowledged. The kill depends on how far the child
/// got, never on time: a slow machine only makes a round take longer.
/// Panics if the child exits on its own first.
pub fn run_writer_until_killed(
    test_name: &str,
    role: &str,
    dir: &Path,
    start: u64,
    kill_after: u64,
) -> Option<u64> {
    use std::io::{BufRead, BufReader};
    let mut child = spawn_child(test_name, role, dir, &[("CRASH_START", start.to_string())]);
    let stdout = child.stdout.take().unwrap();
    let (mut opened, mut acks_after_open, mut last_acked) = (false, 0u64, None);
    let mut killed = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if line.ends_with(OPENED) {
            opened = true;
        } else if let Some(op) = acked_op(&line) {
            last_acked = Some(op);
            acks_after_open += u64::from(opened);
        }
        if opened && !killed && acks_after_open >= kill_after {
            child.kill().unwrap(); // SIGKILL
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "the writer exited on its own ({status}) after {acks_after_open} acknowledgements \
         (opened: {opened}), before the {kill_after} the kill waited for"
    );
    last_acked
}

/// Copies a crash test's directory to a place that outlives the test, so
/// that a failing round can be looked at; returns where.
pub fn keep_for_inspection(dir: &Path, label: &str) -> PathBuf {
    let kept = std::env::temp_dir().join(format!("bitcask-kept-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&kept);
    copy_dir(dir, &kept);
    kept
}

/// The op number of an `ACK n` line, wherever on the line it stands: the
/// child's first line arrives glued to libtest's `test NAME ... `, which is
/// printed without a newline before the test body runs. (Reading only lines
/// that start with `ACK ` dropped that first acknowledgement, and a round
/// that acknowledged exactly one batch then failed as "neither all nor none".)
pub fn acked_op(line: &str) -> Option<u64> {
    let (_, rest) = line.rsplit_once("ACK ")?;
    rest.trim_end().parse().ok()
}

/// The random plan of a crash test: its generator, its seed, and how many
/// rounds to run (BITCASK_CRASH_ROUNDS, else `default_rounds`).
///
/// The seed (BITCASK_CRASH_SEED sets it, else the clock) draws each round's
/// kill point, counted in acknowledgements, and so fixes the whole plan:
/// which ops every round runs and after how many acknowledgements each
/// child is killed. It cannot fix where in the next op the kill lands
/// (that is the scheduler's), so a failure that depends on it may need
/// several runs with the same seed to show again; the failing round's
/// directory is kept for that reason, and its path printed.
pub fn crash_plan(name: &str, default_rounds: u32) -> (Rng, u64, u32) {
    let env = |var: &str| std::env::var(var).ok().and_then(|v| v.parse().ok());
    let rounds = env("BITCASK_CRASH_ROUNDS").map_or(default_rounds, |r: u64| r as u32);
    let (rng, seed) = match env("BITCASK_CRASH_SEED") {
        Some(seed) => (Rng::new(seed), seed),
        None => Rng::from_time(),
    };
    eprintln!(
        "{name}: seed {seed} (BITCASK_CRASH_SEED={seed} repeats its kill points), {rounds} rounds"
    );
    (rng, seed, rounds)
}

/// KiB of this process's file maps under `dir` mapped by huge page table
/// entries.
pub fn huge_mapped_kib(dir: &Path) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").expect("read /proc/self/smaps");
    let mut in_dir = false;
    let mut kib = 0;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if first.contains('-') && first.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            // A map's first line: the path, if any, is its sixth field.
            in_dir = line
                .split_whitespace()
                .nth(5)
                .is_some_and(|path| Path::new(path).starts_with(dir));
        } else if in_dir && first == "FilePmdMapped:" {
            kib += fields
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    kib
}

/// Whether a plain file in `dir`, allocated and mapped with
/// `MADV_HUGEPAGE`, gets its first 2 MiB mapped by a huge page.
pub fn file_maps_get_huge_pages(dir: &Path) -> bool {
    let path = dir.join("probe");
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let len = 4 << 20;
    // SAFETY: a plain system call on a descriptor `file` owns.
    if unsafe { libc::fallocate(std::os::fd::AsRawFd::as_raw_fd(&file), 0, 0, len) } != 0 {
        return false;
    }
    let Ok(map) = memmap2::MmapOptions::new().len(len as usize).map_raw(&file) else {
        return false;
    };
    let faulted = map.advise(memmap2::Advice::HugePage).is_ok()
        && map.advise(memmap2::Advice::PopulateWrite).is_ok();
    let huge = faulted && huge_mapped_kib(dir) > 0;
    drop(map);
    std::fs::remove_file(&path).unwrap();
    huge
}

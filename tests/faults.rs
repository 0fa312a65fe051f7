//! I/O errors everywhere: a workload of puts (in the default mode, with
//! `sync_writes` and with `bytes_per_sync`), deletes, batches, gets, syncs,
//! merges, a backup, closes and reopens runs in a child
//! process under the fault shim (tests/faultshim), which fails the Nth call
//! of one I/O function on the database's files with EIO or ENOSPC, once or
//! from then on. After each run the parent reopens the database without
//! faults and checks:
//!
//! - the child did not crash (no signal, no panic), and open succeeds;
//! - every key holds the value of its last acknowledged write, or the
//!   value of a write that failed after it with an I/O error and before any
//!   later write was acknowledged (a write whose fdatasync failed may be in
//!   the page cache: it is the one "in flight"); nothing else;
//! - every get the child made returned such a value (or an I/O error);
//! - an acknowledged backup opens and holds what was acknowledged before it.
//!
//! First a run without faults counts the calls of each function (the
//! workload's background thread makes the counts vary a little between
//! runs). `make test` tries up to [`SAMPLES`] values of N per function, in
//! each of the four ways; `BITCASK_FAULT_EVERY_CALL=1` tries every N.
//! `faults_cover_every_io_function_the_library_imports` checks the shim's
//! list of functions against `nm -D` of libbitcask.so.

mod common;
mod faultshim;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bitcask::{Bitcask, Error, Options};
use common::{child_role, spawn_child, Rng, TempDir};
use faultshim::{injected, read_counts, Fault, ShimConfig, Times};

const TEST_NAME: &str = "no_injected_io_error_crashes_the_process_or_loses_an_acknowledged_write";
/// Values of N tried per function and way, spread over its calls.
const SAMPLES: u64 = 16;
/// The keys the workload writes.
const KEYS: u64 = 24;

/// How the database is opened.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Default,
    SyncWrites,
    /// `bytes_per_sync` of 2 KiB.
    BytesPerSync,
}

#[derive(Clone, Debug)]
enum Op {
    Open(Mode),
    Put(u64),
    Delete(u64),
    /// Keys, each put (true) or deleted (false).
    Batch(Vec<(u64, bool)>),
    Get(u64),
    Sync,
    Merge,
    Backup,
    Close,
}

/// The workload, the same in every run.
fn workload() -> Vec<Op> {
    let mut rng = Rng::new(0x5EED_FA17);
    let mut ops = vec![Op::Open(Mode::Default)];
    let mut random_ops = |ops: &mut Vec<Op>, n: usize| {
        for _ in 0..n {
            let key = rng.below(KEYS);
            ops.push(match rng.below(20) {
                0..=8 => Op::Put(key),
                9..=11 => Op::Delete(key),
                12..=14 => Op::Batch(
                    (0..2 + rng.below(3))
                        .map(|_| (rng.below(KEYS), rng.below(4) != 0))
                        .collect(),
                ),
                15..=17 => Op::Get(key),
                _ => Op::Sync,
            });
        }
    };
    random_ops(&mut ops, 30);
    ops.push(Op::Merge);
    random_ops(&mut ops, 10);
    ops.push(Op::Backup);
    ops.push(Op::Close);
    ops.push(Op::Open(Mode::SyncWrites));
    random_ops(&mut ops, 8);
    ops.push(Op::Merge);
    random_ops(&mut ops, 12);
    ops.push(Op::Close);
    ops.push(Op::Open(Mode::BytesPerSync));
    random_ops(&mut ops, 12);
    ops.push(Op::Close);
    ops
}

fn key(k: u64) -> Vec<u8> {
    format!("key{k:02}").into_bytes()
}

/// The value op `i` writes to key `k`: it names them, so that a value read
/// back says which write it came from. Lengths vary up to 1.5 KiB, so that
/// files of 4 KiB roll over every few writes.
fn value(i: usize, k: u64) -> Vec<u8> {
    let mut v = format!("{k}:{i}:").into_bytes();
    let len = 1 + (i * 7919 + k as usize * 104_729) % 1500;
    v.resize(v.len().max(len), b'a' + (i % 26) as u8);
    v
}

/// Which op wrote a value read back.
fn writer_of(v: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(&v[..v.len().min(16)]).ok()?;
    text.split(':').nth(1)?.parse().ok()
}

fn options(mode: Mode) -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    match mode {
        Mode::Default => {}
        Mode::SyncWrites => {
            o.set_sync_writes(true);
        }
        Mode::BytesPerSync => {
            o.set_bytes_per_sync(2048);
        }
    }
    o
}

fn kind(e: &Error) -> &'static str {
    match e {
        Error::NotFound => "NotFound",
        Error::InvalidArgument(_) => "InvalidArgument",
        Error::Io { .. } => "Io",
        Error::Corruption(_) => "Corruption",
        Error::Locked(_) => "Locked",
        Error::BufferTooSmall { .. } => "BufferTooSmall",
        Error::Internal(_) => "Internal",
        Error::Closed(_) => "Closed",
        Error::WritesRefused(_) => "WritesRefused",
        _ => "Other",
    }
}

/// The child: runs the workload on `work/db`, printing `OK i`, `ERR i kind`,
/// `GOT i <writer|none>` or `SKIP i` (no open database) per op, then `DONE`.
fn run_workload(dir: &Path) {
    println!();
    let backup = dir.with_file_name("backup");
    let mut db: Option<Bitcask> = None;
    let report = |i: usize, r: bitcask::Result<()>| match r {
        Ok(()) => println!("OK {i}"),
        Err(e) => println!("ERR {i} {}", kind(&e)),
    };
    for (i, op) in workload().into_iter().enumerate() {
        if let Op::Open(mode) = op {
            match Bitcask::open(dir, options(mode)) {
                Ok(opened) => {
                    db = Some(opened);
                    println!("OK {i}");
                }
                Err(e) => println!("ERR {i} {}", kind(&e)),
            }
            continue;
        }
        let Some(open) = db.as_ref() else {
            println!("SKIP {i}");
            continue;
        };
        match op {
            Op::Open(_) => unreachable!(),
            Op::Put(k) => report(i, open.put(&key(k), &value(i, k))),
            Op::Delete(k) => report(i, open.delete(&key(k))),
            Op::Batch(entries) => {
                let mut batch = open.batch();
                for (k, put) in entries {
                    if put {
                        batch.put(&key(k), &value(i, k)).unwrap();
                    } else {
                        batch.delete(&key(k)).unwrap();
                    }
                }
                report(i, open.write(&mut batch));
            }
            Op::Get(k) => match open.get(&key(k)) {
                Ok(Some(v)) => match writer_of(&v) {
                    Some(w) if v == value(w, k) => println!("GOT {i} {w}"),
                    _ => println!("GOT {i} garbage"),
                },
                Ok(None) => println!("GOT {i} none"),
                Err(e) => println!("ERR {i} {}", kind(&e)),
            },
            Op::Sync => report(i, open.sync()),
            Op::Merge => report(i, open.merge()),
            Op::Backup => report(i, open.backup(&backup)),
            Op::Close => report(i, db.take().unwrap().close()),
        }
    }
    drop(db);
    println!("DONE");
}

/// What a key may hold: the writer of its last acknowledged write (`None`:
/// deleted or never written), and writes that failed since.
///
/// A write that failed with an I/O error may have reached the file (its
/// fdatasync failed) or not (it was cut back). Within one open, a write
/// acknowledged after it proves it was cut back: a failed sync makes the
/// database refuse every later write until reopen. After a reopen, the
/// record of such a write is loaded like any other (as after a crash), and
/// the key may keep that value until a later write to it is acknowledged.
#[derive(Clone, Default)]
struct Allowed {
    acked: BTreeMap<u64, Option<usize>>,
    /// Failed writes of this open that may have reached the file: (key, writer).
    maybe: Vec<(u64, Option<usize>)>,
    /// Failed writes of earlier opens that may have been loaded since.
    reopened: Vec<(u64, Option<usize>)>,
}

impl Allowed {
    fn allows(&self, k: u64, got: Option<usize>) -> bool {
        self.acked.get(&k).copied().flatten() == got || self.failed(k).any(|v| v == got)
    }

    /// The writers of failed writes to `k` that may have reached the file.
    fn failed(&self, k: u64) -> impl Iterator<Item = Option<usize>> + '_ {
        self.maybe
            .iter()
            .chain(&self.reopened)
            .filter(move |m| m.0 == k)
            .map(|m| m.1)
    }

    fn acknowledged(&mut self, effects: Vec<(u64, Option<usize>)>) {
        self.maybe.clear();
        for (k, v) in effects {
            self.reopened.retain(|m| m.0 != k);
            self.acked.insert(k, v);
        }
    }

    fn reopen(&mut self) {
        let failed = std::mem::take(&mut self.maybe);
        self.reopened.extend(failed);
    }

    fn effects(op: &Op, i: usize) -> Vec<(u64, Option<usize>)> {
        match op {
            Op::Put(k) => vec![(*k, Some(i))],
            Op::Delete(k) => vec![(*k, None)],
            Op::Batch(entries) => {
                // The last operation on a key within a batch wins.
                let mut last = BTreeMap::new();
                for &(k, put) in entries {
                    last.insert(k, put.then_some(i));
                }
                last.into_iter().collect()
            }
            _ => Vec::new(),
        }
    }
}

/// What one run found wrong (empty: nothing).
#[derive(Default)]
struct Verdict {
    acked_writes: usize,
    problems: Vec<String>,
    crashed: bool,
}

/// Replays the child's report against the model and checks the database
/// (and the backup) left in `work`.
fn check_run(work: &Path, lines: &[String], exited_cleanly: bool) -> Verdict {
    let ops = workload();
    let mut verdict = Verdict {
        crashed: !exited_cleanly || !lines.iter().any(|l| l == "DONE"),
        ..Verdict::default()
    };
    let mut outcome: BTreeMap<usize, (String, String)> = BTreeMap::new();
    for line in lines {
        let mut parts = line.split_whitespace();
        let (Some(tag), Some(i)) = (parts.next(), parts.next().and_then(|i| i.parse().ok())) else {
            continue;
        };
        outcome.insert(i, (tag.to_string(), parts.next().unwrap_or("").to_string()));
    }
    let mut model = Allowed::default();
    let mut at_backup: Option<Allowed> = None;
    for (i, op) in ops.iter().enumerate() {
        let Some((tag, detail)) = outcome.get(&i) else {
            // The op in flight when the child died: it may have happened.
            let effects = Allowed::effects(op, i);
            model.maybe.extend(effects);
            break;
        };
        let effects = Allowed::effects(op, i);
        match (tag.as_str(), op) {
            ("OK", Op::Put(_) | Op::Delete(_) | Op::Batch(_) | Op::Sync) => {
                verdict.acked_writes += effects.len();
                model.acknowledged(effects);
            }
            ("OK", Op::Backup) => at_backup = Some(model.clone()),
            ("ERR", Op::Put(_) | Op::Delete(_) | Op::Batch(_))
                if !matches!(detail.as_str(), "WritesRefused" | "Closed") =>
            {
                model.maybe.extend(effects);
            }
            ("GOT", Op::Get(k)) => {
                let got = match detail.as_str() {
                    "none" => None,
                    w => match w.parse() {
                        Ok(w) => Some(w),
                        Err(_) => {
                            verdict
                                .problems
                                .push(format!("op {i}: get of key{k:02} read {w}"));
                            continue;
                        }
                    },
                };
                if !model.allows(*k, got) {
                    verdict.problems.push(format!(
                        "op {i}: get of key{k:02} returned the write of op {got:?}, not {:?}",
                        model.acked.get(k)
                    ));
                }
            }
            ("ERR", Op::Get(_)) if detail != "Io" => {
                verdict
                    .problems
                    .push(format!("op {i}: get failed with {detail}"));
            }
            (_, Op::Open(_)) => {
                model.reopen();
                if tag == "ERR" && detail != "Io" {
                    verdict
                        .problems
                        .push(format!("op {i}: open failed with {detail}"));
                }
            }
            _ => {}
        }
    }
    // The check opens the database again.
    model.reopen();
    let db_dir = work.join("db");
    if db_dir.exists() {
        check_dir(&db_dir, &model, "the database", &mut verdict);
    }
    if let Some(model) = at_backup {
        check_dir(&work.join("backup"), &model, "the backup", &mut verdict);
    }
    verdict
}

fn check_dir(dir: &Path, model: &Allowed, what: &str, verdict: &mut Verdict) {
    let db = match Bitcask::open(dir, options(Mode::Default)) {
        Ok(db) => db,
        Err(e) => {
            verdict
                .problems
                .push(format!("{what} does not open without faults: {e}"));
            return;
        }
    };
    for k in 0..KEYS {
        let got = match db.get(&key(k)) {
            Ok(got) => got,
            Err(e) => {
                verdict
                    .problems
                    .push(format!("{what}: get of key{k:02}: {e}"));
                continue;
            }
        };
        let writer = got.as_ref().and_then(|v| writer_of(v));
        let intact = match (&got, writer) {
            (None, _) => true,
            (Some(v), Some(w)) => *v == value(w, k),
            (Some(_), None) => false,
        };
        if !intact || !model.allows(k, writer) {
            verdict.problems.push(format!(
                "{what}: key{k:02} holds the write of op {writer:?} (intact: {intact}); \
                 acknowledged: {:?}, failed since: {:?}",
                model.acked.get(&k),
                model.failed(k).collect::<Vec<_>>()
            ));
        }
    }
    if let Err(e) = db.close() {
        verdict.problems.push(format!("{what}: close: {e}"));
    }
}

/// Runs the workload once in a child under `fault` (None: only counting
/// calls); returns its output, whether it exited cleanly, the failures
/// injected, and the counts when asked for.
struct Run {
    lines: Vec<String>,
    clean_exit: bool,
    injected: Vec<String>,
    counts: Option<BTreeMap<String, u64>>,
    verdict: Verdict,
}

fn run_once(fault: Option<Fault>, count: bool) -> Run {
    run_and_check(fault, count, |_| {})
}

/// [`run_once`], with `tamper` applied to the work directory between the
/// child's end and the check.
fn run_and_check(fault: Option<Fault>, count: bool, tamper: impl Fn(&Path)) -> Run {
    let tmp = TempDir::in_memory("faults");
    let work = tmp.path().join("work");
    let shim_files = tmp.path().join("shim");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&shim_files).unwrap();
    let mut config = ShimConfig::new(&work);
    config.fault = fault;
    config.log = Some(shim_files.join("log"));
    let counts_path = shim_files.join("counts");
    if count {
        config.counts = Some(counts_path.clone());
    }
    let mut child = spawn_child(TEST_NAME, "workload", &work.join("db"), &config.env());
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    tamper(&work);
    let verdict = check_run(&work, &lines, status.success());
    Run {
        clean_exit: status.success(),
        injected: injected(&shim_files.join("log")),
        counts: count.then(|| read_counts(&counts_path)),
        lines,
        verdict,
    }
}

/// The values of N to try for a function called `count` times.
fn sample(count: u64, every: bool) -> Vec<u64> {
    if every || count <= SAMPLES {
        return (1..=count).collect();
    }
    let mut ns: BTreeSet<u64> = (0..SAMPLES)
        .map(|s| 1 + s * (count - 1) / (SAMPLES - 1))
        .collect();
    ns.insert(count);
    ns.into_iter().collect()
}

#[test]
fn no_injected_io_error_crashes_the_process_or_loses_an_acknowledged_write() {
    if let Some(dir) = child_role("workload") {
        run_workload(&dir);
        return;
    }
    let started = std::time::Instant::now();
    // Without faults: every op succeeds, and the calls are counted.
    let baseline = run_once(None, true);
    assert!(
        baseline.clean_exit && baseline.verdict.problems.is_empty(),
        "the workload fails without faults: {:?} {:?}",
        baseline.verdict.problems,
        baseline.lines
    );
    let errs: Vec<&String> = baseline
        .lines
        .iter()
        .filter(|l| l.starts_with("ERR"))
        .collect();
    assert!(errs.is_empty(), "without faults: {errs:?}");
    let counts = baseline.counts.unwrap();
    let every = std::env::var("BITCASK_FAULT_EVERY_CALL").is_ok_and(|v| v == "1");
    let mut plan = Vec::new();
    for (function, &count) in &counts {
        for nth in sample(count, every) {
            for errno in [libc::EIO, libc::ENOSPC] {
                for times in [Times::Once, Times::FromThenOn] {
                    plan.push(Fault::new(function, nth, errno, times));
                }
            }
        }
    }
    let next = AtomicUsize::new(0);
    let totals = Mutex::new((0usize, 0usize, 0usize, 0usize)); // runs, injected, acked, crashes
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(fault) = plan.get(at) else { break };
                let run = run_once(Some(fault.clone()), false);
                let mut t = totals.lock().unwrap();
                t.0 += 1;
                t.1 += usize::from(!run.injected.is_empty());
                t.2 += run.verdict.acked_writes;
                t.3 += usize::from(run.verdict.crashed);
                drop(t);
                if run.verdict.crashed || !run.verdict.problems.is_empty() {
                    failures.lock().unwrap().push(format!(
                        "{fault:?}: crashed {}, problems {:?}, child said {:?}",
                        run.verdict.crashed,
                        run.verdict.problems,
                        run.lines.iter().rev().take(6).collect::<Vec<_>>()
                    ));
                }
            });
        }
    });
    let (runs, with_fault, acked, crashes) = *totals.lock().unwrap();
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "fault sweep: {runs} runs over {} functions ({} calls counted: {counts:?}), \
         {with_fault} with a failure injected, {acked} acknowledged writes checked, \
         crashes {crashes}, runs with a lost or wrong value {}, in {:.1} s",
        counts.len(),
        counts.values().sum::<u64>(),
        failures.len() - crashes.min(failures.len()),
        started.elapsed().as_secs_f64()
    );
    assert!(with_fault > runs / 2, "most runs injected nothing");
    assert!(
        failures.is_empty(),
        "{} of {runs} runs failed; the first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
}

/// The control: the check finds a value lost, and a value nobody wrote,
/// when they are made after the child's run.
#[test]
fn the_check_finds_a_lost_write_and_a_write_never_acknowledged() {
    // The children run the workload test's body (TEST_NAME).
    let present = |work: &Path| {
        let db = Bitcask::open(work.join("db"), options(Mode::Default)).unwrap();
        let k = (0..KEYS)
            .find(|&k| db.get(&key(k)).unwrap().is_some())
            .unwrap();
        (db, k)
    };
    let lost = run_and_check(None, false, |work| {
        let (db, k) = present(work);
        db.delete(&key(k)).unwrap();
        db.close().unwrap();
    });
    assert!(
        lost.verdict
            .problems
            .iter()
            .any(|p| p.contains("holds the write of op None")),
        "{:?}",
        lost.verdict.problems
    );
    let unacknowledged = run_and_check(None, false, |work| {
        let (db, k) = present(work);
        db.put(&key(k), &value(9999, k)).unwrap();
        db.close().unwrap();
    });
    assert!(
        unacknowledged
            .verdict
            .problems
            .iter()
            .any(|p| p.contains("op Some(9999)")),
        "{:?}",
        unacknowledged.verdict.problems
    );
}

/// The shim must wrap every function through which the library touches
/// files: a new import that is neither wrapped nor listed here as harmless
/// fails this test, so that the fault tests keep covering the library.
#[test]
fn faults_cover_every_io_function_the_library_imports() {
    /// Imports that do not touch the database's files, or whose failure
    /// the library cannot see (hints, releases, process plumbing).
    const NOT_FILE_IO: &[&str] = &[
        "_ITM_deregisterTMCloneTable",
        "_ITM_registerTMCloneTable",
        "_Unwind_Backtrace",
        "_Unwind_DeleteException",
        "_Unwind_GetDataRelBase",
        "_Unwind_GetIP",
        "_Unwind_GetIPInfo",
        "_Unwind_GetLanguageSpecificData",
        "_Unwind_GetRegionStart",
        "_Unwind_GetTextRelBase",
        "_Unwind_RaiseException",
        "_Unwind_Resume",
        "_Unwind_SetGR",
        "_Unwind_SetIP",
        "__cxa_finalize",
        "__cxa_thread_atexit_impl",
        "__errno_location",
        "__gmon_start__",
        "__tls_get_addr",
        "__xpg_strerror_r",
        "abort",
        "bcmp",
        "calloc",
        "clock_gettime",
        "closedir",
        "dirfd",
        "dl_iterate_phdr",
        "dlsym",
        "free",
        "getauxval",
        "getcwd",
        "getenv",
        "getrandom",
        "gettid",
        "madvise",
        "malloc",
        "malloc_trim",
        "memcmp",
        "memcpy",
        "memmove",
        "memset",
        "mprotect",
        "munmap",
        "pause",
        "poll",
        "posix_memalign",
        "pthread_attr_destroy",
        "pthread_attr_getguardsize",
        "pthread_attr_getstack",
        "pthread_attr_init",
        "pthread_attr_setstacksize",
        "pthread_create",
        "pthread_detach",
        "pthread_getattr_np",
        "pthread_join",
        "pthread_key_create",
        "pthread_key_delete",
        "pthread_self",
        "pthread_setname_np",
        "pthread_setspecific",
        "readlink",
        "realloc",
        "sched_yield",
        "sigaction",
        "sigaltstack",
        "signal",
        "strlen",
        "syscall",
        "sysconf",
        "__cxa_atexit",
        "__stack_chk_fail",
        "__libc_start_main",
        "isatty",
        "open_memstream",
    ];
    let exe = std::env::current_exe().unwrap();
    let library: PathBuf = exe.parent().unwrap().join("libbitcask.so");
    if !library.exists() {
        eprintln!(
            "SKIPPED: {} not built (cargo test builds it)",
            library.display()
        );
        return;
    }
    let out = std::process::Command::new("nm")
        .args(["-D", "--undefined-only"])
        .arg(&library)
        .output()
        .expect("nm (binutils) is needed to list the library's imports");
    assert!(out.status.success());
    let imports: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|s| s.split('@').next().unwrap().to_string())
        .collect();
    let source = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/faultshim/shim.c"),
    )
    .unwrap();
    let list = source
        .split("#define FUNCTIONS(X)")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap();
    let wrapped: BTreeSet<String> = list
        .split("X(")
        .skip(1)
        .map(|s| s.split(')').next().unwrap().to_string())
        .collect();
    let uncovered: Vec<&String> = imports
        .iter()
        .filter(|i| !wrapped.contains(*i) && !NOT_FILE_IO.contains(&i.as_str()))
        .collect();
    assert!(
        uncovered.is_empty(),
        "libbitcask.so imports {uncovered:?}, which the fault shim does not wrap: wrap them in \
         tests/faultshim/shim.c, or list them here if they never touch the database's files"
    );
    let io: Vec<&String> = imports.iter().filter(|i| wrapped.contains(*i)).collect();
    eprintln!(
        "the library imports {} functions; the shim wraps the {} that do I/O: {io:?}",
        imports.len(),
        io.len()
    );
}

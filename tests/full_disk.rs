//! Full disks, for real: a small tmpfs, and loop-mounted ext4 and ext3
//! images, each with a filler file taking part of the space. A child puts
//! until the disk is full (`BITCASK_IO`), reading meanwhile, then merges
//! and backs up on the full disk, frees the filler's space, writes on, and
//! reopens; the parent checks that it never died of a signal. ext3 cannot
//! allocate ahead (`fallocate` fails with EOPNOTSUPP), nor can NFS or older
//! ZFS: the fourth case gives a tmpfs the same through the fault shim.
//!
//! These need root (mount) and, for the images, loop devices and mkfs.ext4
//! / mkfs.ext3, as CI has; where one is missing they say so on stderr and
//! pass.
//!
//! Pins: on ext3, a full disk ended the process with SIGBUS (the file was
//! extended sparse and records copied into its map).

mod common;
mod faultshim;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use bitcask::{Bitcask, Error, Options};
use common::{child_role, spawn_child, TempDir};
use faultshim::{Fault, ShimConfig, Times};

const TEST_NAME: &str = "full_disk_child";
/// Values of two sizes, alternating: below the appender's `MAP_WRITE_MAX`
/// (copied into the map, which grows the file with `fallocate` first) and
/// above it (positioned writes), so that a full disk meets both ways of
/// appending.
const VALUE_LENS: [usize; 2] = [1500, 3000];
const KEY_SPACE: u32 = 600;

/// Says loudly that a test did not run (on the real stderr: libtest
/// captures only the print macros).
fn skipped(test: &str, why: &str) {
    let line = "*".repeat(72);
    let _ = writeln!(
        std::io::stderr(),
        "\n{line}\n*** SKIPPED: {test}\n*** because {why}.\n*** It needs root, loop devices and \
         mkfs.ext3/mkfs.ext4 (CI has them).\n{line}"
    );
}

/// A file system mounted for one test, unmounted (and its image removed)
/// when dropped.
struct Mounted {
    dir: PathBuf,
    image: Option<PathBuf>,
    _scratch: TempDir,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let status = Command::new("umount").arg(&self.dir).status();
        if !status.is_ok_and(|s| s.success()) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
        if let Some(image) = &self.image {
            let _ = std::fs::remove_file(image);
        }
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Mounts a file system of `fs` ("tmpfs", "ext4", "ext3") of `mib` MiB.
fn mount(fs: &str, mib: u64) -> Result<Mounted, String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("it does not run as root".to_string());
    }
    let scratch = TempDir::in_memory(&format!("full-{fs}"));
    let dir = scratch.path().join("mnt");
    std::fs::create_dir_all(&dir).unwrap();
    if fs == "tmpfs" {
        run(Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir))?;
        return Ok(Mounted {
            dir,
            image: None,
            _scratch: scratch,
        });
    }
    let image = scratch.path().join(format!("{fs}.img"));
    std::fs::File::create(&image)
        .and_then(|f| f.set_len(mib << 20))
        .map_err(|e| format!("create {}: {e}", image.display()))?;
    run(Command::new(format!("mkfs.{fs}"))
        .args(["-q", "-F"])
        .arg(&image))?;
    // Loop devices are shared with whatever else runs on the machine: a
    // free one may be taken between finding and binding it.
    let mut last = String::new();
    for _ in 0..5 {
        match run(Command::new("mount")
            .args(["-t", fs, "-o", "loop"])
            .arg(&image)
            .arg(&dir))
        {
            Ok(()) => {
                return Ok(Mounted {
                    dir,
                    image: Some(image),
                    _scratch: scratch,
                })
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(256 << 10).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

fn key(k: u32) -> Vec<u8> {
    format!("key{k:04}").into_bytes()
}

/// The value of the `n`-th put: non-zero bytes that name it.
fn value(n: u32) -> Vec<u8> {
    let mut v = format!("{n}:").into_bytes();
    v.resize(VALUE_LENS[n as usize % 2], b'a' + (n % 26) as u8);
    v
}

fn is_full(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. }
        if matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG)))
}

fn check(db: &Bitcask, model: &BTreeMap<u32, u32>, when: &str) {
    for (&k, &n) in model {
        assert_eq!(
            db.get(&key(k))
                .unwrap_or_else(|e| panic!("{when}: get: {e}")),
            Some(value(n)),
            "{when}: key{k:04}"
        );
    }
}

/// The child: fills the disk, checks, frees space, writes on, reopens.
fn fill_and_recover(mnt: &Path) {
    println!();
    let dir = mnt.join("db");
    let mut db = Bitcask::open(&dir, options()).unwrap();
    let mut model: BTreeMap<u32, u32> = BTreeMap::new();
    let mut n = 0u32;
    let mut refused_reopens = 0;
    // Puts until the disk is full, reads meanwhile.
    let full = loop {
        let k = n % KEY_SPACE;
        match db.put(&key(k), &value(n)) {
            Ok(()) => {
                model.insert(k, n);
            }
            Err(e) if is_full(&e) => break e,
            Err(e) => panic!("put {n}: {e}"),
        }
        n += 1;
        if n % 16 == 0 {
            let probe = (n * 7) % KEY_SPACE;
            let want = model.get(&probe).map(|&m| value(m));
            assert_eq!(db.get(&key(probe)).unwrap(), want, "read while filling");
        }
    };
    println!("FULL after {n} puts: {full}");
    // More puts on the full disk fail cleanly (or fit in what is left).
    for _ in 0..20 {
        n += 1;
        match db.put(&key(n % KEY_SPACE), &value(n)) {
            Ok(()) => {
                model.insert(n % KEY_SPACE, n);
            }
            Err(e) if is_full(&e) => {}
            Err(Error::WritesRefused(_)) => {}
            Err(e) => panic!("put {n} on the full disk: {e}"),
        }
    }
    check(&db, &model, "on the full disk");
    match db.merge() {
        Ok(()) => println!("MERGE on the full disk: ok"),
        Err(e) if is_full(&e) => println!("MERGE on the full disk: {e}"),
        Err(e) => panic!("merge on the full disk: {e}"),
    }
    check(&db, &model, "after the merge on the full disk");
    let backup = mnt.join("backup");
    match db.backup(&backup) {
        Ok(()) => println!("BACKUP on the full disk: ok"),
        Err(e) if is_full(&e) => {
            println!("BACKUP on the full disk: {e}");
            let left = std::fs::read_dir(&backup).map_or(0, |d| d.count());
            assert_eq!(left, 0, "a failed backup left files behind");
        }
        Err(e) => panic!("backup on the full disk: {e}"),
    }
    let _ = std::fs::remove_dir_all(&backup);
    // Space freed: writing resumes (a database that refuses writes after a
    // failed sync does so after a reopen).
    std::fs::remove_file(mnt.join("filler")).unwrap();
    for _ in 0..300 {
        n += 1;
        let k = n % KEY_SPACE;
        match db.put(&key(k), &value(n)) {
            Ok(()) => {
                model.insert(k, n);
            }
            Err(Error::WritesRefused(_)) if refused_reopens == 0 => {
                refused_reopens += 1;
                let _ = db.close();
                db = Bitcask::open(&dir, options()).unwrap();
                db.put(&key(k), &value(n)).unwrap();
                model.insert(k, n);
            }
            Err(e) => panic!("put {n} after space was freed: {e}"),
        }
    }
    db.merge().expect("merge after space was freed");
    db.backup(&backup).expect("backup after space was freed");
    check(&db, &model, "after space was freed");
    db.close().unwrap();
    let db = Bitcask::open(&dir, options()).unwrap();
    assert_eq!(db.key_count(), model.len());
    check(&db, &model, "after reopen");
    db.close().unwrap();
    let copy = Bitcask::open(&backup, options()).unwrap();
    check(&copy, &model, "the backup");
    copy.close().unwrap();
    println!("DONE ({n} puts, {refused_reopens} reopens after refused writes)");
}

/// The child's entry point (run only as a child).
#[test]
fn full_disk_child() {
    if let Some(mnt) = child_role("full-disk") {
        fill_and_recover(&mnt);
    }
}

/// Mounts `fs`, fills part of it with a filler file, and runs the child
/// (under `fault`, if given) on it.
fn fill_disk(test: &str, fs: &str, mib: u64, fault: Option<Fault>) {
    let mounted = match mount(fs, mib) {
        Ok(m) => m,
        Err(why) => return skipped(test, &why),
    };
    // A quarter of the space, written (allocated), then freed by the child.
    let filler = vec![0u8; (mib << 20) as usize / 4];
    std::fs::write(mounted.dir.join("filler"), filler).unwrap();
    let env = match fault {
        Some(fault) => {
            let mut config = ShimConfig::new(&mounted.dir);
            config.fault = Some(fault);
            config.env()
        }
        None => Vec::new(),
    };
    let mut child = spawn_child(TEST_NAME, "full-disk", &mounted.dir, &env);
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success(),
        "{test}: the child {}; it said {lines:?}",
        match status.signal() {
            Some(libc::SIGBUS) => "died of SIGBUS".to_string(),
            Some(sig) => format!("died of signal {sig}"),
            None => format!("failed ({status})"),
        }
    );
    let report: Vec<&String> = lines
        .iter()
        .filter(|l| {
            ["FULL", "MERGE", "BACKUP", "DONE"]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .collect();
    assert!(report.iter().any(|l| l.starts_with("DONE")), "{lines:?}");
    eprintln!("{test} on {fs}: {report:?}");
}

#[test]
fn a_full_tmpfs_is_an_io_error_and_writing_resumes_once_space_is_freed() {
    fill_disk(
        "a_full_tmpfs_is_an_io_error_and_writing_resumes_once_space_is_freed",
        "tmpfs",
        12,
        None,
    );
}

#[test]
fn a_full_ext4_is_an_io_error_and_writing_resumes_once_space_is_freed() {
    fill_disk(
        "a_full_ext4_is_an_io_error_and_writing_resumes_once_space_is_freed",
        "ext4",
        16,
        None,
    );
}

#[test]
fn a_full_ext3_without_fallocate_is_an_io_error_not_a_sigbus() {
    fill_disk(
        "a_full_ext3_without_fallocate_is_an_io_error_not_a_sigbus",
        "ext3",
        16,
        None,
    );
}

/// NFS and older ZFS have no fallocate either: a tmpfs whose fallocate the
/// fault shim makes fail with EOPNOTSUPP.
#[test]
fn a_full_disk_without_fallocate_anywhere_is_an_io_error_not_a_sigbus() {
    fill_disk(
        "a_full_disk_without_fallocate_anywhere_is_an_io_error_not_a_sigbus",
        "tmpfs",
        12,
        Some(Fault::new(
            "fallocate",
            1,
            libc::EOPNOTSUPP,
            Times::FromThenOn,
        )),
    );
}

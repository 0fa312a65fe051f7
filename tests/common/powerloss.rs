//! A power cut, reproduced: an ext4 file system on a loop device whose
//! backing file lives in /dev/shm, with the kernel's background writeback
//! held back (vm.dirty_* sysctls). A writer works on it; at the moment of
//! the "cut" the backing file is copied at once: the copy holds exactly what
//! the file system had sent to its device (what fsync and the writeback the
//! writer itself started, or the kernel under pressure, put there), and
//! nothing of the dirty pages still in the page cache. Mounting the copy
//! replays the journal, as a reboot would.
//!
//! Needs root, loop devices, losetup, mkfs.ext4 and mount; without them
//! [`PowerCut::new`] says why, for the caller to skip loudly. The sysctls
//! are global: they are saved to a file before they change and restored
//! when the harness is dropped (also on a panic), and a later run restores
//! them from that file if a run was killed before it could. A lock file
//! keeps runs in different processes (other test binaries, other
//! worktrees) one at a time.

#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Serialises harness runs across processes.
const LOCK_PATH: &str = "/dev/shm/bitcask-powerloss.lock";
/// The sysctls as they were before a run changed them.
const SAVED_PATH: &str = "/dev/shm/bitcask-powerloss-sysctl.saved";
/// The sysctls held, with the values that hold writeback back: no periodic
/// flusher wake-ups, dirty pages never old enough to expire, and thresholds
/// (90% and 95% of memory) that a test never reaches.
const HELD: &[(&str, &str)] = &[
    ("dirty_writeback_centisecs", "0"),
    ("dirty_expire_centisecs", "360000"),
    ("dirty_background_ratio", "90"),
    ("dirty_ratio", "95"),
];
/// Saved too: setting a ratio clears its `_bytes` twin.
const SAVED: &[&str] = &[
    "dirty_writeback_centisecs",
    "dirty_expire_centisecs",
    "dirty_background_ratio",
    "dirty_ratio",
    "dirty_background_bytes",
    "dirty_bytes",
];
/// Size of the file system image.
pub const IMAGE_BYTES: u64 = 256 << 20;

fn sysctl_path(name: &str) -> PathBuf {
    Path::new("/proc/sys/vm").join(name)
}

/// Why the harness cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root (loop devices, mount and sysctls need it)".into());
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no /dev/loop-control: this kernel or container has no loop devices".into());
    }
    for tool in ["losetup", "mkfs.ext4", "mount", "umount"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    if !Path::new("/dev/shm").is_dir() {
        return Some("no /dev/shm".into());
    }
    if SAVED.iter().any(|s| !sysctl_path(s).exists()) {
        return Some("the vm.dirty_* sysctls are missing".into());
    }
    None
}

/// Prints, loudly, that a test was skipped and why.
pub fn skip_loudly(test: &str, why: &str) {
    let line = "*".repeat(78);
    eprintln!("\n{line}\n*** SKIPPED: {test}\n*** because {why}.\n*** The power-loss harness needs root and loop devices (CI has both).\n{line}\n");
}

fn run(cmd: &str, args: &[&str]) -> io::Result<String> {
    let out = Command::new(cmd).args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{cmd} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Holds writeback back while it lives; restores the sysctls when dropped.
struct HeldWriteback {
    saved: Vec<(String, String)>,
}

impl HeldWriteback {
    fn hold() -> io::Result<HeldWriteback> {
        restore_stale()?;
        let mut saved = Vec::new();
        for name in SAVED {
            saved.push((
                name.to_string(),
                fs::read_to_string(sysctl_path(name))?.trim().to_string(),
            ));
        }
        let text: String = saved.iter().map(|(n, v)| format!("{n} {v}\n")).collect();
        let mut file = File::create(SAVED_PATH)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        let held = HeldWriteback { saved };
        for (name, value) in HELD {
            fs::write(sysctl_path(name), value)?;
        }
        Ok(held)
    }
}

/// Writes `saved` back, each `_bytes` setting only if it was in use (a
/// non-zero `_bytes` wins over its ratio, and writing it clears the ratio).
fn restore(saved: &[(String, String)]) {
    for (name, value) in saved {
        if name.ends_with("_bytes") && value == "0" {
            continue;
        }
        if name.ends_with("_ratio")
            && saved
                .iter()
                .any(|(n, v)| *n == name.replace("_ratio", "_bytes") && v != "0")
        {
            continue;
        }
        if let Err(e) = fs::write(sysctl_path(name), value) {
            eprintln!("power-loss harness: could not restore vm.{name} to {value}: {e}");
        }
    }
}

/// Restores the sysctls a killed run left held (its saved file is there).
fn restore_stale() -> io::Result<()> {
    let Ok(text) = fs::read_to_string(SAVED_PATH) else {
        return Ok(());
    };
    let saved: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    eprintln!("power-loss harness: restoring vm.dirty_* left held by a killed run: {saved:?}");
    restore(&saved);
    fs::remove_file(SAVED_PATH)
}

impl Drop for HeldWriteback {
    fn drop(&mut self) {
        restore(&self.saved);
        let _ = fs::remove_file(SAVED_PATH);
    }
}

/// A mounted image.
struct Mounted {
    device: String,
}

/// The harness: a scratch directory in /dev/shm with the image files and
/// the mount point, the loop device of the image mounted there, writeback
/// held back, and the cross-process lock.
pub struct PowerCut {
    root: PathBuf,
    mount_point: PathBuf,
    mounted: Option<Mounted>,
    /// The two image files the rounds alternate between.
    images: [PathBuf; 2],
    /// ext4 mount options besides the journal commit interval.
    mount_options: String,
    current: usize,
    // Dropped in this order: unmount first (fields drop in declaration
    // order after `drop` runs), then the sysctls, then the lock.
    held: Option<HeldWriteback>,
    _lock: File,
}

impl PowerCut {
    /// Makes a fresh ext4 image, mounts it, and holds writeback back.
    pub fn new(name: &str) -> io::Result<PowerCut> {
        PowerCut::with_mount_options(name, "")
    }

    /// As [`PowerCut::new`], with more ext4 mount options: `data=writeback`
    /// lets a journal commit (a directory fsync) reach the disk without the
    /// data of other files written before it, as on file systems that do
    /// not order data before metadata.
    pub fn with_mount_options(name: &str, options: &str) -> io::Result<PowerCut> {
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(LOCK_PATH)?;
        // SAFETY: flock on a descriptor this function owns; no pointers.
        if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let root = PathBuf::from(format!(
            "/dev/shm/bitcask-powerloss-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root)?;
        let mount_point = root.join("mnt");
        fs::create_dir_all(&mount_point)?;
        let images = [root.join("disk-a.img"), root.join("disk-b.img")];
        let mut harness = PowerCut {
            root,
            mount_point,
            mounted: None,
            images,
            mount_options: options.to_string(),
            current: 0,
            held: None,
            _lock: lock,
        };
        harness.format()?;
        harness.held = Some(HeldWriteback::hold()?);
        Ok(harness)
    }

    /// Formats a fresh file system on the current image and mounts it.
    pub fn format(&mut self) -> io::Result<()> {
        self.unmount()?;
        let image = &self.images[self.current];
        let _ = fs::remove_file(image);
        File::create(image)?.set_len(IMAGE_BYTES)?;
        // Inode tables and journal initialised now, so that no background
        // thread writes to the device while a round runs.
        run(
            "mkfs.ext4",
            &[
                "-q",
                "-F",
                "-E",
                "lazy_itable_init=0,lazy_journal_init=0",
                image.to_str().unwrap(),
            ],
        )?;
        self.mount(self.current)
    }

    fn mount(&mut self, which: usize) -> io::Result<()> {
        let image = self.images[which].clone();
        let device = run("losetup", &["--find", "--show", image.to_str().unwrap()])?;
        // A journal commit only when a sync asks for one (not every 5 s).
        if let Err(e) = run(
            "mount",
            &[
                "-t",
                "ext4",
                "-o",
                "commit=600",
                &device,
                self.mount_point.to_str().unwrap(),
            ],
        ) {
            let _ = run("losetup", &["-d", &device]);
            return Err(e);
        }
        self.current = which;
        self.mounted = Some(Mounted { device });
        Ok(())
    }

    fn unmount(&mut self) -> io::Result<()> {
        if let Some(m) = &self.mounted {
            run("umount", &[self.mount_point.to_str().unwrap()])?;
            run("losetup", &["-d", &m.device])?;
            self.mounted = None;
        }
        Ok(())
    }

    /// Where the file system is mounted.
    pub fn mount_point(&self) -> &Path {
        &self.mount_point
    }

    /// The power cut: copies the device as it is now (call right after the
    /// writer is killed), then mounts the copy in place of the original,
    /// which is dropped with whatever its page cache still held. Later
    /// rounds go on from the copy, as a machine goes on after a reboot.
    pub fn cut(&mut self) -> io::Result<()> {
        let from = self.images[self.current].clone();
        let to = self.images[1 - self.current].clone();
        let _ = fs::remove_file(&to);
        fs::copy(&from, &to)?;
        self.unmount()?;
        let _ = fs::remove_file(&from);
        self.mount(1 - self.current)
    }

    /// Writes back some of the dirty pages of `file` (on the mounted file
    /// system) out of order, as the kernel may at any time before a power
    /// cut: each of `ranges` (offset, length) is written to the device, and
    /// then a journal commit, made by an fsync of another file, makes them
    /// part of the file on disk (ext4 marks written blocks of preallocated
    /// space as written only in a journal commit). Pages already clean are
    /// left as they are.
    pub fn write_back(&self, file: &Path, ranges: &[(u64, u64)]) -> io::Result<()> {
        let f = File::open(file)?;
        for &(offset, len) in ranges {
            let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
                continue;
            };
            // SAFETY: a plain system call on a descriptor this function
            // owns, with no pointers.
            let rc = unsafe {
                libc::sync_file_range(
                    std::os::fd::AsRawFd::as_raw_fd(&f),
                    offset,
                    len,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        let mut other = File::create(self.mount_point.join("journal-commit"))?;
        other.write_all(b"x")?;
        other.sync_all()
    }

    /// Free bytes on the mounted file system.
    pub fn free_bytes(&self) -> u64 {
        let path = std::ffi::CString::new(self.mount_point.to_str().unwrap()).unwrap();
        // SAFETY: statvfs writes into the zeroed struct it is given; the
        // path is a valid NUL-terminated string.
        unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(path.as_ptr(), &mut st) != 0 {
                return 0;
            }
            st.f_bavail as u64 * st.f_frsize as u64
        }
    }
}

impl Drop for PowerCut {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            eprintln!("power-loss harness: unmount failed: {e}");
        }
        drop(self.held.take());
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// The control that proves the harness can fail: a file written with
/// plain write() and no fsync must be gone (or empty) in the copy taken
/// right after, and one written and fsynced (with its directory) must be
/// there whole. Returns what it saw, or why the harness cannot be trusted.
pub fn control(harness: &mut PowerCut) -> Result<String, String> {
    let dir = harness.mount_point().join("control");
    let pattern = vec![0xABu8; 256 << 10];
    (|| -> io::Result<()> {
        fs::create_dir_all(&dir)?;
        File::open(harness.mount_point())?.sync_all()?;
        File::create(dir.join("unsynced"))?.write_all(&pattern)?;
        {
            let mut synced = File::create(dir.join("synced"))?;
            synced.write_all(&pattern)?;
            synced.sync_all()?;
        }
        File::open(&dir)?.sync_all()?;
        harness.cut()
    })()
    .map_err(|e| format!("the control could not run: {e}"))?;
    let read = |name: &str| fs::read(dir.join(name)).unwrap_or_default();
    let unsynced = read("unsynced");
    let synced = read("synced");
    let _ = fs::remove_dir_all(&dir);
    if synced != pattern {
        return Err(format!(
            "the fsynced control file is not whole in the copy ({} of {} bytes): the copy does \
             not hold what reached the device",
            synced.len(),
            pattern.len()
        ));
    }
    if unsynced == pattern {
        return Err(
            "the control file written without fsync is whole in the copy: writeback was not \
             held back, so the harness cannot tell a power cut from a clean stop"
                .to_string(),
        );
    }
    Ok(format!(
        "control: fsynced file whole ({} bytes); unsynced file lost ({} of its bytes in the copy)",
        synced.len(),
        unsynced.iter().filter(|&&b| b == 0xAB).count()
    ))
}

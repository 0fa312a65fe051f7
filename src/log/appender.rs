//! The appender of the active data file. It owns the write offset, so it is
//! the one place that decides what counts as written:
//!
//! - a record is appended at the end of the last good record, by a copy
//!   into the file's shared map (the page cache: once copied it survives a
//!   crash of the process as a `write` would), or by one positioned write
//!   where the map does not reach, and for appends of [`MAP_WRITE_MAX`]
//!   bytes or more (large values, write batches) unless every write is
//!   synced;
//! - the map needs the file to be as long as what is copied into it, so the
//!   appender grows the file ahead of its end [`GROW_STEP`] at a time, with
//!   its blocks allocated (`fallocate`), so that a full disk is an error of
//!   the append that finds it rather than a SIGBUS at some later copy. The
//!   space past the last record reads as zeros: a crash leaves it behind as
//!   a torn tail, which open cuts off; sealing a file (rollover, close) cuts
//!   the file to its last record first, whatever its length (a `fallocate`
//!   that fails part-way may have extended it);
//! - where the file system cannot allocate ahead (`fallocate` unsupported:
//!   ext3, NFS, older ZFS), nothing is ever copied through the map: a copy
//!   into space that is not allocated faults with SIGBUS when the disk is
//!   full, which would kill the host process. Appends are positioned writes
//!   (`pwrite`) from then on, which report a full disk as an error;
//! - a failed write (disk full, I/O error) is cut back to that offset, so no
//!   partial record is left for a later read or open to trip over; if even
//!   the cut fails, the appender refuses all further writes;
//! - a failed sync also makes it refuse further writes until reopen: after a
//!   failed fsync the kernel may have dropped the dirty pages and cleared the
//!   error, so a retry that "succeeds" would prove nothing;
//! - the sync policy (`sync_writes`, `bytes_per_sync`) is applied here.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::data_file::DataFile;
use super::format::{self, RecordKind};
use super::io_helper::{HintSink, IoHint};
use crate::error::{Error, Result};
use crate::failpoint;

/// When the appender syncs on its own.
#[derive(Clone, Copy, Debug)]
pub struct SyncPolicy {
    /// Sync after every record.
    pub every_write: bool,
    /// Sync once this many bytes were appended since the last sync (0: never).
    pub bytes_per_sync: u64,
}

/// How far ahead of the last record the appender grows the active file:
/// one `fallocate` per this many bytes appended, and at most this much
/// space (one and a half steps while appends go through the map, see
/// `append_encoded`) allocated and not yet used. A small file grows by its
/// own length (at least [`MIN_GROW_STEP`]), so that a small database stays
/// small.
pub const GROW_STEP: u64 = 1 << 20;
/// The least the appender grows the active file by.
pub const MIN_GROW_STEP: u64 = 64 << 10;
/// Appends of this many bytes or more are positioned writes, not copies
/// into the map. A copy into the map saves a system call per append, which
/// is most of the cost of a small one; but every page it fills costs a
/// fault to prefault it writable (`MADV_POPULATE_WRITE`, with ext4 reserving
/// the block) and, once written back, a TLB shootdown to write-protect it
/// again (since avoided: see [`DataFile::unmap_written`]; the prefault is
/// the larger cost). Per byte that costs more than `pwrite`'s copy, and
/// from about half a page per append the saved system call no longer pays
/// for it. Measured with peerbench's 100,000 x 4 KiB values beside Kyoto
/// Cabinet, four runs each, alternating: overwrite 0.81x Kyoto's rate
/// through the map, 1.11x by `pwrite`; fillrandom 0.97x and 1.03x (in a
/// profile of the map path, the prefault took 24% of the time and the
/// writeback's write-protection 5%). 100-byte values, which stay in the
/// map, are unchanged. The file is still grown ahead for them, without the
/// prefault (see `append_encoded`). Under `sync_writes` every append goes
/// through the map all the same: there, with an fdatasync after each,
/// synced 4 KiB puts by `pwrite` ran at half the rate (2,071 and 2,375
/// against 4,393 and 4,449 a second, runs alternating), for a reason not
/// yet found.
pub const MAP_WRITE_MAX: usize = 2048;
/// Every this many bytes appended, the appender asks the kernel to start
/// writing them to disk ([`IoHint::Writeback`]), so that dirty pages do not
/// pile up for the next sync, rollover or close to wait on.
pub const WRITEBACK_STEP: u64 = 4 << 20;

/// Appends records to the active data file.
pub struct Appender {
    file: Arc<DataFile>,
    /// End of the last good record: where the next one goes.
    offset: u64,
    /// The file's length: `offset` plus the zeros grown ahead of it.
    file_len: u64,
    /// Where the last writeback hint ([`IoHint::Writeback`]) ended.
    written_back: u64,
    /// Bytes appended since the last sync of `file`.
    unsynced: u64,
    policy: SyncPolicy,
    /// Why writes are refused, once an unrecoverable failure happened.
    refused: Option<String>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// How many syncs this appender has issued.
    syncs: u64,
    /// Whether appends may be copies into the file's map: until the file
    /// system is found unable to allocate ahead.
    map_writes: bool,
    /// Where the writeback and prefault hints go.
    hints: HintSink,
    /// Set when growing ahead of need failed (a nearly full disk): the
    /// file then grows only when an append needs it, until that succeeds.
    early_grow_failed: bool,
}

/// What growing the file ahead came to.
#[derive(Debug, PartialEq, Eq)]
enum Grown {
    /// The file is long enough, its new blocks allocated.
    Allocated,
    /// The file system cannot allocate ahead: the file was left as it was.
    Unsupported,
}

impl Appender {
    /// An appender that appends to `file` from `offset`, which the caller has
    /// made the file's length.
    pub fn new(file: Arc<DataFile>, offset: u64, policy: SyncPolicy) -> Appender {
        Appender {
            file,
            offset,
            file_len: offset,
            written_back: offset,
            unsynced: 0,
            policy,
            refused: None,
            buf: Vec::new(),
            syncs: 0,
            map_writes: true,
            hints: HintSink::inline(),
            early_grow_failed: false,
        }
    }

    /// The same appender, giving its hints to the kernel through `sink`
    /// (a helper thread) rather than on the writer's thread.
    pub fn with_hints(mut self, sink: HintSink) -> Appender {
        self.hints = sink;
        self
    }

    /// The active file.
    pub fn file(&self) -> &Arc<DataFile> {
        &self.file
    }

    /// Where the next record goes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many syncs this appender has issued.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Fails with [`Error::WritesRefused`] once writes are refused.
    pub fn check_usable(&self) -> Result<()> {
        match &self.refused {
            None => Ok(()),
            Some(why) => Err(Error::WritesRefused(format!(
                "an earlier write or sync failed ({why}); close and reopen the database"
            ))),
        }
    }

    /// Appends one record and applies the sync policy. Returns the record's
    /// offset. On failure nothing of the record remains in the file.
    pub fn append(&mut self, kind: RecordKind, key: &[u8], value: &[u8]) -> Result<u64> {
        self.check_usable()?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        format::encode_record(kind, key, value, &mut buf);
        let result = self.append_encoded(&buf);
        // The buffer of a large value is not kept for the next small one.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        result
    }

    /// Appends already encoded records (a whole write batch) with one
    /// positioned write and applies the sync policy, as [`Appender::append`].
    /// Returns the offset of the first byte. On failure nothing of them
    /// remains in the file.
    pub fn append_encoded(&mut self, bytes: &[u8]) -> Result<u64> {
        self.check_usable()?;
        let offset = self.offset;
        let end = offset + bytes.len() as u64;
        let in_map = self.map_writes && self.file.map_takes(offset, bytes.len());
        let mut via_map = in_map && (bytes.len() < MAP_WRITE_MAX || self.policy.every_write);
        // Grown ahead for a positioned write too, so that the file's length
        // changes once a step rather than at every append, and a full disk
        // is met the same way by both (nothing written). Its pages are not
        // prefaulted: nothing copies into them through the map.
        if in_map && end > self.file_len && self.grow(end, via_map)? == Grown::Unsupported {
            self.map_writes = false;
            via_map = false;
        }
        // With a helper thread to prefault it, the next step is allocated
        // half a step before the copies reach it, so that its pages are in
        // by then and no put waits for them.
        if via_map && self.hints.is_threaded() && !self.early_grow_failed {
            let half_step = self.file_len.clamp(MIN_GROW_STEP, GROW_STEP) / 2;
            if self.file_len - end < half_step && self.file_len < self.file.map_len() {
                self.grow_early();
            }
        }
        if via_map {
            // SAFETY: the file is at least `end` long, with its blocks
            // allocated (grown above, or earlier), and the range lies past
            // every record written, so no reader looks at it; this appender
            // is the only one.
            let copied = unsafe { self.file.write_in_map(offset, bytes) };
            debug_assert!(copied, "map_takes said yes");
        } else if let Err(e) = self.file.file().write_all_at(bytes, offset) {
            let err = Error::io("append to", self.file.path(), e);
            self.cut_back();
            return Err(err);
        } else {
            self.file_len = self.file_len.max(end);
        }
        failpoint::hit("append:written");
        self.offset = end;
        self.unsynced += bytes.len() as u64;
        self.give_writeback_hint();
        let policy = self.policy;
        if policy.every_write
            || (policy.bytes_per_sync > 0 && self.unsynced >= policy.bytes_per_sync)
        {
            self.sync()?;
        }
        Ok(offset)
    }

    /// Makes everything appended so far durable (fdatasync). A failure makes
    /// the appender refuse further writes.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.unsynced == 0 {
            return Ok(());
        }
        self.syncs += 1;
        match failpoint::fail("data:sync").and_then(|()| self.file.file().sync_data()) {
            Ok(()) => {
                self.unsynced = 0;
                Ok(())
            }
            Err(e) => {
                let err = Error::io("sync", self.file.path(), e);
                self.refuse(format!("{err}"));
                Err(err)
            }
        }
    }

    /// Cuts the space grown ahead of the last record off the file and
    /// syncs it: what a file needs before it becomes immutable (rollover)
    /// or is closed, so that its length is its last record's end. A failure
    /// leaves the file as it was, still the active one.
    pub fn seal(&mut self) -> Result<()> {
        self.check_usable()?;
        // The length on disk, not the one recorded: a `fallocate` that
        // failed part-way may have extended the file past it.
        let len = self.file.len()?;
        if len != self.offset {
            self.file
                .file()
                .set_len(self.offset)
                .map_err(|e| Error::io("cut the unused end off", self.file.path(), e))?;
            // The new length must reach the disk too.
            self.unsynced = self.unsynced.max(1);
        }
        self.file_len = self.offset;
        self.sync()
    }

    /// Makes `file`, freshly created and synced, the active file. The caller
    /// has sealed the old one.
    pub fn switch_to(&mut self, file: Arc<DataFile>) {
        debug_assert_eq!(self.unsynced, 0, "rollover left unsynced data behind");
        self.file = file;
        self.offset = format::FILE_HEADER_LEN;
        self.file_len = format::FILE_HEADER_LEN;
        self.written_back = format::FILE_HEADER_LEN;
        self.unsynced = 0;
        self.early_grow_failed = false;
    }

    /// Once [`WRITEBACK_STEP`] bytes were appended since the last hint,
    /// asks for their writeback to start. Not under a sync policy that syncs
    /// every write, which leaves nothing to write back.
    fn give_writeback_hint(&mut self) {
        if self.policy.every_write || self.offset - self.written_back < WRITEBACK_STEP {
            return;
        }
        self.hints.give(IoHint::Writeback {
            file: Arc::clone(&self.file),
            start: self.written_back,
            len: self.offset - self.written_back,
        });
        self.written_back = self.offset;
    }

    /// Allocates the next step past the file's end before an append needs
    /// it, and has its pages prefaulted. Failing is not the append's
    /// failure (it fits already): the file is cut back and grows only when
    /// an append needs it, which then reports a full disk.
    fn grow_early(&mut self) {
        let step = self.file_len.clamp(MIN_GROW_STEP, GROW_STEP);
        let step_end = (self.file_len + step).min(self.file.map_len());
        let file = self.file.file();
        match allocate(file, self.file_len, step_end) {
            Ok(true) => self.allocated_to(step_end, true),
            Ok(false) => self.early_grow_failed = true,
            Err(_) => {
                // Best effort: `seal` cuts the file to its last record anyway.
                let _ = file.set_len(self.file_len);
                self.early_grow_failed = true;
            }
        }
    }

    /// Grows the file to at least `end` bytes, allocating its blocks: a
    /// step past `end` (see [`GROW_STEP`]) or to the end of the map, or just
    /// to `end` when the larger step fails (a file size limit, a nearly
    /// full disk). On failure nothing was written, the file is cut back to
    /// its length before (a `fallocate` that runs out of space part-way
    /// may extend the file), and the error is the append's. With
    /// `prefault`, the new pages are faulted in writable at once, for the
    /// copies into the map that follow.
    fn grow(&mut self, end: u64, prefault: bool) -> Result<Grown> {
        let step = self.file_len.clamp(MIN_GROW_STEP, GROW_STEP);
        let step_end = end.saturating_add(step).min(self.file.map_len()).max(end);
        let file = self.file.file();
        let grown = match allocate(file, self.file_len, step_end) {
            Ok(true) => Ok(Some(step_end)),
            Ok(false) => Ok(None),
            Err(_) => allocate(file, self.file_len, end).map(|done| done.then_some(end)),
        };
        match grown {
            Ok(Some(len)) => {
                self.allocated_to(len, prefault);
                self.early_grow_failed = false;
                Ok(Grown::Allocated)
            }
            Ok(None) => Ok(Grown::Unsupported),
            Err(e) => {
                // Best effort: `seal` cuts the file to its last record anyway.
                let _ = file.set_len(self.file_len);
                Err(Error::io("append to", self.file.path(), e))
            }
        }
    }

    /// The file's blocks now reach `len`: its new length, the new pages
    /// prefaulted on the I/O thread (if there is one) with `prefault`.
    fn allocated_to(&mut self, len: u64, prefault: bool) {
        if prefault {
            self.hints.give(IoHint::Prefault {
                file: Arc::clone(&self.file),
                start: self.file_len,
                len: len - self.file_len,
            });
        }
        self.file_len = len;
    }

    /// Cuts the file back to the end of the last good record after a failed
    /// append, durably; refuses further writes if that fails.
    fn cut_back(&mut self) {
        let file = self.file.file();
        match file.set_len(self.offset).and_then(|()| file.sync_data()) {
            Ok(()) => {
                self.unsynced = 0;
                self.file_len = self.offset;
            }
            Err(e) => self.refuse(format!(
                "cutting {} back to offset {} after a failed append failed: {e}",
                self.file.path().display(),
                self.offset
            )),
        }
    }

    /// Refuses further writes after a sync of the active file made outside
    /// the appender failed: the kernel may have dropped the unsynced pages, so
    /// a later sync that succeeds would prove nothing.
    pub fn refuse_after(&mut self, error: &Error) {
        self.refuse(format!("{error}"));
    }

    fn refuse(&mut self, why: String) {
        if self.refused.is_none() {
            self.refused = Some(why);
        }
    }
}

/// Grows `file` from `len` to `new_len` bytes with the new blocks
/// allocated, so that copies into them through a map cannot fail for want
/// of space; retried when a signal interrupts it. Returns false, with the
/// file left as it was, where the file system cannot allocate ahead (the
/// caller must then not copy through the map: extending the file would
/// leave it sparse, and a copy into a hole faults with SIGBUS once the disk
/// is full).
fn allocate(file: &std::fs::File, len: u64, new_len: u64) -> io::Result<bool> {
    let (Ok(start), Ok(grow)) = (
        libc::off_t::try_from(len),
        libc::off_t::try_from(new_len.saturating_sub(len)),
    ) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    if grow == 0 {
        return Ok(true);
    }
    loop {
        // SAFETY: a plain system call on a descriptor `file` owns, with no
        // pointers.
        if unsafe { libc::fallocate(file.as_raw_fd(), 0, start, grow) } == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EOPNOTSUPP | libc::ENOSYS) => return Ok(false),
            _ => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::io_helper::IoHelper;

    /// With a helper thread, the file is grown half a step before the
    /// copies reach its end (so the helper can prefault it); without one,
    /// only when an append needs it. Sealing cuts either back.
    #[test]
    fn with_a_helper_the_file_grows_before_an_append_needs_it() {
        let dir = std::env::temp_dir().join(format!("bitcask-grow-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let policy = SyncPolicy {
            every_write: false,
            bytes_per_sync: 0,
        };
        let helper = IoHelper::start();
        for (id, threaded) in [(1, true), (2, false)] {
            let file = Arc::new(DataFile::create(&dir, id).unwrap());
            file.map_ahead(64 << 20);
            let mut appender = Appender::new(Arc::clone(&file), format::FILE_HEADER_LEN, policy);
            if threaded {
                appender = appender.with_hints(helper.sink());
            }
            let value = [7u8; 100];
            let mut least_ahead = u64::MAX;
            for i in 0u32..100_000 {
                appender
                    .append(RecordKind::Put, &i.to_be_bytes(), &value)
                    .unwrap();
                let ahead = file.len().unwrap() - appender.offset();
                if appender.offset() > 4 << 20 {
                    least_ahead = least_ahead.min(ahead);
                }
            }
            if threaded {
                assert!(least_ahead >= GROW_STEP / 2 - 200, "{least_ahead}");
            } else {
                assert!(least_ahead < 200, "{least_ahead}");
            }
            appender.seal().unwrap();
            assert_eq!(file.len().unwrap(), appender.offset());
        }
        helper.stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn when_a_failed_append_cannot_be_cut_back_every_later_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("bitcask-writer-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        drop(DataFile::create(&dir, 1).unwrap());
        // A read-only descriptor: the append fails (EBADF), and so does the cut back.
        let file = Arc::new(DataFile::open(&dir, 1, false).unwrap());
        let policy = SyncPolicy {
            every_write: false,
            bytes_per_sync: 0,
        };
        let mut writer = Appender::new(file, format::FILE_HEADER_LEN, policy);
        assert!(matches!(
            writer.append(RecordKind::Put, b"k", b"v"),
            Err(Error::Io { .. })
        ));
        match writer.append(RecordKind::Put, b"k", b"v") {
            Err(Error::WritesRefused(why)) => assert!(why.contains("reopen"), "{why}"),
            other => panic!("expected WritesRefused, got {other:?}"),
        }
        assert!(matches!(writer.sync(), Err(Error::WritesRefused(_))));
        assert_eq!(writer.offset(), format::FILE_HEADER_LEN);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

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
//!   file is grown ahead of its end with its blocks allocated (`fallocate`),
//!   so that a full disk is an error of the append that finds it rather
//!   than a SIGBUS at some later copy: by the I/O thread, up to
//!   [`ALLOCATE_AHEAD`] ahead, or by the appender itself [`GROW_STEP`] at a
//!   time when the thread has not got there (see `growth.rs`). The space
//!   past the last record reads as zeros: a crash leaves it behind as a
//!   torn tail, which open cuts off; sealing a file (rollover, close) cuts
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

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use super::data_file::{DataFile, HUGE_PAGE};
use super::format::{self, RecordKind};
use super::growth::{allocate, Growth};
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

/// How far past an append the appender grows the active file when it
/// allocates itself (no I/O thread, or the thread has not got there): one
/// `fallocate` per this many bytes appended. A small file grows by its own
/// length (at least [`MIN_GROW_STEP`]), so that a small database stays
/// small.
pub const GROW_STEP: u64 = 1 << 20;
/// The least the appender grows the active file by.
pub const MIN_GROW_STEP: u64 = 64 << 10;
/// How far ahead of the last record the I/O thread keeps the active file
/// allocated while appends go through the map (less while the file is
/// smaller than this: by its own length), asked for again each time the
/// appends have used half of it. Far enough that an allocation that waits
/// on the disk (a block bitmap read, tens of milliseconds) is done before
/// the appends reach it: at 250 MB/s of small puts, 8 MiB lasts 32 ms,
/// the first half 16 ms. The cost is that much space, and page cache for
/// the prefaulted zeros, per open database; a seal cuts it off.
pub const ALLOCATE_AHEAD: u64 = 8 << 20;
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
/// Within this many bytes of the end of the file's map (which ends where
/// the writer rolls over to a new file), writeback is asked for every
/// [`WRITEBACK_STEP_NEAR_END`] bytes instead: the seal's fdatasync, which
/// the writer waits for under its lock, then finds less than that left
/// to write instead of up to [`WRITEBACK_STEP`].
pub const NEAR_END: u64 = 2 * WRITEBACK_STEP;
/// The writeback step within [`NEAR_END`] of the end of the map.
pub const WRITEBACK_STEP_NEAR_END: u64 = 512 << 10;
/// A writer whose syncs (asked for by a caller or the sync policy) come
/// less than this many appended bytes apart "syncs often"
/// (`Appender::syncs_often`). The space grown ahead of a writer that does
/// not comes in huge pages ([`DataFile::advise_huge`]), which make reads
/// and prefaults cheaper; but a copy into a clean huge page through the
/// map dirties all of it: with an fdatasync after every 120-byte copy, each
/// wrote 2 MiB to the disk instead of 4 KiB and took 4.4x as long (426
/// against 96 us; by `pwrite` into the same huge page, 4 KiB and 94 us:
/// `benches/probes/huge_pages.c`).
/// So a writer that syncs often gets no more huge pages, and appends into
/// those it already has go by `pwrite` (`Appender::dirties_huge`): a sync
/// then writes what was appended since the last one, plus at most one
/// huge page that copies dirtied before the writer was found to sync
/// often.
pub const SYNCS_OFTEN_WITHIN: u64 = 8 << 20;

/// Appends records to the active data file.
pub struct Appender {
    file: Arc<DataFile>,
    /// End of the last good record: where the next one goes.
    offset: u64,
    /// How long the file is, all of it allocated, as far as the appender
    /// knows: `offset` plus the zeros grown ahead of it. The I/O thread
    /// may have allocated further ([`Growth::ready`]).
    file_len: u64,
    /// The allocation of the active file, shared with the I/O thread.
    growth: Arc<Growth>,
    /// How far the appender has asked the I/O thread to allocate.
    asked_to: u64,
    /// Where the last writeback hint ([`IoHint::Writeback`]) ended.
    written_back: u64,
    /// Bytes appended since the last sync of `file`.
    unsynced: u64,
    /// Bytes appended (to this file or the ones before) since the last
    /// sync a caller or the sync policy asked for; a seal's does not count.
    /// See [`SYNCS_OFTEN_WITHIN`].
    since_sync: u64,
    /// Bytes appended between the last two such syncs (`u64::MAX` until
    /// there were two).
    sync_gap: u64,
    /// The end of the space last asked to come in huge pages (0: none).
    huge_until: u64,
    /// Bytes appended through the map, and by `pwrite`, since the appender
    /// last decided whether space ahead comes in huge pages.
    copied: u64,
    pwritten: u64,
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
    /// Where the writeback, allocation and prefault hints go.
    hints: HintSink,
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
            growth: Arc::new(Growth::new(offset)),
            asked_to: offset,
            written_back: offset,
            unsynced: 0,
            since_sync: 0,
            sync_gap: u64::MAX,
            huge_until: 0,
            copied: 0,
            pwritten: 0,
            policy,
            refused: None,
            buf: Vec::new(),
            syncs: 0,
            map_writes: true,
            hints: HintSink::inline(),
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
    #[cfg(test)]
    pub fn append(&mut self, kind: RecordKind, key: &[u8], value: &[u8]) -> Result<u64> {
        self.encode(kind, key, value);
        self.append_buffered()
    }

    /// Encodes one record into the appender's buffer, for
    /// [`Appender::append_buffered`]: apart, so that the writer can put
    /// the encoding between asking the index for the key's slot and using
    /// it.
    pub fn encode(&mut self, kind: RecordKind, key: &[u8], value: &[u8]) {
        self.buf.clear();
        format::encode_record(kind, key, value, &mut self.buf);
    }

    /// Bytes of the record [`Appender::encode`] left in the buffer.
    pub fn buffered_len(&self) -> u64 {
        self.buf.len() as u64
    }

    /// Appends the record [`Appender::encode`] left in the buffer and
    /// applies the sync policy. Returns the record's offset. On failure
    /// nothing of the record remains in the file.
    pub fn append_buffered(&mut self) -> Result<u64> {
        self.check_usable()?;
        let buf = std::mem::take(&mut self.buf);
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
        let mut via_map = in_map
            && (bytes.len() < MAP_WRITE_MAX || self.policy.every_write)
            && !self.dirties_huge(offset);
        if in_map && end > self.file_len {
            // The I/O thread may have allocated it already.
            self.file_len = self.file_len.max(self.growth.ready());
        }
        // Grown ahead for a positioned write too, so that the file's length
        // changes once a step rather than at every append, and a full disk
        // is met the same way by both (nothing written). Its pages are not
        // prefaulted: nothing copies into them through the map.
        if in_map && end > self.file_len && self.grow(end, via_map)? == Grown::Unsupported {
            self.map_writes = false;
            via_map = false;
        }
        if via_map && self.hints.is_threaded() {
            self.ask_ahead(end);
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
        self.since_sync = self.since_sync.saturating_add(bytes.len() as u64);
        if via_map {
            self.copied += bytes.len() as u64;
        } else {
            self.pwritten += bytes.len() as u64;
        }
        self.give_writeback_hint();
        let policy = self.policy;
        if policy.every_write
            || (policy.bytes_per_sync > 0 && self.unsynced >= policy.bytes_per_sync)
        {
            self.sync()?;
        }
        Ok(offset)
    }

    /// Makes everything appended so far durable (fdatasync), for a caller
    /// or the sync policy. A failure makes the appender refuse further
    /// writes.
    pub fn sync(&mut self) -> Result<()> {
        // A sync with nothing to sync (twice in a row) is no sign of a
        // writer that syncs often.
        if self.unsynced > 0 {
            self.sync_gap = self.since_sync;
            self.since_sync = 0;
        }
        self.sync_file()
    }

    /// [`Appender::sync`], for any reason: a seal's too.
    fn sync_file(&mut self) -> Result<()> {
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
        {
            // Under the lock: no allocation on the I/O thread extends the
            // file meanwhile, nor (asked for before the cut) after it.
            let mut allocated = self.growth.lock();
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
            allocated.cut_to(self.offset);
        }
        self.file_len = self.offset;
        self.asked_to = self.offset;
        self.sync_file()
    }

    /// Makes `file`, freshly created and synced, the active file. The caller
    /// has sealed the old one.
    pub fn switch_to(&mut self, file: Arc<DataFile>) {
        debug_assert_eq!(self.unsynced, 0, "rollover left unsynced data behind");
        self.file = file;
        self.offset = format::FILE_HEADER_LEN;
        self.file_len = format::FILE_HEADER_LEN;
        self.growth = Arc::new(Growth::new(format::FILE_HEADER_LEN));
        self.asked_to = format::FILE_HEADER_LEN;
        self.written_back = format::FILE_HEADER_LEN;
        self.unsynced = 0;
        self.huge_until = 0;
    }

    /// Once [`WRITEBACK_STEP`] bytes were appended since the last hint
    /// ([`WRITEBACK_STEP_NEAR_END`] near the end of the map), asks for
    /// their writeback to start. Not under a sync policy that syncs every
    /// write, which leaves nothing to write back.
    fn give_writeback_hint(&mut self) {
        let step = self.writeback_step();
        if self.policy.every_write || self.offset - self.written_back < step {
            return;
        }
        // Regular steps end on a huge page boundary: a huge page is then
        // written back once, whole, rather than again after the writer
        // dirties the rest of it, and dropping its mapping drops one entry
        // instead of splitting it (reads then map it whole again). Near
        // the end the steps are smaller than a huge page; the appender
        // asks for none there (see `huge_ahead`).
        let end = if step == WRITEBACK_STEP {
            (self.offset / HUGE_PAGE * HUGE_PAGE).max(self.written_back)
        } else {
            self.offset
        };
        if end == self.written_back {
            return;
        }
        self.hints.give(IoHint::Writeback {
            file: Arc::clone(&self.file),
            start: self.written_back,
            len: end - self.written_back,
        });
        self.written_back = end;
    }

    /// How many bytes appended since the last writeback hint call for the
    /// next: fewer as the file nears the end of its map, where the writer
    /// seals it.
    fn writeback_step(&self) -> u64 {
        let left = self.file.map_len().saturating_sub(self.offset);
        if left > 0 && left <= NEAR_END {
            WRITEBACK_STEP_NEAR_END
        } else {
            WRITEBACK_STEP
        }
    }

    /// Once the appends have used half of the space asked for ahead of
    /// them, asks the I/O thread to allocate up to [`ALLOCATE_AHEAD`] past
    /// `end` (the file's own length while it is smaller) and fault its
    /// pages in, so that no put waits for either. Not after an allocation
    /// ahead failed: the file then grows only when an append needs it,
    /// which reports a full disk, until that succeeds.
    fn ask_ahead(&mut self, end: u64) {
        let ahead = self.file_len.clamp(MIN_GROW_STEP, ALLOCATE_AHEAD);
        let asked_to = self.asked_to.max(self.file_len);
        if asked_to.saturating_sub(end) >= ahead / 2 || self.growth.ahead_failed() {
            return;
        }
        let to = self.grow_target(end.saturating_add(ahead));
        if to <= asked_to {
            return;
        }
        self.asked_to = to;
        let huge = self.huge_ahead(to);
        self.hints.give(IoHint::Allocate {
            file: Arc::clone(&self.file),
            growth: Arc::clone(&self.growth),
            to,
            generation: self.growth.generation(),
            huge,
        });
    }

    /// Where to grow the file to for at least `to` bytes: from a huge page
    /// on, the next huge page boundary, so that every huge page of the
    /// file is first faulted in whole (a fault in a huge page part of which
    /// is in the page cache gets 4 KiB pages); never past the map.
    fn grow_target(&self, to: u64) -> u64 {
        let to = if to >= HUGE_PAGE {
            to.next_multiple_of(HUGE_PAGE)
        } else {
            to
        };
        to.min(self.file.map_len())
    }

    /// Whether the space up to `to` is to come in huge pages: unless the
    /// writer syncs often (see [`SYNCS_OFTEN_WITHIN`]), or appended more
    /// than a sixteenth of its bytes since the last decision by `pwrite`
    /// (large values and batches: a `pwrite` into a huge page costs ext4
    /// a walk of its 512 blocks, 4.4 against 1.6 us for 4 KiB), and not
    /// within [`NEAR_END`] of the end of the map, where writeback steps are
    /// smaller than a huge page (nor below the first huge page boundary).
    /// Records the answer: the space up to `to` may then be in huge pages.
    fn huge_ahead(&mut self, to: u64) -> bool {
        let mostly_copied = self.pwritten <= self.copied / 16;
        let huge = !self.syncs_often()
            && mostly_copied
            && to >= HUGE_PAGE
            && to.saturating_add(NEAR_END) <= self.file.map_len();
        if huge {
            self.huge_until = self.huge_until.max(to);
        }
        (self.copied, self.pwritten) = (0, 0);
        huge
    }

    /// Whether a copy through the map at `offset` could dirty a whole huge
    /// page that a sync soon after would write: `offset` lies in space
    /// asked to come in huge pages, and the writer syncs often. Such
    /// appends go by `pwrite`, which dirties only the blocks it writes.
    fn dirties_huge(&self, offset: u64) -> bool {
        offset < self.huge_until && self.syncs_often()
    }

    /// Whether syncs come less than [`SYNCS_OFTEN_WITHIN`] bytes apart: by
    /// the policy, or the last two asked for, the latest of them less
    /// than that ago.
    fn syncs_often(&self) -> bool {
        let policy = self.policy;
        policy.every_write
            || (policy.bytes_per_sync > 0 && policy.bytes_per_sync < SYNCS_OFTEN_WITHIN)
            || (self.since_sync < SYNCS_OFTEN_WITHIN && self.sync_gap < SYNCS_OFTEN_WITHIN)
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
        // Waits for an allocation in progress on the I/O thread, which
        // may then have done the work.
        let growth = Arc::clone(&self.growth);
        let mut allocated = growth.lock();
        let from = allocated.len().max(self.file_len);
        if from >= end {
            self.file_len = from;
            return Ok(Grown::Allocated);
        }
        let step = from.clamp(MIN_GROW_STEP, GROW_STEP);
        let step_end = self.grow_target(end.saturating_add(step)).max(end);
        let file = self.file.file();
        let grown = match allocate(file, from, step_end) {
            Ok(true) => Ok(Some(step_end)),
            Ok(false) => Ok(None),
            Err(_) => allocate(file, from, end).map(|done| done.then_some(end)),
        };
        match grown {
            Ok(Some(len)) => {
                allocated.grown_to(len);
                if prefault {
                    let huge = self.huge_ahead(len);
                    self.hints.give(IoHint::Prefault {
                        file: Arc::clone(&self.file),
                        start: from,
                        len: len - from,
                        huge,
                    });
                }
                self.file_len = len;
                self.asked_to = self.asked_to.max(len);
                Ok(Grown::Allocated)
            }
            Ok(None) => Ok(Grown::Unsupported),
            Err(e) => {
                // Best effort: `seal` cuts the file to its last record anyway.
                let _ = file.set_len(from);
                Err(Error::io("append to", self.file.path(), e))
            }
        }
    }

    /// Cuts the file back to the end of the last good record after a failed
    /// append, durably; refuses further writes if that fails.
    fn cut_back(&mut self) {
        let file = Arc::clone(&self.file);
        let file = file.file();
        // Under the lock, as a seal (see `seal`).
        let growth = Arc::clone(&self.growth);
        let mut allocated = growth.lock();
        match file.set_len(self.offset).and_then(|()| file.sync_data()) {
            Ok(()) => {
                allocated.cut_to(self.offset);
                self.unsynced = 0;
                self.file_len = self.offset;
                self.asked_to = self.offset;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::io_helper::IoHelper;

    /// Waits until the helper has run every hint given before.
    fn drain(helper: &IoHelper) {
        let (done, wait) = std::sync::mpsc::channel();
        helper.give(IoHint::Call(Box::new(move || done.send(()).unwrap())));
        wait.recv().unwrap();
    }

    /// An empty directory of this process for the test `name`.
    fn scratch_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("bitcask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn no_sync() -> SyncPolicy {
        SyncPolicy {
            every_write: false,
            bytes_per_sync: 0,
        }
    }

    /// With a helper thread, the file is allocated at least half of
    /// [`ALLOCATE_AHEAD`] past the last record once the helper has caught
    /// up (so no put waits for an allocation); without one, only when an
    /// append needs it. Sealing cuts either back.
    #[test]
    fn with_a_helper_the_file_grows_before_an_append_needs_it() {
        let dir = scratch_dir("grow-unit");
        let helper = IoHelper::start();
        for (id, threaded) in [(1, true), (2, false)] {
            let file = Arc::new(DataFile::create(&dir, id).unwrap());
            file.map_ahead(64 << 20);
            let mut appender = Appender::new(Arc::clone(&file), format::FILE_HEADER_LEN, no_sync());
            if threaded {
                appender = appender.with_hints(helper.sink());
            }
            let value = [7u8; 100];
            let mut least_ahead = u64::MAX;
            for i in 0u32..100_000 {
                appender
                    .append(RecordKind::Put, &i.to_be_bytes(), &value)
                    .unwrap();
                if threaded {
                    drain(&helper);
                }
                let ahead = file.len().unwrap() - appender.offset();
                if appender.offset() > ALLOCATE_AHEAD {
                    least_ahead = least_ahead.min(ahead);
                }
            }
            if threaded {
                assert!(least_ahead >= ALLOCATE_AHEAD / 2 - 200, "{least_ahead}");
            } else {
                assert!(least_ahead < 200, "{least_ahead}");
            }
            appender.seal().unwrap();
            assert_eq!(file.len().unwrap(), appender.offset());
        }
        helper.stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Writeback is asked for every [`WRITEBACK_STEP`] bytes until the file
    /// is within [`NEAR_END`] of the end of its map, each step ending on a
    /// huge page boundary, then every [`WRITEBACK_STEP_NEAR_END`], so that
    /// the seal finds less than that left to write.
    #[test]
    fn writeback_steps_shrink_near_the_end_of_the_file() {
        let dir = scratch_dir("writeback");
        let map_len = 4 * NEAR_END;
        let file = Arc::new(DataFile::create(&dir, 1).unwrap());
        file.map_ahead(map_len);
        let mut appender = Appender::new(Arc::clone(&file), format::FILE_HEADER_LEN, no_sync());
        let value = [7u8; 100];
        let mut steps = Vec::new();
        let mut i = 0u32;
        loop {
            let before = appender.written_back;
            // A record of a 4-byte key and a 100-byte value takes under 200.
            if appender.offset() + 200 > map_len {
                break;
            }
            appender
                .append(RecordKind::Put, &i.to_be_bytes(), &value)
                .unwrap();
            i += 1;
            if appender.written_back != before {
                steps.push((before, appender.written_back - before));
            }
        }
        let (far, near): (Vec<_>, Vec<_>) = steps
            .iter()
            .partition(|(start, _)| map_len - start > NEAR_END);
        assert!(far.len() >= 4, "{steps:?}");
        assert!(near.len() >= 8, "{steps:?}");
        for (start, len) in &far[..far.len() - 1] {
            assert!(
                *len >= WRITEBACK_STEP - format::FILE_HEADER_LEN,
                "{steps:?}"
            );
            assert_eq!((start + len) % HUGE_PAGE, 0, "{steps:?}");
        }
        for (_, len) in &near {
            assert!(*len < WRITEBACK_STEP_NEAR_END + 200, "{steps:?}");
        }
        let left = appender.offset() - appender.written_back;
        assert!(
            left < WRITEBACK_STEP_NEAR_END + 200,
            "{left} bytes not written back"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// An allocation the helper runs after the file was sealed must not
    /// extend it again: the sealed file would end in zeros past its last
    /// record (which open cuts, but a hint file written meanwhile names
    /// the length without them).
    #[test]
    fn an_allocation_queued_before_a_seal_leaves_the_sealed_file_alone() {
        let dir = scratch_dir("grow-seal");
        let helper = IoHelper::start();
        let file = Arc::new(DataFile::create(&dir, 1).unwrap());
        file.map_ahead(64 << 20);
        let mut appender = Appender::new(Arc::clone(&file), format::FILE_HEADER_LEN, no_sync())
            .with_hints(helper.sink());
        // The helper is kept busy while the appends ask it to allocate.
        let (release, held) = std::sync::mpsc::channel::<()>();
        helper.give(IoHint::Call(Box::new(move || held.recv().unwrap())));
        for i in 0u32..1000 {
            appender
                .append(RecordKind::Put, &i.to_be_bytes(), &[1u8; 100])
                .unwrap();
        }
        assert!(appender.asked_to > appender.file_len, "nothing was asked");
        appender.seal().unwrap();
        release.send(()).unwrap();
        drain(&helper);
        assert_eq!(file.len().unwrap(), appender.offset());
        helper.stop();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn when_a_failed_append_cannot_be_cut_back_every_later_write_is_refused() {
        let dir = scratch_dir("writer-unit");
        drop(DataFile::create(&dir, 1).unwrap());
        // A read-only descriptor: the append fails (EBADF), and so does the cut back.
        let file = Arc::new(DataFile::open(&dir, 1, false).unwrap());
        let mut writer = Appender::new(file, format::FILE_HEADER_LEN, no_sync());
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

    /// Appends `bytes` of 100-byte records with keys from `*next`.
    fn append_bytes(appender: &mut Appender, next: &mut u32, bytes: u64) {
        let value = [7u8; 100];
        let until = appender.offset() + bytes;
        while appender.offset() < until {
            appender
                .append(RecordKind::Put, &next.to_be_bytes(), &value)
                .unwrap();
            *next += 1;
        }
    }

    /// A writer that does not sync has the space ahead of it in huge pages
    /// (the growth asked for up to where the appender's map of huge space
    /// reaches), all of it ending on huge page boundaries; one that syncs
    /// often, by policy or by its calls, gets no more, and its appends into
    /// the huge space it has go by `pwrite`; a single sync after a quiet
    /// stretch changes nothing.
    #[test]
    fn only_a_writer_that_does_not_sync_often_gets_huge_pages() {
        let dir = scratch_dir("huge-policy");
        let map_len = 256 << 20;
        let open = |id: u32, policy: SyncPolicy| {
            let file = Arc::new(DataFile::create(&dir, id).unwrap());
            file.map_ahead(map_len);
            Appender::new(file, format::FILE_HEADER_LEN, policy)
        };
        let mut next = 0;

        let mut quiet = open(1, no_sync());
        append_bytes(&mut quiet, &mut next, 12 << 20);
        assert!(quiet.huge_until > quiet.offset(), "{}", quiet.huge_until);
        assert_eq!(quiet.huge_until % HUGE_PAGE, 0);
        assert_eq!(quiet.file_len % HUGE_PAGE, 0);
        assert!(!quiet.dirties_huge(quiet.offset()));
        // One sync after a quiet stretch: still not syncing often.
        quiet.sync().unwrap();
        append_bytes(&mut quiet, &mut next, 1 << 20);
        assert!(!quiet.dirties_huge(quiet.offset()));
        // A second one soon after: copies into huge pages stop, and the
        // growth ahead asks for none.
        quiet.sync().unwrap();
        assert!(quiet.dirties_huge(quiet.offset()));
        let huge_until = quiet.huge_until;
        append_bytes(&mut quiet, &mut next, 6 << 20);
        assert_eq!(quiet.huge_until, huge_until);
        assert!(quiet.offset() > huge_until);
        // Quiet for SYNCS_OFTEN_WITHIN since: huge pages again.
        append_bytes(&mut quiet, &mut next, 4 << 20);
        assert!(quiet.huge_until > huge_until);
        // Two syncs in a row with nothing between them are one.
        quiet.sync().unwrap();
        quiet.sync().unwrap();
        append_bytes(&mut quiet, &mut next, SYNCS_OFTEN_WITHIN);
        assert!(!quiet.syncs_often());

        // A writer appending a third of its bytes by `pwrite` (values of
        // MAP_WRITE_MAX and more) gets none either.
        let mut mixed = open(4, no_sync());
        let large = vec![7u8; MAP_WRITE_MAX];
        while mixed.offset() < 12 << 20 {
            append_bytes(&mut mixed, &mut next, 30 * 100);
            mixed.append(RecordKind::Put, b"large", &large).unwrap();
        }
        assert_eq!(mixed.huge_until, 0);

        for (id, policy) in [
            (
                2,
                SyncPolicy {
                    every_write: true,
                    bytes_per_sync: 0,
                },
            ),
            (
                3,
                SyncPolicy {
                    every_write: false,
                    bytes_per_sync: 1 << 20,
                },
            ),
        ] {
            let mut syncing = open(id, policy);
            assert!(syncing.syncs_often(), "{policy:?}");
            let bytes = if policy.every_write {
                256 << 10
            } else {
                4 << 20
            };
            append_bytes(&mut syncing, &mut next, bytes);
            assert_eq!(syncing.huge_until, 0, "{policy:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! One data file on disk: its creation (header written, file and directory
//! synced), its maps, and the checked read of one record by the keydir.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memmap2::{Advice, MmapOptions, MmapRaw, UncheckedAdvice};

use super::dir::sync_dir;
use super::filename::data_file_name;
use super::format::{self, ParsedHeader, RecordKind};
use super::RecordPos;
use crate::error::{Error, Result};

/// What a data file begins with, as [`read_header`] found it.
pub enum Header {
    /// A header of this library's format version.
    Valid,
    /// Not a data file header (bad magic or checksum, or the file ends
    /// before a header does): the bytes found, zeros where the file ended.
    Invalid([u8; format::FILE_HEADER_LEN as usize]),
}

/// Why a header is [`Header::Invalid`], in the words every report uses.
pub const NOT_A_HEADER: &str = "not a libbitcask data file header (bad magic or checksum)";

/// Reads the header of the data file `file` (at `path`, `len` bytes long).
/// A valid header of another format version is [`Error::Corruption`],
/// naming the version: nothing in the file can be read, and a libbitcask
/// that knows that version can.
pub fn read_header(file: &File, path: &Path, len: u64) -> Result<Header> {
    let mut header = [0u8; format::FILE_HEADER_LEN as usize];
    let got = len.min(format::FILE_HEADER_LEN) as usize;
    file.read_exact_at(&mut header[..got], 0)
        .map_err(|e| Error::io("read header of", path, e))?;
    if got < header.len() {
        return Ok(Header::Invalid(header));
    }
    match format::decode_file_header(&header) {
        format::FileHeader::Current => Ok(Header::Valid),
        format::FileHeader::OtherVersion(version) => Err(Error::Corruption(format!(
            "{} was written in data format version {version}, and this libbitcask reads \
             version {}: use a libbitcask that knows version {version}",
            path.display(),
            format::FORMAT_VERSION
        ))),
        format::FileHeader::Invalid => Ok(Header::Invalid(header)),
    }
}

/// The size of a huge page on x86-64 and on 4 KiB-page arm64 (a page
/// table's middle level): the unit in which the appender has the active
/// file's page cache come (see [`DataFile::advise_huge`]), so the unit
/// it grows the file by and starts writeback at. Elsewhere it is only an
/// alignment that costs nothing.
pub const HUGE_PAGE: u64 = 2 << 20;

/// An open data file. Any number of threads read one `DataFile` at once,
/// through its map or with positioned reads (`pread`); only the writer
/// appends to it.
#[derive(Debug)]
pub struct DataFile {
    id: u32,
    path: PathBuf,
    file: File,
    /// A map of the file: read-only and whole once the file is immutable;
    /// ahead of its end, and writable, while it is the active file. Gets
    /// read records in place through it instead of making a system call,
    /// and the writer appends by copying into it.
    map: OnceLock<FileMap>,
}

/// A shared map of a data file. It is handled through raw pointers only
/// (no slice of the whole map ever exists), because the writer copies new
/// records into the part past the last one while readers hold slices of
/// earlier records: each side touches only its own bytes.
#[derive(Debug)]
struct FileMap {
    raw: MmapRaw,
    writable: bool,
}

impl FileMap {
    /// Whether `start..start + len` lies inside the map.
    fn covers(&self, start: u64, len: usize) -> bool {
        start
            .checked_add(len as u64)
            .is_some_and(|end| end <= self.raw.len() as u64)
    }
}

impl DataFile {
    /// Creates data file `id` in `dir` with its header, synced, and syncs the
    /// directory so that the new name survives a power loss. Fails if the
    /// file already exists.
    pub fn create(dir: &Path, id: u32) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io("create data file", &path, e))?;
        let data_file = DataFile {
            id,
            path,
            file,
            map: OnceLock::new(),
        };
        if let Err(e) = data_file.write_header().and_then(|()| sync_dir(dir)) {
            // Best effort: a half-made file would only be cut back at the next open.
            if std::fs::remove_file(&data_file.path).is_ok() {
                let _ = sync_dir(dir);
            }
            return Err(e);
        }
        Ok(data_file)
    }

    /// Opens an existing data file, for reading, or also for writing when it
    /// is (or may become) the active file.
    pub fn open(dir: &Path, id: u32, writable: bool) -> Result<DataFile> {
        let path = dir.join(data_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| Error::io("open data file", &path, e))?;
        Ok(DataFile {
            id,
            path,
            file,
            map: OnceLock::new(),
        })
    }

    /// (Re)writes the file header at offset 0 and syncs it. Used at creation
    /// and when open finds the newest file's header torn.
    pub fn write_header(&self) -> Result<()> {
        self.file
            .write_all_at(&format::encode_file_header(), 0)
            .and_then(|()| self.file.set_len(format::FILE_HEADER_LEN))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Error::io("write header of", &self.path, e))
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// Current length of the file on disk.
    pub fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    /// Maps the file for reads, now that it will never be written again (a
    /// full file, a merge output). Without a map (or if mapping fails: it is
    /// only faster) reads use `pread`.
    pub fn map_for_reads(&self) {
        if self.map.get().is_some() {
            return;
        }
        // A read-only map of the file as long as it is now; the file is
        // immutable from now on (see `record_bytes` for how it is read).
        if let Ok(raw) = MmapOptions::new().map_raw_read_only(&self.file) {
            // Gets read single records: no readahead around them.
            let _ = raw.advise(Advice::Random);
            let _ = self.map.set(FileMap {
                raw,
                writable: false,
            });
        }
    }

    /// Maps the first `len` bytes of the active file, however short the
    /// file is yet: writable when the file is open for writing, so that the
    /// writer appends by copying ([`DataFile::write_in_map`]), else for
    /// reads only. Pages past the end of the file are never touched: the
    /// writer grows the file before it copies, and reads touch only
    /// records. Failing to map is not an error: reads then use `pread` and
    /// appends `pwrite`.
    pub fn map_ahead(&self, len: u64) {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        let mut options = MmapOptions::new();
        options.len(len);
        let map = match options.map_raw(&self.file) {
            Ok(raw) => FileMap {
                raw,
                writable: true,
            },
            Err(_) => match options.map_raw_read_only(&self.file) {
                Ok(raw) => FileMap {
                    raw,
                    writable: false,
                },
                Err(_) => return,
            },
        };
        let _ = map.raw.advise(Advice::Random);
        let _ = self.map.set(map);
    }

    /// How many bytes of the file the map spans (0 without a map).
    pub fn map_len(&self) -> u64 {
        self.map.get().map_or(0, |map| map.raw.len() as u64)
    }

    /// Maps the pages of `offset..offset + len` into the writable map ahead
    /// of the copies that will fill them: one system call instead of a page
    /// fault per page. Only a speed-up: failures (an old kernel, no memory)
    /// are ignored, and the copies then fault the pages in one by one.
    pub fn prefault(&self, offset: u64, len: u64) {
        if let Some(map) = self.map.get() {
            if map.writable && map.covers(offset, len as usize) {
                let _ = map
                    .raw
                    .advise_range(Advice::PopulateWrite, offset as usize, len as usize);
            }
        }
    }

    /// Asks the kernel to back the whole huge pages ([`HUGE_PAGE`]) of
    /// `offset..offset + len` in the writable map with huge pages, before
    /// they are first faulted in: their page cache then comes in 2 MiB
    /// folios (ext4 since Linux 6.16), each mapped by one page table entry,
    /// so that a read of a record there costs one TLB entry per 2 MiB, not
    /// per 4 KiB, and faulting them in costs one fault per 2 MiB. The
    /// appender asks for it only for a writer that does not sync often
    /// (see `Appender::huge_ahead`): a copy into a clean huge folio marks
    /// all of it dirty, so a sync after it writes 2 MiB. Only a speed-up:
    /// failures (an old kernel, a file system without large folios, THP
    /// off) are ignored, and the pages then come 4 KiB at a time.
    pub fn advise_huge(&self, offset: u64, len: u64) {
        let Some(map) = self.map.get() else {
            return;
        };
        let start = offset.next_multiple_of(HUGE_PAGE);
        let end = offset.saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
        if !map.writable || end <= start || !map.covers(start, (end - start) as usize) {
            return;
        }
        let _ = map
            .raw
            .advise_range(Advice::HugePage, start as usize, (end - start) as usize);
    }

    /// Drops the writable map's page table entries for the whole pages of
    /// `offset..offset + len`, which the writer has filled and will not
    /// write again, just before their writeback starts.
    ///
    /// Writeback write-protects every mapped page it cleans, so that a
    /// later write dirties it again, and flushes that page from the TLB of
    /// every core the process runs on: one inter-processor interrupt per
    /// 4 KiB page, which interrupts the writer on its core (in `perf`, 19%
    /// of the samples of a 1M x 100 B fill were these shootdowns). Pages no
    /// longer mapped need none; the unmapping flushes the range once. The
    /// bytes stay in the page cache, dirty (the kernel moves the entries'
    /// dirty bits to the pages), so nothing written is lost, and a read of
    /// them through the map faults the page in again, read-only.
    pub fn unmap_written(&self, offset: u64, len: u64) {
        let Some(map) = self.map.get() else {
            return;
        };
        // SAFETY: a plain query with no pointers.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        // Whole pages of the system's size (16 or 64 KiB on some machines):
        // madvise would round a part of one out to the whole page, which may
        // be the one the writer is filling (no harm, but a fault more).
        let Ok(page @ 1..) = u64::try_from(page) else {
            return;
        };
        let start = offset.next_multiple_of(page);
        let end = offset.saturating_add(len) / page * page;
        if !map.writable || end <= start || !map.covers(start, (end - start) as usize) {
            return;
        }
        // SAFETY: a shared map of a file: dropping its page table entries
        // changes no byte anyone can read (the pages stay in the page cache
        // with what was written, and the next access maps the same bytes
        // again), so slices of records that readers hold stay valid and
        // unchanged. The range lies inside the map (checked above) and
        // holds whole pages below the writer's offset, which it never writes
        // again. A failure only leaves the entries mapped.
        let _ = unsafe {
            map.raw.unchecked_advise_range(
                UncheckedAdvice::DontNeed,
                start as usize,
                (end - start) as usize,
            )
        };
    }

    /// Whether [`DataFile::write_in_map`] can take `len` bytes at `offset`.
    pub fn map_takes(&self, offset: u64, len: usize) -> bool {
        self.map
            .get()
            .is_some_and(|map| map.writable && map.covers(offset, len))
    }

    /// Copies `bytes` into the file at `offset` through the writable map.
    /// Returns false, having written nothing, if the map does not take them
    /// ([`DataFile::map_takes`]).
    ///
    /// # Safety
    /// The file must already be at least `offset + bytes.len()` long (else
    /// the copy faults with SIGBUS), and no reader may look at those bytes
    /// while they are copied: the caller is the one writer, and the range
    /// lies past every record the keydir points at.
    pub unsafe fn write_in_map(&self, offset: u64, bytes: &[u8]) -> bool {
        let Some(map) = self.map.get() else {
            return false;
        };
        if !map.writable || !map.covers(offset, bytes.len()) {
            return false;
        }
        // SAFETY: the range lies inside the map (checked above) and inside
        // the file (the caller's promise); no one else reads or writes it
        // (the caller's promise), and `bytes` is a different allocation.
        unsafe { copy_in_order(map.raw.as_mut_ptr().add(offset as usize), bytes) };
        true
    }

    /// The `len` bytes at `start` in place in the map, if the map covers
    /// them.
    fn record_bytes(&self, start: u64, len: usize) -> Option<&[u8]> {
        let map = self.map.get()?;
        if !map.covers(start, len) {
            return None;
        }
        // SAFETY: callers ask only for records the keydir points at (or
        // pointed at when the caller looked it up). Those were completely
        // written, and the write published by the keydir's lock, before
        // anyone could look them up, and are never written again: the
        // writer copies only past its offset, which is past every record.
        // The file is never cut below a record that was published (open cuts
        // torn tails before any reader exists; sealing cuts only the
        // preallocated space past the last record), so no byte read lies
        // past the end of the file. Changing data files from outside while
        // the database is open is documented as unsupported. A read-only
        // open maps files that another process writes: the records it
        // indexed are complete ones, which that writer never rewrites, and
        // it cuts a file only past its own last record (sealing) or at the
        // first record that fails a check (a reopen after a crash), both at
        // or past the end of what the read-only open indexed. The slice is
        // inside the map (checked above) and lives no longer than `self`,
        // which owns the map.
        Some(unsafe { std::slice::from_raw_parts(map.raw.as_ptr().add(start as usize), len) })
    }

    /// Calls `f` with the value of the live record at `pos`, checked as
    /// [`DataFile::read_record`] checks it: in place in the map of an
    /// immutable file, or read into `scratch`.
    pub fn with_value<R>(
        &self,
        pos: RecordPos,
        key: &[u8],
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let in_map = self.record_bytes(u64::from(pos.offset), pos.size as usize);
        // Past the end of the map (a record larger than the active file's
        // map reaches, or a file shorter than the index says): pread.
        if let Some(bytes) = in_map {
            prefetch_lines(bytes);
            let value = self.check_record(pos, key, bytes)?;
            return Ok(f(&bytes[value]));
        }
        let value = self.read_record(pos, key, scratch)?;
        Ok(f(&scratch[value]))
    }

    /// The value of `key`'s live record, in place in the map, if the record
    /// starts at `offset` and lies in the map (a start from
    /// [`crate::keydir::Index::locate`], which may be another key's): the
    /// record's length from its header, then checked as
    /// [`DataFile::with_value`] checks it. `None` when the record there is
    /// not `key`'s, is not in the map, or its header does not parse: the
    /// caller then looks the key up with
    /// [`crate::keydir::Index::get`] and reads with
    /// [`DataFile::with_value`], which tells a damaged record from
    /// another key's.
    pub fn value_at(&self, offset: u32, key: &[u8]) -> Result<Option<&[u8]>> {
        // A test armed with a failure here makes every record another
        // key's, to drive gets down the slow path.
        if crate::failpoint::fail("get:elsewhere").is_err() {
            return Ok(None);
        }
        let start = u64::from(offset);
        let Some(map) = self.map.get() else {
            return Ok(None);
        };
        // The record's first lines at once, before its length is known:
        // a prefetch of lines past its end (or past the map) costs only
        // the bandwidth.
        prefetch_lines_at(
            (map.raw.as_ptr() as usize).wrapping_add(start as usize),
            PREFETCH_LINES * 64,
        );
        // A header is read one byte longer at a time, from the shortest
        // one up: every byte of a record's header is the record's, but the
        // bytes past a short record are not (in the active file, the
        // writer's), so none is read before the header says it is there.
        let mut header_len = format::MIN_RECORD_HEADER_LEN;
        let header = loop {
            let Some(bytes) = self.record_bytes(start, header_len) else {
                return Ok(None);
            };
            match format::parse_record_header(bytes) {
                ParsedHeader::Valid(header) => break header,
                ParsedHeader::Incomplete if header_len < format::MAX_RECORD_HEADER_LEN => {
                    header_len += 1
                }
                _ => return Ok(None),
            }
        };
        let Ok(size) = u32::try_from(header.record_len()) else {
            return Ok(None);
        };
        let Some(bytes) = self.record_bytes(start, size as usize) else {
            return Ok(None);
        };
        let key_at = header.header_len;
        if header.key_len as usize != key.len() || &bytes[key_at..key_at + key.len()] != key {
            return Ok(None);
        }
        let pos = RecordPos {
            file_id: self.id,
            offset,
            size,
        };
        let value = self.check_record(pos, key, bytes)?;
        Ok(Some(&bytes[value]))
    }

    /// Reads the live record at `pos` into `buf` and checks it: both
    /// checksums, a put record (in a batch or not), the expected key.
    /// Returns the range of the value within `buf`.
    pub fn read_record(
        &self,
        pos: RecordPos,
        key: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<std::ops::Range<usize>> {
        let offset = u64::from(pos.offset);
        buf.clear();
        buf.resize(pos.size as usize, 0);
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                self.cut_short(offset)
            } else {
                Error::io("read", &self.path, e)
            }
        })?;
        self.check_record(pos, key, buf)
    }

    /// Whether the record at `pos` is a lost value's marker (see
    /// [`RecordKind::LostValue`]): its type byte, read through the map or
    /// with one `pread`. For a get that would answer "buffer too small"
    /// without reading the record.
    pub fn is_lost_value(&self, pos: RecordPos) -> bool {
        let at = u64::from(pos.offset) + 4;
        let byte = match self.record_bytes(at, 1) {
            Some(bytes) => bytes[0],
            None => {
                let mut byte = [0u8];
                if self.file.read_exact_at(&mut byte, at).is_err() {
                    return false;
                }
                byte[0]
            }
        };
        byte == RecordKind::LostValue as u8
    }

    fn cut_short(&self, offset: u64) -> Error {
        Error::corruption(
            &self.path,
            offset,
            "record cut short (file shorter than index)",
        )
    }

    /// Checks the bytes of the record at `pos` (exactly `pos.size` of
    /// them); returns the range of its value.
    fn check_record(
        &self,
        pos: RecordPos,
        key: &[u8],
        bytes: &[u8],
    ) -> Result<std::ops::Range<usize>> {
        let offset = u64::from(pos.offset);
        let header = match format::parse_record_header(bytes) {
            ParsedHeader::Valid(h) => h,
            ParsedHeader::Incomplete => {
                return Err(Error::corruption(
                    &self.path,
                    offset,
                    "record header cut short",
                ))
            }
            ParsedHeader::Invalid(why) => return Err(Error::corruption(&self.path, offset, why)),
        };
        let kind = RecordKind::from_byte(header.type_byte);
        let lost = kind == Some(RecordKind::LostValue);
        if header.record_len() != u64::from(pos.size)
            || !(lost || kind.is_some_and(RecordKind::holds_value))
        {
            return Err(Error::corruption(
                &self.path,
                offset,
                "record does not match the index entry that points at it",
            ));
        }
        let body = &bytes[header.header_len..];
        if format::body_crc(body) != header.body_crc {
            return Err(Error::corruption(
                &self.path,
                offset,
                "record checksum mismatch",
            ));
        }
        if lost {
            let why = &body[header.key_len as usize..];
            return Err(Error::Corruption(format!(
                "the value of this key was lost: {}. Write the key again (or delete it) to \
                 clear this",
                String::from_utf8_lossy(why)
            )));
        }
        let key_end = header.header_len + header.key_len as usize;
        if &bytes[header.header_len..key_end] != key {
            return Err(Error::Internal(format!(
                "{}: record at offset {offset} holds another key than the one indexed",
                self.path.display()
            )));
        }
        Ok(key_end..bytes.len())
    }
}

/// How many of a record's first cache lines a read asks for at once.
const PREFETCH_LINES: usize = 4;

/// Asks the CPU to load the first cache lines of `bytes` at once. A record
/// read in place usually misses the cache on every line; the header check
/// reads the first line and the checksum walks the rest, one miss after the
/// other unless they were requested together. Larger records are left to
/// the hardware prefetcher, which follows a sequential walk.
#[inline]
fn prefetch_lines(bytes: &[u8]) {
    prefetch_lines_at(bytes.as_ptr() as usize, bytes.len());
}

/// [`prefetch_lines`] of the `len` bytes from address `at`, which need not
/// be mapped.
#[inline]
fn prefetch_lines_at(at: usize, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let start = at & !(LINE - 1);
        let end = at.saturating_add(len);
        for line in (start..end).step_by(LINE).take(PREFETCH_LINES) {
            // SAFETY: a prefetch is only a hint: it never faults and changes
            // no memory, whatever the address (these lie in the record's
            // mapped pages anyway).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line as *const i8) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// Copies `src` to `dst` strictly in ascending address order: bytes up to
/// an 8-byte boundary, then aligned 8-byte words, then the last bytes, each
/// a volatile store so that the compiler keeps the order. A process killed
/// in the middle has retired a prefix of these stores, and the stores it
/// retired reach the page cache, so the file then holds a prefix of `src`
/// followed by the zeros that were there: the torn tail open recognizes
/// (see `scanner.rs`). `memcpy` gives no such order.
///
/// # Safety
/// `dst..dst + src.len()` must be valid for writes and not overlap `src`.
unsafe fn copy_in_order(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let head = dst.align_offset(8).min(len);
    let words = (len - head) / 8;
    // SAFETY: every store and load below stays inside `dst..dst + len` and
    // `src` (the caller's promise for `dst`); word stores go to addresses
    // made 8-aligned by `head`; loads from `src` are unaligned reads.
    unsafe {
        for (i, &byte) in src[..head].iter().enumerate() {
            dst.add(i).write_volatile(byte);
        }
        for w in 0..words {
            let at = head + w * 8;
            let word = src.as_ptr().add(at).cast::<u64>().read_unaligned();
            dst.add(at).cast::<u64>().write_volatile(word);
        }
        let tail = head + words * 8;
        for (i, &byte) in src[tail..].iter().enumerate() {
            dst.add(tail + i).write_volatile(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    /// A fresh, empty directory for one test.
    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bitcask-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn copy_in_order_copies_every_length_at_every_alignment() {
        let src: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37) | 1).collect();
        for start in 0..8 {
            for len in 0..40 {
                let mut dst = vec![0u8; 64];
                // SAFETY: `start + len` stays inside `dst`; `src` is another vector.
                unsafe { copy_in_order(dst.as_mut_ptr().add(start), &src[..len]) };
                assert_eq!(&dst[start..start + len], &src[..len], "{start}+{len}");
                assert!(dst[..start]
                    .iter()
                    .chain(&dst[start + len..])
                    .all(|&b| b == 0));
            }
        }
    }

    /// A read from a record's start ([`DataFile::value_at`]) gives the
    /// value only when the record there is the key's, whole, in the map;
    /// another key's record, one past the map or one whose header does
    /// not parse read as "elsewhere" (the slow path then decides); damage
    /// in the key's own record is an error. A 12-byte record at the end of
    /// the file is read without reading past it (the header is read one
    /// byte at a time).
    #[test]
    fn a_read_from_a_start_finds_the_key_s_own_record_only() {
        let dir = temp_dir("value-at");
        let file = DataFile::create(&dir, 1).unwrap();
        file.write_header().unwrap();
        let big = vec![0x5A; 5000];
        let records: [(&[u8], &[u8]); 4] = [
            (b"apple", b"red"),
            (b"banana", &big),
            (b"cherry", b""),
            (b"x", b""),
        ];
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for (key, value) in records {
            offsets.push(format::FILE_HEADER_LEN as u32 + bytes.len() as u32);
            format::encode_record(RecordKind::Put, key, value, &mut bytes);
        }
        assert_eq!(bytes.len() - (offsets[3] - offsets[0]) as usize, 12);
        let end = format::FILE_HEADER_LEN + bytes.len() as u64;
        file.file()
            .write_all_at(&bytes, format::FILE_HEADER_LEN)
            .unwrap();
        file.map_for_reads();
        for (i, (key, value)) in records.iter().enumerate() {
            assert_eq!(file.value_at(offsets[i], key).unwrap(), Some(*value), "{i}");
            // Every other key finds "elsewhere" at this record.
            for (other, _) in records.iter().filter(|(k, _)| k != key) {
                assert_eq!(file.value_at(offsets[i], other).unwrap(), None, "{i}");
            }
        }
        assert_eq!(
            file.value_at(end as u32, b"x").unwrap(),
            None,
            "past the end"
        );
        assert_eq!(file.value_at(u32::MAX, b"x").unwrap(), None, "past the map");
        // A damaged value: the key's own record, so an error.
        let mut damaged = bytes.clone();
        let last_of_banana = (offsets[2] - offsets[0]) as usize - 1;
        damaged[last_of_banana] ^= 1;
        // A damaged header (its checksum): not readable as anyone's.
        damaged[(offsets[0] - offsets[0]) as usize] ^= 1;
        file.file()
            .write_all_at(&damaged, format::FILE_HEADER_LEN)
            .unwrap();
        drop(file);
        let file = DataFile::open(&dir, 1, false).unwrap();
        file.map_for_reads();
        match file.value_at(offsets[1], b"banana") {
            Err(Error::Corruption(why)) => assert!(why.contains("checksum"), "{why}"),
            other => panic!("a damaged value read as {other:?}"),
        }
        assert_eq!(file.value_at(offsets[0], b"apple").unwrap(), None);
        assert_eq!(file.value_at(offsets[3], b"x").unwrap(), Some(&b""[..]));
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The pages the I/O thread unmaps before their writeback keep what the
    /// writer copied into them, dirty: read back through the map and by
    /// `pread`, and after the kernel is asked to drop the file's clean
    /// pages (a page whose dirty bit the unmapping lost would be dropped,
    /// and read back as the zeros on disk).
    #[test]
    fn pages_unmapped_for_writeback_keep_their_bytes_dirty() {
        let dir = temp_dir("unmap");
        let file = DataFile::create(&dir, 1).unwrap();
        let start = format::FILE_HEADER_LEN;
        // SAFETY: a plain query with no pointers.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        let len = 5 * page + 100;
        file.file().set_len(start + len).unwrap();
        file.map_ahead(start + len);
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8 + 1).collect();
        // SAFETY: the file is long enough for the copy, and nothing else
        // reads or writes it.
        assert!(unsafe { file.write_in_map(start, &bytes) });
        file.unmap_written(start, len);
        assert_eq!(file.record_bytes(start, bytes.len()), Some(&bytes[..]));
        // SAFETY: a plain system call on the file's own descriptor.
        let advised = unsafe {
            libc::posix_fadvise(file.file().as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
        };
        assert_eq!(advised, 0);
        let mut read = vec![0; bytes.len()];
        file.file().read_exact_at(&mut read, start).unwrap();
        assert!(read == bytes, "the unmapped pages lost what was written");
        drop(file);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

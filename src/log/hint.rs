//! Hint files: what open needs from an immutable data file, without its
//! values. A hint file lists the file's committed records in file order
//! (key, kind, offset, size), so open rebuilds the keydir from it without
//! reading the data file.
//!
//! A hint is only ever a shortcut. It names the data file it describes and
//! that file's exact length, and one CRC covers all of it: a hint that is
//! missing, cut short, damaged or stale (the data file has another length),
//! or whose entries do not decode or point outside the data file, is
//! ignored, and the data file is scanned instead. Entries are checked as
//! they are applied; if one fails, open starts over without that hint.
//!
//! ```text
//! header (32 bytes): magic "BCSKHINT" (8) | version u32 LE | data file id u32 LE
//!                    | data file length u64 LE | largest batch sequence number u64 LE
//! entry:             type u8 (1 put, 2 delete) | key_len varint | offset u32 LE | size u32 LE | key
//! trailer:           CRC-32 of every byte before it, u32 LE
//! ```
//!
//! A hint file is written under a temporary name, synced, and renamed into
//! place, so a complete-looking hint file is a complete one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use memmap2::{Mmap, MmapOptions};

use super::dir::sync_dir;
use super::filename::{hint_file_name, FileName};
use super::format::{self, MAX_KEY_LEN};
use super::RecordPos;
use crate::error::{Error, Result};

/// First eight bytes of every hint file.
const HINT_MAGIC: [u8; 8] = *b"BCSKHINT";
/// Version of the layout above.
const HINT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
const TRAILER_LEN: usize = 4;
/// The shortest entry: type, a one-byte key length, offset, size and a
/// one-byte key.
const MIN_ENTRY_LEN: usize = 1 + 1 + 8 + 1;

/// What a hint entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HintKind {
    /// The key's value is the record at the entry's position.
    Put = 1,
    /// The key is deleted here (the position is the tombstone's).
    Delete = 2,
}

/// A hint file being built in memory.
pub struct HintBuilder {
    bytes: Vec<u8>,
}

impl HintBuilder {
    /// An empty hint for data file `data_file_id`.
    pub fn new(data_file_id: u32) -> HintBuilder {
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&HINT_MAGIC);
        bytes.extend_from_slice(&HINT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&data_file_id.to_le_bytes());
        // Data file length and sequence number: filled in by `finish`.
        bytes.extend_from_slice(&[0; 16]);
        HintBuilder { bytes }
    }

    /// Adds the next record of the data file.
    pub fn push(&mut self, kind: HintKind, key: &[u8], pos: RecordPos) {
        self.bytes.push(kind as u8);
        format::encode_varint(key.len() as u32, &mut self.bytes);
        self.bytes.extend_from_slice(&pos.offset.to_le_bytes());
        self.bytes.extend_from_slice(&pos.size.to_le_bytes());
        self.bytes.extend_from_slice(key);
    }

    /// The finished hint file, for a data file `data_len` bytes long whose
    /// batches have sequence numbers up to `max_batch_seq`.
    pub fn finish(mut self, data_len: u64, max_batch_seq: u64) -> Vec<u8> {
        self.bytes[16..24].copy_from_slice(&data_len.to_le_bytes());
        self.bytes[24..32].copy_from_slice(&max_batch_seq.to_le_bytes());
        let crc = crc32fast::hash(&self.bytes);
        self.bytes.extend_from_slice(&crc.to_le_bytes());
        self.bytes
    }
}

/// Writes the hint file of data file `id` in `dir`: under a temporary name,
/// synced, then renamed into place and the directory synced.
pub fn write_hint_file(dir: &Path, id: u32, bytes: &[u8]) -> Result<()> {
    let path = dir.join(hint_file_name(id));
    let temp = dir.join(FileName::TempHint(id).name());
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_data()));
    if let Err(e) = written.and_then(|()| fs::rename(&temp, &path)) {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write hint file", &path, e));
    }
    sync_dir(dir)
}

/// A hint file that passed its checks, for a data file of a known length.
pub struct Hint {
    bytes: Bytes,
}

/// Whether an entry at `offset` of `size` bytes lies inside a data file
/// `data_len` bytes long, after its header.
pub fn entry_fits(offset: u32, size: u32, data_len: u64) -> bool {
    u64::from(offset) >= format::FILE_HEADER_LEN && u64::from(offset) + u64::from(size) <= data_len
}

/// What [`Hint::load`] found.
pub enum HintFile {
    /// No hint file.
    Missing,
    /// An intact hint file of another length of the data file: written
    /// before the data file changed (the active file's hint after the first
    /// write that follows a clean close).
    Stale,
    /// A hint file that fails its checks, with what failed.
    Unusable(&'static str),
    /// A hint that describes the data file as it is.
    Usable(Hint),
}

/// A hint file's bytes: the file mapped, or read into memory.
enum Bytes {
    Mapped(Mmap),
    Read(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Read(bytes) => bytes,
        }
    }
}

impl Hint {
    /// Reads the hint file of data file `id`, and checks that it is intact
    /// and describes the data file as it is (`data_len` bytes long). Whether
    /// every entry decodes and lies inside the data file is checked by the
    /// caller as it walks them ([`Hint::entries_fit`]): one pass, not two.
    /// Only an error other than "not found" while reading is an error.
    ///
    /// With `use_mmap` the file is mapped rather than read (if mapping
    /// fails, it is read): no copy, and above all no large heap buffer. A
    /// freed buffer of tens of MiB may stay in the heap as resident memory
    /// (it lies below the keydir allocated after it), which made the heap
    /// of an open process about 26 bytes per key larger.
    pub fn load(dir: &Path, id: u32, data_len: u64, use_mmap: bool) -> Result<HintFile> {
        let path = dir.join(hint_file_name(id));
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HintFile::Missing),
            Err(e) => return Err(Error::io("read hint file", &path, e)),
        };
        // SAFETY: the map is read-only, and the `Hint` holding it lives only
        // while open loads this file, before the background thread starts.
        // libbitcask never writes a hint file in place: it writes one under
        // a temporary name and renames it over the old, and it removes hint
        // files; neither changes the mapped pages. The directory lock keeps
        // other openers out, and changing the directory from outside while
        // the database is open is documented as unsupported.
        let mapped = use_mmap
            .then(|| unsafe { MmapOptions::new().populate().map(&file) }.ok())
            .flatten();
        let bytes = match mapped {
            Some(map) => Bytes::Mapped(map),
            None => {
                let mut bytes = Vec::new();
                io::Read::read_to_end(&mut &file, &mut bytes)
                    .map_err(|e| Error::io("read hint file", &path, e))?;
                Bytes::Read(bytes)
            }
        };
        Ok(Hint::check(bytes, id, data_len))
    }

    /// `bytes` as a hint of data file `id` at length `data_len`, if they are one.
    fn check(bytes: Bytes, id: u32, data_len: u64) -> HintFile {
        if bytes.len() < HEADER_LEN + TRAILER_LEN {
            return HintFile::Unusable("shorter than a hint file header");
        }
        let (body, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
        let stored_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        if crc32fast::hash(body) != stored_crc {
            return HintFile::Unusable("checksum mismatch");
        }
        if body[..8] != HINT_MAGIC || u32_at(body, 8) != HINT_VERSION {
            return HintFile::Unusable("not a hint file of this version");
        }
        if u32_at(body, 12) != id {
            return HintFile::Unusable("the hint of another data file");
        }
        if u64_at(body, 16) != data_len {
            return HintFile::Stale;
        }
        HintFile::Usable(Hint { bytes })
    }

    /// Whether every entry decodes and lies inside a data file `data_len`
    /// bytes long: what [`Hint::load`] leaves to the caller, which checks it
    /// while it applies the entries (open) or reports it (verify).
    pub fn entries_fit(&self, data_len: u64) -> std::result::Result<(), &'static str> {
        let mut inside = true;
        let decodes =
            self.for_each(|_, _, offset, size| inside &= entry_fits(offset, size, data_len));
        match (decodes, inside) {
            (true, true) => Ok(()),
            (false, _) => Err("its entries do not decode"),
            (true, false) => Err("an entry points outside the data file"),
        }
    }

    /// `bytes` as a hint, if they are an intact hint of data file `id` at
    /// length `data_len` (the decoder fuzz test's way in).
    #[cfg(test)]
    pub(crate) fn parse(bytes: Vec<u8>, id: u32, data_len: u64) -> Option<Hint> {
        match Hint::check(Bytes::Read(bytes), id, data_len) {
            HintFile::Usable(hint) => Some(hint),
            _ => None,
        }
    }

    /// A hint this process just built (with [`HintBuilder::finish`]), to
    /// walk its entries without checking them again.
    pub fn trusted(bytes: Vec<u8>) -> Hint {
        debug_assert!(bytes.len() >= HEADER_LEN + TRAILER_LEN);
        Hint {
            bytes: Bytes::Read(bytes),
        }
    }

    /// The largest batch sequence number the data file had seen.
    pub fn max_batch_seq(&self) -> u64 {
        u64_at(&self.bytes, 24)
    }

    /// At least as many as the hint's entries (each takes at least 11
    /// bytes), and close to it for short keys: what to allocate for them.
    pub fn max_entries(&self) -> usize {
        (self.bytes.len() - HEADER_LEN - TRAILER_LEN) / MIN_ENTRY_LEN
    }

    /// Calls `f` with each entry, in data file order. An entry that does not
    /// decode (possible only if the CRC matched by chance) stops the walk
    /// with `false`, and the caller must not trust what it applied.
    pub fn for_each<'a>(&'a self, mut f: impl FnMut(HintKind, &'a [u8], u32, u32)) -> bool {
        let body = &self.bytes[HEADER_LEN..self.bytes.len() - TRAILER_LEN];
        let mut at = 0;
        while at < body.len() {
            let kind = match body[at] {
                1 => HintKind::Put,
                2 => HintKind::Delete,
                _ => return false,
            };
            let Some((key_len, width)) = format::read_varint(&body[at + 1..]) else {
                return false;
            };
            let key_len = key_len as usize;
            let fixed = at + 1 + width;
            let key_start = fixed + 8;
            if key_len == 0 || key_len > MAX_KEY_LEN || key_start + key_len > body.len() {
                return false;
            }
            let offset = u32_at(body, fixed);
            let size = u32_at(body, fixed + 4);
            f(kind, &body[key_start..key_start + key_len], offset, size);
            at = key_start + key_len;
        }
        true
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(offset: u32, size: u32) -> RecordPos {
        RecordPos {
            file_id: 7,
            offset,
            size,
        }
    }

    fn sample() -> Vec<u8> {
        let mut b = HintBuilder::new(7);
        b.push(HintKind::Put, b"alpha", pos(16, 30));
        b.push(HintKind::Delete, b"beta", pos(46, 20));
        b.push(HintKind::Put, &[0xFF; 300], pos(66, 330));
        b.finish(396, 42)
    }

    fn checked(bytes: Vec<u8>, id: u32, data_len: u64) -> Option<Hint> {
        match Hint::check(Bytes::Read(bytes), id, data_len) {
            HintFile::Usable(hint) => Some(hint),
            _ => None,
        }
    }

    fn entries(hint: &Hint) -> Vec<(HintKind, Vec<u8>, u32, u32)> {
        let mut out = Vec::new();
        assert!(hint.for_each(|k, key, o, s| out.push((k, key.to_vec(), o, s))));
        out
    }

    #[test]
    fn round_trips() {
        let hint = checked(sample(), 7, 396).expect("intact");
        assert_eq!(hint.max_batch_seq(), 42);
        let got = entries(&hint);
        assert_eq!(got.len(), 3);
        assert!(hint.max_entries() >= 3);
        assert_eq!(got[0], (HintKind::Put, b"alpha".to_vec(), 16, 30));
        assert_eq!(got[1], (HintKind::Delete, b"beta".to_vec(), 46, 20));
        assert_eq!(got[2].1.len(), 300);
    }

    #[test]
    fn max_entries_bounds_the_entries_of_the_shortest_kind() {
        let mut b = HintBuilder::new(7);
        for i in 0..100u32 {
            b.push(HintKind::Put, &[i as u8], pos(16 + i, 1));
        }
        let hint = checked(b.finish(396, 0), 7, 396).expect("intact");
        assert_eq!((entries(&hint).len(), hint.max_entries()), (100, 100));
    }

    #[test]
    fn stale_cut_or_damaged_hints_are_refused() {
        assert!(checked(sample(), 8, 396).is_none(), "other data file");
        assert!(checked(sample(), 7, 397).is_none(), "other length");
        let bytes = sample();
        for cut in 0..bytes.len() {
            assert!(
                checked(bytes[..cut].to_vec(), 7, 396).is_none(),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(checked(damaged, 7, 396).is_none(), "bit flip at {at}");
        }
    }

    /// A hint whose checksum holds but whose entries do not decode, or
    /// point outside the data file, is ignored as a whole.
    #[test]
    fn a_hint_that_passes_its_checksum_but_does_not_decode_is_unusable() {
        let with_crc = |mut body: Vec<u8>| {
            let crc = crc32fast::hash(&body);
            body.extend_from_slice(&crc.to_le_bytes());
            body
        };
        let mut bytes = sample();
        bytes.truncate(bytes.len() - TRAILER_LEN);
        let mut bad_kind = bytes.clone();
        bad_kind[HEADER_LEN] = 9;
        let mut cut_key = bytes.clone();
        cut_key.truncate(cut_key.len() - 1);
        for (what, body) in [("bad kind", bad_kind), ("cut key", cut_key)] {
            let hint = checked(with_crc(body), 7, 396).expect("intact as a file");
            assert_eq!(
                hint.entries_fit(396),
                Err("its entries do not decode"),
                "{what}"
            );
        }
        let mut b = HintBuilder::new(7);
        b.push(HintKind::Put, b"alpha", pos(390, 30));
        let hint = checked(b.finish(396, 0), 7, 396).expect("intact as a file");
        assert_eq!(
            hint.entries_fit(396),
            Err("an entry points outside the data file")
        );
        assert_eq!(checked(sample(), 7, 396).unwrap().entries_fit(396), Ok(()));
        assert!(matches!(
            Hint::check(Bytes::Read(sample()), 7, 397),
            HintFile::Stale
        ));
    }

    #[test]
    fn a_mapped_hint_reads_as_a_read_one() {
        let dir = std::env::temp_dir().join(format!("bitcask-hint-map-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let read = |id, use_mmap| match Hint::load(&dir, id, 396, use_mmap).unwrap() {
            HintFile::Usable(hint) => Some(hint),
            _ => None,
        };
        for use_mmap in [true, false] {
            assert!(read(7, use_mmap).is_none(), "no hint file yet");
        }
        fs::write(dir.join(hint_file_name(7)), sample()).unwrap();
        let mapped = read(7, true).expect("intact");
        assert!(matches!(mapped.bytes, Bytes::Mapped(_)));
        let copied = read(7, false).expect("intact");
        assert!(matches!(copied.bytes, Bytes::Read(_)));
        assert_eq!(entries(&mapped), entries(&copied));
        assert_eq!(mapped.max_batch_seq(), 42);
        // An empty file cannot be mapped: it is read, and refused.
        fs::write(dir.join(hint_file_name(8)), b"").unwrap();
        for use_mmap in [true, false] {
            assert!(read(8, use_mmap).is_none());
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}

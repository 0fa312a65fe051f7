//! The keydir file: the index as close left it, with what else open
//! rebuilds (each data file's live bytes, the largest batch sequence
//! number), so that the next open loads it at the speed of a copy instead
//! of hashing and inserting every key of every hint file again.
//!
//! ```text
//! magic "BCSKKDIR" | version u32 LE
//! largest batch sequence number u64 LE
//! data files u32 LE; per file: id u32 LE | length u64 LE | live bytes u64 LE
//! the index (Index::save; the hash index's tables and arenas)
//! CRC-32 of every byte before it, u32 LE
//! ```
//!
//! It is only ever a shortcut, and never trusted when it could be wrong:
//! open uses it only if its checksum holds and it names exactly the data
//! files in the directory, each with the length it has, and removes it
//! either way before anything is written, since the first write would make
//! it stale. Data files only ever grow at their end (the newest) or come
//! and go (rollover, merge), so the same files at the same lengths hold the
//! same records. The removal needs no sync: if a power loss brings the file
//! back, it names lengths the newest data file has only if no write made
//! after that open survived, and then it describes the files as they are.
//! It is written under a temporary name and renamed into place, without a
//! sync either: a file cut short by a power loss fails its checksum.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::keydir::{load_saved, Index};
use crate::log::filename::{data_file_name, KEYDIR, KEYDIR_TEMP};
use crate::options::IndexType;

const MAGIC: [u8; 8] = *b"BCSKKDIR";
const VERSION: u32 = 1;
/// Reads and writes go through buffers this large; larger ones go straight
/// to and from the index's own memory.
const BUFFER: usize = 1 << 20;

/// One data file as the keydir file records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SavedFile {
    pub id: u32,
    pub len: u64,
    /// Bytes of the records the index points at.
    pub live: u64,
}

/// What open takes from a keydir file.
pub struct Saved {
    pub index: Box<dyn Index>,
    /// Every data file, ascending by id.
    pub files: Vec<SavedFile>,
    pub max_batch_seq: u64,
}

/// Writes the keydir file of `index`, whose records lie in `files`
/// (ascending by id, as they are on disk now). Returns whether it wrote
/// one: an index type with no saved form writes none.
pub fn save(
    dir: &Path,
    index: &dyn Index,
    files: &[SavedFile],
    max_batch_seq: u64,
) -> Result<bool> {
    let temp = dir.join(KEYDIR_TEMP);
    let written = File::create(&temp).and_then(|file| {
        let mut out = CrcWriter::new(BufWriter::with_capacity(BUFFER, file));
        out.write_all(&MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.write_all(&max_batch_seq.to_le_bytes())?;
        out.write_all(&(files.len() as u32).to_le_bytes())?;
        for f in files {
            out.write_all(&f.id.to_le_bytes())?;
            out.write_all(&f.len.to_le_bytes())?;
            out.write_all(&f.live.to_le_bytes())?;
        }
        if !index.save(&mut out)? {
            return Ok(false);
        }
        let crc = out.crc.clone().finalize();
        let mut file = out.inner;
        file.write_all(&crc.to_le_bytes())?;
        file.flush()?;
        Ok(true)
    });
    match written {
        Ok(true) => fs::rename(&temp, dir.join(KEYDIR))
            .map(|()| true)
            .map_err(|e| Error::io("rename into place", &dir.join(KEYDIR), e)),
        Ok(false) => {
            let _ = fs::remove_file(&temp);
            Ok(false)
        }
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(Error::io("write keydir file", &temp, e))
        }
    }
}

/// The keydir file of `dir`, if there is one that holds and describes
/// exactly the data files `ids` (ascending) as they are now; its index
/// loaded as `index_type`. Anything else reads as `None`: open then
/// rebuilds the index from the hint files and data files. Never fails: a
/// file that cannot be read is a file not used.
pub fn load(dir: &Path, ids: &[u32], index_type: IndexType) -> Option<Saved> {
    let file = File::open(dir.join(KEYDIR)).ok()?;
    let mut input = CrcReader::new(BufReader::with_capacity(BUFFER, file));
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).ok()?;
    if magic != MAGIC || read_u32(&mut input)? != VERSION {
        return None;
    }
    let max_batch_seq = read_u64(&mut input)?;
    let count = read_u32(&mut input)? as usize;
    if count != ids.len() {
        return None;
    }
    let mut files = Vec::with_capacity(count);
    for &id in ids {
        let saved = SavedFile {
            id: read_u32(&mut input)?,
            len: read_u64(&mut input)?,
            live: read_u64(&mut input)?,
        };
        let on_disk = fs::metadata(dir.join(data_file_name(id))).ok()?.len();
        if saved.id != id || saved.len != on_disk || saved.live > saved.len {
            return None;
        }
        files.push(saved);
    }
    let index = load_saved(index_type, &mut input).ok()??;
    let crc = input.crc.clone().finalize();
    let mut trailer = [0u8; 4];
    input.inner.read_exact(&mut trailer).ok()?;
    let mut rest = [0u8; 1];
    let at_end = matches!(input.inner.read(&mut rest), Ok(0));
    (crc == u32::from_le_bytes(trailer) && at_end).then_some(Saved {
        index,
        files,
        max_batch_seq,
    })
}

/// Removes the keydir file (and one left half written): open does so
/// before the first write can make it stale. No sync: see the module
/// documentation.
pub fn remove(dir: &Path) -> Result<()> {
    for name in [KEYDIR, KEYDIR_TEMP] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    Ok(())
}

fn read_u32(input: &mut impl Read) -> Option<u32> {
    let mut b = [0u8; 4];
    input.read_exact(&mut b).ok()?;
    Some(u32::from_le_bytes(b))
}

fn read_u64(input: &mut impl Read) -> Option<u64> {
    let mut b = [0u8; 8];
    input.read_exact(&mut b).ok()?;
    Some(u64::from_le_bytes(b))
}

/// A writer that keeps the CRC-32 of what went through it.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W> CrcWriter<W> {
    fn new(inner: W) -> Self {
        CrcWriter {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that keeps the CRC-32 of what went through it.
struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R> CrcReader<R> {
    fn new(inner: R) -> Self {
        CrcReader {
            inner,
            crc: crc32fast::Hasher::new(),
        }
    }
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

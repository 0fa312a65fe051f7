//! The keydir file: the index as close left it, or as a checkpoint took it
//! while the database ran, with what else open rebuilds (each data file's
//! live bytes, the largest batch sequence number), so that the next open
//! loads it at the speed of a copy instead of hashing and inserting every
//! key of every hint file again.
//!
//! ```text
//! magic "BCSKKDIR" | version u32 LE (5: written by close, 6: a checkpoint)
//! largest batch sequence number u64 LE
//! data files u32 LE; per file: id u32 LE | length u64 LE | live bytes u64 LE
//! the index (Index::checkpoint; the hash index's tables and arenas)
//! CRC-32 of every byte before it, u32 LE
//! ```
//!
//! It is only ever a shortcut, and never trusted when it could be wrong.
//! Data files only ever grow at their end (the newest) or come and go
//! (rollover, merge), so the same files holding the same bytes up to the
//! lengths named hold the same records.
//!
//! A keydir file describes the log up to a position: every file it names
//! up to the length named. It is used if its checksum holds, it names
//! exactly the data files up to its last one, each but the last with the
//! length it has, and the last at least as long as named. If the last is
//! longer, or files follow it (rollovers, merge outputs), open scans the
//! last from its named length and loads the files after it as it would
//! without a keydir file. Every file it names but the last must also have
//! its hint file (the last too for close's file): a hint file gone since
//! close means the directory was changed by hand, or a crash is being
//! simulated, and open then reads such files as `bitcask_verify` predicts.
//! Close's file (version 5) names every file after syncing it; a
//! checkpoint (version 6) only what was synced before it was written (see
//! `maintenance/checkpoint.rs`): a power loss cannot take bytes from
//! before the position either names.
//!
//! Open keeps a keydir file it used: what it describes stays a prefix of
//! the log, since open cuts or quarantines only after it, and later writes
//! only append. One it did not use is removed, and the directory synced,
//! before anything is written or cut: a cut before its position followed by
//! writes could otherwise give its last file the named length again with
//! other bytes.
//!
//! It is written under a temporary name and renamed into place. Close's is
//! not synced; a checkpoint is, before the rename, so that it survives a
//! power cut. A checkpoint's, written beside the writer, is also paced
//! (writeback started as it goes) and frees the file it replaces in steps
//! (`log/bulk_write.rs`): at 50M keys it is 2 GB, and written or freed at
//! once it stalled the writer's puts for up to half a second. Either cut
//! short by a power loss fails its checksum; a rename lost leaves the one
//! before, which describes a shorter prefix.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::keydir::{load_saved, Index};
use crate::log::bulk_write::{replace_gradually, PacedWriter};
use crate::log::dir::sync_dir;
use crate::log::filename::{data_file_name, KEYDIR, KEYDIR_TEMP};
use crate::options::IndexType;

const MAGIC: [u8; 8] = *b"BCSKKDIR";
/// The version of a keydir file that close wrote. Versions 1 and 2 (before
/// stop 27) placed the hash index's keys by other bits of their hash, and
/// 3 and 4 (checkpoints) had 8-byte slots and record positions in the
/// arena (before stop 30): such a file is not used (open then loads the
/// hint files), never read as this.
const VERSION_CLOSE: u32 = 5;
/// The version of a keydir file that a checkpoint wrote.
const VERSION_CHECKPOINT: u32 = 6;
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
    /// Every data file it names, ascending by id.
    pub files: Vec<SavedFile>,
    pub max_batch_seq: u64,
    /// Written by a checkpoint (else by close): the last file it names
    /// need not have its hint file.
    pub checkpoint: bool,
    /// It names every data file, each with the length it has: nothing was
    /// written after it. Otherwise the last file it names is to be read
    /// from its named length on, and the files after it loaded.
    pub complete: bool,
}

/// Who writes a keydir file: close, or a checkpoint (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    Close,
    Checkpoint,
}

/// Writes the keydir file of an index, whose records lie in `files`
/// (ascending by id, as they are on disk now, or as a checkpoint took them),
/// by `index` (which writes the index's saved form, `Index::checkpoint`).
pub fn save(
    dir: &Path,
    writer: Writer,
    files: &[SavedFile],
    max_batch_seq: u64,
    index: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> Result<()> {
    let version = match writer {
        Writer::Close => VERSION_CLOSE,
        Writer::Checkpoint => VERSION_CHECKPOINT,
    };
    let temp = dir.join(KEYDIR_TEMP);
    let written = File::create(&temp).and_then(|file| {
        // A checkpoint, beside the writer, paces its writeback; close's
        // file, which is not synced, goes at the speed of a copy.
        let file = match writer {
            Writer::Close => PacedWriter::unpaced(file),
            Writer::Checkpoint => PacedWriter::new(file),
        };
        let mut out = CrcWriter::new(BufWriter::with_capacity(BUFFER, file));
        out.write_all(&MAGIC)?;
        out.write_all(&version.to_le_bytes())?;
        out.write_all(&max_batch_seq.to_le_bytes())?;
        out.write_all(&(files.len() as u32).to_le_bytes())?;
        for f in files {
            out.write_all(&f.id.to_le_bytes())?;
            out.write_all(&f.len.to_le_bytes())?;
            out.write_all(&f.live.to_le_bytes())?;
        }
        index(&mut out)?;
        let crc = out.crc.clone().finalize();
        let mut file = out.inner;
        file.write_all(&crc.to_le_bytes())?;
        file.flush()?;
        // A checkpoint is synced, so that a power cut after it leaves it to
        // load (else only its checksum failing, and open reading the files):
        // close's file needs none, close having synced everything it names.
        if writer == Writer::Checkpoint {
            file.get_ref().get_ref().sync_data()?;
        }
        Ok(())
    });
    match written {
        // Close has no writer beside it to stall: the rename frees the old
        // file at once there.
        Ok(()) => match writer {
            Writer::Close => fs::rename(&temp, dir.join(KEYDIR)),
            Writer::Checkpoint => replace_gradually(&temp, &dir.join(KEYDIR)),
        }
        .map_err(|e| Error::io("rename into place", &dir.join(KEYDIR), e)),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(Error::io("write keydir file", &temp, e))
        }
    }
}

/// The keydir file of `dir`, if there is one that holds and describes the
/// data files `ids` (ascending) as they are now, by the rules of the module
/// documentation; its index loaded as `index_type`. Anything else reads as
/// `None`: open then rebuilds the index from the hint files and data files.
/// Never fails: a file that cannot be read is a file not used.
pub fn load(dir: &Path, ids: &[u32], index_type: IndexType) -> Option<Saved> {
    let file = File::open(dir.join(KEYDIR)).ok()?;
    let mut input = CrcReader::new(BufReader::with_capacity(BUFFER, file));
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic).ok()?;
    if magic != MAGIC {
        return None;
    }
    let checkpoint = match read_u32(&mut input)? {
        VERSION_CLOSE => false,
        VERSION_CHECKPOINT => true,
        _ => return None,
    };
    let max_batch_seq = read_u64(&mut input)?;
    let count = read_u32(&mut input)? as usize;
    // The files up to its last one, each as long as named, the last at
    // least as long.
    if count == 0 || count > ids.len() {
        return None;
    }
    let mut files = Vec::with_capacity(count);
    let mut complete = count == ids.len();
    for (i, &id) in ids[..count].iter().enumerate() {
        let saved = SavedFile {
            id: read_u32(&mut input)?,
            len: read_u64(&mut input)?,
            live: read_u64(&mut input)?,
        };
        let on_disk = fs::metadata(dir.join(data_file_name(id))).ok()?.len();
        let len_ok = match i + 1 == count {
            true => on_disk >= saved.len,
            false => on_disk == saved.len,
        };
        if saved.id != id || !len_ok || saved.live > saved.len {
            return None;
        }
        complete &= on_disk == saved.len;
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
        checkpoint,
        complete,
    })
}

/// Removes the keydir file (and one left half written), and syncs the
/// directory if there was one: open does so, when it does not use the
/// file, before anything is written (see the module documentation).
pub fn remove(dir: &Path) -> Result<()> {
    let mut removed = false;
    for name in [KEYDIR, KEYDIR_TEMP] {
        let path = dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &path, e)),
        }
    }
    if removed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Removes a keydir file left half written (a crash during a checkpoint
/// or close). No sync: nothing ever reads it.
pub fn remove_temp(dir: &Path) -> Result<()> {
    let path = dir.join(KEYDIR_TEMP);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove", &path, e)),
    }
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

//! Quarantine files: bytes taken out of a data file (a tail open cut off,
//! a damaged range merge or repair stepped over), kept beside the data so
//! that nothing is ever deleted, and never loaded as data.
//!
//! ```text
//! header:  magic "BCSKQUAR" (8) | version u32 LE (1) | source data file id u32 LE
//!          | source offset u64 LE | range length u64 LE | stored length u64 LE
//!          | reason length u16 LE | reason (UTF-8) | CRC-32 of the header before it u32 LE
//! bytes:   `stored length` bytes: the range as it was, without its trailing zeros
//! trailer: CRC-32 of the bytes u32 LE
//! ```
//!
//! The range is `range length` bytes of data file `source id` from `source
//! offset` on; only its bytes up to the last non-zero one are stored (the
//! rest read as zeros). A quarantine file is written under a temporary name,
//! synced, renamed into place, and the directory synced, all before the
//! data file it came from is changed: after a crash at any moment the bytes
//! are either still in the data file or in a complete quarantine file.
//! The library never removes one: that is the user's decision.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::dir::{list, sync_dir};
use super::filename::FileName;
use crate::error::{Error, Result};

const MAGIC: [u8; 8] = *b"BCSKQUAR";
const VERSION: u32 = 1;
/// Header bytes before the reason.
const FIXED_LEN: usize = 8 + 4 + 4 + 8 + 8 + 8 + 2;
/// How much is read or copied at a time.
const CHUNK: usize = 1 << 20;
/// Longest reason kept (a longer one is cut).
const MAX_REASON: usize = 1024;

/// What a quarantine file says about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineInfo {
    /// The file's name in the database directory.
    pub name: String,
    /// The data file the bytes came from.
    pub source_id: u32,
    /// Where in it the range began.
    pub source_offset: u64,
    /// How long the range was.
    pub range_len: u64,
    /// How many of its bytes are stored (the rest were zeros).
    pub stored_len: u64,
    /// Why the range was taken out.
    pub reason: String,
    /// Where the stored bytes begin in the quarantine file.
    data_start: u64,
}

/// Copies `start..end` of `source` (data file `source_id`) into a new
/// quarantine file in `dir`, durably (file and directory synced), and
/// returns its name and how many bytes it stores; `None` when the range
/// holds only zeros, which carry nothing worth keeping (no file is
/// written then).
pub fn quarantine_range(
    dir: &Path,
    source: &File,
    source_id: u32,
    start: u64,
    end: u64,
    reason: &str,
) -> Result<Option<(String, u64)>> {
    let source_path = dir.join(super::filename::data_file_name(source_id));
    let read_err = |e| Error::io("read", &source_path, e);
    let Some(stored_end) = last_non_zero(source, start, end).map_err(read_err)? else {
        return Ok(None);
    };
    let stored_len = stored_end - start;
    let (name, temp_name) = free_name(dir, source_id, start)?;
    let temp = dir.join(&temp_name);
    let path = dir.join(&name);
    let written = (|| -> io::Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        out.write_all(&encode_header(
            source_id,
            start,
            end - start,
            stored_len,
            reason,
        ))?;
        let mut crc = crc32fast::Hasher::new();
        let mut buf = vec![0u8; CHUNK.min(stored_len as usize)];
        let mut at = start;
        while at < stored_end {
            let n = CHUNK.min((stored_end - at) as usize);
            source.read_exact_at(&mut buf[..n], at)?;
            crc.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            at += n as u64;
        }
        out.write_all(&crc.finalize().to_le_bytes())?;
        out.sync_all()?;
        fs::rename(&temp, &path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write quarantine file", &path, e));
    }
    sync_dir(dir)?;
    Ok(Some((name, stored_len)))
}

/// The first name of the form `{id}-{offset}[-n].quarantine` that is free
/// in `dir` (with its temporary name).
fn free_name(dir: &Path, id: u32, offset: u64) -> Result<(String, String)> {
    for n in 1..=u32::MAX {
        let name = FileName::Quarantine { id, offset, n }.name();
        match fs::metadata(dir.join(&name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let temp = FileName::TempQuarantine { id, offset, n }.name();
                return Ok((name, temp));
            }
            Err(e) => return Err(Error::io("look for", &dir.join(&name), e)),
            Ok(_) => {}
        }
    }
    Err(Error::Internal(format!(
        "every quarantine file name for offset {offset} of data file {id} is taken"
    )))
}

fn encode_header(
    source_id: u32,
    offset: u64,
    range_len: u64,
    stored_len: u64,
    reason: &str,
) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let reason = &reason.as_bytes()[..cut];
    let mut header = Vec::with_capacity(FIXED_LEN + reason.len() + 4);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&source_id.to_le_bytes());
    header.extend_from_slice(&offset.to_le_bytes());
    header.extend_from_slice(&range_len.to_le_bytes());
    header.extend_from_slice(&stored_len.to_le_bytes());
    header.extend_from_slice(&(reason.len() as u16).to_le_bytes());
    header.extend_from_slice(reason);
    let crc = crc32fast::hash(&header);
    header.extend_from_slice(&crc.to_le_bytes());
    header
}

/// The end of the last non-zero byte of `start..end` of `file`, if any.
fn last_non_zero(file: &File, start: u64, end: u64) -> io::Result<Option<u64>> {
    let mut buf = vec![0u8; CHUNK.min((end - start) as usize)];
    let mut chunk_end = end;
    while chunk_end > start {
        let chunk_start = chunk_end.saturating_sub(CHUNK as u64).max(start);
        let n = (chunk_end - chunk_start) as usize;
        file.read_exact_at(&mut buf[..n], chunk_start)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b != 0) {
            return Ok(Some(chunk_start + i as u64 + 1));
        }
        chunk_end = chunk_start;
    }
    Ok(None)
}

/// Reads the header of quarantine file `name` in `dir`; `Ok(None)` if it is
/// not a complete, intact quarantine file (it is then left as it is).
pub fn read_info(dir: &Path, name: &str) -> Result<Option<QuarantineInfo>> {
    let path = dir.join(name);
    let mut file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    let mut fixed = [0u8; FIXED_LEN];
    if len < (FIXED_LEN + 8) as u64 {
        return Ok(None);
    }
    file.read_exact(&mut fixed)
        .map_err(|e| Error::io("read", &path, e))?;
    let reason_len = u16::from_le_bytes([fixed[40], fixed[41]]) as usize;
    let mut rest = vec![0u8; reason_len + 4];
    if len < (FIXED_LEN + rest.len()) as u64 {
        return Ok(None);
    }
    file.read_exact(&mut rest)
        .map_err(|e| Error::io("read", &path, e))?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(&fixed);
    crc.update(&rest[..reason_len]);
    let stored_crc = u32::from_le_bytes(rest[reason_len..].try_into().unwrap_or_default());
    let u32_at = |at: usize| u32::from_le_bytes(fixed[at..at + 4].try_into().unwrap_or_default());
    let u64_at = |at: usize| u64::from_le_bytes(fixed[at..at + 8].try_into().unwrap_or_default());
    let data_start = (FIXED_LEN + reason_len + 4) as u64;
    let stored_len = u64_at(32);
    let intact = fixed[..8] == MAGIC
        && u32_at(8) == VERSION
        && crc.finalize() == stored_crc
        && data_start
            .checked_add(stored_len)
            .and_then(|e| e.checked_add(4))
            == Some(len);
    if !intact {
        return Ok(None);
    }
    Ok(Some(QuarantineInfo {
        name: name.to_string(),
        source_id: u32_at(12),
        source_offset: u64_at(16),
        range_len: u64_at(24),
        stored_len,
        reason: String::from_utf8_lossy(&rest[..reason_len]).into_owned(),
        data_start,
    }))
}

/// The stored bytes of a quarantine file, if they still match their
/// checksum.
pub fn read_bytes(dir: &Path, info: &QuarantineInfo) -> Result<Option<Vec<u8>>> {
    let path = dir.join(&info.name);
    let file = File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    let mut bytes = vec![0u8; info.stored_len as usize + 4];
    file.read_exact_at(&mut bytes, info.data_start)
        .map_err(|e| Error::io("read", &path, e))?;
    let trailer = bytes.split_off(info.stored_len as usize);
    let crc = u32::from_le_bytes(trailer.try_into().unwrap_or_default());
    Ok((crc32fast::hash(&bytes) == crc).then_some(bytes))
}

/// The quarantine files in `dir`, in name order, with their place in the
/// name (`id`, `offset`, `n`). Temporary ones are not listed.
pub fn list_quarantine(dir: &Path) -> Result<Vec<(u32, u64, u32, String)>> {
    let mut found: Vec<_> = list(dir)?
        .into_iter()
        .filter_map(|(parsed, name)| match parsed {
            FileName::Quarantine { id, offset, n } => Some((id, offset, n, name)),
            _ => None,
        })
        .collect();
    found.sort();
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bitcask-quarantine-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_range_round_trips_without_its_trailing_zeros_and_names_do_not_collide() {
        let dir = temp_dir("range");
        let source_path = dir.join("000000003.data");
        let mut content = vec![7u8; 100];
        content.extend_from_slice(b"garbage\x01\x02");
        content.extend_from_slice(&[0u8; 5000]);
        fs::write(&source_path, &content).unwrap();
        let source = File::open(&source_path).unwrap();
        let end = content.len() as u64;
        let (name, stored) = quarantine_range(&dir, &source, 3, 100, end, "why")
            .unwrap()
            .unwrap();
        assert_eq!((name.as_str(), stored), ("000000003-100.quarantine", 9));
        let info = read_info(&dir, &name).unwrap().unwrap();
        assert_eq!(
            (info.source_id, info.source_offset, info.range_len),
            (3, 100, end - 100)
        );
        assert_eq!(info.reason, "why");
        assert_eq!(
            read_bytes(&dir, &info).unwrap().unwrap(),
            b"garbage\x01\x02"
        );
        // The same place again gets the next name.
        let (again, _) = quarantine_range(&dir, &source, 3, 100, end, "again")
            .unwrap()
            .unwrap();
        assert_eq!(again, "000000003-100-2.quarantine");
        // Only zeros: nothing to keep, no file.
        assert_eq!(
            quarantine_range(&dir, &source, 3, 109, end, "zeros").unwrap(),
            None
        );
        let listed = list_quarantine(&dir).unwrap();
        assert_eq!(listed.len(), 2);
        // A damaged quarantine file is not taken for an intact one.
        let mut bytes = fs::read(dir.join(&name)).unwrap();
        bytes[20] ^= 1;
        fs::write(dir.join(&name), &bytes).unwrap();
        assert_eq!(read_info(&dir, &name).unwrap(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Verify: a read-only check of a whole database directory. Every data
//! file is read in full with the salvage scan (`salvage.rs`), so that every
//! damaged range is found, not only the first; every entry of every usable
//! hint file is checked against the record it points at. Nothing is
//! changed. The report says, for each damaged range, what open would do
//! with it.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::dir::data_file_ids;
use super::filename::{data_file_name, hint_file_name};
use super::format::{self, FileHeader, ParsedHeader, RecordKind, FILE_HEADER_LEN};
use super::hint::{Hint, HintFile, HintKind};
use super::quarantine::list_quarantine;
use super::salvage::salvage;
use super::scanner::{FileSource, Source};
use crate::error::{Error, Result};

/// What open does with a damaged range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtOpen {
    /// It lies in the newest data file, which has no usable hint file: open
    /// cuts the file from the first bad record on, into a quarantine file
    /// (or refuses, with `strict_recovery`).
    CutAsTail,
    /// It lies in a sealed data file without a usable hint file: open
    /// refuses the database with a corruption error until it is repaired.
    Refused,
    /// Its data file loads from its hint file, so open does not read it: a
    /// get of a record there answers corruption.
    FoundByGets,
}

/// A range of a data file whose bytes are not good records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// The data file's name.
    pub file: String,
    /// The data file's id.
    pub file_id: u32,
    /// Where the range begins.
    pub offset: u64,
    /// How long it is.
    pub len: u64,
    /// What failed, at its first bad record.
    pub reason: String,
    /// Intact records that go with it (batch records of a batch it cut,
    /// which cannot be kept alone).
    pub intact_records: u64,
    /// What open does with it (before any repair).
    pub at_open: AtOpen,
    /// The quarantine file its bytes went to (repair only).
    pub quarantine_file: Option<String>,
}

/// Zeros that run from the last record of a data file to its end: space
/// allocated and never written, which open cuts. Not damage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroTail {
    /// The data file's name.
    pub file: String,
    /// Where the zeros begin.
    pub offset: u64,
    /// How many there are.
    pub len: u64,
}

/// A hint file, or one of its entries, that does not agree with its data
/// file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintProblem {
    /// The hint file's name.
    pub file: String,
    /// The entry's number (from 0), or `None` for the file as a whole.
    pub entry: Option<u64>,
    /// The entry's key (empty for the file as a whole).
    pub key: Vec<u8>,
    /// What is wrong.
    pub reason: String,
}

/// What [`crate::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Data files read.
    pub data_files: u64,
    /// Records that pass every check.
    pub records: u64,
    /// Every damaged range, in file order.
    pub damaged: Vec<DamagedRange>,
    /// Zero-filled ends of data files (not damage; open cuts them).
    pub zero_tails: Vec<ZeroTail>,
    /// Batch records at the end of a data file without their commit
    /// record (what a writer that died in a batch leaves; not damage).
    pub uncommitted_batch_records: u64,
    /// Hint files that were usable, and so checked entry by entry.
    pub hint_files_checked: u64,
    /// Entries checked against their records.
    pub hint_entries_checked: u64,
    /// Hint files or entries that disagree with their data files.
    pub hint_problems: Vec<HintProblem>,
    /// Records that mark a key whose value a merge found damaged.
    pub lost_values: u64,
    /// The quarantine files in the directory.
    pub quarantine_files: Vec<String>,
}

impl VerifyReport {
    /// Whether nothing is damaged: no damaged range, no hint problem, no
    /// lost value. Zero tails, uncommitted batch records and quarantine
    /// files are not damage.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.hint_problems.is_empty() && self.lost_values == 0
    }
}

/// Verifies the database in `dir` without changing anything. The caller
/// holds the directory lock (or knows no one writes).
pub fn verify_dir(dir: &Path) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let ids = data_file_ids(dir)?;
    for (i, &id) in ids.iter().enumerate() {
        let newest = i + 1 == ids.len();
        verify_file(dir, id, newest, &mut report)?;
    }
    report.quarantine_files = list_quarantine(dir)?
        .into_iter()
        .map(|(_, _, _, name)| name)
        .collect();
    Ok(report)
}

/// Checks the header of a data file `len` bytes long: `Ok(true)` if it is
/// valid, `Ok(false)` if it is torn or not a data file header, an error for
/// another format version.
pub fn check_header(file: &File, path: &Path, len: u64) -> Result<bool> {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    if len < FILE_HEADER_LEN {
        return Ok(false);
    }
    file.read_exact_at(&mut header, 0)
        .map_err(|e| Error::io("read header of", path, e))?;
    match format::decode_file_header(&header) {
        FileHeader::Current => Ok(true),
        FileHeader::OtherVersion(version) => Err(Error::Corruption(format!(
            "{} was written in data format version {version}, and this libbitcask reads \
             version {}: use a libbitcask that knows version {version}",
            path.display(),
            format::FORMAT_VERSION
        ))),
        FileHeader::Invalid => Ok(false),
    }
}

fn verify_file(dir: &Path, id: u32, newest: bool, report: &mut VerifyReport) -> Result<()> {
    let name = data_file_name(id);
    let path = dir.join(&name);
    let file = File::open(&path).map_err(|e| Error::io("open data file", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    report.data_files += 1;
    let hint = Hint::load(dir, id, len, false)?;
    let at_open = match (&hint, newest) {
        (HintFile::Usable(_), _) => AtOpen::FoundByGets,
        (_, true) => AtOpen::CutAsTail,
        (_, false) => AtOpen::Refused,
    };
    let damaged = |offset: u64, len: u64, reason: String, intact_records: u64| DamagedRange {
        file: name.clone(),
        file_id: id,
        offset,
        len,
        reason,
        intact_records,
        at_open,
        quarantine_file: None,
    };
    if !check_header(&file, &path, len)? {
        if newest && all_zero(&file, &path, len)? {
            // A torn header of a file created by a writer that died: open
            // writes it again. There are no records to check.
            return Ok(());
        }
        let header_len = len.min(FILE_HEADER_LEN);
        let reason = "not a libbitcask data file header (bad magic or checksum)".to_string();
        report.damaged.push(damaged(0, header_len, reason, 0));
    }
    let salvaged = salvage(FileSource::new(&file, len), FILE_HEADER_LEN, |_| {})
        .map_err(|e| Error::io("read", &path, e))?;
    report.records += salvaged.records;
    report.lost_values += salvaged.lost_values;
    for removed in &salvaged.removed {
        if removed.damage_at.is_none() {
            report.uncommitted_batch_records += removed.intact_records;
            continue;
        }
        report.damaged.push(damaged(
            removed.range.start,
            removed.range.end - removed.range.start,
            removed.reason.clone(),
            removed.intact_records,
        ));
    }
    if let Some(offset) = salvaged.zero_tail {
        report.zero_tails.push(ZeroTail {
            file: name.clone(),
            offset,
            len: len - offset,
        });
    }
    let hint_name = hint_file_name(id);
    match hint {
        HintFile::Usable(hint) => check_hint_entries(&file, &hint, &hint_name, id, report),
        HintFile::Unusable(why) => report.hint_problems.push(HintProblem {
            file: hint_name,
            entry: None,
            key: Vec::new(),
            reason: format!("ignored by open: {why}"),
        }),
        // The newest file's hint from the last clean close, made stale by
        // later writes, is expected.
        HintFile::Stale if newest => {}
        HintFile::Stale => report.hint_problems.push(HintProblem {
            file: hint_name,
            entry: None,
            key: Vec::new(),
            reason: "ignored by open: it describes another length of its data file".to_string(),
        }),
        HintFile::Missing => {}
    }
    Ok(())
}

/// Checks every entry of a usable hint against the record it points at.
fn check_hint_entries(
    file: &File,
    hint: &Hint,
    hint_name: &str,
    id: u32,
    report: &mut VerifyReport,
) {
    report.hint_files_checked += 1;
    let len = file.metadata().map_or(0, |m| m.len());
    let mut source = FileSource::new(file, len);
    let mut entry = 0u64;
    let mut problems = Vec::new();
    if let Err(why) = hint.entries_fit(len) {
        report.hint_problems.push(HintProblem {
            file: hint_name.to_string(),
            entry: None,
            key: Vec::new(),
            reason: format!("ignored by open: {why}"),
        });
        return;
    }
    hint.for_each(|kind, key, offset, size| {
        let problem = match source.read(u64::from(offset), size as usize) {
            Ok(bytes) => entry_problem(kind, key, size, bytes),
            Err(e) => Some(format!("reading the record failed: {e}")),
        };
        if let Some(reason) = problem {
            problems.push(HintProblem {
                file: hint_name.to_string(),
                entry: Some(entry),
                key: key.to_vec(),
                reason: format!(
                    "entry for the record at offset {offset} of {}: {reason}",
                    data_file_name(id)
                ),
            });
        }
        entry += 1;
    });
    report.hint_entries_checked += entry;
    report.hint_problems.extend(problems);
}

/// What is wrong with the record `bytes` that a hint entry of `kind`,
/// `key` and `size` points at, if anything.
fn entry_problem(kind: HintKind, key: &[u8], size: u32, bytes: &[u8]) -> Option<String> {
    if bytes.len() != size as usize {
        return Some("the record runs past the end of the file".to_string());
    }
    let header = match format::parse_record_header(bytes) {
        ParsedHeader::Valid(h) => h,
        ParsedHeader::Incomplete => return Some("record header cut short".to_string()),
        ParsedHeader::Invalid(why) => return Some(why.to_string()),
    };
    if header.record_len() != u64::from(size) {
        return Some("the record's length is not the entry's".to_string());
    }
    let body = &bytes[header.header_len..];
    if format::body_crc(body) != header.body_crc {
        return Some("record checksum mismatch".to_string());
    }
    if &body[..(header.key_len as usize).min(body.len())] != key {
        return Some("the record holds another key".to_string());
    }
    let record_kind = RecordKind::from_byte(header.type_byte);
    let agrees = match kind {
        HintKind::Put => matches!(
            record_kind,
            Some(RecordKind::Put | RecordKind::BatchPut | RecordKind::LostValue)
        ),
        HintKind::Delete => matches!(
            record_kind,
            Some(RecordKind::Delete | RecordKind::BatchDelete)
        ),
    };
    (!agrees).then(|| "the record's type is not the entry's".to_string())
}

/// Whether all `len` bytes of the file are zero.
fn all_zero(file: &File, path: &Path, len: u64) -> Result<bool> {
    let mut source = FileSource::new(file, len);
    let mut offset = 0;
    while offset < len {
        let chunk = source
            .read(offset, 1 << 20)
            .map_err(|e| Error::io("read", path, e))?;
        if chunk.is_empty() {
            break;
        }
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
        offset += chunk.len() as u64;
    }
    Ok(true)
}

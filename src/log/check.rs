//! Checking a database directory without opening it: every record of every
//! data file and every hint file is read and verified, and each damaged
//! range is reported with its file and offset. Nothing is locked, written,
//! cut or renamed, so a check runs beside a process that has the database
//! open for writing (a file that process's merge deletes meanwhile is
//! skipped with a note).
//!
//! What counts as damage: a data file header that is not one; a record that
//! fails a check where no crash explains it (the range reported runs to the
//! next record that passes every check, or to the end of the file); a torn
//! end of any file but the newest; a hint file that fails its checksum; a
//! hint entry that does not match the record it points at. Not damage, but
//! noted: the newest file's torn or zero-filled end (what a crash, or a
//! writer that grew the file ahead of its records, leaves: a writable open
//! cuts it), and hint files that describe another length of their data file
//! (open ignores them and scans the data file).

use std::path::{Path, PathBuf};

use super::data_file::DataFile;
use super::dir::data_file_ids;
use super::filename::hint_file_name;
use super::format::{self, FileHeader, ParsedHeader, RecordKind, FILE_HEADER_LEN};
use super::hint::{self, HintKind, HintState};
use super::scanner::{FileSource, ScanEntry, Scanner, Source};
use crate::error::{Error, Result};

/// One damaged range, or one note, of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The data file or hint file.
    pub path: PathBuf,
    /// Where the range starts in that file.
    pub offset: u64,
    /// How many bytes it spans (0 where a length means nothing).
    pub len: u64,
    /// What is wrong there.
    pub what: String,
}

/// What [`check_database`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Data files read.
    pub data_files: u64,
    /// Hint files read and compared with their data files.
    pub hint_files: u64,
    /// Records that passed every check.
    pub records: u64,
    /// Bytes of data files read.
    pub bytes: u64,
    /// Damaged ranges, in file order: empty for a clean database.
    pub damage: Vec<Finding>,
    /// What is not damage but worth knowing (see the module documentation).
    pub notes: Vec<Finding>,
}

/// Checks the database in `dir` (see the module documentation), calling
/// `progress` with the bytes of data files read so far and in all.
pub fn check_database(dir: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
    let ids = data_file_ids(dir)?;
    let Some(&newest) = ids.last() else {
        return Err(Error::InvalidArgument(format!(
            "{} holds no libbitcask data file: there is no database to check",
            dir.display()
        )));
    };
    let mut report = CheckReport::default();
    let mut files = Vec::new();
    let mut total = 0;
    for &id in &ids {
        match DataFile::open(dir, id, false) {
            Ok(file) => {
                total += file.len()?;
                files.push(file);
            }
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                report.notes.push(deleted(dir, id));
            }
            Err(e) => return Err(e),
        }
    }
    for file in &files {
        let len = file.len()?;
        let newest = file.id() == newest;
        let committed = check_data_file(file, len, newest, &mut report)?;
        report.data_files += 1;
        report.bytes += len;
        progress(report.bytes, total);
        if let Some(committed) = committed {
            check_hint(dir, file.id(), len, &committed, &mut report)?;
        }
    }
    Ok(report)
}

fn deleted(dir: &Path, id: u32) -> Finding {
    Finding {
        path: dir.join(super::filename::data_file_name(id)),
        offset: 0,
        len: 0,
        what: "deleted while the check ran (a merge of the process that writes the database)"
            .to_string(),
    }
}

/// A committed record, as a hint entry describes it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Entry {
    offset: u64,
    size: u64,
    delete: bool,
    key_crc: u32,
}

/// Reads every record of `file`; returns its committed records, in the
/// order a hint file lists them (`None` if the header is damaged).
fn check_data_file(
    file: &DataFile,
    len: u64,
    newest: bool,
    report: &mut CheckReport,
) -> Result<Option<Vec<Entry>>> {
    let finding = |offset, len, what: String| Finding {
        path: file.path().to_path_buf(),
        offset,
        len,
        what,
    };
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    let got = len.min(FILE_HEADER_LEN) as usize;
    let mut source = FileSource::new(file.file(), len);
    header[..got].copy_from_slice(
        source
            .read(0, got)
            .map_err(|e| Error::io("read", file.path(), e))?,
    );
    match format::decode_file_header(&header) {
        FileHeader::Current => {}
        FileHeader::OtherVersion(v) => {
            report.damage.push(finding(
                0,
                len,
                format!(
                    "written in data format version {v}, not {}",
                    format::FORMAT_VERSION
                ),
            ));
            return Ok(None);
        }
        FileHeader::Invalid if newest && header.iter().all(|&b| b == 0) => {
            report.notes.push(finding(
                0,
                len,
                "header not written yet (the file is being created, or its creator died)"
                    .to_string(),
            ));
            return Ok(None);
        }
        FileHeader::Invalid => {
            report.damage.push(finding(
                0,
                len,
                "not a libbitcask data file header (bad magic or checksum)".to_string(),
            ));
            return Ok(None);
        }
    }
    let mut committed = Vec::new();
    let mut pending: Vec<Entry> = Vec::new();
    let mut start = FILE_HEADER_LEN;
    'ranges: while start < len {
        let mut scanner = Scanner::new(FileSource::new(file.file(), len), start);
        loop {
            let entry = scanner
                .next_entry()
                .map_err(|e| Error::io("read", file.path(), e))?;
            match entry {
                ScanEntry::Record {
                    offset,
                    len: size,
                    kind,
                    key,
                    value,
                } => {
                    report.records += 1;
                    let entry = Entry {
                        offset,
                        size,
                        delete: matches!(kind, RecordKind::Delete | RecordKind::BatchDelete),
                        key_crc: crc32fast::hash(key),
                    };
                    match kind {
                        RecordKind::Put | RecordKind::Delete | RecordKind::LostValue => {
                            pending.clear();
                            committed.push(entry);
                        }
                        RecordKind::BatchPut | RecordKind::BatchDelete => pending.push(entry),
                        RecordKind::BatchCommit => {
                            let count = format::decode_batch_commit(key, value)
                                .map_or(usize::MAX, |(_, count)| count as usize);
                            if count > pending.len() {
                                report.damage.push(finding(
                                    offset,
                                    size,
                                    "batch commit record claims more records than precede it"
                                        .to_string(),
                                ));
                            } else {
                                committed.extend_from_slice(&pending[pending.len() - count..]);
                            }
                            pending.clear();
                        }
                    }
                }
                ScanEntry::End => break 'ranges,
                ScanEntry::TornTail { offset, reason } => {
                    let what = reason.to_string();
                    if newest {
                        report.notes.push(finding(
                            offset,
                            len - offset,
                            format!(
                                "{what}: the end of the newest file, as a crash or a writer \
                                     at work leaves it (a writable open cuts it off)"
                            ),
                        ));
                    } else {
                        report.damage.push(finding(
                            offset,
                            len - offset,
                            format!("{what}, in a file that is no longer written to"),
                        ));
                    }
                    break 'ranges;
                }
                ScanEntry::Corrupt { offset, reason } => {
                    pending.clear();
                    let next = next_good_record(file, len, offset + 1)?;
                    let end = next.unwrap_or(len);
                    report.damage.push(finding(offset, end - offset, reason));
                    match next {
                        Some(next) => {
                            start = next;
                            continue 'ranges;
                        }
                        None => break 'ranges,
                    }
                }
            }
        }
    }
    Ok(Some(committed))
}

/// The first offset from `from` on where a record passes every check.
fn next_good_record(file: &DataFile, len: u64, from: u64) -> Result<Option<u64>> {
    let mut source = FileSource::new(file.file(), len);
    let io = |e| Error::io("read", file.path(), e);
    for at in from..len {
        let header = match format::parse_record_header(
            source.read(at, format::MAX_RECORD_HEADER_LEN).map_err(io)?,
        ) {
            ParsedHeader::Valid(h) => h,
            _ => continue,
        };
        if RecordKind::from_byte(header.type_byte).is_none()
            || header.key_len == 0
            || at + header.record_len() > len
        {
            continue;
        }
        let body_len = header.key_len as usize + header.value_len as usize;
        let body = source
            .read(at + header.header_len as u64, body_len)
            .map_err(io)?;
        if format::body_crc(body) == header.body_crc {
            return Ok(Some(at));
        }
    }
    Ok(None)
}

/// Compares the hint file of data file `id` with its committed records.
fn check_hint(
    dir: &Path,
    id: u32,
    len: u64,
    committed: &[Entry],
    report: &mut CheckReport,
) -> Result<()> {
    let path = dir.join(hint_file_name(id));
    let finding = |offset, what: String| Finding {
        path: path.clone(),
        offset,
        len: 0,
        what,
    };
    let hint = match hint::inspect(dir, id, len)? {
        HintState::Missing => return Ok(()),
        HintState::Stale => {
            report.notes.push(finding(
                0,
                "describes another length of its data file: open ignores it and scans the \
                 data file"
                    .to_string(),
            ));
            return Ok(());
        }
        HintState::Damaged(why) => {
            report
                .damage
                .push(finding(0, format!("{why}: open ignores it")));
            return Ok(());
        }
        HintState::Intact(hint) => hint,
    };
    report.hint_files += 1;
    let mut at = 0;
    let mut mismatch = None;
    let decoded = hint.for_each(|kind, key, offset, size| {
        if mismatch.is_none() {
            let entry = Entry {
                offset: u64::from(offset),
                size: u64::from(size),
                delete: kind == HintKind::Delete,
                key_crc: crc32fast::hash(key),
            };
            if committed.get(at) != Some(&entry) {
                mismatch = Some((at, entry.offset));
            }
        }
        at += 1;
    });
    if !decoded {
        report.damage.push(finding(
            0,
            "passes its checksum but does not decode".to_string(),
        ));
    } else if let Some((n, offset)) = mismatch {
        report.damage.push(finding(
            0,
            format!(
                "entry {n} (for data file offset {offset}) does not match the data file's \
                 record there"
            ),
        ));
    } else if at != committed.len() {
        report.damage.push(finding(
            0,
            format!(
                "lists {at} records, and the data file holds {} committed ones",
                committed.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::format::encode_record;
    use crate::log::hint::{write_hint_file, HintBuilder};
    use crate::log::RecordPos;
    use std::fs;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("bitcask-check-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A data file of `n` puts, and its hint file; returns the record offsets.
    fn make_file(dir: &Path, id: u32, n: u32) -> Vec<u64> {
        let mut bytes = format::encode_file_header().to_vec();
        let mut hint = HintBuilder::new(id);
        let mut offsets = Vec::new();
        for i in 0..n {
            let start = bytes.len();
            let key = format!("key{i}");
            encode_record(RecordKind::Put, key.as_bytes(), b"some value", &mut bytes);
            offsets.push(start as u64);
            let pos = RecordPos {
                file_id: id,
                offset: start as u32,
                size: (bytes.len() - start) as u32,
            };
            hint.push(HintKind::Put, key.as_bytes(), pos);
        }
        let len = bytes.len() as u64;
        fs::write(dir.join(super::super::filename::data_file_name(id)), bytes).unwrap();
        write_hint_file(dir, id, &hint.finish(len, 0)).unwrap();
        offsets
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at as usize] ^= 0x10;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn a_clean_database_has_no_damage_and_every_flipped_byte_is_found() {
        let dir = temp_dir("flip");
        let offsets = make_file(&dir, 1, 50);
        make_file(&dir, 2, 5);
        let clean = check_database(&dir, &mut |_, _| {}).unwrap();
        assert_eq!(clean.damage, vec![]);
        assert_eq!(
            (clean.data_files, clean.hint_files, clean.records),
            (2, 2, 55)
        );
        // Two damaged records in the older file: two ranges, each up to
        // the next good record, and the hint no longer matches.
        let data = dir.join("000000001.data");
        flip(&data, offsets[10] + 8);
        flip(&data, offsets[30] + 20);
        let report = check_database(&dir, &mut |_, _| {}).unwrap();
        let ranges: Vec<_> = report
            .damage
            .iter()
            .filter(|f| f.path == data)
            .map(|f| (f.offset, f.offset + f.len))
            .collect();
        assert_eq!(
            ranges,
            [(offsets[10], offsets[11]), (offsets[30], offsets[31])],
            "{report:#?}"
        );
        assert_eq!(report.records, 53);
        assert!(report
            .damage
            .iter()
            .any(|f| f.path == dir.join("000000001.hint")));
        // A flipped byte in a hint file.
        flip(&dir.join("000000002.hint"), 40);
        let report = check_database(&dir, &mut |_, _| {}).unwrap();
        assert!(report
            .damage
            .iter()
            .any(|f| f.path == dir.join("000000002.hint") && f.what.contains("checksum")));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_newest_files_zero_filled_end_is_a_note_and_elsewhere_damage() {
        let dir = temp_dir("torn");
        make_file(&dir, 1, 3);
        make_file(&dir, 2, 3);
        for id in [1, 2] {
            let path = dir.join(super::super::filename::data_file_name(id));
            let mut bytes = fs::read(&path).unwrap();
            bytes.extend_from_slice(&[0; 64]);
            fs::write(&path, bytes).unwrap();
        }
        let report = check_database(&dir, &mut |_, _| {}).unwrap();
        let paths = |list: &[Finding]| -> Vec<String> {
            list.iter()
                .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(paths(&report.damage), ["000000001.data"], "{report:#?}");
        assert!(paths(&report.notes).contains(&"000000002.data".to_string()));
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Verify: a read-only check of a whole database directory. Every data
//! file is read in full with the salvage scan (`salvage.rs`), so that every
//! damaged range is found, not only the first; every entry of every usable
//! hint file is checked against the record it points at. Nothing is
//! changed. The report says, for each damaged range, what open would do
//! with it.
//!
//! It runs in one of two ways (the caller, `maintenance/offline.rs`, picks
//! one by trying the directory lock):
//!
//! - **alone** (the lock held, or a read-only file system): no one writes
//!   while it reads, so every file is judged as open would judge it.
//! - **beside a writer** (another handle holds the lock): the files listed
//!   when it starts are read as they are then. Sealed files are immutable,
//!   so they are judged as when alone. The newest file may be growing: it
//!   is read up to its first record that fails a check, and what lies past
//!   that is a note, not damage (a record being appended, space allocated
//!   ahead of the appends, or damage: which, only a check without the
//!   writer can tell). A file that a merge of the writer deletes before it
//!   is opened is skipped, with a note; files made after the listing (new
//!   data files, merge outputs) are not read.
//!
//! Notes (not damage, but worth knowing): the newest file's torn end, as a
//! killed writer leaves it (open cuts it); a header not yet written; and
//! the two kinds of note of a check beside a writer above. The report's
//! types are in `verify_report.rs`.

use std::fs::File;
use std::path::Path;

use super::data_file::{read_header, Header, NOT_A_HEADER};
use super::dir::data_file_ids;
use super::filename::{data_file_name, hint_file_name};
use super::format::{self, ParsedHeader, RecordKind, FILE_HEADER_LEN};
use super::hint::{Hint, HintFile, HintKind};
use super::quarantine::list_quarantine;
use super::salvage::{salvage, Salvage, ScanProgress, Until};
use super::scanner::{zeros_to_end, FileSource, Source};
use super::verify_report::{AtOpen, DamagedRange, HintProblem, VerifyNote, VerifyReport, ZeroTail};
use crate::error::{Error, Result};
use crate::failpoint;

/// Verifies the database in `dir` without changing anything: alone, or
/// beside a writer (see the module documentation), calling `progress` with
/// the bytes of data files read so far and in all. The caller holds the
/// directory lock, or knows that no one writes, unless `beside_writer`.
pub fn verify_dir(
    dir: &Path,
    beside_writer: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        beside_writer,
        ..VerifyReport::default()
    };
    let ids = data_file_ids(dir)?;
    let Some(&newest) = ids.last() else {
        return Err(Error::InvalidArgument(format!(
            "{} holds no libbitcask data file: there is no database to verify",
            dir.display()
        )));
    };
    failpoint::hit("verify:listed");
    // Every file opened first: the total for the progress, and a file a
    // merge deletes afterwards stays readable through its descriptor.
    let mut files = Vec::with_capacity(ids.len());
    for id in ids {
        let path = dir.join(data_file_name(id));
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if beside_writer && e.kind() == std::io::ErrorKind::NotFound => {
                report.notes.push(VerifyNote {
                    file: data_file_name(id),
                    offset: 0,
                    len: 0,
                    what: "deleted before it could be read (a merge of the writer): skipped"
                        .to_string(),
                });
                continue;
            }
            Err(e) => return Err(Error::io("open data file", &path, e)),
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        files.push((id, file, len));
    }
    let total = files.iter().map(|(_, _, len)| len).sum();
    let mut progress = ScanProgress::new(total, progress);
    for (id, file, len) in &files {
        let place = Place {
            dir,
            id: *id,
            file,
            len: *len,
            newest: *id == newest,
            beside_writer,
        };
        verify_file(&place, &mut report, &mut progress)?;
        report.data_files += 1;
        report.bytes += len;
        progress.file_read(*len);
    }
    report.quarantine_files = list_quarantine(dir)?
        .into_iter()
        .map(|(_, _, _, name)| name)
        .collect();
    Ok(report)
}

/// One data file being verified, and how.
struct Place<'a> {
    dir: &'a Path,
    id: u32,
    file: &'a File,
    /// Its length when verify began.
    len: u64,
    /// The newest data file listed.
    newest: bool,
    beside_writer: bool,
}

impl Place<'_> {
    fn name(&self) -> String {
        data_file_name(self.id)
    }

    fn note(&self, offset: u64, len: u64, what: String) -> VerifyNote {
        VerifyNote {
            file: self.name(),
            offset,
            len,
            what,
        }
    }
}

/// The notes of what lies past the newest file's last good record when a
/// writer may be appending there.
const UNREAD_BESIDE_WRITER: &str = "not read: past the last good record of the newest data file, \
     which the writer that has the database open appends to";

fn verify_file(
    place: &Place,
    report: &mut VerifyReport,
    progress: &mut ScanProgress,
) -> Result<()> {
    let (id, len, newest) = (place.id, place.len, place.newest);
    let path = place.dir.join(place.name());
    let hint = Hint::load(place.dir, id, len, false)?;
    let at_open = match (&hint, newest) {
        (HintFile::Usable(_), _) => AtOpen::FoundByGets,
        (_, true) => AtOpen::CutAsTail,
        (_, false) => AtOpen::Refused,
    };
    let damaged = |offset: u64, len: u64, reason: String, intact_records: u64| DamagedRange {
        file: place.name(),
        file_id: id,
        offset,
        len,
        reason,
        intact_records,
        at_open,
        quarantine_file: None,
    };
    if let Header::Invalid(bytes) = read_header(place.file, &path, len)? {
        if newest && place.beside_writer && format::is_partial_file_header(&bytes) {
            let what = "header not written yet: the writer is creating this file".to_string();
            report.notes.push(place.note(0, len, what));
            return Ok(());
        }
        let zeros = zeros_to_end(&mut FileSource::new(place.file, len), 0)
            .map_err(|e| Error::io("read", &path, e))?;
        if newest && zeros {
            // A torn header of a file created by a writer that died: open
            // writes it again. There are no records to check.
            let what = "header torn (its creator died): open writes it again".to_string();
            report.notes.push(place.note(0, len, what));
            return Ok(());
        }
        let header_len = len.min(FILE_HEADER_LEN);
        report
            .damaged
            .push(damaged(0, header_len, NOT_A_HEADER.to_string(), 0));
    }
    // Beside a writer, the newest file is read only as far as it is good.
    let until = match newest && place.beside_writer {
        true => Until::FirstFailure,
        false => Until::End,
    };
    let salvaged = salvage(
        FileSource::new(place.file, len),
        FILE_HEADER_LEN,
        until,
        |r| progress.reading(r.offset),
    )
    .map_err(|e| Error::io("read", &path, e))?;
    report.records += salvaged.records;
    report.lost_values += salvaged.lost_values;
    if let Some(stopped) = &salvaged.stopped {
        let what = match stopped.zeros {
            true => format!("{UNREAD_BESIDE_WRITER} (zeros: space allocated ahead of its appends)"),
            false => format!(
                "{UNREAD_BESIDE_WRITER} (a record being appended, or damage: {})",
                stopped.reason
            ),
        };
        report
            .notes
            .push(place.note(stopped.offset, len - stopped.offset, what));
    }
    add_removed(place, &salvaged, &hint, report, damaged);
    if let Some(offset) = salvaged.zero_tail {
        report.zero_tails.push(ZeroTail {
            file: place.name(),
            offset,
            len: len - offset,
        });
    }
    let hint_name = hint_file_name(id);
    match hint {
        HintFile::Usable(hint) => check_hint_entries(place.file, &hint, &hint_name, id, report),
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

/// Reports the ranges a salvage scan took out of a file: damage, except a
/// torn end of the newest file that open reads without a hint (what a
/// killed writer leaves: a note), and batch records without their commit
/// record at the end (counted).
fn add_removed(
    place: &Place,
    salvaged: &Salvage,
    hint: &HintFile,
    report: &mut VerifyReport,
    damaged: impl Fn(u64, u64, String, u64) -> DamagedRange,
) {
    let scanned_at_open = !matches!(hint, HintFile::Usable(_));
    for removed in &salvaged.removed {
        let (start, end) = (removed.range.start, removed.range.end);
        if removed.damage_at.is_none() {
            report.uncommitted_batch_records += removed.intact_records;
        } else if removed.torn_tail && place.newest && scanned_at_open {
            let what = format!(
                "{}: the end of the newest file as a crash leaves it (open cuts it off, into a \
                 quarantine file)",
                removed.reason
            );
            report.notes.push(place.note(start, end - start, what));
        } else {
            let reason = removed.reason.clone();
            report
                .damaged
                .push(damaged(start, end - start, reason, removed.intact_records));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::format::encode_record;
    use crate::log::hint::{write_hint_file, HintBuilder};
    use crate::log::RecordPos;
    use std::fs;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("bitcask-verify-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A data file of `n` puts, and its hint file unless `hinted` is
    /// false; returns the record offsets and the file's length.
    fn make_file(dir: &Path, id: u32, n: u32, hinted: bool) -> (Vec<u64>, u64) {
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
        fs::write(dir.join(data_file_name(id)), bytes).unwrap();
        if hinted {
            write_hint_file(dir, id, &hint.finish(len, 0)).unwrap();
        }
        (offsets, len)
    }

    fn flip(path: &Path, at: u64) {
        let mut bytes = fs::read(path).unwrap();
        bytes[at as usize] ^= 0x10;
        fs::write(path, bytes).unwrap();
    }

    fn append(path: &Path, more: &[u8]) {
        let mut bytes = fs::read(path).unwrap();
        bytes.extend_from_slice(more);
        fs::write(path, bytes).unwrap();
    }

    fn verify(dir: &Path, beside_writer: bool) -> VerifyReport {
        verify_dir(dir, beside_writer, &mut |_, _| {}).unwrap()
    }

    #[test]
    fn a_clean_database_has_no_damage_and_every_flipped_byte_is_found() {
        let dir = temp_dir("flip");
        let (offsets, _) = make_file(&dir, 1, 50, true);
        make_file(&dir, 2, 5, true);
        for beside_writer in [false, true] {
            let clean = verify(&dir, beside_writer);
            assert!(clean.is_clean() && clean.notes.is_empty(), "{clean:#?}");
            assert_eq!(clean.beside_writer, beside_writer);
            assert_eq!(
                (clean.data_files, clean.hint_files_checked, clean.records),
                (2, 2, 55)
            );
        }
        // Two damaged records in the older file: two ranges, each up to
        // the next good record, and the hint entries of both disagree.
        let data = dir.join(data_file_name(1));
        flip(&data, offsets[10] + 8);
        flip(&data, offsets[30] + 20);
        for beside_writer in [false, true] {
            let report = verify(&dir, beside_writer);
            let ranges: Vec<_> = report
                .damaged
                .iter()
                .map(|d| (d.file.as_str(), d.offset, d.offset + d.len, d.at_open))
                .collect();
            let name = data_file_name(1);
            assert_eq!(
                ranges,
                [
                    (name.as_str(), offsets[10], offsets[11], AtOpen::FoundByGets),
                    (name.as_str(), offsets[30], offsets[31], AtOpen::FoundByGets)
                ],
                "{report:#?}"
            );
            assert_eq!(report.records, 53);
            let entries: Vec<_> = report.hint_problems.iter().map(|p| p.entry).collect();
            assert_eq!(entries, [Some(10), Some(30)]);
        }
        // A flipped byte in a hint file.
        flip(&dir.join(hint_file_name(2)), 40);
        let report = verify(&dir, false);
        assert!(report
            .hint_problems
            .iter()
            .any(|p| p.file == hint_file_name(2) && p.reason.contains("checksum")));
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The newest file's torn end, as a killed writer leaves it, is a note;
    /// the same in a sealed file is damage that open refuses.
    #[test]
    fn a_torn_end_is_a_note_in_the_newest_file_and_damage_in_a_sealed_one() {
        let dir = temp_dir("torn");
        make_file(&dir, 1, 3, false);
        make_file(&dir, 2, 3, false);
        let mut torn = Vec::new();
        encode_record(RecordKind::Put, b"torn", b"a value cut short", &mut torn);
        torn.truncate(torn.len() - 5);
        for id in [1, 2] {
            append(&dir.join(data_file_name(id)), &torn);
        }
        let report = verify(&dir, false);
        let damaged: Vec<_> = report
            .damaged
            .iter()
            .map(|d| (&d.file, d.at_open))
            .collect();
        assert_eq!(
            damaged,
            [(&data_file_name(1), AtOpen::Refused)],
            "{report:#?}"
        );
        assert_eq!(report.notes.len(), 1, "{report:#?}");
        assert_eq!(report.notes[0].file, data_file_name(2));
        assert!(report.notes[0].what.contains("open cuts it"));
        assert_eq!(report.records, 6);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Garbage between good records of the newest file: alone, damage that
    /// open cuts as the tail (the control); beside a writer, where the file
    /// may be growing, the end of what is read, noted, and nothing after it
    /// is read.
    #[test]
    fn beside_a_writer_the_newest_file_is_read_up_to_its_first_bad_record() {
        let dir = temp_dir("beside");
        make_file(&dir, 1, 4, true);
        let (_, good_end) = make_file(&dir, 2, 4, false);
        let newest = dir.join(data_file_name(2));
        let mut more = vec![0x5a; 40];
        encode_record(RecordKind::Put, b"after", b"the garbage", &mut more);
        append(&newest, &more);
        let len = good_end + more.len() as u64;

        let alone = verify(&dir, false);
        assert_eq!(alone.damaged.len(), 1, "{alone:#?}");
        assert_eq!(alone.damaged[0].at_open, AtOpen::CutAsTail);
        assert_eq!(
            (alone.damaged[0].offset, alone.records),
            (good_end, 9),
            "the record after the garbage is found and counted"
        );

        let beside = verify(&dir, true);
        assert!(beside.is_clean(), "{beside:#?}");
        assert_eq!(beside.records, 8);
        assert_eq!(beside.notes.len(), 1);
        let note = &beside.notes[0];
        assert_eq!(
            (note.file.as_str(), note.offset, note.len),
            (data_file_name(2).as_str(), good_end, len - good_end)
        );
        assert!(note.what.contains("not read"), "{}", note.what);
        // In a sealed file the same garbage is damage beside a writer too.
        make_file(&dir, 3, 1, false);
        let sealed = verify(&dir, true);
        assert_eq!(sealed.damaged.len(), 1, "{sealed:#?}");
        assert_eq!(sealed.damaged[0].at_open, AtOpen::Refused);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_header_being_written_is_a_note_beside_a_writer_and_zeros_alone() {
        let dir = temp_dir("header");
        make_file(&dir, 1, 2, true);
        let newest = dir.join(data_file_name(2));
        let mut partial = format::encode_file_header()[..7].to_vec();
        partial.resize(4096, 0);
        fs::write(&newest, &partial).unwrap();
        let beside = verify(&dir, true);
        assert!(beside.is_clean(), "{beside:#?}");
        assert!(beside.notes[0].what.contains("header not written yet"));
        // Alone, a partial header is damage; an all-zero one a torn header.
        let alone = verify(&dir, false);
        assert_eq!(alone.damaged.len(), 1, "{alone:#?}");
        fs::write(&newest, vec![0; 4096]).unwrap();
        let alone = verify(&dir, false);
        assert!(alone.is_clean(), "{alone:#?}");
        assert!(alone.notes[0].what.contains("header torn"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn progress_counts_every_byte_of_every_data_file_once() {
        let dir = temp_dir("progress");
        make_file(&dir, 1, 120_000, true);
        make_file(&dir, 2, 10, false);
        let total: u64 = [1, 2]
            .iter()
            .map(|&id| fs::metadata(dir.join(data_file_name(id))).unwrap().len())
            .sum();
        assert!(total > 2 << 20, "large enough for reports within a file");
        let mut seen = Vec::new();
        let report = verify_dir(&dir, false, &mut |done, all| seen.push((done, all))).unwrap();
        assert_eq!(report.bytes, total);
        assert!(seen.iter().all(|&(_, all)| all == total));
        assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "{seen:?}");
        assert_eq!(seen.last(), Some(&(total, total)));
        assert!(seen.len() > 3, "reported within the large file: {seen:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_without_data_files_is_no_database() {
        let dir = temp_dir("empty");
        let err = verify_dir(&dir, false, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Repair of a database that is not open: every data file is read with the
//! salvage scan (`salvage.rs`); a file with damaged ranges (or a zero tail)
//! is rewritten with every record that passes its checks, in order, after
//! the damaged bytes have gone to quarantine files; every data file gets a
//! fresh hint file. With [`RepairOptions::restore_quarantined`], the intact
//! records of tails that open cut into quarantine come back too, where no
//! later record of their key exists.
//!
//! Order of the steps, each durable before the next: quarantine files
//! (synced, directory synced), then the rewritten data file under its
//! temporary name (synced), the old hint file removed, the rename over the
//! old data file, the directory synced, and then its new hint file. A
//! crash at any moment leaves either the old data file or the new one,
//! with its damaged bytes safe in a quarantine file in both cases (the
//! next open removes a leftover temporary file).

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::data_file::{read_header, DataFile, Header};
use super::dir::{data_file_ids, sync_dir};
use super::filename::{data_file_name, hint_file_name, FileName};
use super::format::{self, RecordKind, FILE_HEADER_LEN};
use super::hint::{self, Hint, HintFile};
use super::quarantine::{self, list_quarantine, quarantine_range};
use super::recovery::{build_hint, remove_leftovers};
use super::salvage::{salvage, Salvage, ScanProgress, Until};
use super::scanner::{BytesSource, FileSource};
use super::verify_report::{AtOpen, DamagedRange};
use crate::error::{Error, Result};

/// How [`crate::repair`] works.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairOptions {
    /// Also bring back the intact records of the tails that open cut off
    /// the newest data file into quarantine files: each record whose key
    /// has no later record in the database is written again. Off by
    /// default: a tail is usually a torn write whose records were never
    /// acknowledged as durable; but a tail cut because of damage in the
    /// middle of the newest file (open reports the intact records it held)
    /// holds good records. Records of a write batch come back only with
    /// their whole batch.
    pub restore_quarantined: bool,
}

/// What [`crate::repair`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Data files read.
    pub data_files: u64,
    /// Data files rewritten without their damaged ranges (or zero tails).
    pub files_rewritten: Vec<String>,
    /// Records kept: every record that passes its checks, in every data file.
    pub records_kept: u64,
    /// Every damaged range taken out, with the quarantine file that holds
    /// its bytes. A damaged range may have held the latest write of some
    /// key (a value or a delete): such a key now shows its previous value,
    /// or comes back if the lost write deleted it.
    pub damaged: Vec<DamagedRange>,
    /// Intact records taken out with damaged ranges (the records of a write
    /// batch that a damaged range cut, which cannot be kept alone), plus
    /// batch records that ended a file without their commit record.
    pub batch_records_dropped: u64,
    /// Bytes written to quarantine files (trailing zeros are not stored).
    pub bytes_quarantined: u64,
    /// The quarantine files written.
    pub quarantine_files_written: Vec<String>,
    /// Zero bytes cut off the ends of data files.
    pub zero_bytes_cut: u64,
    /// Hint files written.
    pub hint_files_written: u64,
    /// Records brought back from quarantine files (with `restore_quarantined`).
    pub records_restored: u64,
    /// The data file the restored records were written to.
    pub restored_into: Option<String>,
    /// Quarantine files not restored from, with why.
    pub restore_skipped: Vec<String>,
    /// Records that mark a key whose value a merge found damaged: kept, so
    /// such a key answers corruption until it is written again or deleted.
    pub lost_values: u64,
}

/// What repair found in one data file before changing anything.
struct Scanned {
    id: u32,
    len: u64,
    header_ok: bool,
    salvage: Salvage,
}

/// Repairs the database in `dir`, calling `progress` with the bytes of data
/// files read so far and in all as it scans them (the long part: the files
/// it then rewrites are the damaged ones). The caller holds the directory
/// lock.
pub fn repair_dir(
    dir: &Path,
    options: &RepairOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    let ids = data_file_ids(dir)?;
    remove_leftovers(dir, &ids)?;
    // Quarantined tails to restore from, read before anything changes.
    let candidates = if options.restore_quarantined {
        quarantined_records(dir, &mut report)?
    } else {
        Vec::new()
    };
    let wanted: HashSet<Vec<u8>> = candidates.iter().map(|c| c.key.clone()).collect();
    // The latest record of each wanted key, by (file id, offset).
    let mut latest: HashMap<Vec<u8>, (u32, u64)> = HashMap::new();
    let mut scanned = Vec::with_capacity(ids.len());
    let mut total = 0;
    for &id in &ids {
        let path = dir.join(data_file_name(id));
        total += fs::metadata(&path)
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
    }
    let mut progress = ScanProgress::new(total, progress);
    for (i, &id) in ids.iter().enumerate() {
        let newest = i + 1 == ids.len();
        let place = (id, newest);
        if let Some(found) = scan(dir, place, &wanted, &mut latest, &mut progress)? {
            scanned.push(found);
        }
    }
    for found in &scanned {
        fix_file(dir, found, ids.last() == Some(&found.id), &mut report)?;
    }
    if !candidates.is_empty() {
        let next_id = ids.last().map_or(Some(1), |id| id.checked_add(1));
        let next_id = next_id.ok_or_else(|| {
            Error::Internal("data file ids are exhausted (2^32 files)".to_string())
        })?;
        restore(dir, next_id, candidates, &latest, &mut report)?;
    }
    Ok(report)
}

/// Reads data file `id` with the salvage scan, noting the latest record of
/// every wanted key. `None` for the newest file when it holds no record
/// and its header is torn: it is written again.
fn scan(
    dir: &Path,
    (id, newest): (u32, bool),
    wanted: &HashSet<Vec<u8>>,
    latest: &mut HashMap<Vec<u8>, (u32, u64)>,
    progress: &mut ScanProgress,
) -> Result<Option<Scanned>> {
    let path = dir.join(data_file_name(id));
    let file = File::open(&path).map_err(|e| Error::io("open data file", &path, e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io("stat", &path, e))?
        .len();
    let header_ok = matches!(read_header(&file, &path, len)?, Header::Valid);
    if !header_ok && newest && len <= FILE_HEADER_LEN {
        DataFile::open(dir, id, true)?.write_header()?;
        progress.file_read(len);
        return Ok(None);
    }
    let salvage = salvage(
        FileSource::new(&file, len),
        FILE_HEADER_LEN,
        Until::End,
        |record| {
            progress.reading(record.offset);
            if wanted.contains(record.key) {
                latest.insert(record.key.to_vec(), (id, record.offset));
            }
        },
    )
    .map_err(|e| Error::io("read", &path, e))?;
    progress.file_read(len);
    Ok(Some(Scanned {
        id,
        len,
        header_ok,
        salvage,
    }))
}

/// Rewrites one data file without its damaged ranges if it has any, and
/// writes its hint file if it has no usable one.
fn fix_file(dir: &Path, found: &Scanned, newest: bool, report: &mut RepairReport) -> Result<()> {
    let id = found.id;
    let name = data_file_name(id);
    let path = dir.join(&name);
    report.data_files += 1;
    report.records_kept += found.salvage.records;
    report.lost_values += found.salvage.lost_values;
    let usable_hint = matches!(Hint::load(dir, id, found.len, false)?, HintFile::Usable(_));
    if found.header_ok && found.salvage.is_clean() {
        if !usable_hint {
            write_hint(dir, id, report)?;
        }
        return Ok(());
    }
    let at_open = match (usable_hint, newest) {
        (true, _) => AtOpen::FoundByGets,
        (false, true) => AtOpen::CutAsTail,
        (false, false) => AtOpen::Refused,
    };
    let source = File::open(&path).map_err(|e| Error::io("open data file", &path, e))?;
    if !found.header_ok {
        let reason = "repair: not a libbitcask data file header (bad magic or checksum)";
        let end = found.len.min(FILE_HEADER_LEN);
        let quarantined = quarantine_range(dir, &source, id, 0, end, reason)?;
        let quarantine_file = note_quarantine(quarantined, report);
        report.damaged.push(DamagedRange {
            file: name.clone(),
            file_id: id,
            offset: 0,
            len: end,
            reason: reason.to_string(),
            intact_records: 0,
            at_open,
            quarantine_file,
        });
    }
    for removed in &found.salvage.removed {
        report.batch_records_dropped += removed.intact_records;
        let reason = format!("repair: {}", removed.reason);
        let quarantined = quarantine_range(
            dir,
            &source,
            id,
            removed.range.start,
            removed.range.end,
            &reason,
        )?;
        let quarantine_file = note_quarantine(quarantined, report);
        if removed.damage_at.is_some() {
            report.damaged.push(DamagedRange {
                file: name.clone(),
                file_id: id,
                offset: removed.range.start,
                len: removed.range.end - removed.range.start,
                reason: removed.reason.clone(),
                intact_records: removed.intact_records,
                at_open,
                quarantine_file,
            });
        }
    }
    if let Some(zeros) = found.salvage.zero_tail {
        report.zero_bytes_cut += found.len - zeros;
    }
    // The kept records, under the temporary name, synced.
    let temp = dir.join(FileName::TempData(id).name());
    let written = (|| -> io::Result<()> {
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp)?;
        out.write_all(&format::encode_file_header())?;
        let mut buf = vec![0u8; 1 << 20];
        for run in &found.salvage.kept {
            let mut at = run.start;
            while at < run.end {
                let n = buf.len().min((run.end - at) as usize);
                source.read_exact_at(&mut buf[..n], at)?;
                out.write_all(&buf[..n])?;
                at += n as u64;
            }
        }
        out.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write repaired data file", &temp, e));
    }
    // The old hint describes the old file: gone before the new file is.
    match fs::remove_file(dir.join(hint_file_name(id))) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::io(
                "remove hint file",
                &dir.join(hint_file_name(id)),
                e,
            ))
        }
    }
    fs::rename(&temp, &path).map_err(|e| Error::io("rename repaired data file to", &path, e))?;
    sync_dir(dir)?;
    report.files_rewritten.push(name);
    write_hint(dir, id, report)
}

fn note_quarantine(
    quarantined: Option<(String, u64)>,
    report: &mut RepairReport,
) -> Option<String> {
    let (name, stored) = quarantined?;
    report.bytes_quarantined += stored;
    report.quarantine_files_written.push(name.clone());
    Some(name)
}

/// Writes the hint file of data file `id`, which now ends with a record.
fn write_hint(dir: &Path, id: u32, report: &mut RepairReport) -> Result<()> {
    let file = DataFile::open(dir, id, false)?;
    let bytes = build_hint(&file)?;
    hint::write_hint_file(dir, id, &bytes)?;
    report.hint_files_written += 1;
    Ok(())
}

/// An intact record of a quarantined tail, with its place in the log: the
/// tail came from data file `source_id` at `source_offset`, before anything
/// written there after the cut; `n` and `index` order it among the others.
struct Candidate {
    order: (u32, u64, u32, u64),
    kind: RecordKind,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// The intact records of the tails open cut into quarantine (committed
/// batches whole, in the order open would apply them).
fn quarantined_records(dir: &Path, report: &mut RepairReport) -> Result<Vec<Candidate>> {
    let listed = list_quarantine(dir)?;
    // When repair last rewrote each data file (the latest of its quarantine
    // files): offsets in that file no longer compare with older tails.
    let mut rewritten_at: HashMap<u32, std::time::SystemTime> = HashMap::new();
    let mut infos = Vec::new();
    for (id, _, _, name) in &listed {
        let Some(info) = quarantine::read_info(dir, name)? else {
            report
                .restore_skipped
                .push(format!("{name}: not an intact quarantine file"));
            continue;
        };
        let modified = fs::metadata(dir.join(name))
            .and_then(|m| m.modified())
            .map_err(|e| Error::io("stat", &dir.join(name), e))?;
        if info.reason.starts_with("repair:") {
            let at = rewritten_at.entry(*id).or_insert(modified);
            *at = (*at).max(modified);
        }
        infos.push((info, modified));
    }
    let mut candidates = Vec::new();
    for (info, modified) in infos {
        if !info.reason.starts_with("open:") {
            continue;
        }
        if rewritten_at
            .get(&info.source_id)
            .is_some_and(|&at| at > modified)
        {
            report.restore_skipped.push(format!(
                "{}: {} was rewritten by a repair after this tail was cut, so its offsets no \
                 longer tell which records came later",
                info.name,
                data_file_name(info.source_id)
            ));
            continue;
        }
        let Some(bytes) = quarantine::read_bytes(dir, &info)? else {
            report
                .restore_skipped
                .push(format!("{}: its bytes fail their checksum", info.name));
            continue;
        };
        let n = match FileName::parse(&info.name) {
            Some(FileName::Quarantine { n, .. }) => n,
            _ => 1,
        };
        let mut index = 0;
        salvage(BytesSource::new(bytes), 0, Until::End, |record| {
            if record.kind != RecordKind::BatchCommit {
                candidates.push(Candidate {
                    order: (info.source_id, info.source_offset, n, index),
                    kind: record.kind,
                    key: record.key.to_vec(),
                    value: record.value.to_vec(),
                });
                index += 1;
            }
        })
        .map_err(|e| Error::io("read", &dir.join(&info.name), e))?;
    }
    Ok(candidates)
}

/// Writes, into new data file `id`, each candidate that is the latest
/// record of its key: later than every other candidate of the key, and
/// than the key's latest record in the data files.
fn restore(
    dir: &Path,
    id: u32,
    candidates: Vec<Candidate>,
    latest: &HashMap<Vec<u8>, (u32, u64)>,
    report: &mut RepairReport,
) -> Result<()> {
    let mut best: HashMap<&[u8], &Candidate> = HashMap::new();
    for c in &candidates {
        let slot = best.entry(&c.key).or_insert(c);
        if c.order > slot.order {
            *slot = c;
        }
    }
    let mut winners: Vec<&Candidate> = best
        .into_values()
        .filter(|c| {
            // A record at the tail's offset or after it in the same file
            // was written after the cut.
            let (source_id, source_offset, ..) = c.order;
            latest
                .get(&c.key)
                .is_none_or(|&existing| (source_id, source_offset) > existing)
        })
        // Deleting a key the database does not hold changes nothing.
        .filter(|c| {
            c.kind.holds_value() || c.kind == RecordKind::LostValue || latest.contains_key(&c.key)
        })
        .collect();
    if winners.is_empty() {
        return Ok(());
    }
    winners.sort_by_key(|c| c.order);
    let mut bytes = format::encode_file_header().to_vec();
    for c in &winners {
        let kind = match c.kind {
            RecordKind::BatchPut => RecordKind::Put,
            RecordKind::BatchDelete => RecordKind::Delete,
            other => other,
        };
        format::encode_record(kind, &c.key, &c.value, &mut bytes);
    }
    let name = data_file_name(id);
    let path = dir.join(&name);
    let temp = dir.join(FileName::TempData(id).name());
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&temp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(Error::io("write restored records to", &path, e));
    }
    sync_dir(dir)?;
    report.records_restored = winners.len() as u64;
    report.restored_into = Some(name);
    write_hint(dir, id, report)
}

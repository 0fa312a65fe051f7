//! The damaged ranges a merge meets in its inputs: each is moved to a
//! quarantine file and stepped over, the live records that pointed into it
//! are copied if they still pass their checks and marked lost if not, and
//! the merge's error lists every range at the end.

use std::path::PathBuf;

use crate::db::engine::Engine;
use crate::error::{Error, Result};
use crate::log::data_file::DataFile;
use crate::log::filename::data_file_name;
use crate::log::format::RecordKind;
use crate::log::quarantine::quarantine_range;
use crate::log::scanner::{FileSource, Scanner};
use crate::log::RecordPos;

/// A damaged range of an input that a merge stepped over.
pub(super) struct MergeDamage {
    path: PathBuf,
    offset: u64,
    len: u64,
    reason: String,
    /// The quarantine file that keeps its bytes (none if they were zeros).
    quarantine: Option<String>,
    /// Live keys whose record lay in it and failed its checks: each now
    /// has a lost value's marker.
    lost_keys: usize,
}

/// A live record of a damaged range, owned: the record's value if it still
/// passes its checks, else a lost value's marker and its description.
pub(super) struct Salvaged {
    pub(super) old: RecordPos,
    pub(super) kind: RecordKind,
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
}

/// A record of `input` at `offset` fails its checks. Finds where good
/// records start again (or the end of the file), moves the bytes between to
/// a quarantine file, and leaves the scanner there. Returns what was found,
/// and the live records that pointed into the range: copied as they are if
/// they still pass their checks, as lost values' markers if not. `None`
/// when the rest of the file is zeros: space never written, not damage.
pub(super) fn step_over_damage(
    engine: &Engine,
    input: &DataFile,
    scanner: &mut Scanner<FileSource<'_>>,
    offset: u64,
    reason: &str,
    len: u64,
) -> Result<Option<(MergeDamage, Vec<Salvaged>)>> {
    let read_err = |e| Error::io("read", input.path(), e);
    let end = scanner.resync(offset + 1).map_err(read_err)?.unwrap_or(len);
    let why = format!("merge: a damaged range of a merge input: {reason}");
    let quarantine = quarantine_range(engine.dir(), input.file(), input.id(), offset, end, &why)?
        .map(|(name, _)| name);
    if quarantine.is_none() && end == len {
        return Ok(None);
    }
    scanner.seek(end);
    let id = input.id();
    // Taken under the writer lock, between two writes; a key written
    // since is not moved (the move expects the position seen here).
    let pending = {
        let _writer = engine.writer();
        engine.index().snapshot(&[])
    };
    let live: Vec<(Vec<u8>, RecordPos)> = pending
        .collect()
        .iter()
        .filter(|(_, pos)| pos.file_id == id && (offset..end).contains(&u64::from(pos.offset)))
        .map(|(key, pos)| (key.to_vec(), pos))
        .collect();
    let description = format!(
        "a merge found the record that held it damaged ({reason}) in the range of {} bytes at \
         offset {offset} of data file {}; {}",
        end - offset,
        data_file_name(id),
        match &quarantine {
            Some(name) => format!("those bytes are in quarantine file {name}"),
            None => "those bytes were all zeros".to_string(),
        }
    );
    let mut salvaged = Vec::with_capacity(live.len());
    let mut lost_keys = 0;
    let mut buf = Vec::new();
    for (key, old) in live {
        let (kind, value) = match input.read_record(old, &key, &mut buf) {
            Ok(value) => (RecordKind::Put, buf[value].to_vec()),
            Err(Error::Corruption(_)) => {
                lost_keys += 1;
                (RecordKind::LostValue, description.clone().into_bytes())
            }
            Err(e) => return Err(e),
        };
        salvaged.push(Salvaged {
            old,
            kind,
            key,
            value,
        });
    }
    let found = MergeDamage {
        path: input.path().to_path_buf(),
        offset,
        len: end - offset,
        reason: reason.to_string(),
        quarantine,
        lost_keys,
    };
    Ok(Some((found, salvaged)))
}

/// The error a merge that finished returns when it met damage: every
/// range, where its bytes went, and how many keys lost their value.
pub(super) fn damage_report(damage: &[MergeDamage]) -> Error {
    let lost: usize = damage.iter().map(|d| d.lost_keys).sum();
    let ranges: Vec<String> = damage
        .iter()
        .map(|d| {
            format!(
                "{} bytes at offset {} of {} ({}), {}",
                d.len,
                d.offset,
                d.path.display(),
                d.reason,
                match &d.quarantine {
                    Some(name) => format!("moved to quarantine file {name}"),
                    None => "all zeros".to_string(),
                }
            )
        })
        .collect();
    Error::Corruption(format!(
        "the merge finished, but stepped over {} damaged range(s): {}. Every other record was \
         merged; {lost} key(s) whose latest value lay in them now answer corruption, never an \
         older value, until written again",
        damage.len(),
        ranges.join("; ")
    ))
}

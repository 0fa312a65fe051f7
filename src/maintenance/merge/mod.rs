//! Merge: rewrite the live records of the data files that hold dead bytes
//! into new data files (each with a hint file), point the keydir at them and
//! delete the old files, while the database stays open.
//!
//! Steps, and why each is safe to crash after:
//!
//! 1. Plan, under the writer lock: the inputs are every data file with dead
//!    bytes (overwritten or deleted records, tombstones, commit records),
//!    the active one included. The active file is closed and the writer
//!    moves to a new file whose id leaves a gap: the outputs take the ids in
//!    the gap. Open applies files in id order, so outputs come after every
//!    file they merge and before every write made during or after the merge.
//! 2. Copy, with no engine lock held: scan each input; a put whose position
//!    is still the keydir's is appended to the current output, under a
//!    temporary name. Writes go on meanwhile; a key they overwrite is simply
//!    no longer live in the output.
//! 3. Install each full output: sync it, rename it into place, sync the
//!    directory, write its hint file, then move the keydir entries that
//!    still point where the copy came from, a chunk at a time under the
//!    writer lock (the longest any writer waits). After a crash here the
//!    inputs are all still there and the outputs only repeat their latest
//!    values.
//! 4. Retire the inputs: drop them from the files map (readers and
//!    iterators that hold one keep reading it), sync the active file, then
//!    delete the inputs oldest first, syncing the directory after each.
//!
//! The order on disk, each step durable before the next one begins (a
//! power cut keeps a file's bytes and a directory's names as of their last
//! sync only, and may apply unsynced unlinks in any order):
//!
//! | step | made durable | what depends on it |
//! | --- | --- | --- |
//! | plan | the old active file (sealed: cut, fdatasync) and the new one's name (directory fsync) | writes made during the merge land after every input in id order |
//! | install | each output (fdatasync), then its name (rename, directory fsync) | the keydir moves to it; the inputs may go |
//! | retire | the active file (fdatasync) | the inputs may go: a key overwritten during the merge has its newer record only there, the older one was not copied |
//! | retire, per input | its unlink, then the directory (fsync) | the next input's unlink: a tombstone's file never goes before the older put's file it hides |
//!
//! Tombstones are dropped, never copied. That is safe because every older
//! record a tombstone hides is dead, so its file has dead bytes and is an
//! input too; and because inputs are deleted oldest first, each deletion
//! durable before the next, a crash or power cut midway leaves only newer
//! inputs, never a put without the tombstone that hid it (the bug that
//! brought deleted keys back after a merge in Riak's bitcask).

use std::fs;
use std::io;
use std::path::Path;
use std::sync::Arc;

use parking_lot::MutexGuard;

use crate::db::engine::Engine;
use crate::db::writer::ids_exhausted;
use crate::error::{Error, Result};
use crate::failpoint;
use crate::log::data_file::DataFile;
use crate::log::dir::sync_dir;
use crate::log::filename::{data_file_name, hint_file_name};
use crate::log::format::{self, RecordKind, FILE_HEADER_LEN};
use crate::log::hint::{self, Hint};
use crate::log::scanner::{FileSource, ScanEntry, Scanner};
use crate::log::RecordPos;

use damage::{damage_report, step_over_damage, MergeDamage, Salvaged};
use output::Output;

mod damage;
mod output;

/// How many keydir entries move per hold of the writer lock.
const SWAP_CHUNK: usize = 1024;
/// How many input records are copied between checks for a close.
const CLOSE_CHECK_EVERY: u64 = 4096;

/// What one merge works on.
struct Plan {
    /// Ascending by id.
    inputs: Vec<Arc<DataFile>>,
    /// The ids the outputs may take, between the old active file and the new.
    output_ids: std::ops::RangeInclusive<u32>,
    /// Written into the outputs' hint files, so that batch sequence numbers
    /// keep growing after the commit records are merged away.
    max_batch_seq: u64,
}

/// Merges `engine`, online: rewrites the live records of every data file that
/// holds reclaimable bytes into new files, and deletes the old ones.
/// Reads and writes go on meanwhile; a writer waits only while the
/// keydir entries of an output are moved, a chunk at a time. Space is
/// freed at once (a file held by a live iterator is freed when the
/// iterator is). With nothing to reclaim this returns at once.
///
/// One merge runs at a time: a second caller waits for the first to
/// finish, then merges what is left. Close stops a merge at its next
/// step ([`Error::Closed`]); so does a failure, and in both cases the
/// directory stays consistent and opens with every key at its latest value.
pub fn merge(engine: &Engine) -> Result<()> {
    let _maintenance = engine.maintenance();
    let Some(plan) = plan_merge(engine)? else {
        return Ok(());
    };
    failpoint::hit("merge:rolled-over");
    let damage = copy_live_records(engine, &plan)?;
    retire(engine, &plan.inputs)?;
    if damage.is_empty() {
        return Ok(());
    }
    Err(damage_report(&damage))
}

/// Step 1: picks the inputs and moves the writer to a new file.
fn plan_merge(engine: &Engine) -> Result<Option<Plan>> {
    engine.check_not_closing()?;
    // The active file is synced when it is closed below, under the
    // writer lock. Most of its dirty pages are flushed here first,
    // without the lock, so that writers do not wait for all of them.
    let active_file = Arc::clone(engine.writer().active_file());
    if let Err(e) = active_file.file().sync_data() {
        let err = Error::io("sync", active_file.path(), e);
        engine.writer().refuse_after(&err);
        return Err(err);
    }
    let mut writer = engine.writer();
    writer.check_writable()?;
    let files: Vec<Arc<DataFile>> = engine.files().snapshot().into_values().collect();
    let active = writer.active();
    if files.iter().all(|f| writer.usage(f.id()).dead() == 0) {
        return Ok(None);
    }
    let inputs: Vec<Arc<DataFile>> = files
        .into_iter()
        .filter(|f| {
            let usage = writer.usage(f.id());
            // A file without records (an active file never written) goes too.
            usage.dead() > 0 || usage.len <= FILE_HEADER_LEN
        })
        .collect();
    let live: u64 = inputs.iter().map(|f| writer.usage(f.id()).live).sum();
    let reserved = output_ids_needed(live, engine.options().data_file_size());
    let first_output = active.0.checked_add(1);
    let (Some(reserved), Some(first_output)) = (reserved, first_output) else {
        return Err(ids_exhausted());
    };
    let last_output = first_output.checked_add(reserved - 1);
    let new_active = last_output.and_then(|id| id.checked_add(1));
    let (Some(last_output), Some(new_active)) = (last_output, new_active) else {
        return Err(ids_exhausted());
    };
    writer.roll_over(new_active)?;
    Ok(Some(Plan {
        inputs,
        output_ids: first_output..=last_output,
        max_batch_seq: writer.last_batch_seq(),
    }))
}

/// How many output ids a merge of `live` bytes of records needs at most,
/// with outputs cut at `data_file_size` (`None`: more than ids can hold).
///
/// An output is closed only when the next record would take it past
/// `data_file_size`, so any two outputs in a row hold more than
/// `data_file_size - FILE_HEADER_LEN` bytes of records together: n outputs
/// hold more than (n / 2 - 1) times that. The bound holds whatever size
/// the inputs were written with (a database reopened with a smaller
/// `data_file_size` needs more outputs than it has files), and for records
/// larger than a file (each alone in its output).
fn output_ids_needed(live: u64, data_file_size: u64) -> Option<u32> {
    let room = data_file_size.saturating_sub(FILE_HEADER_LEN).max(1);
    u32::try_from((live / room).saturating_mul(2).saturating_add(2)).ok()
}

/// Steps 2 and 3: copies every live record of the inputs into outputs
/// and installs each output once full.
fn copy_live_records(engine: &Engine, plan: &Plan) -> Result<Vec<MergeDamage>> {
    let mut output = None;
    let result = copy_into(engine, plan, &mut output);
    if let Some(unfinished) = output {
        unfinished.discard();
    }
    result
}

fn copy_into(
    engine: &Engine,
    plan: &Plan,
    output: &mut Option<Output>,
) -> Result<Vec<MergeDamage>> {
    let mut next_id = *plan.output_ids.start();
    let mut copied = 0u64;
    let mut damage = Vec::new();
    for input in &plan.inputs {
        let len = input.len()?;
        let mut scanner = Scanner::new(FileSource::new(input.file(), len), FILE_HEADER_LEN);
        // The live records of a damaged range, to copy before reading on:
        // those that still pass their checks, and the lost values' markers.
        let mut salvaged: Vec<Salvaged> = Vec::new();
        loop {
            let held;
            let (offset, record_len, kind, key, value) = match salvaged.pop() {
                Some(item) => {
                    held = item;
                    let old = held.old;
                    let (offset, size) = (u64::from(old.offset), u64::from(old.size));
                    (offset, size, held.kind, &held.key[..], &held.value[..])
                }
                None => match scanner
                    .next_entry()
                    .map_err(|e| Error::io("read", input.path(), e))?
                {
                    ScanEntry::Record {
                        offset,
                        len,
                        kind:
                            kind @ (RecordKind::Put | RecordKind::BatchPut | RecordKind::LostValue),
                        key,
                        value,
                    } => (offset, len, kind, key, value),
                    ScanEntry::Record { .. } => continue,
                    ScanEntry::End => break,
                    ScanEntry::TornTail { offset, reason } => {
                        match step_over_damage(engine, input, &mut scanner, offset, reason, len)? {
                            Some((found, live)) => {
                                damage.push(found);
                                salvaged = live;
                                continue;
                            }
                            None => break,
                        }
                    }
                    ScanEntry::Corrupt { offset, reason } => {
                        match step_over_damage(engine, input, &mut scanner, offset, &reason, len)? {
                            Some((found, live)) => {
                                damage.push(found);
                                salvaged = live;
                                continue;
                            }
                            None => break,
                        }
                    }
                },
            };
            copied += 1;
            if copied % CLOSE_CHECK_EVERY == 0 {
                failpoint::hit("merge:copying");
                engine.check_not_closing()?;
            }
            // Offsets and sizes fit: load built the same positions.
            let old = RecordPos {
                file_id: input.id(),
                offset: offset as u32,
                size: record_len as u32,
            };
            if engine.index().get(key) != Some(old) {
                continue;
            }
            let size = format::record_len(key.len(), value.len()) as u64;
            if output.as_ref().is_some_and(|o| {
                o.len > FILE_HEADER_LEN && o.len + size > engine.options().data_file_size()
            }) {
                if let Some(full) = output.take() {
                    install(engine, full, plan)?;
                }
            }
            if output.is_none() {
                if !plan.output_ids.contains(&next_id) {
                    return Err(Error::Internal(format!(
                        "a merge of {} files needs more than {} output files",
                        plan.inputs.len(),
                        plan.output_ids.clone().count()
                    )));
                }
                *output = Some(Output::create(engine.dir(), next_id)?);
                next_id += 1;
            }
            if let Some(o) = output.as_mut() {
                // A batch put is copied as a put: its batch was committed.
                let kind = match kind {
                    RecordKind::LostValue => RecordKind::LostValue,
                    _ => RecordKind::Put,
                };
                o.append(kind, key, value, old)?;
            }
        }
    }
    if let Some(last) = output.take() {
        install(engine, last, plan)?;
    }
    Ok(damage)
}

/// Step 3 for one output: makes it a data file of the database and
/// moves the keydir entries it took over.
fn install(engine: &Engine, mut output: Output, plan: &Plan) -> Result<()> {
    let id = output.id;
    let dir = engine.dir();
    let path = dir.join(data_file_name(id));
    let done = output
        .flush()
        .and_then(|()| output.file.sync_data())
        .map_err(|e| Error::io("write merge output", &output.temp, e));
    if let Err(e) = done {
        output.discard();
        return Err(e);
    }
    failpoint::hit("merge:output-synced");
    if let Err(e) = fs::rename(&output.temp, &path) {
        output.discard();
        return Err(Error::io("rename merge output to", &path, e));
    }
    failpoint::hit("merge:output-renamed");
    sync_dir(dir)?;
    let Output {
        len, hint, olds, ..
    } = output;
    let hint_bytes = hint.finish(len, plan.max_batch_seq);
    // A hint file is a shortcut for the next open: without it, that open
    // scans this file instead. Its failure does not fail the merge.
    let _ = hint::write_hint_file(dir, id, &hint_bytes);
    failpoint::hit("merge:hint-written");
    let file = Arc::new(DataFile::open(dir, id, false)?);
    file.map_for_reads();
    engine.files().insert(file);
    let mut writer = engine.writer();
    writer.set_file_len(id, len);
    let entries = Hint::trusted(hint_bytes);
    let mut at = 0;
    entries.for_each(|_, key, offset, size| {
        let new = RecordPos {
            file_id: id,
            offset,
            size,
        };
        let old = olds[at];
        at += 1;
        // A key written since the copy keeps its newer record.
        writer.replace_if(key, old, new);
        failpoint::hit("merge:entry-moved");
        if at % SWAP_CHUNK == 0 {
            MutexGuard::bump(&mut writer);
            failpoint::hit("merge:writer-yielded");
        }
    });
    drop(writer);
    failpoint::hit("merge:swapped");
    Ok(())
}

/// Step 4: forgets the inputs, makes the active file durable, and deletes
/// the inputs, oldest first, each deletion durable before the next.
fn retire(engine: &Engine, inputs: &[Arc<DataFile>]) -> Result<()> {
    {
        let mut writer = engine.writer();
        if let Some(still_live) = inputs.iter().find(|f| writer.usage(f.id()).live > 0) {
            return Err(Error::Internal(format!(
                "after a merge, {} still holds live records; it is kept",
                still_live.path().display()
            )));
        }
        // A key overwritten during the merge has its newer record in the
        // active file only (the copy skipped the older one): that record
        // must be durable before the input holding the older one goes.
        // Under the writer lock, so it covers every write made so far. A
        // failure makes the writer refuse writes, and leaves every input.
        writer.sync()?;
        engine.files().remove_all(inputs.iter().map(|f| f.id()));
        writer.forget_files(inputs.iter().map(|f| f.id()));
    }
    failpoint::hit("merge:inputs-unlisted");
    for input in inputs {
        // Stop at the first failure: the files left are then the newest
        // inputs, whose tombstones still hide everything older.
        remove_if_present(input.path())?;
        remove_if_present(&engine.dir().join(hint_file_name(input.id())))?;
        failpoint::hit("merge:input-unlinked");
        // Before the next (newer) input goes: a file system may apply
        // unsynced unlinks in any order, and the newer input's tombstones
        // must outlive the older puts they hide.
        sync_dir(engine.dir())?;
        failpoint::hit("merge:input-deleted");
    }
    failpoint::hit("merge:done");
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("delete merged file", path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fills outputs the way `copy_into` does and counts them.
    fn outputs_for(records: &[u64], data_file_size: u64) -> u32 {
        let (mut outputs, mut len) = (0, 0);
        for &size in records {
            if outputs == 0 || (len > FILE_HEADER_LEN && len + size > data_file_size) {
                outputs += 1;
                len = FILE_HEADER_LEN;
            }
            len += size;
        }
        outputs
    }

    #[test]
    fn the_output_ids_reserved_cover_every_way_the_outputs_fill() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let data_file_size = 4096 + next() % 20_000;
            let count = next() % 300;
            // Sizes from tiny to larger than a whole file.
            let records: Vec<u64> = (0..count)
                .map(|_| match next() % 10 {
                    0 => data_file_size + next() % 10_000,
                    1..=3 => data_file_size / 2 + next() % (data_file_size / 2),
                    _ => 12 + next() % 400,
                })
                .collect();
            let live = records.iter().sum();
            let needed = outputs_for(&records, data_file_size);
            let reserved = output_ids_needed(live, data_file_size).unwrap();
            assert!(
                needed <= reserved,
                "{needed} outputs, {reserved} reserved ({records:?}, {data_file_size})"
            );
        }
        assert_eq!(output_ids_needed(0, 4096), Some(2));
        assert_eq!(output_ids_needed(u64::MAX, 4096), None);
    }
}

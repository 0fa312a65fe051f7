//! The commands about damage: check (bitcask::verify, which runs beside a
//! writer when the database is open) and repair (bitcask::repair, which
//! needs the database to itself).

use std::io::{self, Write};
use std::path::Path;

use bitcask::{AtOpen, DamagedRange, RepairOptions, RepairReport, VerifyReport};

use crate::escape::{escape, Space};
use crate::failure::{lib, output_failed, Failure, Outcome};
use crate::json::Object;
use crate::progress::Progress;

/// Verifies the database in `dir` and prints the report (exit 1 unless
/// it is clean).
pub fn check(dir: &Path, json: bool) -> Outcome {
    let mut progress = Progress::new("checked");
    let report = lib(
        &format!("check {}", dir.display()),
        bitcask::verify_with_progress(dir, &mut |done, total| progress.bytes(done, total)),
    )?;
    progress.finish();
    print(if json {
        check_json(&report) + "\n"
    } else {
        check_text(dir, &report)
    })?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(Failure::Answer(format!(
            "damage found: {}",
            damage_counts(&report)
        )))
    }
}

/// What open does with a damaged range, in words.
fn at_open_text(at_open: AtOpen) -> &'static str {
    match at_open {
        AtOpen::CutAsTail => "open cuts it off as the newest file's tail",
        AtOpen::Refused => "open refuses the database until it is repaired",
        AtOpen::FoundByGets => "a get of a record there answers corruption",
    }
}

/// What open does with a damaged range, as a JSON value.
fn at_open_name(at_open: AtOpen) -> &'static str {
    match at_open {
        AtOpen::CutAsTail => "cut_as_tail",
        AtOpen::Refused => "refused",
        AtOpen::FoundByGets => "found_by_gets",
    }
}

/// "2 damaged ranges, 1 hint problem, 0 lost values".
fn damage_counts(report: &VerifyReport) -> String {
    format!(
        "{}, {}, {}",
        count(
            report.damaged.len() as u64,
            "damaged range",
            "damaged ranges"
        ),
        count(
            report.hint_problems.len() as u64,
            "hint problem",
            "hint problems"
        ),
        count(report.lost_values, "lost value", "lost values")
    )
}

/// "1 thing", "2 things" (`what` and `whats`).
fn count(n: u64, what: &str, whats: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        n => format!("{n} {whats}"),
    }
}

/// `at` in `dir`, and the bytes from it: "DIR/FILE offset N (LEN bytes)".
fn place(dir: &Path, file: &str, offset: u64, len: u64) -> String {
    let len = match len {
        0 => String::new(),
        n => format!(" ({n} bytes)"),
    };
    format!("{} offset {offset}{len}", dir.join(file).display())
}

/// The report as lines: damage first, then notes, then a summary.
fn check_text(dir: &Path, report: &VerifyReport) -> String {
    let mut out = String::new();
    for d in &report.damaged {
        out.push_str(&format!(
            "damaged: {} [{}]\n",
            damaged_text(dir, d),
            at_open_text(d.at_open)
        ));
    }
    for p in &report.hint_problems {
        let entry = match p.entry {
            Some(n) => format!(" entry {n} (key {})", escape(&p.key, Space::Escape)),
            None => String::new(),
        };
        out.push_str(&format!(
            "hint: {}{entry}: {}\n",
            dir.join(&p.file).display(),
            p.reason
        ));
    }
    if report.lost_values > 0 {
        out.push_str(&format!(
            "damaged: {} records mark a key whose value a merge found damaged (each such key \
             answers corruption until it is written again)\n",
            report.lost_values
        ));
    }
    for z in &report.zero_tails {
        out.push_str(&format!(
            "note: {}: zeros after the last record (space allocated and never written): open \
             cuts them\n",
            place(dir, &z.file, z.offset, z.len)
        ));
    }
    for n in &report.notes {
        out.push_str(&format!(
            "note: {}: {}\n",
            place(dir, &n.file, n.offset, n.len),
            n.what
        ));
    }
    if report.uncommitted_batch_records > 0 {
        out.push_str(&format!(
            "note: {} batch records without their commit record end a data file (a batch \
             that never committed, or is being written): never applied\n",
            report.uncommitted_batch_records
        ));
    }
    for q in &report.quarantine_files {
        out.push_str(&format!(
            "quarantine: {} (bytes taken out of a data file, kept for you)\n",
            dir.join(q).display()
        ));
    }
    if report.beside_writer {
        out.push_str(
            "note: the database is open for writing elsewhere: checked beside the writer, the \
             newest data file up to its last good record (see bitcask(1))\n",
        );
    }
    out.push_str(&format!(
        "{} ({} bytes, {}) and {} ({}) read: {}\n",
        count(report.data_files, "data file", "data files"),
        report.bytes,
        count(report.records, "good record", "good records"),
        count(report.hint_files_checked, "hint file", "hint files"),
        count(report.hint_entries_checked, "entry", "entries"),
        if report.is_clean() {
            "no damage".to_string()
        } else {
            damage_counts(report)
        }
    ));
    out
}

/// The report as one JSON object.
fn check_json(report: &VerifyReport) -> String {
    let damaged = report.damaged.iter().map(damaged_json).collect();
    let hint_problems = report
        .hint_problems
        .iter()
        .map(|p| {
            Object::new()
                .str("file", &p.file)
                .opt_num("entry", p.entry)
                .str("key", &escape(&p.key, Space::Escape))
                .str("reason", &p.reason)
        })
        .collect();
    let zero_tails = report
        .zero_tails
        .iter()
        .map(|z| {
            Object::new()
                .str("file", &z.file)
                .num("offset", z.offset)
                .num("len", z.len)
        })
        .collect();
    let notes = report
        .notes
        .iter()
        .map(|n| {
            Object::new()
                .str("file", &n.file)
                .num("offset", n.offset)
                .num("len", n.len)
                .str("what", &n.what)
        })
        .collect();
    Object::new()
        .bool("clean", report.is_clean())
        .bool("beside_writer", report.beside_writer)
        .num("data_files", report.data_files)
        .num("bytes", report.bytes)
        .num("records", report.records)
        .num("hint_files_checked", report.hint_files_checked)
        .num("hint_entries_checked", report.hint_entries_checked)
        .objects("damaged", damaged)
        .objects("hint_problems", hint_problems)
        .num("lost_values", report.lost_values)
        .objects("zero_tails", zero_tails)
        .num(
            "uncommitted_batch_records",
            report.uncommitted_batch_records,
        )
        .strings("quarantine_files", &report.quarantine_files)
        .objects("notes", notes)
        .finish()
}

/// A damaged range: where, what failed, the batch records that go with it.
fn damaged_text(dir: &Path, d: &DamagedRange) -> String {
    let taken = match d.intact_records {
        0 => String::new(),
        n => format!(
            " ({} go with it)",
            count(n, "intact batch record", "intact batch records")
        ),
    };
    format!(
        "{}: {}{taken}",
        place(dir, &d.file, d.offset, d.len),
        d.reason
    )
}

/// A damaged range as a JSON object.
fn damaged_json(d: &DamagedRange) -> Object {
    Object::new()
        .str("file", &d.file)
        .num("offset", d.offset)
        .num("len", d.len)
        .str("reason", &d.reason)
        .num("intact_records", d.intact_records)
        .str("at_open", at_open_name(d.at_open))
        .opt_str("quarantine_file", d.quarantine_file.as_deref())
}

fn print(text: String) -> Outcome {
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(output_failed)
}

/// Repairs the database in `dir` (which must not be open) and prints what
/// was done.
pub fn repair(dir: &Path, restore_quarantined: bool, json: bool) -> Outcome {
    let options = RepairOptions {
        restore_quarantined,
    };
    let mut progress = Progress::new("read");
    let report = lib(
        &format!("repair {}", dir.display()),
        bitcask::repair_with_progress(dir, &options, &mut |done, total| {
            progress.bytes(done, total)
        }),
    )?;
    progress.finish();
    print(if json {
        repair_json(&report) + "\n"
    } else {
        repair_text(dir, &report)
    })
}

/// The repair report as lines: each damaged range and where its bytes went,
/// the files rewritten and restored into, what it means for keys, and a
/// summary.
fn repair_text(dir: &Path, report: &RepairReport) -> String {
    let mut out = String::new();
    for d in &report.damaged {
        let moved = match &d.quarantine_file {
            Some(q) => format!(" [moved to {}]", dir.join(q).display()),
            None => String::new(),
        };
        out.push_str(&format!("damaged: {}{moved}\n", damaged_text(dir, d)));
    }
    for f in &report.files_rewritten {
        out.push_str(&format!(
            "rewritten: {} (every record that passes its checks, in order)\n",
            dir.join(f).display()
        ));
    }
    if let Some(f) = &report.restored_into {
        out.push_str(&format!(
            "restored: {} from quarantine files into {}\n",
            count(report.records_restored, "record", "records"),
            dir.join(f).display()
        ));
    }
    for why in &report.restore_skipped {
        out.push_str(&format!("not restored: {why}\n"));
    }
    if report.batch_records_dropped > 0 {
        out.push_str(&format!(
            "note: {} of write batches that a damaged range cut (or that never committed) \
             were taken out with it: a batch is kept whole or not at all\n",
            count(
                report.batch_records_dropped,
                "intact record",
                "intact records"
            )
        ));
    }
    if !report.damaged.is_empty() {
        out.push_str(
            "note: a damaged range may have held the latest write of some key: such a key now \
             shows its previous value, or comes back if that write deleted it\n",
        );
    }
    if report.lost_values > 0 {
        out.push_str(&format!(
            "note: {} mark a key whose value a merge found damaged: each such key answers \
             corruption until it is written again or deleted\n",
            count(report.lost_values, "record", "records")
        ));
    }
    let touched = report.files_rewritten.len() as u64 + u64::from(report.restored_into.is_some());
    out.push_str(&format!(
        "repaired: {} read, {} kept, {} ({} bytes in {}), {} touched, {} zero bytes cut, {} \
         written{}\n",
        count(report.data_files, "data file", "data files"),
        count(report.records_kept, "record", "records"),
        count(
            report.damaged.len() as u64,
            "damaged range",
            "damaged ranges"
        ),
        report.bytes_quarantined,
        count(
            report.quarantine_files_written.len() as u64,
            "quarantine file",
            "quarantine files"
        ),
        count(touched, "data file", "data files"),
        report.zero_bytes_cut,
        count(report.hint_files_written, "hint file", "hint files"),
        if report.damaged.is_empty() && touched == 0 && report.zero_bytes_cut == 0 {
            ": nothing was damaged"
        } else {
            ""
        }
    ));
    out
}

/// The repair report as one JSON object.
fn repair_json(report: &RepairReport) -> String {
    Object::new()
        .num("data_files", report.data_files)
        .num("records_kept", report.records_kept)
        .objects("damaged", report.damaged.iter().map(damaged_json).collect())
        .num("batch_records_dropped", report.batch_records_dropped)
        .num("bytes_quarantined", report.bytes_quarantined)
        .strings("quarantine_files_written", &report.quarantine_files_written)
        .strings("files_rewritten", &report.files_rewritten)
        .num("zero_bytes_cut", report.zero_bytes_cut)
        .num("hint_files_written", report.hint_files_written)
        .num("records_restored", report.records_restored)
        .opt_str("restored_into", report.restored_into.as_deref())
        .strings("restore_skipped", &report.restore_skipped)
        .num("lost_values", report.lost_values)
        .finish()
}

//! The commands that only read, and so open the database read-only:
//! stat, get, scan, dump.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use crate::args::{open, DbArgs, Index};
use crate::dump;
use crate::escape::{self, escape, Space};
use crate::failure::{lib, output_failed, Failure, Outcome};
use crate::json::Object;
use crate::progress::Progress;

/// Prints the numbers of `bitcask stat`, as lines or one JSON object.
pub fn stat(db: &DbArgs, json: bool) -> Outcome {
    let handle = open(db, true)?;
    let stats = lib("stats", handle.stats())?;
    let hint_files = count_hint_files(&db.dir);
    let index = match db.index {
        Index::Ordered => "ordered",
        Index::Hash => "hash",
    };
    let rows: [(&str, String); 7] = [
        ("key_count", stats.key_count.to_string()),
        ("data_file_count", stats.data_file_count.to_string()),
        ("hint_file_count", hint_files.to_string()),
        ("disk_bytes", stats.disk_bytes.to_string()),
        ("reclaimable_bytes", stats.reclaimable_bytes.to_string()),
        ("index_type", index.to_string()),
        ("format_version", bitcask::FORMAT_VERSION.to_string()),
    ];
    let text = if json {
        let object = rows.iter().fold(Object::new(), |object, (name, value)| {
            match value.parse::<u64>() {
                Ok(n) => object.num(name, n),
                Err(_) => object.str(name, value),
            }
        });
        object.finish() + "\n"
    } else {
        rows.iter()
            .map(|(name, value)| format!("{:<18} {value}\n", name.replace('_', " ")))
            .collect()
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(output_failed)
}

/// Hint files in `dir` (named as docs/format.md says: nine digits, `.hint`).
fn count_hint_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_suffix(".hint")
                    .is_some_and(|id| id.len() == 9 && id.bytes().all(|b| b.is_ascii_digit()))
            })
            .count()
    })
}

/// Writes the value of `key`, raw, escaped or as hex digits.
pub fn get(db: &DbArgs, key: &[u8], hex: bool, escaped: bool) -> Outcome {
    let handle = open(db, true)?;
    let Some(value) = lib("get", handle.get(key))? else {
        return Err(Failure::Answer(format!(
            "key not found: {}",
            escape(key, Space::Keep)
        )));
    };
    let mut out = io::stdout().lock();
    let written = if hex {
        writeln!(out, "{}", escape::to_hex(&value))
    } else if escaped {
        writeln!(out, "{}", escape(&value, Space::Keep))
    } else {
        out.write_all(&value)
    };
    written.and_then(|()| out.flush()).map_err(output_failed)
}

/// How scan prints keys and values.
#[derive(Clone, Copy)]
pub enum Form {
    Escaped,
    Hex,
    Raw,
}

/// Prints keys (and values) in order, as `form` says.
pub fn scan(
    db: &DbArgs,
    prefix: &[u8],
    reverse: bool,
    keys_only: bool,
    limit: Option<u64>,
    form: Form,
) -> Outcome {
    let handle = open(db, true)?;
    let mut iter = lib("scan", handle.iter(prefix, reverse))?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut line = Vec::new();
    let mut count = 0u64;
    let push = |bytes: &[u8], line: &mut Vec<u8>| match form {
        Form::Raw => line.extend_from_slice(bytes),
        Form::Hex => line.extend_from_slice(escape::to_hex(bytes).as_bytes()),
        Form::Escaped => line.extend_from_slice(escape(bytes, Space::Keep).as_bytes()),
    };
    while iter.valid() && limit.is_none_or(|n| count < n) {
        line.clear();
        let key = iter.key().unwrap_or_default().to_vec();
        push(&key, &mut line);
        if !keys_only {
            let value = lib("read the value", iter.value())?;
            line.push(b'\t');
            push(value, &mut line);
        }
        line.push(b'\n');
        out.write_all(&line).map_err(output_failed)?;
        count += 1;
        iter.next();
    }
    out.flush().map_err(output_failed)
}

/// Writes the records under `prefix` in the dump format (`dump.rs`).
pub fn dump(db: &DbArgs, prefix: &[u8]) -> Outcome {
    let handle = open(db, true)?;
    let total = handle.key_count() as u64;
    let mut iter = lib("dump", handle.iter(prefix, false))?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut progress = Progress::new("dumped");
    let mut text = String::new();
    writeln!(out, "{}", dump::HEADER).map_err(output_failed)?;
    let mut count = 0u64;
    while iter.valid() {
        text.clear();
        let key = iter.key().unwrap_or_default().to_vec();
        let value = lib("read the value", iter.value())?;
        dump::push_record(&key, value, &mut text);
        out.write_all(text.as_bytes()).map_err(output_failed)?;
        count += 1;
        if count % 4096 == 0 {
            progress.update(count, Some(total), "records");
        }
        iter.next();
    }
    out.write_all(dump::footer(count).as_bytes())
        .and_then(|()| out.flush())
        .map_err(output_failed)
}

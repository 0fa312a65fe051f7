//! The commands that write, and so need the database to themselves: put,
//! delete, load.

use std::io::{self, BufRead, Read};

use crate::args::{arg_bytes, close, open, DbArgs};
use crate::dump;
use crate::failure::{lib, Failure, Outcome};
use crate::progress::Progress;

/// Stores `value` (standard input when `None`) under `key`.
pub fn put(db: &DbArgs, key: &str, value: Option<String>, hex: bool) -> Outcome {
    let key = arg_bytes(key, hex, "KEY")?;
    let value = match value {
        Some(text) => arg_bytes(&text, hex, "VALUE")?,
        None => {
            let mut bytes = Vec::new();
            io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| Failure::Other(format!("read standard input: {e}")))?;
            bytes
        }
    };
    let handle = open(db, false)?;
    lib("put", handle.put(&key, &value))?;
    close(handle)
}

/// Deletes `key` (a missing key is not an error).
pub fn delete(db: &DbArgs, key: &str, hex: bool) -> Outcome {
    let key = arg_bytes(key, hex, "KEY")?;
    let handle = open(db, false)?;
    lib("delete", handle.delete(&key))?;
    close(handle)
}

/// Stores the records of a dump read from standard input, in batches of
/// about `batch_bytes`.
pub fn load(db: &DbArgs, batch_bytes: u64) -> Outcome {
    let handle = open(db, false)?;
    let limit = batch_bytes.clamp(1, handle.options().max_batch_bytes());
    let mut input = io::stdin().lock();
    let mut raw = Vec::new();
    let mut line_no = 0u64;
    let mut loaded = 0u64;
    let mut end = None;
    let mut batch = handle.batch();
    let mut progress = Progress::new("loaded");
    let bad = |line_no: u64, what: String, loaded: u64| {
        Failure::Other(format!(
            "standard input line {line_no}: {what} ({loaded} records before it were loaded)"
        ))
    };
    loop {
        raw.clear();
        let n = input
            .read_until(b'\n', &mut raw)
            .map_err(|e| Failure::Other(format!("read standard input: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| bad(line_no, "not UTF-8 text".to_string(), loaded))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        if line_no == 1 {
            if text.strip_suffix('\r').unwrap_or(text) != dump::HEADER {
                return Err(bad(
                    line_no,
                    format!(
                        "not a bitcask dump: the first line must be {:?}",
                        dump::HEADER
                    ),
                    loaded,
                ));
            }
            continue;
        }
        if let Some(count) = end {
            if !text.trim().is_empty() {
                return Err(bad(
                    line_no,
                    format!("text after the end line (# end {count} records)"),
                    loaded,
                ));
            }
            continue;
        }
        match dump::parse_line(text).map_err(|e| bad(line_no, e, loaded))? {
            dump::Line::Nothing => {}
            dump::Line::End(count) => end = Some(count),
            dump::Line::Record(key, value) => {
                let size = (key.len() + value.len() + 32) as u64;
                if !batch.is_empty() && batch.encoded_len() + size > limit {
                    lib("commit a batch", handle.write(&mut batch))?;
                }
                if batch.put(&key, &value).is_err() {
                    // Larger than a batch may be, or a bad key: a put of
                    // its own says which.
                    lib("commit a batch", handle.write(&mut batch))?;
                    lib(
                        &format!("put the record of line {line_no}"),
                        handle.put(&key, &value),
                    )?;
                }
                loaded += 1;
                if loaded % 4096 == 0 {
                    progress.update(loaded, None, "records");
                }
            }
        }
    }
    lib("commit a batch", handle.write(&mut batch))?;
    progress.finish();
    close(handle)?;
    match end {
        Some(count) if count == loaded => Ok(()),
        Some(count) => Err(Failure::Other(format!(
            "the dump's end line counts {count} records, and {loaded} were read (all loaded)"
        ))),
        None => Err(Failure::Other(format!(
            "the dump ends without its end line: it was cut short ({loaded} records were loaded)"
        ))),
    }
}

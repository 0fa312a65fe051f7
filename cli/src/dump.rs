//! The dump format of `bitcask dump` and `bitcask load`: text, one record
//! per line, that carries any bytes exactly.
//!
//! ```text
//! # bitcask dump format 1
//! +KEY VALUE
//! +KEY VALUE
//! # end 2 records
//! ```
//!
//! - The first line is the header, exactly as above.
//! - A record line is `+`, the key, one space, the value, each escaped as
//!   `escape.rs` prints in a dump: bytes `!` to `~` as themselves except
//!   `\`, which is `\\`, and every other byte (space, newline, NUL, any
//!   byte above 0x7e) as `\xNN`. A record line therefore holds exactly one
//!   space, and nothing but printable ASCII. An empty value leaves nothing
//!   after the space (the space itself may be missing too).
//! - The last line is `# end N records`, N the number of record lines: a
//!   dump cut short lacks it, and `load` says so.
//! - Any other line that starts with `#` is a comment; empty lines are
//!   ignored. A line may end in `\r\n`.
//!
//! Records come in key order; `load` accepts them in any order (and a later
//! record of the same key wins), and escapes in either case, and the other
//! escapes of the command line (`\n`, `\t`, `\r`, `\0`).

use crate::escape::{escape_into, unescape, Space};

/// The first line of a dump.
pub const HEADER: &str = "# bitcask dump format 1";

/// Appends the line of one record, newline included, to `out`.
pub fn push_record(key: &[u8], value: &[u8], out: &mut String) {
    out.push('+');
    escape_into(key, Space::Escape, out);
    out.push(' ');
    escape_into(value, Space::Escape, out);
    out.push('\n');
}

/// The last line of a dump of `count` records, newline included.
pub fn footer(count: u64) -> String {
    format!("# end {count} records\n")
}

/// What one line of a dump holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A record.
    Record(Vec<u8>, Vec<u8>),
    /// The last line, with the number of records it counts.
    End(u64),
    /// A comment or an empty line.
    Nothing,
}

/// Parses one line (without its newline); the error says what is wrong.
pub fn parse_line(line: &str) -> Result<Line, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return Ok(Line::Nothing);
    }
    if let Some(comment) = line.strip_prefix('#') {
        if let Some(count) = comment
            .strip_prefix(" end ")
            .and_then(|rest| rest.strip_suffix(" records"))
        {
            return count
                .parse()
                .map(Line::End)
                .map_err(|_| format!("bad record count {count:?} in the end line"));
        }
        return Ok(Line::Nothing);
    }
    let Some(record) = line.strip_prefix('+') else {
        return Err(
            "not a record line (those start with '+'), a comment ('#') or empty".to_string(),
        );
    };
    let (key, value) = record.split_once(' ').unwrap_or((record, ""));
    if value.contains(' ') {
        return Err("more than one space: spaces inside a key or value are \\x20".to_string());
    }
    let key = unescape(key).map_err(|e| format!("key: {e}"))?;
    if key.is_empty() {
        return Err("empty key".to_string());
    }
    let value = unescape(value).map_err(|e| format!("value: {e}"))?;
    Ok(Line::Record(key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_of_any_bytes_round_trip_on_one_line() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"k", b""),
            (b"a b", b"line\nbreak"),
            (b"\0\xff", b"\\ \r\n\t#+"),
            (b"+", b"+"),
            (b"#", b" "),
        ];
        for (key, value) in cases {
            let mut text = String::new();
            push_record(key, value, &mut text);
            let line = text.strip_suffix('\n').unwrap();
            assert!(!line.contains('\n') && line.matches(' ').count() == 1);
            assert_eq!(
                parse_line(line).unwrap(),
                Line::Record(key.to_vec(), value.to_vec())
            );
        }
    }

    #[test]
    fn other_lines() {
        assert_eq!(parse_line(HEADER).unwrap(), Line::Nothing);
        assert_eq!(parse_line(footer(12).trim_end()).unwrap(), Line::End(12));
        assert_eq!(parse_line("").unwrap(), Line::Nothing);
        assert_eq!(
            parse_line("+k\r").unwrap(),
            Line::Record(b"k".to_vec(), vec![])
        );
        for bad in ["k v", "+ v", "+k v w", "+k\\q v", "# end x records"] {
            assert!(parse_line(bad).is_err(), "{bad}");
        }
    }
}

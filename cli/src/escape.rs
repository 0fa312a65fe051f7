//! Bytes as text and back: how keys and values are written on the command
//! line and printed.
//!
//! Printed, a byte from `!` to `~` stands for itself, except the backslash,
//! which is `\\`; every other byte is `\xNN` (two lowercase hex digits). A
//! space stands for itself where a field cannot hold a separator of its own
//! kind (`scan` separates with tabs), and is `\x20` in a dump, whose fields
//! are separated by a space. On the command line, `\xNN` (either case),
//! `\\`, `\n`, `\t`, `\r` and `\0` are read as the bytes they name, and any
//! other character as its UTF-8 bytes; with `--hex` the argument is hex
//! digits instead.

use std::fmt::Write;

/// Whether a space is printed as itself or as `\x20`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Keep,
    Escape,
}

/// `bytes` printed as described in the module documentation.
pub fn escape(bytes: &[u8], space: Space) -> String {
    let mut out = String::with_capacity(bytes.len());
    escape_into(bytes, space, &mut out);
    out
}

/// Appends `bytes`, printed, to `out`.
pub fn escape_into(bytes: &[u8], space: Space, out: &mut String) {
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b' ' if space == Space::Keep => out.push(' '),
            b'!'..=b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// The bytes a command-line argument or dump field names (see the module
/// documentation); the error says what is wrong and where.
pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let (byte, width) = match bytes.get(i + 1) {
            Some(b'\\') => (b'\\', 2),
            Some(b'n') => (b'\n', 2),
            Some(b't') => (b'\t', 2),
            Some(b'r') => (b'\r', 2),
            Some(b'0') => (0, 2),
            Some(b'x') => match (bytes.get(i + 2), bytes.get(i + 3)) {
                (Some(&hi), Some(&lo)) => match (hex_digit(hi), hex_digit(lo)) {
                    (Some(hi), Some(lo)) => (hi << 4 | lo, 4),
                    _ => return Err(bad_escape(text, i)),
                },
                _ => return Err(bad_escape(text, i)),
            },
            _ => return Err(bad_escape(text, i)),
        };
        out.push(byte);
        i += width;
    }
    Ok(out)
}

fn bad_escape(text: &str, at: usize) -> String {
    let shown: String = text[at..].chars().take(4).collect();
    format!(
        "bad escape {shown:?} at byte {at}: use \\xNN (two hex digits), \\\\, \\n, \\t, \\r or \\0"
    )
}

/// The bytes an argument of hex digits names (`--hex`).
pub fn from_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(format!(
            "{text:?} has an odd number of hex digits ({})",
            digits.len()
        ));
    }
    digits
        .chunks(2)
        .enumerate()
        .map(|(i, pair)| match (hex_digit(pair[0]), hex_digit(pair[1])) {
            (Some(hi), Some(lo)) => Ok(hi << 4 | lo),
            _ => Err(format!(
                "{text:?} is not hex: bad digit pair at byte {}",
                2 * i
            )),
        })
        .collect()
}

/// `bytes` as lowercase hex digits.
pub fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_round_trips_in_both_forms() {
        let all: Vec<u8> = (0..=255).collect();
        for space in [Space::Keep, Space::Escape] {
            let text = escape(&all, space);
            assert!(text.is_ascii());
            assert!(!text.contains(['\n', '\t', '\r']));
            assert_eq!(text.contains(' '), space == Space::Keep);
            assert_eq!(unescape(&text).unwrap(), all);
        }
        assert_eq!(from_hex(&to_hex(&all)).unwrap(), all);
    }

    #[test]
    fn readable_bytes_stay_readable() {
        assert_eq!(escape(b"user:1 a\\b", Space::Keep), "user:1 a\\\\b");
        assert_eq!(
            escape(b"a b\0\n\xff", Space::Escape),
            "a\\x20b\\x00\\x0a\\xff"
        );
        assert_eq!(
            unescape("\\x41\\x6A\\n\\t\\0\\\\é").unwrap(),
            b"Aj\n\t\0\\\xc3\xa9"
        );
    }

    #[test]
    fn bad_input_says_where() {
        for bad in ["\\", "a\\q", "\\x4", "\\xg0", "ab\\x"] {
            let err = unescape(bad).unwrap_err();
            assert!(err.contains("bad escape"), "{bad}: {err}");
        }
        assert!(from_hex("abc").unwrap_err().contains("odd"));
        assert!(from_hex("zz").unwrap_err().contains("not hex"));
        assert_eq!(from_hex("").unwrap(), b"");
    }
}

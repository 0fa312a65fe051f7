//! Every name a database directory holds, built and parsed in this one
//! place (as LevelDB's `db/filename.h` does):
//!
//! ```text
//! 000000042.data       data file 42
//! 000000042.hint       the hint file of data file 42
//! 000000042.data.tmp   a merge output not yet renamed into place
//! 000000042.hint.tmp   a hint file not yet renamed into place
//! 000000042-1049824.quarantine
//!                      bytes taken out of data file 42 at offset 1049824
//!                      (a cut tail, a damaged range): kept for the user,
//!                      never loaded, never removed by the library
//! 000000042-1049824-2.quarantine
//!                      the second such file for the same place
//! 000000042-1049824.quarantine.tmp
//!                      a quarantine file not yet renamed into place
//! LOCK                 the directory lock (a POSIX record lock, fcntl)
//! ```
//!
//! Ids are written in decimal with at least nine digits, zero-padded: nine
//! up to 999,999,999, ten from 1,000,000,000 to 4,294,967,295 (every `u32`;
//! a name of nine digits is what every id had before ids grew past them).
//! Each id has exactly one name: a ten-digit name never starts with 0.
//! Anything else in the directory is not the library's, and is left alone.
//! No data or hint file name can end in `.quarantine`, so a quarantine
//! file is never taken for one.

/// Name of the lock file in the database directory.
pub const LOCK: &str = "LOCK";

/// Suffix of a file being written (a merge output or a hint file) before
/// it is renamed into place. Open removes leftovers.
const TEMP_SUFFIX: &str = ".tmp";
const DATA_SUFFIX: &str = ".data";
const HINT_SUFFIX: &str = ".hint";
const QUARANTINE_SUFFIX: &str = ".quarantine";
/// How many digits an id takes in a name at least (zero-padded to them).
const ID_DIGITS: usize = 9;
/// How many digits the largest id (`u32::MAX`) takes.
const MAX_ID_DIGITS: usize = 10;

/// What a name in the database directory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileName {
    /// Data file `id`.
    Data(u32),
    /// The hint file of data file `id`.
    Hint(u32),
    /// Data file `id` being written by a merge, under its temporary name.
    TempData(u32),
    /// The hint file of data file `id` being written, under its temporary name.
    TempHint(u32),
    /// Bytes moved out of data file `id` from `offset` on (see
    /// `log/quarantine.rs`); `n` tells apart several taken from the same
    /// place (1 for the first, whose name has no `-n`).
    Quarantine { id: u32, offset: u64, n: u32 },
    /// A quarantine file being written, under its temporary name.
    TempQuarantine { id: u32, offset: u64, n: u32 },
    /// The lock file.
    Lock,
}

impl FileName {
    /// Parses a name found in the directory; `None` for any name that is
    /// not the library's.
    pub fn parse(name: &str) -> Option<FileName> {
        if name == LOCK {
            return Some(FileName::Lock);
        }
        if let Some(base) = name.strip_suffix(TEMP_SUFFIX) {
            return match FileName::parse(base)? {
                FileName::Data(id) => Some(FileName::TempData(id)),
                FileName::Hint(id) => Some(FileName::TempHint(id)),
                FileName::Quarantine { id, offset, n } => {
                    Some(FileName::TempQuarantine { id, offset, n })
                }
                _ => None,
            };
        }
        if let Some(base) = name.strip_suffix(QUARANTINE_SUFFIX) {
            return parse_quarantine(base);
        }
        if let Some(digits) = name.strip_suffix(DATA_SUFFIX) {
            return parse_id(digits).map(FileName::Data);
        }
        name.strip_suffix(HINT_SUFFIX)
            .and_then(parse_id)
            .map(FileName::Hint)
    }

    /// The name itself.
    pub fn name(self) -> String {
        match self {
            FileName::Data(id) => format!("{id:0ID_DIGITS$}{DATA_SUFFIX}"),
            FileName::Hint(id) => format!("{id:0ID_DIGITS$}{HINT_SUFFIX}"),
            FileName::TempData(id) => format!("{}{TEMP_SUFFIX}", FileName::Data(id).name()),
            FileName::TempHint(id) => format!("{}{TEMP_SUFFIX}", FileName::Hint(id).name()),
            FileName::Quarantine { id, offset, n } => {
                let stem = data_file_name(id);
                let stem = stem.strip_suffix(DATA_SUFFIX).unwrap_or(&stem);
                match n {
                    0 | 1 => format!("{stem}-{offset}{QUARANTINE_SUFFIX}"),
                    n => format!("{stem}-{offset}-{n}{QUARANTINE_SUFFIX}"),
                }
            }
            FileName::TempQuarantine { id, offset, n } => format!(
                "{}{TEMP_SUFFIX}",
                FileName::Quarantine { id, offset, n }.name()
            ),
            FileName::Lock => LOCK.to_string(),
        }
    }
}

/// The name of data file `id`.
pub fn data_file_name(id: u32) -> String {
    FileName::Data(id).name()
}

/// The name of the hint file of data file `id`.
pub fn hint_file_name(id: u32) -> String {
    FileName::Hint(id).name()
}

/// The parts of a quarantine file name without its suffix:
/// `{id}-{offset}` or `{id}-{offset}-{n}` with `n` from 2.
fn parse_quarantine(base: &str) -> Option<FileName> {
    let mut parts = base.split('-');
    let id = parse_id(parts.next()?)?;
    let offset = parse_decimal(parts.next()?)?;
    let n = match parts.next() {
        None => 1,
        Some(n) => match parse_decimal(n)? {
            n @ 2..=0xFFFF_FFFF => n as u32,
            _ => return None,
        },
    };
    if parts.next().is_some() {
        return None;
    }
    Some(FileName::Quarantine { id, offset, n })
}

/// A decimal number as the library writes one: digits only, no leading
/// zero (except "0" itself).
fn parse_decimal(digits: &str) -> Option<u64> {
    let canonical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    canonical.then(|| digits.parse().ok()).flatten()
}

/// The id written as `digits`: [`ID_DIGITS`] decimal digits, or more (up
/// to [`MAX_ID_DIGITS`]) without a leading zero, for an id that fits a `u32`.
fn parse_id(digits: &str) -> Option<u32> {
    let len_ok = digits.len() == ID_DIGITS
        || (digits.len() > ID_DIGITS && digits.len() <= MAX_ID_DIGITS && !digits.starts_with('0'));
    if !len_ok || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips() {
        for name in [
            FileName::Data(1),
            FileName::Data(4_000_000),
            FileName::Hint(12),
            FileName::TempData(7),
            FileName::TempHint(999_999_999),
            FileName::Quarantine {
                id: 4,
                offset: 1_049_824,
                n: 1,
            },
            FileName::Quarantine {
                id: 4,
                offset: 0,
                n: 3,
            },
            FileName::TempQuarantine {
                id: 9,
                offset: u64::MAX,
                n: 2,
            },
            FileName::Data(1_000_000_000),
            FileName::Hint(u32::MAX),
            FileName::TempData(u32::MAX),
            FileName::Lock,
        ] {
            assert_eq!(FileName::parse(&name.name()), Some(name), "{name:?}");
        }
        assert_eq!(data_file_name(1), "000000001.data");
        assert_eq!(hint_file_name(12), "000000012.hint");
        assert_eq!(data_file_name(999_999_999), "999999999.data");
        assert_eq!(data_file_name(1_000_000_000), "1000000000.data");
        assert_eq!(data_file_name(u32::MAX), "4294967295.data");
        assert_eq!(
            FileName::TempHint(12).name(),
            "000000012.hint.tmp".to_string()
        );
        let quarantine = |n| FileName::Quarantine {
            id: 4,
            offset: 1_049_824,
            n,
        };
        assert_eq!(quarantine(1).name(), "000000004-1049824.quarantine");
        assert_eq!(quarantine(2).name(), "000000004-1049824-2.quarantine");
    }

    #[test]
    fn other_names_are_not_the_librarys() {
        for other in [
            "1.data",
            "00000001.data",
            "0000000x1.data",
            "000000001.data.tmp.tmp",
            "000000001.tmp",
            "LOCK.tmp",
            "lock",
            "000000001.hint.bak",
            "000000001.quarantine",
            "000000001-.quarantine",
            "000000001-012.quarantine",
            "000000001-12-1.quarantine",
            "000000001-12-0.quarantine",
            "000000001-12-2-2.quarantine",
            "000000001-x.quarantine",
            "000000001.data.quarantine",
            // One name per id: ten digits never start with a zero.
            "0000000001.data",
            "0999999999.data",
            // Past u32::MAX, or more digits than any u32 has.
            "4294967296.data",
            "9999999999.hint",
            "10000000000.data",
            "",
        ] {
            assert_eq!(FileName::parse(other), None, "{other}");
        }
    }
}

//! Every name a database directory holds, built and parsed in this one
//! place (as LevelDB's `db/filename.h` does):
//!
//! ```text
//! 000000042.data       data file 42
//! 000000042.hint       the hint file of data file 42
//! 000000042.data.tmp   a merge output not yet renamed into place
//! 000000042.hint.tmp   a hint file not yet renamed into place
//! LOCK                 the directory lock (flock)
//! KEYDIR               the index as close left it (db/saved_keydir.rs)
//! KEYDIR.tmp           the same, not yet renamed into place
//! ```
//!
//! Ids are written with nine digits, zero-padded. Anything else in the
//! directory is not the library's, and is left alone.

/// Name of the lock file in the database directory.
pub const LOCK: &str = "LOCK";
/// Name of the keydir file close writes, and open reads and removes.
pub const KEYDIR: &str = "KEYDIR";
/// Name of the keydir file while it is written.
pub const KEYDIR_TEMP: &str = "KEYDIR.tmp";

/// Suffix of a file being written (a merge output or a hint file) before
/// it is renamed into place. Open removes leftovers.
const TEMP_SUFFIX: &str = ".tmp";
const DATA_SUFFIX: &str = ".data";
const HINT_SUFFIX: &str = ".hint";
/// How many digits an id takes in a name.
const ID_DIGITS: usize = 9;

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
                _ => None,
            };
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

/// The id of exactly [`ID_DIGITS`] decimal digits.
fn parse_id(digits: &str) -> Option<u32> {
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
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
            FileName::Lock,
        ] {
            assert_eq!(FileName::parse(&name.name()), Some(name), "{name:?}");
        }
        assert_eq!(data_file_name(1), "000000001.data");
        assert_eq!(hint_file_name(12), "000000012.hint");
        assert_eq!(
            FileName::TempHint(12).name(),
            "000000012.hint.tmp".to_string()
        );
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
            "",
        ] {
            assert_eq!(FileName::parse(other), None, "{other}");
        }
    }
}

//! What verify found (`verify.rs`), and what repair did to each damaged
//! range (`repair.rs` reports ranges the same way): the report types of
//! [`crate::verify`].

/// What open does with a damaged range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtOpen {
    /// It lies in the newest data file, which has no usable hint file: open
    /// cuts the file from the first bad record on, into a quarantine file
    /// (or refuses, with `strict_recovery`).
    CutAsTail,
    /// It lies in a sealed data file without a usable hint file: open
    /// refuses the database with a corruption error until it is repaired.
    Refused,
    /// Its data file loads from its hint file, so open does not read it: a
    /// get of a record there answers corruption.
    FoundByGets,
}

/// A range of a data file whose bytes are not good records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    /// The data file's name.
    pub file: String,
    /// The data file's id.
    pub file_id: u32,
    /// Where the range begins.
    pub offset: u64,
    /// How long it is.
    pub len: u64,
    /// What failed, at its first bad record.
    pub reason: String,
    /// Intact records that go with it (batch records of a batch it cut,
    /// which cannot be kept alone).
    pub intact_records: u64,
    /// What open does with it (before any repair).
    pub at_open: AtOpen,
    /// The quarantine file its bytes went to (repair only).
    pub quarantine_file: Option<String>,
}

/// Zeros that run from the last record of a data file to its end: space
/// allocated and never written, which open cuts. Not damage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroTail {
    /// The data file's name.
    pub file: String,
    /// Where the zeros begin.
    pub offset: u64,
    /// How many there are.
    pub len: u64,
}

/// A hint file, or one of its entries, that does not agree with its data
/// file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HintProblem {
    /// The hint file's name.
    pub file: String,
    /// The entry's number (from 0), or `None` for the file as a whole.
    pub entry: Option<u64>,
    /// The entry's key (empty for the file as a whole).
    pub key: Vec<u8>,
    /// What is wrong.
    pub reason: String,
}

/// Something verify found that is not damage (see the module
/// documentation): the newest file's torn end, a header not yet written,
/// what a verify beside a writer did not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyNote {
    /// The data file's name.
    pub file: String,
    /// Where in it the note begins.
    pub offset: u64,
    /// How many bytes it covers (0 where a length means nothing).
    pub len: u64,
    /// What it is.
    pub what: String,
}

/// What [`crate::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Whether it ran beside a writer: another handle had the database open
    /// for writing (or the lock could not be taken for lack of permission),
    /// so the newest data file was read only up to its first record that
    /// fails a check (see [`crate::verify`]).
    pub beside_writer: bool,
    /// Data files read.
    pub data_files: u64,
    /// Bytes of data files read.
    pub bytes: u64,
    /// Records that pass every check.
    pub records: u64,
    /// Every damaged range, in file order.
    pub damaged: Vec<DamagedRange>,
    /// Zero-filled ends of data files (not damage; open cuts them).
    pub zero_tails: Vec<ZeroTail>,
    /// Batch records at the end of a data file without their commit
    /// record (what a writer that died in a batch leaves, or one still
    /// appending it; not damage).
    pub uncommitted_batch_records: u64,
    /// Hint files that were usable, and so checked entry by entry.
    pub hint_files_checked: u64,
    /// Entries checked against their records.
    pub hint_entries_checked: u64,
    /// Hint files or entries that disagree with their data files.
    pub hint_problems: Vec<HintProblem>,
    /// Records that mark a key whose value a merge found damaged.
    pub lost_values: u64,
    /// The quarantine files in the directory.
    pub quarantine_files: Vec<String>,
    /// What is not damage but worth knowing, in file order.
    pub notes: Vec<VerifyNote>,
}

impl VerifyReport {
    /// Whether nothing is damaged: no damaged range, no hint problem, no
    /// lost value. Notes, zero tails, uncommitted batch records and
    /// quarantine files are not damage.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.hint_problems.is_empty() && self.lost_values == 0
    }
}

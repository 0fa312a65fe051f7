//! What open recovered, file by file and in all: the report that
//! `recovery.rs` fills in as it loads each data file, and its one-line
//! text. Read after open with [`crate::Bitcask::recovery`] (C:
//! `bitcask_get_recovery_report`, `bitcask_get_recovery_text`).

/// What open did to one data file besides reading it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileRecovery {
    /// Its hint file exists but was not usable (damaged, stale, or it
    /// does not decode): the file was scanned instead.
    pub hint_ignored: bool,
    /// Its header was torn (the newest file, created by a writer that died
    /// before the header was on disk) and was written again.
    pub header_rewritten: bool,
    /// Zero bytes cut from the end of a sealed file.
    pub zero_bytes_cut: u64,
    /// The tail cut from the newest file.
    pub tail: Option<TailCut>,
}

/// The tail open cut off the newest data file: everything from the first
/// record that failed a check (or from a batch that never got its commit
/// record) to the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    /// The data file's name.
    pub file: String,
    /// The data file's id.
    pub file_id: u32,
    /// Where the cut began: the file's length now.
    pub offset: u64,
    /// How many bytes were cut (zeros included).
    pub bytes_cut: u64,
    /// Why the good data ended there.
    pub reason: String,
    /// The quarantine file that holds the cut bytes; `None` when they were
    /// all zeros (space allocated ahead and never written).
    pub quarantine_file: Option<String>,
    /// How many of the cut bytes the quarantine file stores (the tail up to
    /// its last non-zero byte).
    pub quarantined_bytes: u64,
    /// Records that pass every check, found after the first one that fails
    /// (0 for a torn write). More is a sign of damage, or of pages written
    /// back out of order before a power cut; repair can bring them back.
    pub intact_records_after: u64,
}

/// What open found and did, over every data file: how each was loaded,
/// and whatever it changed (a tail cut off the newest file, zeros cut off
/// sealed files, a torn header written again). Read it after open with
/// [`crate::Bitcask::recovery`] (C: `bitcask_get_recovery_report`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether open loaded the saved index (the `KEYDIR` file: the last
    /// clean close's, or a checkpoint's) instead of any hint or data file,
    /// nothing having been written after it: then nothing else was read and
    /// nothing needed recovering, and the counts are 0.
    pub from_saved_keydir: bool,
    /// Whether open loaded the `KEYDIR` file (a checkpoint of the index
    /// taken while the database ran, see
    /// [`crate::Options::checkpoint_bytes`], or close's file from before
    /// later writes), then what was written after it: the counts below are
    /// of that part (the last file it names, read from where it ends,
    /// counts as scanned).
    pub resumed_from_keydir: bool,
    /// Data files loaded from their hint files (not read).
    pub files_from_hint: u64,
    /// Data files read in full (no usable hint file).
    pub files_scanned: u64,
    /// Hint files found but not used (damaged, stale, of another file, or
    /// with entries that do not decode): their data files were scanned.
    /// The newest file's hint from the last clean close, made stale by
    /// later writes, does not count.
    pub hints_ignored: u64,
    /// Whether the newest data file's header was torn (a writer died while
    /// creating the file) and was written again.
    pub header_rewritten: bool,
    /// Zero bytes cut off the ends of sealed data files (space allocated and
    /// never written, as a failed `fallocate` leaves).
    pub zero_bytes_cut: u64,
    /// The tail cut off the newest data file, if one was.
    pub tail: Option<TailCut>,
}

impl RecoveryReport {
    /// Adds what loading one file did: whether it came from its hint file,
    /// and what open did to it besides reading it.
    pub fn add(&mut self, from_hint: bool, r: &FileRecovery) {
        if from_hint {
            self.files_from_hint += 1;
        } else {
            self.files_scanned += 1;
        }
        self.hints_ignored += u64::from(r.hint_ignored);
        self.header_rewritten |= r.header_rewritten;
        self.zero_bytes_cut += r.zero_bytes_cut;
        if r.tail.is_some() {
            self.tail = r.tail.clone();
        }
    }

    /// Whether open changed nothing: no tail cut, no zeros cut, no header
    /// written again.
    pub fn changed_nothing(&self) -> bool {
        self.tail.is_none() && self.zero_bytes_cut == 0 && !self.header_rewritten
    }
}

impl std::fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.from_saved_keydir {
            return write!(
                f,
                "open loaded the index saved by the last clean close (KEYDIR); no hint or data \
                 file needed reading"
            );
        }
        let opening = match self.resumed_from_keydir {
            true => "open loaded the saved index (KEYDIR), then what was written after it:",
            false => "open loaded",
        };
        write!(
            f,
            "{opening} {} data file(s) from hint files and scanned {}",
            self.files_from_hint, self.files_scanned
        )?;
        if self.hints_ignored > 0 {
            write!(f, "; {} hint file(s) ignored", self.hints_ignored)?;
        }
        if let Some(t) = &self.tail {
            write!(
                f,
                "; cut {} bytes from offset {} of {} ({})",
                t.bytes_cut, t.offset, t.file, t.reason
            )?;
            match &t.quarantine_file {
                Some(q) => write!(f, ", kept in quarantine file {q}")?,
                None => write!(f, ", all zeros")?,
            }
            if t.intact_records_after > 0 {
                write!(
                    f,
                    "; {} intact record(s) lay after the first bad one (damage, or pages \
                     written back out of order before a power cut): repair with \
                     restore_quarantined brings them back",
                    t.intact_records_after
                )?;
            }
        }
        if self.zero_bytes_cut > 0 {
            write!(
                f,
                "; cut {} zero bytes off the ends of sealed data files",
                self.zero_bytes_cut
            )?;
        }
        if self.header_rewritten {
            write!(f, "; wrote the newest data file's torn header again")?;
        }
        Ok(())
    }
}

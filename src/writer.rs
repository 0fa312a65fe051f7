//! The appender of the active data file. It owns the write offset, so it is
//! the one place that decides what counts as written:
//!
//! - a record is appended with one positioned write at the end of the last
//!   good record;
//! - a failed write (disk full, I/O error) is cut back to that offset, so no
//!   partial record is left for a later read or open to trip over; if even
//!   the cut fails, the writer refuses all further writes;
//! - a failed sync also makes it refuse further writes until reopen: after a
//!   failed fsync the kernel may have dropped the dirty pages and cleared the
//!   error, so a retry that "succeeds" would prove nothing;
//! - the sync policy (`sync_writes`, `bytes_per_sync`) is applied here.

use std::os::unix::fs::FileExt;
use std::sync::Arc;

use crate::data_file::DataFile;
use crate::error::{Error, Result};
use crate::format::{self, RecordKind};

/// When the writer syncs on its own.
#[derive(Clone, Copy, Debug)]
pub struct SyncPolicy {
    /// Sync after every record.
    pub every_write: bool,
    /// Sync once this many bytes were appended since the last sync (0: never).
    pub bytes_per_sync: u64,
}

/// Appends records to the active data file.
pub struct Writer {
    file: Arc<DataFile>,
    /// End of the last good record: where the next one goes.
    offset: u64,
    /// Bytes appended since the last sync of `file`.
    unsynced: u64,
    policy: SyncPolicy,
    /// Why writes are refused, once an unrecoverable failure happened.
    refused: Option<String>,
    /// Reused encoding buffer.
    buf: Vec<u8>,
    /// How many syncs this writer has issued.
    syncs: u64,
}

impl Writer {
    /// A writer that appends to `file` from `offset`, which the caller has
    /// made the file's length.
    pub fn new(file: Arc<DataFile>, offset: u64, policy: SyncPolicy) -> Writer {
        Writer {
            file,
            offset,
            unsynced: 0,
            policy,
            refused: None,
            buf: Vec::new(),
            syncs: 0,
        }
    }

    /// The active file.
    pub fn file(&self) -> &Arc<DataFile> {
        &self.file
    }

    /// Where the next record goes.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// How many syncs this writer has issued.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Fails with [`Error::Closed`] once writes are refused.
    pub fn check_usable(&self) -> Result<()> {
        match &self.refused {
            None => Ok(()),
            Some(why) => Err(Error::Closed(format!(
                "writes are refused since an earlier failure ({why}); reopen the database"
            ))),
        }
    }

    /// Appends one record and applies the sync policy. Returns the record's
    /// offset. On failure nothing of the record remains in the file.
    pub fn append(&mut self, kind: RecordKind, key: &[u8], value: &[u8]) -> Result<u64> {
        self.check_usable()?;
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        format::encode_record(kind, key, value, &mut buf);
        let result = self.append_encoded(&buf);
        // The buffer of a large value is not kept for the next small one.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        result
    }

    /// Appends already encoded records (a whole write batch) with one
    /// positioned write and applies the sync policy, as [`Writer::append`].
    /// Returns the offset of the first byte. On failure nothing of them
    /// remains in the file.
    pub fn append_encoded(&mut self, bytes: &[u8]) -> Result<u64> {
        self.check_usable()?;
        let offset = self.offset;
        if let Err(e) = self.file.file().write_all_at(bytes, offset) {
            let err = Error::io("append to", self.file.path(), e);
            self.cut_back();
            return Err(err);
        }
        self.offset += bytes.len() as u64;
        self.unsynced += bytes.len() as u64;
        let policy = self.policy;
        if policy.every_write
            || (policy.bytes_per_sync > 0 && self.unsynced >= policy.bytes_per_sync)
        {
            self.sync()?;
        }
        Ok(offset)
    }

    /// Makes everything appended so far durable (fdatasync). A failure makes
    /// the writer refuse further writes.
    pub fn sync(&mut self) -> Result<()> {
        self.check_usable()?;
        if self.unsynced == 0 {
            return Ok(());
        }
        self.syncs += 1;
        match self.file.file().sync_data() {
            Ok(()) => {
                self.unsynced = 0;
                Ok(())
            }
            Err(e) => {
                let err = Error::io("sync", self.file.path(), e);
                self.refuse(format!("{err}"));
                Err(err)
            }
        }
    }

    /// Makes `file`, freshly created and synced, the active file. The caller
    /// has synced the old one.
    pub fn switch_to(&mut self, file: Arc<DataFile>) {
        debug_assert_eq!(self.unsynced, 0, "rollover left unsynced data behind");
        self.file = file;
        self.offset = format::FILE_HEADER_LEN;
        self.unsynced = 0;
    }

    /// Cuts the file back to the end of the last good record after a failed
    /// append, durably; refuses further writes if that fails.
    fn cut_back(&mut self) {
        let file = self.file.file();
        match file.set_len(self.offset).and_then(|()| file.sync_data()) {
            Ok(()) => self.unsynced = 0,
            Err(e) => self.refuse(format!(
                "cutting {} back to offset {} after a failed append failed: {e}",
                self.file.path().display(),
                self.offset
            )),
        }
    }

    /// Refuses further writes after a sync of the active file made outside
    /// the writer failed: the kernel may have dropped the unsynced pages, so
    /// a later sync that succeeds would prove nothing.
    pub fn refuse_after(&mut self, error: &Error) {
        self.refuse(format!("{error}"));
    }

    fn refuse(&mut self, why: String) {
        if self.refused.is_none() {
            self.refused = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_a_failed_append_cannot_be_cut_back_every_later_write_is_refused() {
        let dir = std::env::temp_dir().join(format!("bitcask-writer-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        drop(DataFile::create(&dir, 1).unwrap());
        // A read-only descriptor: the append fails (EBADF), and so does the cut back.
        let file = Arc::new(DataFile::open(&dir, 1, false).unwrap());
        let policy = SyncPolicy {
            every_write: false,
            bytes_per_sync: 0,
        };
        let mut writer = Writer::new(file, format::FILE_HEADER_LEN, policy);
        assert!(matches!(
            writer.append(RecordKind::Put, b"k", b"v"),
            Err(Error::Io { .. })
        ));
        match writer.append(RecordKind::Put, b"k", b"v") {
            Err(Error::Closed(why)) => assert!(why.contains("reopen"), "{why}"),
            other => panic!("expected Closed, got {other:?}"),
        }
        assert!(matches!(writer.sync(), Err(Error::Closed(_))));
        assert_eq!(writer.offset(), format::FILE_HEADER_LEN);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

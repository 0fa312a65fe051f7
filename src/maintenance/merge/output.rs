//! A merge output: records copied into a new data file under a temporary
//! name, buffered, with the hint entries and old positions that installing
//! it needs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::failpoint;
use crate::log::filename::FileName;
use crate::log::format::{self, RecordKind, FILE_HEADER_LEN};
use crate::log::hint::{HintBuilder, HintKind};
use crate::log::RecordPos;

/// How much of an output is buffered before it is written.
const OUTPUT_BUFFER: usize = 1 << 20;

/// A merge output being written under its temporary name.
pub(super) struct Output {
    pub(super) id: u32,
    pub(super) file: File,
    pub(super) temp: PathBuf,
    /// Where the next record goes (buffered bytes included).
    pub(super) len: u64,
    /// Encoded records not yet written.
    buf: Vec<u8>,
    /// The new positions, for the hint file and the keydir.
    pub(super) hint: HintBuilder,
    /// The position each hint entry's record was copied from.
    pub(super) olds: Vec<RecordPos>,
}

impl Output {
    pub(super) fn create(dir: &Path, id: u32) -> Result<Output> {
        let temp = dir.join(FileName::TempData(id).name());
        let file = failpoint::fail("merge:create-output")
            .and_then(|()| {
                OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&temp)
            })
            .map_err(|e| Error::io("create merge output", &temp, e))?;
        let mut buf = Vec::with_capacity(OUTPUT_BUFFER + 4096);
        buf.extend_from_slice(&format::encode_file_header());
        Ok(Output {
            id,
            file,
            temp,
            len: FILE_HEADER_LEN,
            buf,
            hint: HintBuilder::new(id),
            olds: Vec::new(),
        })
    }

    pub(super) fn append(
        &mut self,
        kind: RecordKind,
        key: &[u8],
        value: &[u8],
        old: RecordPos,
    ) -> Result<()> {
        let start = self.buf.len();
        format::encode_record(kind, key, value, &mut self.buf);
        let size = (self.buf.len() - start) as u64;
        // An output is cut before data_file_size (at most 2 GiB) unless it
        // holds a single record, which came from a file of the same limit.
        let new = RecordPos {
            file_id: self.id,
            offset: self.len as u32,
            size: size as u32,
        };
        self.hint.push(HintKind::Put, key, new);
        self.olds.push(old);
        self.len += size;
        if self.buf.len() >= OUTPUT_BUFFER {
            self.flush()
                .map_err(|e| Error::io("write merge output", &self.temp, e))?;
        }
        Ok(())
    }

    pub(super) fn flush(&mut self) -> io::Result<()> {
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    /// Removes an output that will not be installed.
    pub(super) fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.temp);
    }
}

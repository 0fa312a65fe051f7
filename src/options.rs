//! Options for opening a database, with their defaults and valid ranges.
//! Every setter checks its value at once, so an `Options` is always valid.

use crate::error::{Error, Result};

/// Which in-memory index (keydir) maps keys to record positions. Either
/// opens any database: the choice is not stored with the data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IndexType {
    /// An ordered map (B-trees of a few hundred keys each, in key order):
    /// iterators and folds copy their keys out of it already in order, and
    /// one over a narrow prefix reads only that prefix's keys. Point reads
    /// and writes are several times slower than `Hash`'s, and a key costs
    /// about twice the memory (measurements in docs/bench/index-types.md).
    Ordered,
    /// A hash table whose keys live in a few large buffers, the default:
    /// the fastest gets, puts and deletes and the least memory per key.
    /// Iterators and folds still go in key order: each copies its keys out
    /// of the table and sorts them when it is created (a million keys in
    /// about 50 ms), and holds that copy.
    #[default]
    Hash,
}

/// How a database is opened. Build with [`Options::default`] and the setters.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    data_file_size: u64,
    sync_writes: bool,
    bytes_per_sync: u64,
    mmap_at_startup: bool,
    index_type: IndexType,
    max_batch_bytes: u64,
    auto_merge_ratio: f64,
    auto_merge_min_bytes: u64,
    checkpoint_bytes: u64,
    strict_recovery: bool,
    read_only: bool,
}

impl Options {
    /// Smallest accepted `data_file_size`: 4 KiB.
    pub const MIN_DATA_FILE_SIZE: u64 = 4096;
    /// Largest accepted `data_file_size`: 2 GiB, so that record offsets fit in 32 bits.
    pub const MAX_DATA_FILE_SIZE: u64 = 1 << 31;
    /// Default `data_file_size`: 256 MiB.
    pub const DEFAULT_DATA_FILE_SIZE: u64 = 256 << 20;

    /// Size at which the active data file is closed and a new one started.
    /// A record larger than this gets a file of its own.
    pub fn data_file_size(&self) -> u64 {
        self.data_file_size
    }

    /// Sets `data_file_size`; valid from [`Options::MIN_DATA_FILE_SIZE`] to
    /// [`Options::MAX_DATA_FILE_SIZE`].
    pub fn set_data_file_size(&mut self, bytes: u64) -> Result<&mut Self> {
        self.data_file_size = in_range(
            "data_file_size",
            bytes,
            Self::MIN_DATA_FILE_SIZE,
            Self::MAX_DATA_FILE_SIZE,
        )?;
        Ok(self)
    }

    /// Whether every put and delete is on stable storage (fdatasync) before it returns.
    pub fn sync_writes(&self) -> bool {
        self.sync_writes
    }

    /// Sets `sync_writes` (default false).
    pub fn set_sync_writes(&mut self, on: bool) -> &mut Self {
        self.sync_writes = on;
        self
    }

    /// Bytes written after which the active file is synced; 0 means never
    /// (only `sync`, rollover and close sync).
    pub fn bytes_per_sync(&self) -> u64 {
        self.bytes_per_sync
    }

    /// Sets `bytes_per_sync`: any value, 0 (the default) turns it off.
    pub fn set_bytes_per_sync(&mut self, bytes: u64) -> &mut Self {
        self.bytes_per_sync = bytes;
        self
    }

    /// Whether open reads the data files and their hint files through
    /// memory maps while it rebuilds the index (else with positioned
    /// reads). After open, gets read records through maps of the data
    /// files, and puts copy into the active file's map, either way.
    pub fn mmap_at_startup(&self) -> bool {
        self.mmap_at_startup
    }

    /// Sets `mmap_at_startup` (default true).
    pub fn set_mmap_at_startup(&mut self, on: bool) -> &mut Self {
        self.mmap_at_startup = on;
        self
    }

    /// Smallest accepted `max_batch_bytes`: 4 KiB.
    pub const MIN_MAX_BATCH_BYTES: u64 = 4096;
    /// Largest accepted `max_batch_bytes`: 2 GiB, so that a batch in a data
    /// file of its own still has every record offset within 32 bits.
    pub const MAX_MAX_BATCH_BYTES: u64 = 1 << 31;
    /// Default `max_batch_bytes`: 64 MiB.
    pub const DEFAULT_MAX_BATCH_BYTES: u64 = 64 << 20;

    /// The largest a write batch may grow, counted as the bytes its records
    /// take in the data file (keys, values and record headers, the commit
    /// record included). A batch is buffered in memory and written with one
    /// append, so this bounds both.
    pub fn max_batch_bytes(&self) -> u64 {
        self.max_batch_bytes
    }

    /// Sets `max_batch_bytes`; valid from [`Options::MIN_MAX_BATCH_BYTES`]
    /// to [`Options::MAX_MAX_BATCH_BYTES`].
    pub fn set_max_batch_bytes(&mut self, bytes: u64) -> Result<&mut Self> {
        self.max_batch_bytes = in_range(
            "max_batch_bytes",
            bytes,
            Self::MIN_MAX_BATCH_BYTES,
            Self::MAX_MAX_BATCH_BYTES,
        )?;
        Ok(self)
    }

    /// The kind of in-memory index.
    pub fn index_type(&self) -> IndexType {
        self.index_type
    }

    /// Sets the kind of in-memory index (default [`IndexType::Hash`]).
    /// It is not stored with the data: any index type opens any database.
    pub fn set_index_type(&mut self, index_type: IndexType) -> &mut Self {
        self.index_type = index_type;
        self
    }
}

impl Options {
    /// Default `auto_merge_ratio`: merge once half of the data files' bytes
    /// are reclaimable.
    pub const DEFAULT_AUTO_MERGE_RATIO: f64 = 0.5;
    /// Default `auto_merge_min_bytes`: 256 MiB.
    pub const DEFAULT_AUTO_MERGE_MIN_BYTES: u64 = 256 << 20;

    /// The share of the data files' bytes that must be reclaimable (see
    /// `reclaimable_bytes` in the stats) before the background thread
    /// merges on its own; 0 turns automatic merges off. Checked about once
    /// a second.
    pub fn auto_merge_ratio(&self) -> f64 {
        self.auto_merge_ratio
    }

    /// Sets `auto_merge_ratio`: 0 (off) to 1, default
    /// [`Options::DEFAULT_AUTO_MERGE_RATIO`]. NaN and values outside 0..=1
    /// are refused.
    pub fn set_auto_merge_ratio(&mut self, ratio: f64) -> Result<&mut Self> {
        if !(0.0..=1.0).contains(&ratio) {
            return Err(Error::InvalidArgument(format!(
                "auto_merge_ratio {ratio} is out of range: it must be from 0 (off) to 1"
            )));
        }
        self.auto_merge_ratio = ratio;
        Ok(self)
    }

    /// The fewest reclaimable bytes for which an automatic merge is worth
    /// it, whatever the ratio.
    pub fn auto_merge_min_bytes(&self) -> u64 {
        self.auto_merge_min_bytes
    }

    /// Sets `auto_merge_min_bytes`: any value, default
    /// [`Options::DEFAULT_AUTO_MERGE_MIN_BYTES`].
    pub fn set_auto_merge_min_bytes(&mut self, bytes: u64) -> &mut Self {
        self.auto_merge_min_bytes = bytes;
        self
    }

    /// Default `checkpoint_bytes`: 64 MiB.
    pub const DEFAULT_CHECKPOINT_BYTES: u64 = 64 << 20;

    /// How many bytes of records are appended, at least, between two
    /// checkpoints of the index: the background thread then saves the
    /// index (the hash index only) as the `KEYDIR` file, with the position
    /// in the log it describes, so that an open after a crash loads it and
    /// scans only what was appended after it. The interval is never less
    /// than the size of the last checkpoint, so that checkpoints never
    /// write more than the records they save a scan of. 0 turns
    /// checkpoints off: an open after a crash then loads every hint file
    /// and scans the newest data file whole.
    pub fn checkpoint_bytes(&self) -> u64 {
        self.checkpoint_bytes
    }

    /// Sets `checkpoint_bytes`: 0 (off) or any number of bytes, default
    /// [`Options::DEFAULT_CHECKPOINT_BYTES`].
    pub fn set_checkpoint_bytes(&mut self, bytes: u64) -> &mut Self {
        self.checkpoint_bytes = bytes;
        self
    }
}

impl Options {
    /// Whether open refuses a database whose newest data file ends in
    /// bytes that are not good records (a torn write, pages written back
    /// out of order before a power cut, garbage, damage), rather than move
    /// them to a quarantine file and cut them off. Zero-filled space is cut
    /// either way: it holds nothing. As LevelDB's `paranoid_checks` and
    /// RocksDB's `kAbsoluteConsistency`, for applications that would rather
    /// stop and look than go on without those bytes.
    pub fn strict_recovery(&self) -> bool {
        self.strict_recovery
    }

    /// Sets `strict_recovery` (default false).
    pub fn set_strict_recovery(&mut self, on: bool) -> &mut Self {
        self.strict_recovery = on;
        self
    }

    /// Whether the database is opened read-only: see
    /// [`Options::set_read_only`].
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Sets whether to open the database read-only (default false). A
    /// read-only open takes no lock and never creates, writes, renames or
    /// deletes anything in the directory, so it works beside a process that
    /// has the database open for writing, any number of times at once, and
    /// on a directory the process may only read. It sees the database as it
    /// was at open (the newest data file up to its last complete record; a
    /// torn or half-written end is not read) until
    /// [`crate::Bitcask::refresh`]. Writes return [`Error::ReadOnly`]. The
    /// directory must hold a database: a read-only open creates none.
    pub fn set_read_only(&mut self, on: bool) -> &mut Self {
        self.read_only = on;
        self
    }
}

/// `bytes` if it lies within `min..=max`; otherwise an error naming the option.
fn in_range(name: &str, bytes: u64, min: u64, max: u64) -> Result<u64> {
    if (min..=max).contains(&bytes) {
        Ok(bytes)
    } else {
        Err(Error::InvalidArgument(format!(
            "{name} {bytes} is out of range: it must be from {min} to {max} bytes"
        )))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            data_file_size: Self::DEFAULT_DATA_FILE_SIZE,
            sync_writes: false,
            bytes_per_sync: 0,
            mmap_at_startup: true,
            index_type: IndexType::Hash,
            max_batch_bytes: Self::DEFAULT_MAX_BATCH_BYTES,
            auto_merge_ratio: Self::DEFAULT_AUTO_MERGE_RATIO,
            auto_merge_min_bytes: Self::DEFAULT_AUTO_MERGE_MIN_BYTES,
            checkpoint_bytes: Self::DEFAULT_CHECKPOINT_BYTES,
            strict_recovery: false,
            read_only: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_size_range_is_enforced_and_a_bad_value_changes_nothing() {
        let mut o = Options::default();
        for bad in [
            0,
            Options::MIN_DATA_FILE_SIZE - 1,
            Options::MAX_DATA_FILE_SIZE + 1,
            u64::MAX,
        ] {
            let err = o.set_data_file_size(bad).unwrap_err();
            assert!(err.to_string().contains("data_file_size"), "{err}");
            assert_eq!(o.data_file_size(), Options::DEFAULT_DATA_FILE_SIZE);
        }
        for good in [
            Options::MIN_DATA_FILE_SIZE,
            1 << 20,
            Options::MAX_DATA_FILE_SIZE,
        ] {
            o.set_data_file_size(good).unwrap();
            assert_eq!(o.data_file_size(), good);
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = Options::default();
        assert_eq!(o.data_file_size(), 256 << 20);
        assert!(!o.sync_writes());
        assert_eq!(o.bytes_per_sync(), 0);
        assert!(o.mmap_at_startup());
        assert_eq!(o.index_type(), IndexType::Hash);
        assert_eq!(o.max_batch_bytes(), 64 << 20);
        assert_eq!(o.auto_merge_ratio(), 0.5);
        assert_eq!(o.auto_merge_min_bytes(), 256 << 20);
        assert_eq!(o.checkpoint_bytes(), 64 << 20);
        assert!(!o.strict_recovery());
        assert!(!o.read_only());
    }

    #[test]
    fn auto_merge_ratio_range_is_enforced() {
        let mut o = Options::default();
        for bad in [-0.1, 1.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = o.set_auto_merge_ratio(bad).unwrap_err();
            assert!(err.to_string().contains("auto_merge_ratio"), "{err}");
            assert_eq!(o.auto_merge_ratio(), Options::DEFAULT_AUTO_MERGE_RATIO);
        }
        for good in [0.0, 0.25, 1.0] {
            o.set_auto_merge_ratio(good).unwrap();
            assert_eq!(o.auto_merge_ratio(), good);
        }
    }

    #[test]
    fn index_type_is_set_and_read_back() {
        let mut o = Options::default();
        assert_eq!(
            o.set_index_type(IndexType::Ordered).index_type(),
            IndexType::Ordered
        );
        assert_eq!(
            o.set_index_type(IndexType::Hash).index_type(),
            IndexType::Hash
        );
    }

    #[test]
    fn max_batch_bytes_range_is_enforced() {
        let mut o = Options::default();
        for bad in [0, 4095, (1 << 31) + 1, u64::MAX] {
            assert!(o.set_max_batch_bytes(bad).is_err());
            assert_eq!(o.max_batch_bytes(), Options::DEFAULT_MAX_BATCH_BYTES);
        }
        o.set_max_batch_bytes(4096).unwrap();
        o.set_max_batch_bytes(1 << 31).unwrap();
        assert_eq!(o.max_batch_bytes(), 1 << 31);
    }
}

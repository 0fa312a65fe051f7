//! What the commands that open a database share: the directory and index
//! arguments, opening and closing, and key, value and prefix arguments
//! with their escapes.

use std::path::PathBuf;

use bitcask::{Bitcask, IndexType, Options};
use clap::{Args, ValueEnum};

use crate::escape;
use crate::failure::{lib, Failure, Outcome};

#[derive(Args)]
pub struct DbArgs {
    /// The database directory
    pub dir: PathBuf,
    /// The in-memory index to open it with (any index opens any database)
    #[arg(long, value_enum, default_value_t = Index::Ordered)]
    pub index: Index,
}

#[derive(Args)]
pub struct PrefixArg {
    /// Only keys that start with P (\xNN escapes, or hex digits with --hex)
    #[arg(long, value_name = "P", default_value = "")]
    pub prefix: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Index {
    Ordered,
    Hash,
}

/// Opens `db.dir` read-only or for writing.
pub fn open(db: &DbArgs, read_only: bool) -> Result<Bitcask, Failure> {
    let mut options = Options::default();
    options.set_index_type(match db.index {
        Index::Ordered => IndexType::Ordered,
        Index::Hash => IndexType::Hash,
    });
    options.set_read_only(read_only);
    let what = format!(
        "open {}{}",
        db.dir.display(),
        if read_only { " read-only" } else { "" }
    );
    lib(&what, Bitcask::open(&db.dir, options))
}

/// Closes a database opened for writing (which syncs it).
pub fn close(db: Bitcask) -> Outcome {
    lib("close", db.close())
}

/// The bytes a key, value or prefix argument names.
pub fn arg_bytes(text: &str, hex: bool, what: &str) -> Result<Vec<u8>, Failure> {
    let bytes = if hex {
        escape::from_hex(text)
    } else {
        escape::unescape(text)
    };
    bytes.map_err(|e| Failure::Usage(format!("{what}: {e}")))
}

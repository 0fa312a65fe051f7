//! `bitcask`: look inside, check, dump, load and maintain a libbitcask
//! database from the shell. See `bitcask --help`, the man page (bitcask.1)
//! and the README's section on the tool.
//!
//! Commands that only read (stat, get, scan, dump, check) open the database
//! read-only, so they work while an application has it open for writing;
//! the others take the directory lock and say so when it is held.
//!
//! Exit status: 0 done; 1 the key is missing (get) or damage was found
//! (check); 2 a usage error; 3 any other failure, printed as one line with
//! the library's status and error text.

mod dump;
mod escape;
mod progress;

use std::io::{self, BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bitcask::{ffi, Bitcask, Error, IndexType, Options};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use escape::{escape, Space};
use progress::Progress;

#[derive(Parser)]
#[command(
    name = "bitcask",
    version,
    about = "Look inside, check, dump, load and maintain a libbitcask database",
    long_about = "Look inside, check, dump, load and maintain a libbitcask database.\n\n\
        Commands that only read (stat, get, scan, dump, check) open the database read-only: \
        they work while an application has it open for writing, and see it as it was when \
        they started. The others need the database to themselves.\n\n\
        Keys and values on the command line accept \\xNN escapes (and \\\\, \\n, \\t, \\r, \\0), \
        or hex digits with --hex. Printed keys and values escape every byte outside ! to ~ \
        (and the backslash) as \\xNN, unless --raw.\n\n\
        Exit status: 0 done; 1 key not found (get) or damage found (check); 2 usage error; \
        3 any other failure.",
    after_help = "Run `bitcask COMMAND --help` for a command's options; `man bitcask` for more."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the number of keys, data and hint files, disk and reclaimable bytes, index type and format version
    Stat {
        #[command(flatten)]
        db: DbArgs,
        /// Print one JSON object instead of aligned lines
        #[arg(long)]
        json: bool,
    },
    /// Write the value of KEY to standard output, as it is (exit 1 if KEY is missing)
    Get {
        #[command(flatten)]
        db: DbArgs,
        /// The key (\xNN escapes, or hex digits with --hex)
        key: String,
        /// KEY is hex digits, and the value is printed as hex digits
        #[arg(long)]
        hex: bool,
        /// Print the value escaped, with a newline, instead of its raw bytes
        #[arg(long, conflicts_with = "hex")]
        escape: bool,
    },
    /// Store VALUE (or standard input, when VALUE is left out) under KEY
    Put {
        #[command(flatten)]
        db: DbArgs,
        /// The key (\xNN escapes, or hex digits with --hex)
        key: String,
        /// The value (\xNN escapes, or hex digits with --hex); read raw from standard input when left out
        value: Option<String>,
        /// KEY and VALUE are hex digits
        #[arg(long)]
        hex: bool,
    },
    /// Delete KEY (deleting a missing key is not an error)
    Delete {
        #[command(flatten)]
        db: DbArgs,
        /// The key (\xNN escapes, or hex digits with --hex)
        key: String,
        /// KEY is hex digits
        #[arg(long)]
        hex: bool,
    },
    /// Print keys and values in key order, one pair a line, separated by a tab
    Scan {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        prefix: PrefixArg,
        /// Descending key order
        #[arg(long)]
        reverse: bool,
        /// Print only the keys
        #[arg(long)]
        keys_only: bool,
        /// Stop after N keys
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Print raw bytes instead of escapes (ambiguous if keys or values hold tabs or newlines)
        #[arg(long, conflicts_with = "hex")]
        raw: bool,
        /// --prefix is hex digits, and keys and values are printed as hex digits
        #[arg(long)]
        hex: bool,
    },
    /// Write every record (or those under --prefix) to standard output in the dump format
    Dump {
        #[command(flatten)]
        db: DbArgs,
        #[command(flatten)]
        prefix: PrefixArg,
        /// --prefix is hex digits
        #[arg(long)]
        hex: bool,
    },
    /// Store the records of a dump read from standard input (creates the database if missing)
    Load {
        #[command(flatten)]
        db: DbArgs,
        /// Commit a batch once it holds this many bytes
        #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
        batch_bytes: u64,
    },
    /// Read and verify every record and hint entry; report each damaged range (exit 1 if any)
    Check {
        /// The database directory
        dir: PathBuf,
    },
    /// Rewrite the live records into new files and delete the old ones, freeing the reclaimable bytes
    Merge {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Copy the database into DEST (missing or empty), consistently
    Backup {
        #[command(flatten)]
        db: DbArgs,
        /// Where the copy goes: a missing or empty directory
        dest: PathBuf,
    },
}

#[derive(Args)]
struct DbArgs {
    /// The database directory
    dir: PathBuf,
    /// The in-memory index to open it with (any index opens any database)
    #[arg(long, value_enum, default_value_t = Index::Ordered)]
    index: Index,
}

#[derive(Args)]
struct PrefixArg {
    /// Only keys that start with P (\xNN escapes, or hex digits with --hex)
    #[arg(long, value_name = "P", default_value = "")]
    prefix: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum Index {
    Ordered,
    Hash,
}

/// Why a command did not finish.
enum Failure {
    /// A usage error found after parsing (a bad escape): exit 2.
    Usage(String),
    /// The library failed: exit 3, with its status.
    Library(String, Error),
    /// Anything else (standard input or output failed): exit 3.
    Other(String),
    /// Exit 1 with this message (missing key, damage found).
    Answer(String),
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Every usage error ends with the usage line of the command
            // it is about (clap leaves it out of some, such as a bad value).
            let text = e.render().to_string();
            eprint!("{text}");
            if !text.contains("Usage:") {
                let sub = std::env::args().nth(1).unwrap_or_default();
                let mut cli = Cli::command();
                cli.build();
                let usage = match cli.find_subcommand_mut(&sub) {
                    Some(sub) => sub.render_usage(),
                    None => cli.render_usage(),
                };
                eprintln!("\n{usage}");
            }
            return ExitCode::from(2);
        }
    };
    let name = command_name(&cli.command);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Answer(text)) => {
            eprintln!("bitcask {name}: {text}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(text)) => {
            eprintln!("bitcask {name}: {text}");
            eprintln!("{}", usage_of(name));
            ExitCode::from(2)
        }
        Err(Failure::Library(what, e)) => {
            let (status, code) = status_of(&e);
            let mut line = format!("bitcask {name}: {what}: {status} ({code}): {e}");
            if matches!(e, Error::Locked(_)) {
                line.push_str(
                    " [another process has the database open for writing; stat, get, scan, \
                     dump and check work beside it]",
                );
            }
            eprintln!("{line}");
            ExitCode::from(3)
        }
        Err(Failure::Other(text)) => {
            eprintln!("bitcask {name}: {text}");
            ExitCode::from(3)
        }
    }
}

/// The usage line of subcommand `name`, as clap prints it for a parse error.
fn usage_of(name: &str) -> String {
    let mut cli = Cli::command();
    cli.build();
    let usage = cli
        .find_subcommand_mut(name)
        .map(|sub| sub.render_usage().to_string())
        .unwrap_or_default();
    format!("{usage}\n\nFor more information, try 'bitcask {name} --help'.")
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Stat { .. } => "stat",
        Command::Get { .. } => "get",
        Command::Put { .. } => "put",
        Command::Delete { .. } => "delete",
        Command::Scan { .. } => "scan",
        Command::Dump { .. } => "dump",
        Command::Load { .. } => "load",
        Command::Check { .. } => "check",
        Command::Merge { .. } => "merge",
        Command::Backup { .. } => "backup",
    }
}

/// The C status of a library error: its name and number.
fn status_of(e: &Error) -> (&'static str, i32) {
    match e {
        Error::NotFound => ("BITCASK_NOT_FOUND", ffi::BITCASK_NOT_FOUND),
        Error::InvalidArgument(_) => ("BITCASK_INVALID_ARGUMENT", ffi::BITCASK_INVALID_ARGUMENT),
        Error::Io { .. } => ("BITCASK_IO", ffi::BITCASK_IO),
        Error::Corruption(_) => ("BITCASK_CORRUPTION", ffi::BITCASK_CORRUPTION),
        Error::Locked(_) => ("BITCASK_LOCKED", ffi::BITCASK_LOCKED),
        Error::BufferTooSmall { .. } => ("BITCASK_BUFFER_TOO_SMALL", ffi::BITCASK_BUFFER_TOO_SMALL),
        Error::Closed(_) | Error::WritesRefused(_) => ("BITCASK_CLOSED", ffi::BITCASK_CLOSED),
        Error::ReadOnly(_) => ("BITCASK_READ_ONLY", ffi::BITCASK_READ_ONLY),
        _ => ("BITCASK_INTERNAL", ffi::BITCASK_INTERNAL),
    }
}

/// Attaches what was being done to a library error.
fn lib<T>(what: &str, result: bitcask::Result<T>) -> Result<T, Failure> {
    result.map_err(|e| Failure::Library(what.to_string(), e))
}

fn output_failed(e: io::Error) -> Failure {
    Failure::Other(format!("write to standard output: {e}"))
}

/// Opens `db.dir` read-only or for writing.
fn open(db: &DbArgs, read_only: bool) -> Result<Bitcask, Failure> {
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
fn close(db: Bitcask) -> Outcome {
    lib("close", db.close())
}

/// The bytes a key, value or prefix argument names.
fn arg_bytes(text: &str, hex: bool, what: &str) -> Result<Vec<u8>, Failure> {
    let bytes = if hex {
        escape::from_hex(text)
    } else {
        escape::unescape(text)
    };
    bytes.map_err(|e| Failure::Usage(format!("{what}: {e}")))
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Stat { db, json } => stat(&db, json),
        Command::Get {
            db,
            key,
            hex,
            escape,
        } => get(&db, &arg_bytes(&key, hex, "KEY")?, hex, escape),
        Command::Put {
            db,
            key,
            value,
            hex,
        } => {
            let key = arg_bytes(&key, hex, "KEY")?;
            let value = match value {
                Some(text) => arg_bytes(&text, hex, "VALUE")?,
                None => {
                    let mut bytes = Vec::new();
                    io::stdin()
                        .read_to_end(&mut bytes)
                        .map_err(|e| Failure::Other(format!("read standard input: {e}")))?;
                    bytes
                }
            };
            let handle = open(&db, false)?;
            lib("put", handle.put(&key, &value))?;
            close(handle)
        }
        Command::Delete { db, key, hex } => {
            let key = arg_bytes(&key, hex, "KEY")?;
            let handle = open(&db, false)?;
            lib("delete", handle.delete(&key))?;
            close(handle)
        }
        Command::Scan {
            db,
            prefix,
            reverse,
            keys_only,
            limit,
            raw,
            hex,
        } => {
            let prefix = arg_bytes(&prefix.prefix, hex, "--prefix")?;
            let form = match (raw, hex) {
                (true, _) => Form::Raw,
                (_, true) => Form::Hex,
                _ => Form::Escaped,
            };
            scan(&db, &prefix, reverse, keys_only, limit, form)
        }
        Command::Dump { db, prefix, hex } => {
            dump(&db, &arg_bytes(&prefix.prefix, hex, "--prefix")?)
        }
        Command::Load { db, batch_bytes } => load(&db, batch_bytes),
        Command::Check { dir } => check(&dir),
        Command::Merge { db } => {
            let handle = open(&db, false)?;
            let before = lib("stats", handle.stats())?;
            lib("merge", handle.merge())?;
            let after = lib("stats", handle.stats())?;
            println!(
                "merged: {} data files, {} bytes on disk (were {} data files, {} bytes, {} of \
                 them reclaimable)",
                after.data_file_count,
                after.disk_bytes,
                before.data_file_count,
                before.disk_bytes,
                before.reclaimable_bytes
            );
            close(handle)
        }
        Command::Backup { db, dest } => {
            let handle = open(&db, false)?;
            lib(
                &format!("backup to {}", dest.display()),
                handle.backup(&dest),
            )?;
            close(handle)
        }
    }
}

fn stat(db: &DbArgs, json: bool) -> Outcome {
    let handle = open(db, true)?;
    let stats = lib("stats", handle.stats())?;
    let hint_files = count_hint_files(&db.dir);
    let index = match db.index {
        Index::Ordered => "ordered",
        Index::Hash => "hash",
    };
    let rows: [(&str, String); 7] = [
        ("key_count", stats.key_count.to_string()),
        ("data_file_count", stats.data_file_count.to_string()),
        ("hint_file_count", hint_files.to_string()),
        ("disk_bytes", stats.disk_bytes.to_string()),
        ("reclaimable_bytes", stats.reclaimable_bytes.to_string()),
        ("index_type", index.to_string()),
        ("format_version", bitcask::FORMAT_VERSION.to_string()),
    ];
    let text = if json {
        let fields: Vec<String> = rows
            .iter()
            .map(|(name, value)| match *name {
                "index_type" => format!("\"{name}\":\"{value}\""),
                _ => format!("\"{name}\":{value}"),
            })
            .collect();
        format!("{{{}}}\n", fields.join(","))
    } else {
        rows.iter()
            .map(|(name, value)| format!("{:<18} {value}\n", name.replace('_', " ")))
            .collect()
    };
    io::stdout()
        .write_all(text.as_bytes())
        .map_err(output_failed)
}

/// Hint files in `dir` (named as docs/format.md says: nine digits, `.hint`).
fn count_hint_files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.strip_suffix(".hint")
                    .is_some_and(|id| id.len() == 9 && id.bytes().all(|b| b.is_ascii_digit()))
            })
            .count()
    })
}

fn get(db: &DbArgs, key: &[u8], hex: bool, escaped: bool) -> Outcome {
    let handle = open(db, true)?;
    let Some(value) = lib("get", handle.get(key))? else {
        return Err(Failure::Answer(format!(
            "key not found: {}",
            escape(key, Space::Keep)
        )));
    };
    let mut out = io::stdout().lock();
    let written = if hex {
        writeln!(out, "{}", escape::to_hex(&value))
    } else if escaped {
        writeln!(out, "{}", escape(&value, Space::Keep))
    } else {
        out.write_all(&value)
    };
    written.and_then(|()| out.flush()).map_err(output_failed)
}

/// How scan prints keys and values.
#[derive(Clone, Copy)]
enum Form {
    Escaped,
    Hex,
    Raw,
}

fn scan(
    db: &DbArgs,
    prefix: &[u8],
    reverse: bool,
    keys_only: bool,
    limit: Option<u64>,
    form: Form,
) -> Outcome {
    let handle = open(db, true)?;
    let mut iter = lib("scan", handle.iter(prefix, reverse))?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut line = Vec::new();
    let mut count = 0u64;
    let push = |bytes: &[u8], line: &mut Vec<u8>| match form {
        Form::Raw => line.extend_from_slice(bytes),
        Form::Hex => line.extend_from_slice(escape::to_hex(bytes).as_bytes()),
        Form::Escaped => line.extend_from_slice(escape(bytes, Space::Keep).as_bytes()),
    };
    while iter.valid() && limit.is_none_or(|n| count < n) {
        line.clear();
        let key = iter.key().unwrap_or_default().to_vec();
        push(&key, &mut line);
        if !keys_only {
            let value = lib("read the value", iter.value())?;
            line.push(b'\t');
            push(value, &mut line);
        }
        line.push(b'\n');
        out.write_all(&line).map_err(output_failed)?;
        count += 1;
        iter.next();
    }
    out.flush().map_err(output_failed)
}

fn dump(db: &DbArgs, prefix: &[u8]) -> Outcome {
    let handle = open(db, true)?;
    let total = handle.key_count() as u64;
    let mut iter = lib("dump", handle.iter(prefix, false))?;
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let mut progress = Progress::new("dumped");
    let mut text = String::new();
    writeln!(out, "{}", dump::HEADER).map_err(output_failed)?;
    let mut count = 0u64;
    while iter.valid() {
        text.clear();
        let key = iter.key().unwrap_or_default().to_vec();
        let value = lib("read the value", iter.value())?;
        dump::push_record(&key, value, &mut text);
        out.write_all(text.as_bytes()).map_err(output_failed)?;
        count += 1;
        if count % 4096 == 0 {
            progress.update(count, Some(total), "records");
        }
        iter.next();
    }
    out.write_all(dump::footer(count).as_bytes())
        .and_then(|()| out.flush())
        .map_err(output_failed)
}

fn load(db: &DbArgs, batch_bytes: u64) -> Outcome {
    let handle = open(db, false)?;
    let limit = batch_bytes.clamp(1, handle.options().max_batch_bytes());
    let mut input = io::stdin().lock();
    let mut raw = Vec::new();
    let mut line_no = 0u64;
    let mut loaded = 0u64;
    let mut end = None;
    let mut batch = handle.batch();
    let mut progress = Progress::new("loaded");
    let bad = |line_no: u64, what: String, loaded: u64| {
        Failure::Other(format!(
            "standard input line {line_no}: {what} ({loaded} records before it were loaded)"
        ))
    };
    loop {
        raw.clear();
        let n = input
            .read_until(b'\n', &mut raw)
            .map_err(|e| Failure::Other(format!("read standard input: {e}")))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let text = std::str::from_utf8(&raw)
            .map_err(|_| bad(line_no, "not UTF-8 text".to_string(), loaded))?;
        let text = text.strip_suffix('\n').unwrap_or(text);
        if line_no == 1 {
            if text.strip_suffix('\r').unwrap_or(text) != dump::HEADER {
                return Err(bad(
                    line_no,
                    format!(
                        "not a bitcask dump: the first line must be {:?}",
                        dump::HEADER
                    ),
                    loaded,
                ));
            }
            continue;
        }
        if let Some(count) = end {
            if !text.trim().is_empty() {
                return Err(bad(
                    line_no,
                    format!("text after the end line (# end {count} records)"),
                    loaded,
                ));
            }
            continue;
        }
        match dump::parse_line(text).map_err(|e| bad(line_no, e, loaded))? {
            dump::Line::Nothing => {}
            dump::Line::End(count) => end = Some(count),
            dump::Line::Record(key, value) => {
                let size = (key.len() + value.len() + 32) as u64;
                if !batch.is_empty() && batch.encoded_len() + size > limit {
                    lib("commit a batch", handle.write(&mut batch))?;
                }
                if batch.put(&key, &value).is_err() {
                    // Larger than a batch may be, or a bad key: a put of
                    // its own says which.
                    lib("commit a batch", handle.write(&mut batch))?;
                    lib(
                        &format!("put the record of line {line_no}"),
                        handle.put(&key, &value),
                    )?;
                }
                loaded += 1;
                if loaded % 4096 == 0 {
                    progress.update(loaded, None, "records");
                }
            }
        }
    }
    lib("commit a batch", handle.write(&mut batch))?;
    progress.finish();
    close(handle)?;
    match end {
        Some(count) if count == loaded => Ok(()),
        Some(count) => Err(Failure::Other(format!(
            "the dump's end line counts {count} records, and {loaded} were read (all loaded)"
        ))),
        None => Err(Failure::Other(format!(
            "the dump ends without its end line: it was cut short ({loaded} records were loaded)"
        ))),
    }
}

fn check(dir: &Path) -> Outcome {
    let mut progress = Progress::new("checked");
    let report = lib(
        &format!("check {}", dir.display()),
        bitcask::check_database(dir, &mut |done, total| {
            progress.update(done >> 20, Some(total >> 20), "MiB")
        }),
    )?;
    progress.finish();
    let mut out = String::new();
    let mut line = |kind: &str, f: &bitcask::Finding| {
        out.push_str(&format!(
            "{kind}: {} offset {}{}: {}\n",
            f.path.display(),
            f.offset,
            if f.len > 0 {
                format!(" ({} bytes)", f.len)
            } else {
                String::new()
            },
            f.what
        ));
    };
    for f in &report.damage {
        line("damaged", f);
    }
    for f in &report.notes {
        line("note", f);
    }
    out.push_str(&format!(
        "{} data files ({} bytes, {} good records) and {} hint files read: {}\n",
        report.data_files,
        report.bytes,
        report.records,
        report.hint_files,
        if report.damage.is_empty() {
            "no damage".to_string()
        } else {
            format!("{} damaged ranges", report.damage.len())
        }
    ));
    io::stdout()
        .write_all(out.as_bytes())
        .map_err(output_failed)?;
    if report.damage.is_empty() {
        Ok(())
    } else {
        Err(Failure::Answer(format!(
            "{} damaged ranges found",
            report.damage.len()
        )))
    }
}

//! `bitcask`: look inside, check, dump, load and maintain a libbitcask
//! database from the shell. See `bitcask --help`, the man page (bitcask.1)
//! and the README's section on the tool.
//!
//! Commands that only read (stat, get, scan, dump) open the database
//! read-only, and check verifies beside a writer, so they work while an
//! application has it open for writing; the others take the directory lock
//! and say so when it is held.
//!
//! This file holds the command line (clap) and the exit statuses; each
//! group of commands has a module: `read` (stat, get, scan, dump), `write`
//! (put, delete, load), `check` (check, repair), `maintain` (merge,
//! backup); `args` and `failure` are what they share.
//!
//! Exit status: 0 done; 1 the key is missing (get) or damage was found
//! (check); 2 a usage error; 3 any other failure, printed as one line with
//! the library's status and error text.

mod args;
mod check;
mod dump;
mod escape;
mod failure;
mod json;
mod maintain;
mod progress;
mod read;
mod write;

use std::path::PathBuf;
use std::process::ExitCode;

use bitcask::Error;
use clap::{CommandFactory, Parser, Subcommand};

use args::{arg_bytes, DbArgs, PrefixArg};
use failure::{status_of, Failure, Outcome};

#[derive(Parser)]
#[command(
    name = "bitcask",
    version,
    about = "Look inside, check, dump, load and maintain a libbitcask database",
    long_about = "Look inside, check, dump, load and maintain a libbitcask database.\n\n\
        Commands that only read (stat, get, scan, dump) open the database read-only: they \
        work while an application has it open for writing, and see it as it was when they \
        started. check works beside such an application too (its newest data file is then \
        checked up to its last good record). The others need the database to themselves.\n\n\
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
        /// Print one JSON object instead of lines
        #[arg(long)]
        json: bool,
    },
    /// Rewrite damaged data files with every intact record, their damaged bytes moved to quarantine files
    Repair {
        /// The database directory (not open elsewhere)
        dir: PathBuf,
        /// Also bring back the intact records of tails that open cut into quarantine files
        #[arg(long)]
        restore_quarantined: bool,
        /// Print one JSON object instead of lines
        #[arg(long)]
        json: bool,
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
        Command::Repair { .. } => "repair",
        Command::Merge { .. } => "merge",
        Command::Backup { .. } => "backup",
    }
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Stat { db, json } => read::stat(&db, json),
        Command::Get {
            db,
            key,
            hex,
            escape,
        } => read::get(&db, &arg_bytes(&key, hex, "KEY")?, hex, escape),
        Command::Put {
            db,
            key,
            value,
            hex,
        } => write::put(&db, &key, value, hex),
        Command::Delete { db, key, hex } => write::delete(&db, &key, hex),
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
                (true, _) => read::Form::Raw,
                (_, true) => read::Form::Hex,
                _ => read::Form::Escaped,
            };
            read::scan(&db, &prefix, reverse, keys_only, limit, form)
        }
        Command::Dump { db, prefix, hex } => {
            read::dump(&db, &arg_bytes(&prefix.prefix, hex, "--prefix")?)
        }
        Command::Load { db, batch_bytes } => write::load(&db, batch_bytes),
        Command::Check { dir, json } => check::check(&dir, json),
        Command::Repair {
            dir,
            restore_quarantined,
            json,
        } => check::repair(&dir, restore_quarantined, json),
        Command::Merge { db } => maintain::merge(&db),
        Command::Backup { db, dest } => maintain::backup(&db, &dest),
    }
}

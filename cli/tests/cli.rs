//! The `bitcask` tool run as a user runs it: a subprocess, on databases made
//! through the C API, the Rust API and the tool itself.

use std::ffi::CString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bitcask::{ffi, Bitcask, Options};

/// A scratch directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("bitcask-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `bitcask ARGS` with `stdin` as its standard input.
fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitcask"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Runs `bitcask ARGS` and expects exit status `code`.
fn expect(args: &[&str], stdin: &[u8], code: i32) -> Output {
    let out = run(args, stdin);
    assert_eq!(
        out.status.code(),
        Some(code),
        "bitcask {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ok(args: &[&str]) -> String {
    String::from_utf8(expect(args, b"", 0).stdout).unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Every key and value of the database in `dir`.
fn contents(dir: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut opts = Options::default();
    opts.set_read_only(true);
    let db = Bitcask::open(dir, opts).unwrap();
    let mut all = Vec::new();
    db.fold(b"", |k, v| {
        all.push((k.to_vec(), v.to_vec()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    all
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.next() % (max + 1);
        // Bytes that make escaping work: NUL, newline, tab, CR, space,
        // backslash, '+', '#', high bytes, and letters.
        const SPECIAL: &[u8] = b"\0\n\t\r \\+#\x7f\x80\xffab";
        (0..len)
            .map(|_| {
                let r = self.next();
                if r % 3 == 0 {
                    SPECIAL[(r >> 8) as usize % SPECIAL.len()]
                } else {
                    (r >> 16) as u8
                }
            })
            .collect()
    }
}

#[test]
fn put_get_delete_and_scan() {
    let tmp = TempDir::new("basic");
    let db = tmp.join("db");
    let d = s(&db);
    ok(&["put", d, "user:1", "alice"]);
    ok(&["put", d, "user:2", "b\\x00b"]);
    expect(&["put", d, "user:3"], b"from\nstdin\0", 0);
    ok(&["put", d, "--hex", "00ff", "0a0d"]);
    ok(&["put", d, "empty", ""]);
    // get writes the value as it is.
    assert_eq!(
        expect(&["get", d, "user:3"], b"", 0).stdout,
        b"from\nstdin\0"
    );
    assert_eq!(
        expect(&["get", d, "--hex", "00ff"], b"", 0).stdout,
        b"0a0d\n"
    );
    assert_eq!(expect(&["get", d, "\\x00\\xff"], b"", 0).stdout, b"\n\r");
    assert_eq!(ok(&["get", d, "--escape", "user:2"]), "b\\x00b\n");
    assert_eq!(expect(&["get", d, "empty"], b"", 0).stdout, b"");
    // A missing key: exit 1, a message on standard error, nothing on stdout.
    let missing = expect(&["get", d, "user:9"], b"", 1);
    assert!(missing.stdout.is_empty());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("key not found: user:9"));

    assert_eq!(
        ok(&["scan", d]),
        "\\x00\\xff\t\\x0a\\x0d\nempty\t\nuser:1\talice\nuser:2\tb\\x00b\nuser:3\tfrom\\x0astdin\\x00\n"
    );
    assert_eq!(
        ok(&["scan", d, "--prefix", "user:", "--keys-only"]),
        "user:1\nuser:2\nuser:3\n"
    );
    assert_eq!(
        ok(&["scan", d, "--prefix", "user:", "--reverse", "--limit", "2"]),
        "user:3\tfrom\\x0astdin\\x00\nuser:2\tb\\x00b\n"
    );
    assert_eq!(
        ok(&["scan", d, "--hex", "--prefix", "00", "--keys-only"]),
        "00ff\n"
    );
    assert_eq!(
        expect(&["scan", d, "--raw", "--prefix", "user:2"], b"", 0).stdout,
        b"user:2\tb\0b\n"
    );
    assert_eq!(ok(&["scan", d, "--limit", "0"]), "");

    ok(&["delete", d, "user:1"]);
    ok(&["delete", d, "never-there"]);
    expect(&["get", d, "user:1"], b"", 1);
    assert_eq!(contents(&db).len(), 4);
}

#[test]
fn stat_reads_a_database_made_through_the_c_api() {
    let tmp = TempDir::new("stat");
    let db = tmp.join("db");
    let dir = CString::new(s(&db)).unwrap();
    // SAFETY: the C interface used as its header says: a NUL-terminated
    // path, an out-pointer, buffers with their lengths, the handle closed once.
    unsafe {
        let opts = ffi::bitcask_options_new();
        assert_eq!(
            ffi::bitcask_options_set_data_file_size(opts, 4096),
            ffi::BITCASK_OK
        );
        let mut handle = std::ptr::null_mut();
        assert_eq!(
            ffi::bitcask_open(dir.as_ptr(), opts, &mut handle),
            ffi::BITCASK_OK
        );
        ffi::bitcask_options_free(opts);
        for i in 0..200u32 {
            let key = format!("key{i:03}");
            let value = [b'v'; 50];
            let status = ffi::bitcask_put(
                handle,
                key.as_ptr().cast(),
                key.len(),
                value.as_ptr().cast(),
                50,
            );
            assert_eq!(status, ffi::BITCASK_OK);
        }
        let key = b"key000";
        assert_eq!(
            ffi::bitcask_delete(handle, key.as_ptr().cast(), 6),
            ffi::BITCASK_OK
        );
        assert_eq!(ffi::bitcask_close(handle), ffi::BITCASK_OK);
    }
    let text = ok(&["stat", s(&db)]);
    assert!(text.contains("key count          199\n"), "{text}");
    assert!(text.contains("index type         ordered\n"), "{text}");
    assert!(text.contains("format version     1\n"), "{text}");
    let json = ok(&["stat", "--json", "--index", "hash", s(&db)]);
    // The index a clean close saves (KEYDIR) is neither a data nor a hint file.
    let files = std::fs::read_dir(&db)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != "KEYDIR")
        .count();
    assert!(
        json.starts_with("{\"key_count\":199,\"data_file_count\":"),
        "{json}"
    );
    assert!(json.contains("\"index_type\":\"hash\""), "{json}");
    assert!(json.contains("\"format_version\":1}"), "{json}");
    let data_files: usize = field(&json, "data_file_count");
    let hint_files: usize = field(&json, "hint_file_count");
    assert!(data_files > 1, "{json}");
    assert_eq!(
        data_files + hint_files + 1,
        files,
        "{json}: lock, data and hint files"
    );
    assert!(field::<u64>(&json, "reclaimable_bytes") > 0, "{json}");
}

fn field<T: std::str::FromStr>(json: &str, name: &str) -> T {
    let start = json.find(&format!("\"{name}\":")).unwrap() + name.len() + 3;
    let rest = &json[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].parse().ok().unwrap()
}

#[test]
fn dump_then_load_gives_identical_contents_for_any_bytes() {
    let tmp = TempDir::new("dump");
    let source = tmp.join("source");
    {
        let db = Bitcask::open(&source, Options::default()).unwrap();
        let mut rng = Rng(0xd0_0d_u64);
        for _ in 0..2000 {
            let mut key = rng.bytes(40);
            if key.is_empty() {
                key.push(b'k');
            }
            let value = if rng.next() % 5 == 0 {
                Vec::new()
            } else {
                rng.bytes(300)
            };
            db.put(&key, &value).unwrap();
        }
        db.put(b"\n", b"\n").unwrap();
        db.put(b"\0", b"\0\0").unwrap();
        db.put(b" ", b"").unwrap();
        db.put(&[0xff; 1000], &vec![b'\\'; 70_000]).unwrap();
        db.close().unwrap();
    }
    let dump = expect(&["dump", s(&source)], b"", 0);
    assert!(
        dump.stderr.is_empty(),
        "no progress when stderr is not a terminal"
    );
    let text = String::from_utf8(dump.stdout.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "# bitcask dump format 1");
    let records = contents(&source).len();
    assert_eq!(*lines.last().unwrap(), format!("# end {records} records"));
    assert_eq!(lines.len(), records + 2, "one line per record");
    assert!(text
        .bytes()
        .all(|b| b == b'\n' || (b' '..=b'~').contains(&b)));

    // Small batches, so that the load commits many.
    let copy = tmp.join("copy");
    let load = expect(
        &["load", s(&copy), "--batch-bytes", "20000"],
        &dump.stdout,
        0,
    );
    assert!(load.stderr.is_empty());
    assert_eq!(contents(&copy), contents(&source));
    // A dump of the copy is the same text.
    assert_eq!(expect(&["dump", s(&copy)], b"", 0).stdout, dump.stdout);
    // With a prefix.
    let some = ok(&["dump", s(&source), "--prefix", "\\xff"]);
    assert!(some
        .lines()
        .skip(1)
        .all(|l| l.starts_with("+\\xff") || l.starts_with("# end")));

    // A dump cut short is loaded as far as it goes and reported.
    let cut = &dump.stdout[..dump.stdout.len() / 2];
    let cut = &cut[..=cut.iter().rposition(|&b| b == b'\n').unwrap()];
    let partial = expect(&["load", s(&tmp.join("partial"))], cut, 3);
    assert!(String::from_utf8_lossy(&partial.stderr).contains("cut short"));
    // Not a dump at all.
    let bad = expect(&["load", s(&tmp.join("bad"))], b"hello\n", 3);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("line 1"));
    let bad = expect(
        &["load", s(&tmp.join("bad"))],
        b"# bitcask dump format 1\n+k v\n+k\\q v\n",
        3,
    );
    let text = String::from_utf8_lossy(&bad.stderr);
    assert!(
        text.contains("line 3") && text.contains("bad escape"),
        "{text}"
    );
}

#[test]
fn check_finds_a_flipped_byte_and_exits_1() {
    let tmp = TempDir::new("check");
    let db = tmp.join("db");
    keys_db(&db, 500, 8192);
    let clean = ok(&["check", s(&db)]);
    assert!(clean.contains("no damage"), "{clean}");
    // Flip one byte in the middle of the first data file.
    let first = db.join("000000001.data");
    let at = std::fs::metadata(&first).unwrap().len() as usize / 2;
    flip(&first, at);
    let out = expect(&["check", s(&db)], b"", 1);
    let text = String::from_utf8_lossy(&out.stdout);
    let damaged: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("damaged: "))
        .collect();
    assert!(!damaged.is_empty(), "{text}");
    // The range names the file and lies around the flipped byte.
    let data_line = damaged
        .iter()
        .find(|l| l.contains("000000001.data offset "))
        .unwrap_or_else(|| panic!("{text}"));
    let offset: usize = data_line
        .split("offset ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        offset <= at && at - offset < 64,
        "{data_line} (flipped {at})"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("damage found: 1 damaged range,"),
        "{stderr}"
    );
    // The hint entry of the damaged record disagrees with it too.
    assert!(text.contains("000000001.hint entry "), "{text}");
    // The same as JSON, for scripts: still exit 1.
    let out = expect(&["check", "--json", s(&db)], b"", 1);
    let json = String::from_utf8(out.stdout).unwrap();
    assert!(json.starts_with("{\"clean\":false,"), "{json}");
    assert!(
        json.contains(&format!("\"offset\":{offset},"))
            && json.contains("\"at_open\":\"found_by_gets\""),
        "{json}"
    );
    assert_eq!(json.lines().count(), 1);
    expect(&["check", s(&tmp.join("nothing"))], b"", 3);
    let empty = tmp.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = expect(&["check", s(&empty)], b"", 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no libbitcask data file"));
}

/// A database of keys `key0000`.. `n` of them, each with value `value I`,
/// in data files of `file_size` bytes, closed cleanly.
fn keys_db(db: &Path, n: u32, file_size: u64) {
    let mut opts = Options::default();
    opts.set_data_file_size(file_size).unwrap();
    let handle = Bitcask::open(db, opts).unwrap();
    for i in 0..n {
        handle
            .put(
                format!("key{i:04}").as_bytes(),
                format!("value {i}").as_bytes(),
            )
            .unwrap();
    }
    handle.close().unwrap();
}

/// Flips the byte at `at` of `file`.
fn flip(file: &Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0x01;
    std::fs::write(file, bytes).unwrap();
}

/// The keys of [`keys_db`] that `db` no longer holds; every other one must
/// hold its value.
fn lost_keys(db: &Path, n: u32) -> Vec<String> {
    let all = contents(db);
    let missing: Vec<String> = (0..n)
        .map(|i| format!("key{i:04}"))
        .filter(|k| !all.iter().any(|(key, _)| key == k.as_bytes()))
        .collect();
    let want: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| format!("key{i:04}"))
        .filter(|k| !missing.contains(k))
        .map(|k| {
            let i: u32 = k[3..].parse().unwrap();
            (k.into_bytes(), format!("value {i}").into_bytes())
        })
        .collect();
    assert_eq!(all, want);
    missing
}

#[test]
fn repair_keeps_every_intact_record_of_a_file_with_a_flipped_byte() {
    let tmp = TempDir::new("repair");
    let db = tmp.join("db");
    keys_db(&db, 500, 8192);
    // A flipped byte in the middle of the first data file, whose hint
    // file is gone (as after a crash): open refuses the database.
    let first = db.join("000000001.data");
    let at = std::fs::metadata(&first).unwrap().len() as usize / 2;
    flip(&first, at);
    std::fs::remove_file(db.join("000000001.hint")).unwrap();
    let refused = expect(&["put", s(&db), "k", "v"], b"", 3);
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("BITCASK_CORRUPTION") && text.contains("bitcask repair"),
        "{text}"
    );
    expect(&["check", s(&db)], b"", 1);

    let out = ok(&["repair", s(&db)]);
    let damaged: Vec<&str> = out.lines().filter(|l| l.starts_with("damaged: ")).collect();
    assert_eq!(damaged.len(), 1, "{out}");
    assert!(
        damaged[0].contains("000000001.data offset ") && damaged[0].contains("[moved to "),
        "{out}"
    );
    assert!(
        out.contains("rewritten: ") && out.contains("previous value"),
        "{out}"
    );
    assert!(
        out.contains("repaired: ") && out.contains("499 records kept"),
        "{out}"
    );
    // The damaged record was one key's only one: that key is gone, every
    // other key holds its value, and the database opens for writing again.
    assert_eq!(lost_keys(&db, 500).len(), 1);
    ok(&["put", s(&db), "k", "v"]);
    let checked = ok(&["check", s(&db)]);
    assert!(
        checked.contains("no damage") && checked.contains(".quarantine"),
        "{checked}"
    );
    // Nothing left to repair.
    let again = ok(&["repair", "--json", s(&db)]);
    assert!(again.contains("\"damaged\":[]"), "{again}");
    expect(&["repair", s(&tmp.join("nothing"))], b"", 3);
}

#[test]
fn repair_restore_quarantined_brings_back_what_lay_after_damage_in_a_cut_tail() {
    let tmp = TempDir::new("restore");
    let db = tmp.join("db");
    keys_db(&db, 100, 1 << 20);
    // Without its hint the newest file is cut at its first bad record, as
    // after a power cut: the intact records after it go to quarantine.
    let newest = db.join("000000001.data");
    std::fs::remove_file(db.join("000000001.hint")).unwrap();
    let at = std::fs::metadata(&newest).unwrap().len() as usize / 2;
    flip(&newest, at);
    let handle = Bitcask::open(&db, Options::default()).unwrap();
    let tail = handle.recovery().tail.clone().unwrap();
    assert!(tail.intact_records_after > 40, "{tail:?}");
    handle.close().unwrap();
    assert!(contents(&db).len() < 60);
    // Without the option repair finds nothing to do.
    assert!(ok(&["repair", s(&db)]).contains("nothing was damaged"));
    let out = ok(&["repair", "--restore-quarantined", s(&db)]);
    let restored = format!("restored: {} records", tail.intact_records_after);
    assert!(out.contains(&restored), "{out}");
    assert_eq!(lost_keys(&db, 100).len(), 1, "all but the damaged record");
}

#[test]
fn read_only_commands_work_while_another_process_writes_and_writing_ones_say_locked() {
    let tmp = TempDir::new("locked");
    let db = tmp.join("db");
    // This test process holds the database open for writing; the tool runs
    // in processes of its own.
    let writer = Bitcask::open(&db, Options::default()).unwrap();
    writer.put(b"a", b"1").unwrap();
    writer.put(b"b", b"2").unwrap();
    assert_eq!(ok(&["get", s(&db), "a"]), "1");
    assert_eq!(ok(&["scan", s(&db)]), "a\t1\nb\t2\n");
    assert!(ok(&["stat", s(&db)]).contains("key count          2\n"));
    assert!(ok(&["dump", s(&db)]).contains("+b 2\n"));
    let checked = ok(&["check", s(&db)]);
    assert!(
        checked.contains("no damage") && checked.contains("checked beside the writer"),
        "{checked}"
    );
    assert!(ok(&["check", "--json", s(&db)]).contains("\"beside_writer\":true"));
    writer.put(b"c", b"3").unwrap();
    assert_eq!(
        ok(&["get", s(&db), "c"]),
        "3",
        "a new run sees the latest writes"
    );
    for args in [
        vec!["put", s(&db), "k", "v"],
        vec!["delete", s(&db), "a"],
        vec!["merge", s(&db)],
        vec!["backup", s(&db), s(&tmp.join("copy"))],
        vec!["repair", s(&db)],
    ] {
        let out = expect(&args, b"", 3);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(
            text.contains("BITCASK_LOCKED (5)") && text.contains("open for writing"),
            "{args:?}: {text}"
        );
        assert_eq!(text.lines().count(), 1, "one line: {text}");
    }
    let out = expect(
        &["load", s(&db)],
        b"# bitcask dump format 1\n# end 0 records\n",
        3,
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("BITCASK_LOCKED"));
    assert_eq!(writer.get(b"k").unwrap(), None);
    writer.close().unwrap();
}

#[test]
fn merge_and_backup() {
    let tmp = TempDir::new("maint");
    let db = tmp.join("db");
    for i in 0..50 {
        ok(&["put", s(&db), "k", &format!("v{i}")]);
    }
    let merged = ok(&["merge", s(&db)]);
    assert!(merged.starts_with("merged: "), "{merged}");
    assert!(ok(&["stat", "--json", s(&db)]).contains("\"reclaimable_bytes\":0"));
    ok(&["backup", s(&db), s(&tmp.join("copy"))]);
    assert_eq!(ok(&["get", s(&tmp.join("copy")), "k"]), "v49");
    // Not into a directory that holds something.
    let out = expect(&["backup", s(&db), s(&tmp.join("copy"))], b"", 3);
    assert!(String::from_utf8_lossy(&out.stderr).contains("BITCASK_INVALID_ARGUMENT (2)"));
}

#[test]
fn bad_arguments_exit_2_with_a_usage_line() {
    let tmp = TempDir::new("usage");
    let db = tmp.join("db");
    for args in [
        vec![],
        vec!["frobnicate"],
        vec!["get"],
        vec!["get", s(&db)],
        vec!["scan", s(&db), "--limit", "many"],
        vec!["stat", s(&db), "--index", "btree"],
        vec!["get", s(&db), "--hex", "--escape", "k"],
        vec!["get", s(&db), "bad\\q"],
        vec!["put", s(&db), "--hex", "0g", "00"],
        vec!["put", s(&db), "k", "\\x4"],
    ] {
        let out = expect(&args, b"", 2);
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("Usage: bitcask"), "{args:?}: {text}");
    }
    assert!(!db.exists(), "a usage error creates nothing");
}

#[test]
fn help_explains_every_command_and_the_man_page_every_option() {
    let top = ok(&["--help"]);
    let man =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("bitcask.1")).unwrap();
    let commands = [
        "stat", "get", "put", "delete", "scan", "dump", "load", "check", "repair", "merge",
        "backup",
    ];
    for command in commands {
        assert!(
            top.contains(&format!("  {command} ")),
            "--help lacks {command}"
        );
        let help = ok(&[command, "--help"]);
        assert!(
            help.contains(&format!("Usage: bitcask {command}")),
            "{help}"
        );
        assert!(
            man.contains(&format!(".SS {command}")),
            "bitcask.1 lacks a section for {command}"
        );
        for option in help
            .split_whitespace()
            .filter(|w| w.starts_with("--") && w.len() > 2)
        {
            let end = option[2..]
                .find(|c: char| !(c.is_ascii_lowercase() || c == '-'))
                .map_or(option.len(), |i| i + 2);
            let option = &option[..end];
            assert!(
                man.contains(&option.replace('-', "\\-")),
                "bitcask.1 lacks {option} (of {command})"
            );
        }
    }
    assert!(ok(&["--version"]).starts_with("bitcask "));
}

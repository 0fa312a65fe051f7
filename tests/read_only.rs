//! Read-only opens (`Options::set_read_only`): beside a writer in this
//! process and in another one, without changing a byte of the directory,
//! on a directory the process may only read, and caught up by `refresh`
//! through appends, rollovers and merges.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::SystemTime;

use bitcask::{Bitcask, Error, Options};
use common::{child_role, copy_dir, data_files, Rng, TempDir};

fn read_only() -> Options {
    let mut o = Options::default();
    o.set_read_only(true);
    o
}

fn small_files() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

/// Every key and value, in order.
fn contents(db: &Bitcask) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut all = Vec::new();
    db.fold(b"", |k, v| {
        all.push((k.to_vec(), v.to_vec()));
        std::ops::ControlFlow::Continue(())
    })
    .unwrap();
    all
}

/// Every file of `dir` with its bytes and modification time.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
                meta.modified().unwrap(),
            )
        })
        .collect();
    all.sort();
    all
}

#[test]
fn a_read_only_handle_opens_beside_a_writer_and_sees_its_writes_after_refresh() {
    let tmp = TempDir::new("ro-beside");
    let writer = Bitcask::open(tmp.db(), Options::default()).unwrap();
    writer.put(b"a", b"1").unwrap();
    writer.put(b"b", b"2").unwrap();
    // No lock is taken: two read-only handles beside the writer.
    let reader = Bitcask::open(tmp.db(), read_only()).unwrap();
    let second = Bitcask::open(tmp.db(), read_only()).unwrap();
    assert!(reader.is_read_only() && !writer.is_read_only());
    assert_eq!(reader.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(second.key_count(), 2);

    writer.put(b"c", b"3").unwrap();
    writer.delete(b"a").unwrap();
    // As of its open until it refreshes.
    assert_eq!(reader.get(b"c").unwrap(), None);
    assert_eq!(reader.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    let iter_before = reader.iter(b"", false).unwrap();
    reader.refresh().unwrap();
    assert_eq!(reader.get(b"c").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(reader.get(b"a").unwrap(), None);
    assert_eq!(contents(&reader), contents(&writer));
    let stats = reader.stats().unwrap();
    assert_eq!(stats.key_count, 2);
    assert!(stats.reclaimable_bytes > 0, "{stats:?}");
    // An iterator made before keeps its snapshot.
    let mut keys = Vec::new();
    let mut it = iter_before;
    while it.valid() {
        keys.push(it.key().unwrap().to_vec());
        it.next();
    }
    assert_eq!(keys, [b"a".to_vec(), b"b".to_vec()]);

    // Every write is refused with a read-only error naming the call.
    let refused = |r: Result<(), Error>, what: &str| match r {
        Err(Error::ReadOnly(text)) => assert!(text.contains(what), "{text}"),
        other => panic!("{what}: {other:?}"),
    };
    refused(reader.put(b"x", b"y"), "put");
    refused(reader.delete(b"b"), "delete");
    refused(reader.sync(), "sync");
    refused(reader.merge(), "merge");
    let mut batch = reader.batch();
    batch.put(b"x", b"y").unwrap();
    refused(reader.write(&mut batch), "batch");
    refused(reader.backup(&tmp.path().join("copy")), "backup");
    assert!(!tmp.path().join("copy").exists());
    assert_eq!(reader.get(b"x").unwrap(), None);

    // A writable handle refreshes as a no-op, and is still locked for writers.
    writer.refresh().unwrap();
    assert!(matches!(
        Bitcask::open(tmp.db(), Options::default()),
        Err(Error::Locked(_))
    ));
    reader.close().unwrap();
    second.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn refresh_follows_rollovers_and_merges_and_reads_what_a_fresh_open_reads() {
    let tmp = TempDir::new("ro-merge");
    let writer = Bitcask::open(tmp.db(), small_files()).unwrap();
    let reader = Bitcask::open(tmp.db(), read_only()).unwrap();
    let mut rng = Rng::new(0x5eed_0001);
    for round in 0..6u32 {
        for i in 0..400u32 {
            let key = format!("k{:03}", rng.below(150));
            if rng.below(5) == 0 {
                writer.delete(key.as_bytes()).unwrap();
            } else {
                writer
                    .put(key.as_bytes(), format!("{round}-{i}").as_bytes())
                    .unwrap();
            }
        }
        if round % 2 == 1 {
            writer.merge().unwrap();
        }
        reader.refresh().unwrap();
        assert_eq!(contents(&reader), contents(&writer), "round {round}");
        let fresh = Bitcask::open(tmp.db(), read_only()).unwrap();
        assert_eq!(contents(&fresh), contents(&writer), "round {round}");
        assert_eq!(reader.stats().unwrap().key_count, writer.key_count() as u64);
        assert_eq!(reader.data_file_count(), writer.data_file_count());
    }
    writer.close().unwrap();
}

/// The reload path: a merge output appears below the newest file the
/// handle read (it read the directory between the writer's rollover and
/// the output's rename), and the merge's inputs go.
#[test]
fn refresh_loads_again_when_a_merge_output_appears_below_the_newest_file() {
    let tmp = TempDir::new("ro-reload");
    let mut opts = Options::default();
    opts.set_auto_merge_ratio(0.0).unwrap();
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    for i in 0..200u32 {
        db.put(format!("k{i:03}").as_bytes(), b"old").unwrap();
    }
    for i in 0..100u32 {
        db.put(format!("k{i:03}").as_bytes(), b"new").unwrap();
    }
    db.close().unwrap();
    let before = tmp.path().join("before");
    copy_dir(&tmp.db(), &before);
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    db.merge().unwrap();
    db.put(b"k000", b"after merge").unwrap();
    db.delete(b"k199").unwrap();
    let expected = contents(&db);
    db.close().unwrap();
    // The merge left outputs below a new active file, and no input.
    let after: Vec<PathBuf> = data_files(&tmp.db());
    let (active, outputs) = after.split_last().unwrap();
    assert!(!outputs.is_empty());
    // A directory as a reader may find it mid-merge: the inputs and the
    // new active file, no output yet.
    let mid = tmp.path().join("mid");
    copy_dir(&before, &mid);
    std::fs::copy(active, mid.join(active.file_name().unwrap())).unwrap();
    let reader = Bitcask::open(&mid, read_only()).unwrap();
    // Then the outputs appear and the inputs go.
    for output in outputs {
        std::fs::copy(output, mid.join(output.file_name().unwrap())).unwrap();
    }
    for input in data_files(&before) {
        std::fs::remove_file(mid.join(input.file_name().unwrap())).unwrap();
    }
    reader.refresh().unwrap();
    assert_eq!(contents(&reader), expected);
    assert_eq!(reader.data_file_count(), after.len());
}

#[test]
fn a_read_only_open_changes_nothing_even_with_a_torn_tail_and_leftovers() {
    let tmp = TempDir::new("ro-nochange");
    let db = Bitcask::open(tmp.db(), small_files()).unwrap();
    for i in 0..300u32 {
        db.put(format!("k{i}").as_bytes(), b"value").unwrap();
    }
    db.close().unwrap();
    // A torn last record in the newest file, and a merge output left
    // under its temporary name.
    let newest = data_files(&tmp.db()).pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    std::fs::write(tmp.db().join("000000999.data.tmp"), b"leftover").unwrap();
    let before = snapshot(&tmp.db());

    let reader = Bitcask::open(tmp.db(), read_only()).unwrap();
    assert_eq!(reader.key_count(), 299, "the torn record is not read");
    assert_eq!(contents(&reader).len(), 299);
    reader.refresh().unwrap();
    reader.close().unwrap();
    assert!(
        snapshot(&tmp.db()) == before,
        "a read-only open changed the directory"
    );

    // Control: a writable open of the same directory does change it (it
    // cuts the torn tail and removes the leftover), so the comparison above
    // can fail.
    Bitcask::open(tmp.db(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    assert!(snapshot(&tmp.db()) != before);
}

#[test]
fn a_read_only_open_needs_an_existing_database() {
    let tmp = TempDir::new("ro-missing");
    let missing = Bitcask::open(tmp.path().join("nope"), read_only());
    assert!(
        matches!(missing, Err(Error::Io { .. })),
        "{:?}",
        missing.err()
    );
    assert!(!tmp.path().join("nope").exists());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = Bitcask::open(&empty, read_only()).err().unwrap();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    assert!(err.to_string().contains("no libbitcask data file"), "{err}");
    assert_eq!(std::fs::read_dir(&empty).unwrap().count(), 0);
}

/// A process that may only read the directory opens it read-only, reads,
/// iterates and refreshes. Run as root (as CI is), the child drops to the
/// unprivileged user nobody first, since root may write anywhere.
#[test]
fn a_read_only_open_works_on_a_directory_it_may_only_read() {
    if let Some(dir) = child_role("ro-unwritable") {
        // SAFETY: plain system calls, before any thread of this process
        // touches the database.
        unsafe {
            if libc::geteuid() == 0 {
                assert_eq!(libc::setgid(65534), 0);
                assert_eq!(libc::setuid(65534), 0);
            }
        }
        // The directory really is unwritable for this process: a control.
        assert!(std::fs::write(dir.join("probe"), b"x").is_err());
        assert!(matches!(
            Bitcask::open(&dir, Options::default()),
            Err(Error::Io { .. })
        ));
        let db = Bitcask::open(&dir, read_only()).unwrap();
        assert_eq!(db.key_count(), 100);
        assert_eq!(db.get(b"k7").unwrap().as_deref(), Some(&b"v7"[..]));
        assert_eq!(contents(&db).len(), 100);
        db.refresh().unwrap();
        assert!(matches!(db.put(b"k", b"v"), Err(Error::ReadOnly(_))));
        db.close().unwrap();
        println!("CHILD OK");
        return;
    }
    let tmp = TempDir::new("ro-unwritable");
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    for i in 0..100 {
        db.put(format!("k{i}").as_bytes(), format!("v{i}").as_bytes())
            .unwrap();
    }
    db.close().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    for entry in std::fs::read_dir(tmp.db()).unwrap() {
        set_mode(&entry.unwrap().path(), 0o444);
    }
    set_mode(&tmp.db(), 0o555);
    set_mode(tmp.path(), 0o755);
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_read_only_open_works_on_a_directory_it_may_only_read",
            "--exact",
            "--nocapture",
        ])
        .env("BITCASK_TEST_CHILD_ROLE", "ro-unwritable")
        .env("BITCASK_TEST_CHILD_DIR", tmp.db())
        .output()
        .unwrap();
    set_mode(&tmp.db(), 0o755);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// A writer process puts, deletes, commits batches and merges in rounds;
// this process follows it with a read-only handle. After each round the
// writer prints what every key holds and waits; the reader refreshes and
// must hold exactly that. During a round the reader refreshes, reads,
// iterates and opens new read-only handles while the writer works: every
// value it sees must be one the writer wrote for that key (values say which
// key and which write they are, with filler derived from both), and no key
// may go back to an older write than one seen before.

const KEYS: u64 = 300;
const ROUNDS: u64 = 10;
const OPS_PER_ROUND: u64 = 1500;

/// The value of write number `n` of `key`: `key:n:` then filler.
fn value_of(key: &str, n: u64) -> Vec<u8> {
    let mut v = format!("{key}:{n}:").into_bytes();
    let mut rng = Rng::new(n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ key.len() as u64);
    let len = rng.below(200) as usize;
    v.extend((0..len).map(|_| (rng.next() >> 24) as u8));
    v
}

/// The write number a value carries, if it is exactly a value the writer
/// wrote for `key`.
fn write_number(key: &[u8], value: &[u8]) -> Option<u64> {
    let key = std::str::from_utf8(key).ok()?;
    let rest = value.strip_prefix(format!("{key}:").as_bytes())?;
    let colon = rest.iter().position(|&b| b == b':')?;
    let n: u64 = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    (value_of(key, n) == value).then_some(n)
}

fn writer_child(dir: &Path) {
    let mut opts = Options::default();
    opts.set_data_file_size(64 << 10).unwrap();
    opts.set_auto_merge_ratio(0.0).unwrap();
    let db = Bitcask::open(dir, opts).unwrap();
    let mut rng = Rng::new(0xbeef);
    let mut model: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0u64;
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    for round in 0..ROUNDS {
        for _ in 0..OPS_PER_ROUND {
            n += 1;
            let key = format!("key{:03}", rng.below(KEYS));
            match rng.below(10) {
                0 | 1 => {
                    db.delete(key.as_bytes()).unwrap();
                    model.remove(&key);
                }
                2 => {
                    let mut batch = db.batch();
                    for j in 0..3 {
                        let k = format!("key{:03}", (rng.below(KEYS) + j) % KEYS);
                        batch.put(k.as_bytes(), &value_of(&k, n)).unwrap();
                        model.insert(k, n);
                    }
                    db.write(&mut batch).unwrap();
                }
                _ => {
                    db.put(key.as_bytes(), &value_of(&key, n)).unwrap();
                    model.insert(key, n);
                }
            }
        }
        db.merge().unwrap();
        let state: Vec<String> = model.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("\nROUND {round} {}", state.join(","));
        std::io::stdout().flush().unwrap();
        // Wait for the reader to check the state before the next round.
        lines.next().unwrap().unwrap();
    }
    db.close().unwrap();
}

/// Checks every key and value `db` holds now against what was seen before.
fn check_view(db: &Bitcask, seen: &mut BTreeMap<Vec<u8>, u64>) -> usize {
    let mut it = db.iter(b"", false).unwrap();
    let mut count = 0;
    while it.valid() {
        let key = it.key().unwrap().to_vec();
        let value = it.value().unwrap().to_vec();
        let n = write_number(&key, &value)
            .unwrap_or_else(|| panic!("{key:?} holds a value never written for it: {value:?}"));
        let last = seen.entry(key.clone()).or_insert(0);
        assert!(n >= *last, "{key:?} went back from write {last} to {n}");
        *last = n;
        count += 1;
        it.next();
    }
    count
}

#[test]
fn a_reader_process_follows_a_writer_process_that_puts_deletes_and_merges() {
    if let Some(dir) = child_role("ro-writer") {
        writer_child(&dir);
        return;
    }
    // Controls: the checker refuses a value of another key, another write's
    // filler, and a cut value.
    let n = (1..).find(|&n| value_of("key001", n).len() > 12).unwrap();
    let good = value_of("key001", n);
    assert_eq!(write_number(b"key001", &good), Some(n));
    assert_eq!(write_number(b"key002", &good), None);
    assert_eq!(write_number(b"key001", &good[..good.len() - 1]), None);
    let mut other = good.clone();
    *other.last_mut().unwrap() ^= 1;
    assert_eq!(write_number(b"key001", &other), None);

    let tmp = TempDir::new("ro-follow");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_reader_process_follows_a_writer_process_that_puts_deletes_and_merges",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BITCASK_TEST_CHILD_ROLE", "ro-writer")
        .env("BITCASK_TEST_CHILD_DIR", tmp.db())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_writer = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("ROUND ") {
                let _ = tx.send(line[at..].to_string());
            }
        }
    });
    let mut reader: Option<Bitcask> = None;
    let mut seen = BTreeMap::new();
    let mut refreshes_during_rounds = 0u64;
    for round in 0..ROUNDS {
        // While the writer works on this round.
        let line = loop {
            if let Some(db) = &reader {
                db.refresh().unwrap();
                check_view(db, &mut seen);
                refreshes_during_rounds += 1;
                // A new handle, opened while files come and go.
                let fresh = Bitcask::open(tmp.db(), read_only()).unwrap();
                check_view(&fresh, &mut BTreeMap::new());
            }
            match rx.try_recv() {
                Ok(line) => break line,
                Err(mpsc::TryRecvError::Empty) if reader.is_none() => {
                    // The writer creates the database first.
                    if data_files_exist(&tmp.db()) {
                        reader = Bitcask::open(tmp.db(), read_only()).ok();
                    }
                }
                Err(mpsc::TryRecvError::Empty) => {}
                Err(e) => panic!("the writer is gone: {e}"),
            }
        };
        // The writer waits: the reader must now hold exactly its state.
        let db = reader.get_or_insert_with(|| Bitcask::open(tmp.db(), read_only()).unwrap());
        db.refresh().unwrap();
        let expected: BTreeMap<String, u64> = line
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.parse().unwrap())
            })
            .collect();
        let mut view = BTreeMap::new();
        check_view(db, &mut seen);
        db.fold(b"", |k, v| {
            let key = String::from_utf8(k.to_vec()).unwrap();
            view.insert(key, write_number(k, v).unwrap());
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(view, expected, "round {round}");
        writeln!(to_writer, "NEXT").unwrap();
    }
    assert!(child.wait().unwrap().success(), "the writer failed");
    eprintln!("{refreshes_during_rounds} refreshes while the writer wrote");
    // The reader's handle, still open, keeps no writer out.
    let reader = reader.unwrap();
    let writer = Bitcask::open(tmp.db(), Options::default()).unwrap();
    writer
        .put(b"key000", &value_of("key000", u64::MAX))
        .unwrap();
    reader.refresh().unwrap();
    check_view(&reader, &mut seen);
    writer.close().unwrap();
}

fn data_files_exist(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| e.path().extension().is_some_and(|x| x == "data"))
    })
}

//! Merge, stats and automatic merge: space comes back online, every key
//! keeps its latest value, deleted keys stay deleted (after merge, reopen,
//! and both), and iterators keep their snapshot.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier};

use bitcask::{Bitcask, IndexType, Options};
use common::{data_files, Rng, TempDir};

/// Small files, so that a few hundred records span many of them, and no
/// automatic merge unless a test asks for one.
fn small_files(index: IndexType) -> Options {
    let mut o = Options::default();
    o.set_index_type(index);
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

/// The size of a record with key and value shorter than 128 bytes: header
/// CRC 4, type 1, two one-byte varints, body CRC 4, key, value.
fn record_len(key: &[u8], value: &[u8]) -> u64 {
    11 + key.len() as u64 + value.len() as u64
}

/// The size of the regular files in `dir`, as `disk_bytes` counts them.
fn directory_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

fn key(i: u32) -> Vec<u8> {
    format!("key{i:05}").into_bytes()
}

fn value(i: u32, round: u32) -> Vec<u8> {
    format!("value-{i}-{round}-{}", "x".repeat((i % 40) as usize)).into_bytes()
}

/// Every live key and its value.
type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Checks that `db` holds exactly `model`.
fn assert_holds(db: &Bitcask, model: &Model, when: &str) {
    let mut it = db.iter(b"", false).unwrap();
    let mut seen = 0;
    while let Some(k) = it.key() {
        let k = k.to_vec();
        let v = it.value().unwrap().to_vec();
        assert_eq!(model.get(&k), Some(&v), "{when}: key {k:?}");
        assert_eq!(db.get(&k).unwrap().as_ref(), Some(&v), "{when}: get {k:?}");
        seen += 1;
        it.next();
    }
    assert_eq!(seen, model.len(), "{when}: key count");
    assert_eq!(db.key_count(), model.len(), "{when}: key_count");
}

/// Fills `db` with overwrites and deletes spread over many files; returns
/// what it should hold and the keys deleted.
fn churn(db: &Bitcask, keys: u32, rounds: u32) -> (Model, Vec<Vec<u8>>) {
    let mut model = BTreeMap::new();
    let mut deleted = Vec::new();
    for round in 0..rounds {
        for i in 0..keys {
            if (i + round) % 3 == 0 && round > 0 {
                continue;
            }
            db.put(&key(i), &value(i, round)).unwrap();
            model.insert(key(i), value(i, round));
        }
    }
    for i in (0..keys).step_by(7) {
        db.delete(&key(i)).unwrap();
        model.remove(&key(i));
        deleted.push(key(i));
    }
    (model, deleted)
}

#[test]
fn stats_follow_puts_overwrites_deletes_merge_and_reopen() {
    let tmp = TempDir::new("merge-stats");
    let mut opts = Options::default();
    opts.set_auto_merge_ratio(0.0).unwrap();
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    let s = db.stats().unwrap();
    assert_eq!(
        (s.key_count, s.data_file_count, s.reclaimable_bytes),
        (0, 1, 0)
    );
    assert_eq!(s.disk_bytes, 16, "one data file header (LOCK is empty)");

    db.put(b"a", b"1234").unwrap();
    db.put(b"b", b"xy").unwrap();
    assert_eq!(db.stats().unwrap().reclaimable_bytes, 0);
    db.put(b"a", b"56789").unwrap(); // the first "a" is dead
    let mut dead = record_len(b"a", b"1234");
    assert_eq!(db.stats().unwrap().reclaimable_bytes, dead);
    db.delete(b"b").unwrap(); // "b" and its tombstone are dead
    dead += record_len(b"b", b"xy") + record_len(b"b", b"");
    db.delete(b"never-there").unwrap(); // writes nothing
    let s = db.stats().unwrap();
    assert_eq!((s.key_count, s.reclaimable_bytes), (1, dead));
    let written = 16
        + record_len(b"a", b"1234")
        + record_len(b"b", b"xy")
        + record_len(b"a", b"56789")
        + record_len(b"b", b"");
    // The active file is grown ahead of its last record (at most 1 MiB, and
    // by its own length while small); disk_bytes counts what is on disk.
    assert_eq!(s.disk_bytes, directory_bytes(&tmp.db()));
    assert!(written <= s.disk_bytes && s.disk_bytes <= written + (64 << 10) + 32);

    let mut batch = db.batch();
    batch.put(b"c", b"batch").unwrap();
    batch.delete(b"a").unwrap();
    db.write(&mut batch).unwrap();
    // The deleted "a", its batch tombstone and the commit record (type, 8-byte
    // key, 4-byte value) are dead; "c" is live.
    dead += record_len(b"a", b"56789") + record_len(b"a", b"") + record_len(&[0; 8], &[0; 4]);
    assert_eq!(db.stats().unwrap().reclaimable_bytes, dead);
    db.close().unwrap();

    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    let s = db.stats().unwrap();
    assert_eq!(
        (s.key_count, s.reclaimable_bytes),
        (1, dead),
        "after reopen"
    );
    db.merge().unwrap();
    let s = db.stats().unwrap();
    assert_eq!(s.reclaimable_bytes, 0, "after merge");
    assert_eq!(s.key_count, 1);
    assert_eq!(db.get(b"c").unwrap().as_deref(), Some(&b"batch"[..]));
    assert_eq!(db.get(b"a").unwrap(), None);
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    let s = db.stats().unwrap();
    assert_eq!(
        (s.key_count, s.reclaimable_bytes),
        (1, 0),
        "after merge and reopen"
    );
    assert_eq!(db.get(b"a").unwrap(), None);
}

fn merge_frees_space_online_and_keeps_every_latest_value(index: IndexType) {
    let tmp = TempDir::new("merge-basic");
    let db = Bitcask::open(tmp.db(), small_files(index)).unwrap();
    let (model, deleted) = churn(&db, 300, 4);
    let before = db.stats().unwrap();
    assert!(before.data_file_count > 8, "{before:?}");
    // Against the data files alone: disk_bytes also counts the hint files,
    // which the background thread writes at its own pace (a flake in CI).
    let data_bytes: u64 = data_files(&tmp.db())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        before.reclaimable_bytes > data_bytes / 2,
        "{before:?}, data files {data_bytes}"
    );

    db.merge().unwrap();
    let after = db.stats().unwrap();
    assert_eq!(after.reclaimable_bytes, 0, "{after:?}");
    assert!(after.data_file_count < before.data_file_count);
    // The space is freed now, not at the next open: the data files shrink
    // by at least what was reclaimable, less the new active file's growth
    // ahead (at most 64 KiB while small). Hint files are not counted: the
    // background thread writes them at its own pace.
    let on_disk: u64 = data_files(&tmp.db())
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(
        on_disk <= data_bytes - before.reclaimable_bytes + (64 << 10),
        "{on_disk} bytes of data files after the merge, {data_bytes} before, {before:?}"
    );
    assert!(on_disk * 2 < data_bytes, "{on_disk} of {data_bytes}");
    assert_holds(&db, &model, "after merge");
    for k in &deleted {
        assert_eq!(db.get(k).unwrap(), None);
    }

    // Writes go on after the merge, into files newer than its outputs.
    db.put(&key(1), b"after merge").unwrap();
    db.delete(&key(2)).unwrap();
    let mut model = model;
    model.insert(key(1), b"after merge".to_vec());
    model.remove(&key(2));
    db.close().unwrap();
    common::remove_keydir_file(&tmp.db());
    let db = Bitcask::open(tmp.db(), small_files(index)).unwrap();
    assert!(db.hint_files_used() > 0, "merge outputs have hint files");
    assert_holds(&db, &model, "after merge and reopen");

    // A merge with nothing to reclaim changes nothing at all.
    db.merge().unwrap();
    let files = data_files(&tmp.db());
    db.merge().unwrap();
    assert_eq!(data_files(&tmp.db()), files);
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), small_files(index)).unwrap();
    assert_holds(&db, &model, "after a second merge and reopen");
}

/// Pins the bug of Riak's bitcask where deleted keys came back after a
/// merge: the tombstone is merged away while an older put survives.
fn deleted_keys_are_never_resurrected(index: IndexType) {
    let tmp = TempDir::new("merge-resurrect");
    let opts = small_files(index);
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    // "victim" lives in the first file, and filler keeps it there while
    // many files of never-overwritten keys (no dead bytes) follow.
    db.put(b"victim", b"old").unwrap();
    for i in 0..400 {
        db.put(&key(i), &value(i, 0)).unwrap();
    }
    db.delete(b"victim").unwrap();
    for i in 400..800 {
        db.put(&key(i), &value(i, 0)).unwrap();
    }
    assert_eq!(db.get(b"victim").unwrap(), None);
    db.merge().unwrap();
    assert_eq!(db.get(b"victim").unwrap(), None, "after merge");
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    assert_eq!(db.get(b"victim").unwrap(), None, "after merge and reopen");
    // Deleted again after being written again, across another merge.
    db.put(b"victim", b"new").unwrap();
    db.merge().unwrap();
    db.delete(b"victim").unwrap();
    db.merge().unwrap();
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    assert_eq!(db.get(b"victim").unwrap(), None);
    assert_eq!(db.key_count(), 800);
}

fn an_iterator_keeps_its_snapshot_across_a_merge(index: IndexType) {
    let tmp = TempDir::new("merge-iter");
    let db = Bitcask::open(tmp.db(), small_files(index)).unwrap();
    let (model, _) = churn(&db, 200, 3);
    let mut it = db.iter(b"", false).unwrap();
    // Changed after the snapshot, then merged: the old files are deleted.
    for i in 0..200 {
        db.put(&key(i), b"changed").unwrap();
    }
    db.merge().unwrap();
    assert!(db.stats().unwrap().reclaimable_bytes == 0);
    let mut seen = 0;
    while let Some(k) = it.key() {
        let k = k.to_vec();
        assert_eq!(Some(&it.value().unwrap().to_vec()), model.get(&k), "{k:?}");
        seen += 1;
        it.next();
    }
    assert_eq!(seen, model.len());
    assert_eq!(db.get(&key(1)).unwrap().as_deref(), Some(&b"changed"[..]));
    // The merged files are gone from the directory, but the iterator still
    // holds them open; they are freed with it.
    let held = deleted_files_held_open(&tmp.db());
    assert!(
        held > 0,
        "the iterator read deleted files it does not hold?"
    );
    drop(it);
    assert_eq!(
        deleted_files_held_open(&tmp.db()),
        0,
        "held after the iterator was freed"
    );
}

/// How many descriptors and maps of this process point at files of `dir`
/// that were deleted (their space is freed when the last one goes).
fn deleted_files_held_open(dir: &std::path::Path) -> usize {
    let dir = format!("{}/", dir.display());
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            let t = target.to_string_lossy();
            t.starts_with(&dir) && t.ends_with(" (deleted)")
        })
        .count();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir) && l.ends_with(" (deleted)"))
        .count();
    fds + maps
}

/// Writers and readers run through repeated merges: every read sees a value
/// its key really had, and at the end every key has its last written value,
/// also after reopen. The amounts are counts, not times: each writer makes
/// 3000 writes, the main thread merges until they are done (at least five
/// times), and the reader reads until they are done and it has made 2000
/// reads, then reads every key once more.
fn merge_under_concurrent_writers_and_readers(index: IndexType) {
    let tmp = TempDir::new("merge-concurrent");
    let opts = small_files(index);
    let db = Arc::new(Bitcask::open(tmp.db(), opts.clone()).unwrap());
    const WRITERS: u32 = 3;
    const KEYS: u32 = 200;
    const WRITES: u64 = 3000;
    const MIN_READS: u64 = 2000;
    let writers_done = Arc::new(AtomicU32::new(0));
    let start = Arc::new(Barrier::new(WRITERS as usize + 2));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (db, done, start) = (
                Arc::clone(&db),
                Arc::clone(&writers_done),
                Arc::clone(&start),
            );
            std::thread::spawn(move || {
                // Each writer owns its keys: "w{w}-{i}" = "{w}-{i}-{version}".
                let mut rng = Rng::new(u64::from(w) + 1);
                let mut last = BTreeMap::new();
                start.wait();
                for version in 1..=WRITES {
                    let i = rng.below(u64::from(KEYS));
                    let k = format!("w{w}-{i:04}").into_bytes();
                    if rng.below(10) == 0 {
                        db.delete(&k).unwrap();
                        last.insert(k, None);
                    } else {
                        let v = format!("{w}-{i}-{version}").into_bytes();
                        db.put(&k, &v).unwrap();
                        last.insert(k, Some(v));
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
                last
            })
        })
        .collect();
    let reader = {
        let (db, done, start) = (
            Arc::clone(&db),
            Arc::clone(&writers_done),
            Arc::clone(&start),
        );
        std::thread::spawn(move || {
            let check = |w: u64, i: u64| -> bool {
                let k = format!("w{w}-{i:04}");
                match db.get(k.as_bytes()).unwrap() {
                    Some(v) => {
                        let v = String::from_utf8(v).unwrap();
                        assert!(v.starts_with(&format!("{w}-{i}-")), "{k} read {v}");
                        true
                    }
                    None => false,
                }
            };
            let mut rng = Rng::new(99);
            let (mut reads, mut found) = (0u64, 0u64);
            start.wait();
            while done.load(Ordering::SeqCst) < WRITERS || reads < MIN_READS {
                let (w, i) = (rng.below(u64::from(WRITERS)), rng.below(u64::from(KEYS)));
                found += u64::from(check(w, i));
                reads += 1;
            }
            // Once more every key, with every write made.
            let mut found_at_end = 0;
            for w in 0..u64::from(WRITERS) {
                for i in 0..u64::from(KEYS) {
                    found_at_end += u64::from(check(w, i));
                }
            }
            (reads, found, found_at_end)
        })
    };
    start.wait();
    let mut merges = 0;
    while writers_done.load(Ordering::SeqCst) < WRITERS || merges < 5 {
        db.merge().unwrap();
        merges += 1;
    }
    let mut model = BTreeMap::new();
    for w in writers {
        for (k, v) in w.join().unwrap() {
            if let Some(v) = v {
                model.insert(k, v);
            }
        }
    }
    let (reads, found, found_at_end) = reader.join().unwrap();
    eprintln!("{merges} merges; {reads} reads during the writes found {found} values");
    assert!(reads >= MIN_READS);
    assert_eq!(found_at_end, model.len() as u64, "the reader's last pass");
    assert_holds(&db, &model, "after concurrent merges");
    db.merge().unwrap();
    assert_eq!(db.stats().unwrap().reclaimable_bytes, 0);
    drop(db);
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    assert_holds(&db, &model, "after reopen");
}

#[test]
fn a_merge_with_nothing_to_reclaim_writes_nothing() {
    let tmp = TempDir::new("merge-noop");
    let db = Bitcask::open(tmp.db(), small_files(IndexType::Ordered)).unwrap();
    db.merge().unwrap(); // empty database
    for i in 0..500 {
        db.put(&key(i), &value(i, 0)).unwrap();
    }
    let files = data_files(&tmp.db());
    let syncs = db.sync_count();
    db.merge().unwrap();
    assert_eq!(data_files(&tmp.db()), files);
    assert_eq!(db.sync_count(), syncs);
}

test_each_index_type!(
    merge_frees_space_online_and_keeps_every_latest_value,
    deleted_keys_are_never_resurrected,
    an_iterator_keeps_its_snapshot_across_a_merge,
    merge_under_concurrent_writers_and_readers,
);

//! What a reopen must bring back, across many data files, both ways of
//! loading (mmap and reads), the sync options, and many threads at once;
//! what reaches the keydir is tested on both index types.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bitcask::{Bitcask, Error, IndexType, Options};
use common::{data_files, with_index, Rng, TempDir};

fn small_files(index_type: IndexType) -> Options {
    let mut o = with_index(index_type);
    o.set_data_file_size(4096).unwrap();
    o
}

/// Applies a mixed workload to `db` and returns the state it should hold.
fn mixed_workload(db: &Bitcask, ops: usize, seed: u64) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut rng = Rng::new(seed);
    let mut model = BTreeMap::new();
    for i in 0..ops {
        let key = format!("key-{:04}", rng.below(500)).into_bytes();
        if rng.below(8) == 0 {
            db.delete(&key).unwrap();
            model.remove(&key);
        } else {
            let len = rng.below(300) as usize;
            let mut value = format!("{i}:").into_bytes();
            value.resize(len.max(value.len()), (i % 251) as u8);
            db.put(&key, &value).unwrap();
            model.insert(key, value);
        }
    }
    model
}

fn assert_holds(db: &Bitcask, model: &BTreeMap<Vec<u8>, Vec<u8>>, universe: usize) {
    assert_eq!(db.key_count(), model.len());
    for k in 0..universe {
        let key = format!("key-{k:04}").into_bytes();
        assert_eq!(db.get(&key).unwrap(), model.get(&key).cloned(), "key {k}");
    }
}

fn reopen_brings_back_every_key_across_many_small_files(index_type: IndexType) {
    let tmp = TempDir::new("reopen");
    let db = Bitcask::open(tmp.db(), small_files(index_type)).unwrap();
    let mut model = mixed_workload(&db, 5000, 7);
    assert!(
        db.data_file_count() > 50,
        "only {} files",
        db.data_file_count()
    );
    db.close().unwrap();
    for file in data_files(&tmp.db()) {
        let len = std::fs::metadata(&file).unwrap().len();
        // Every full file stays within data_file_size (no record here is larger).
        assert!(len <= 4096, "{} is {len} bytes", file.display());
    }
    for round in 0..3 {
        let db = Bitcask::open(tmp.db(), small_files(index_type)).unwrap();
        assert_holds(&db, &model, 500);
        let key = format!("round-{round}").into_bytes();
        db.put(&key, b"x").unwrap();
        model.insert(key, b"x".to_vec());
        db.close().unwrap();
    }
}

fn mmap_and_plain_reads_at_startup_build_the_same_index(index_type: IndexType) {
    let tmp = TempDir::new("mmap");
    let db = Bitcask::open(tmp.db(), small_files(index_type)).unwrap();
    let model = mixed_workload(&db, 3000, 11);
    db.close().unwrap();
    for mmap in [true, false, true] {
        let mut o = small_files(index_type);
        o.set_mmap_at_startup(mmap);
        let db = Bitcask::open(tmp.db(), o).unwrap();
        assert_holds(&db, &model, 500);
        db.close().unwrap();
    }
}

#[test]
fn any_index_type_opens_any_database() {
    // The index type is not stored: a database written with one index is
    // rebuilt by the other, and iterates the same.
    let tmp = TempDir::new("index-types");
    let db = Bitcask::open(tmp.db(), small_files(IndexType::Hash)).unwrap();
    let mut model = mixed_workload(&db, 3000, 13);
    db.close().unwrap();
    for (round, index_type) in [IndexType::Ordered, IndexType::Hash, IndexType::Ordered]
        .into_iter()
        .enumerate()
    {
        let db = Bitcask::open(tmp.db(), small_files(index_type)).unwrap();
        assert_holds(&db, &model, 500);
        let mut it = db.iter(b"", false).unwrap();
        for (key, value) in &model {
            assert_eq!(
                it.current().unwrap(),
                (&key[..], &value[..]),
                "{index_type:?}"
            );
            it.next();
        }
        assert!(!it.valid(), "{index_type:?}");
        let key = format!("round-{round}").into_bytes();
        db.put(&key, b"x").unwrap();
        model.insert(key, b"x".to_vec());
        db.close().unwrap();
    }
}

#[test]
fn a_value_larger_than_a_data_file_gets_a_file_of_its_own() {
    let tmp = TempDir::new("large");
    let db = Bitcask::open(tmp.db(), small_files(IndexType::Ordered)).unwrap();
    db.put(b"small", b"1").unwrap();
    let big = vec![0x5A; 100_000];
    db.put(b"big", &big).unwrap();
    db.put(b"after", b"2").unwrap();
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), small_files(IndexType::Ordered)).unwrap();
    assert_eq!(db.get(b"big").unwrap().unwrap(), big);
    assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(db.data_file_count(), 3);
}

#[test]
fn bytes_per_sync_syncs_once_per_that_many_bytes() {
    let tmp = TempDir::new("bps");
    let value = [7u8; 100];
    // Each record: 11 bytes of header (docs/format.md), an 8-byte key, the value.
    let record = 11 + 8 + 100u64;
    let puts = 1000u64;

    let mut o = Options::default();
    o.set_bytes_per_sync(4096);
    let db = Bitcask::open(tmp.path().join("on"), o).unwrap();
    for i in 0..puts {
        db.put(format!("key{i:05}").as_bytes(), &value).unwrap();
    }
    // The write that reaches 4096 unsynced bytes syncs: every 35th record.
    let per_sync = 4096u64.div_ceil(record);
    assert_eq!(db.sync_count(), puts / per_sync);

    let db_off = Bitcask::open(tmp.path().join("off"), Options::default()).unwrap();
    for i in 0..puts {
        db_off.put(format!("key{i:05}").as_bytes(), &value).unwrap();
    }
    assert_eq!(
        db_off.sync_count(),
        0,
        "bytes_per_sync 0 must never sync on its own"
    );
    db_off.sync().unwrap();
    assert_eq!(db_off.sync_count(), 1);

    let mut o = Options::default();
    o.set_sync_writes(true);
    let db_sync = Bitcask::open(tmp.path().join("sync"), o).unwrap();
    for i in 0..50 {
        db_sync
            .put(format!("key{i:05}").as_bytes(), &value)
            .unwrap();
    }
    assert_eq!(db_sync.sync_count(), 50, "sync_writes syncs every write");
}

/// sync_writes syncs every write before it returns: puts, deletes and batch
/// commits, each once; a delete of an absent key writes nothing and syncs
/// nothing. bytes_per_sync changes nothing while sync_writes is on.
#[test]
fn sync_writes_syncs_every_put_delete_and_batch_once_whatever_bytes_per_sync_says() {
    let tmp = TempDir::new("sync-writes");
    for bytes_per_sync in [0, 4096, 1] {
        let mut o = Options::default();
        o.set_sync_writes(true);
        o.set_bytes_per_sync(bytes_per_sync);
        let db = Bitcask::open(tmp.path().join(format!("bps-{bytes_per_sync}")), o).unwrap();
        let value = [3u8; 300];
        let mut writes = 0;
        let mut check = |db: &Bitcask, what: &str| {
            writes += 1;
            assert_eq!(
                db.sync_count(),
                writes,
                "{what}, bytes_per_sync {bytes_per_sync}"
            );
        };
        for i in 0..30u32 {
            db.put(format!("key{i:03}").as_bytes(), &value).unwrap();
            check(&db, "a put");
        }
        for i in 0..30u32 {
            db.delete(format!("key{i:03}").as_bytes()).unwrap();
            check(&db, "a delete");
        }
        for i in 0..10u32 {
            let mut b = db.batch();
            b.put(format!("batch{i}").as_bytes(), &value).unwrap();
            b.delete(format!("batch{}", i.wrapping_sub(1)).as_bytes())
                .unwrap();
            db.write(&mut b).unwrap();
            check(&db, "a batch");
        }
        db.delete(b"never-there").unwrap();
        assert_eq!(db.sync_count(), writes, "a delete that writes nothing");
    }
}

/// Without any sync option, a write syncs nothing, but the data file that
/// fills up is synced when the next one begins (rollover): one fdatasync
/// per rollover, none more.
#[test]
fn each_rollover_syncs_the_full_file() {
    let tmp = TempDir::new("rollover-sync");
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    let db = Bitcask::open(tmp.db(), o).unwrap();
    for i in 0..200u32 {
        db.put(format!("key{i:03}").as_bytes(), &[9u8; 200])
            .unwrap();
        let rollovers = db.data_file_count() as u64 - 1;
        assert_eq!(db.sync_count(), rollovers, "after put {i}");
    }
    assert!(db.data_file_count() > 5);
}

fn many_threads_share_one_handle(index_type: IndexType) {
    let tmp = TempDir::new("threads");
    let db = Arc::new(Bitcask::open(tmp.db(), small_files(index_type)).unwrap());
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..2000u32 {
                    // Own keys: read back exactly.
                    let own = format!("t{t}-{}", i % 100);
                    let value = format!("{t}:{i}");
                    db.put(own.as_bytes(), value.as_bytes()).unwrap();
                    assert_eq!(db.get(own.as_bytes()).unwrap().unwrap(), value.as_bytes());
                    // Shared keys: whatever is read was written by someone, whole.
                    let shared = format!("shared-{}", i % 10);
                    if i % 3 == 0 {
                        db.put(shared.as_bytes(), format!("{shared}={t}:{i}").as_bytes())
                            .unwrap();
                    } else if i % 7 == 0 {
                        db.delete(shared.as_bytes()).unwrap();
                    } else if let Some(v) = db.get(shared.as_bytes()).unwrap() {
                        let v = String::from_utf8(v).unwrap();
                        assert!(v.starts_with(&format!("{shared}=")), "{v}");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let db = Arc::try_unwrap(db).ok().unwrap();
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), small_files(index_type)).unwrap();
    for t in 0..8 {
        for k in 0..100u32 {
            // The last write to t{t}-{k} was i = 1900 + k.
            let expected = format!("{t}:{}", 1900 + k);
            assert_eq!(
                db.get(format!("t{t}-{k}").as_bytes()).unwrap().unwrap(),
                expected.as_bytes()
            );
        }
    }
}

#[test]
fn open_refuses_a_path_that_is_a_file_and_creates_missing_parents() {
    let tmp = TempDir::new("paths");
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        Bitcask::open(&file, Options::default()),
        Err(Error::Io { .. })
    ));
    let nested = tmp.path().join("a/b/c");
    Bitcask::open(&nested, Options::default())
        .unwrap()
        .close()
        .unwrap();
    assert!(nested.join("000000001.data").is_file());
}

#[test]
fn damage_found_by_a_read_is_corruption_never_wrong_data() {
    use std::os::unix::fs::FileExt;
    let tmp = TempDir::new("readcrc");
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    db.put(b"k", b"original value").unwrap();
    db.sync().unwrap();
    // Flip one byte of the value behind the open database's back.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&data_files(&tmp.db())[0])
        .unwrap();
    // The file may be longer than its records (grown ahead): find the value.
    let bytes = std::fs::read(&data_files(&tmp.db())[0]).unwrap();
    let at = bytes
        .windows(b"original value".len())
        .position(|w| w == b"original value")
        .unwrap();
    file.write_all_at(b"X", (at + b"original value".len() - 1) as u64)
        .unwrap();
    // The report names the file and the offset of the record that failed:
    // the first record, right after the 16-byte file header.
    match db.get(b"k") {
        Err(Error::Corruption(msg)) => {
            assert!(
                msg.contains("000000001.data") && msg.contains("at offset 16;"),
                "{msg}"
            )
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    let mut buf = [0u8; 64];
    match db.get_into(b"k", &mut buf) {
        Err(Error::Corruption(msg)) => assert!(msg.contains("at offset 16;"), "{msg}"),
        other => panic!("expected corruption, got {other:?}"),
    }
    // A record further in: its own offset.
    db.put(b"k2", b"second value").unwrap();
    db.sync().unwrap();
    let bytes = std::fs::read(&data_files(&tmp.db())[0]).unwrap();
    let at = bytes
        .windows(b"second value".len())
        .position(|w| w == b"second value")
        .unwrap();
    file.write_all_at(b"X", at as u64).unwrap();
    // Record k: 11 bytes of header, the key, the value.
    let second = 16 + 11 + 1 + b"original value".len();
    match db.get(b"k2") {
        Err(Error::Corruption(msg)) => {
            assert!(msg.contains(&format!("at offset {second};")), "{msg}")
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

test_each_index_type!(
    reopen_brings_back_every_key_across_many_small_files,
    mmap_and_plain_reads_at_startup_build_the_same_index,
    many_threads_share_one_handle,
);

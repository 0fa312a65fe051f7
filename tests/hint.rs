//! Hint files: open uses an intact one instead of scanning its data file,
//! and a missing, cut, damaged or stale one only makes open scan.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bitcask::{Bitcask, IndexType, Options};
use common::{data_files, TempDir};

fn opts() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

fn hint_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hint"))
        .collect();
    files.sort();
    files
}

/// A database of many small files with overwrites, deletes and a batch;
/// returns what it holds.
fn build(dir: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = Bitcask::open(dir, opts()).unwrap();
    let mut model = BTreeMap::new();
    for round in 0..3u32 {
        for i in 0..600u32 {
            let (k, v) = (format!("k{i:04}"), format!("v{i}-{round}"));
            db.put(k.as_bytes(), v.as_bytes()).unwrap();
            model.insert(k.into_bytes(), v.into_bytes());
        }
    }
    for i in (0..600u32).step_by(5) {
        let k = format!("k{i:04}");
        db.delete(k.as_bytes()).unwrap();
        model.remove(k.as_bytes());
    }
    let mut batch = db.batch();
    batch.put(b"batched", b"yes").unwrap();
    batch.delete(b"k0001").unwrap();
    db.write(&mut batch).unwrap();
    model.insert(b"batched".to_vec(), b"yes".to_vec());
    model.remove(&b"k0001"[..]);
    db.close().unwrap();
    model
}

fn check(dir: &Path, model: &BTreeMap<Vec<u8>, Vec<u8>>) -> (usize, u64) {
    // Not the keydir file: these tests are about the hint files.
    common::remove_keydir_file(dir);
    let db = Bitcask::open(dir, opts()).unwrap();
    assert_eq!(db.key_count(), model.len());
    for (k, v) in model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "{k:?}");
    }
    assert_eq!(db.get(b"k0000").unwrap(), None, "deleted key");
    let used = db.hint_files_used();
    let reclaimable = db.stats().unwrap().reclaimable_bytes;
    db.close().unwrap();
    (used, reclaimable)
}

#[test]
fn open_uses_intact_hints_and_scans_where_they_are_missing_cut_damaged_or_stale() {
    let tmp = TempDir::new("hint-fallback");
    let dir = tmp.db();
    let model = build(&dir);
    let files = data_files(&dir).len();
    assert!(files >= 7, "{files} data files");
    // Close writes the hint of every file that stopped being written, and
    // of the active one.
    assert_eq!(hint_files(&dir).len(), files);
    let (used, reclaimable) = check(&dir, &model);
    assert_eq!(used, files, "every data file loads from its hint");

    // The same database scanned in full, for comparison.
    let scanned = tmp.path().join("scanned");
    common::copy_dir(&dir, &scanned);
    for hint in hint_files(&scanned) {
        fs::remove_file(hint).unwrap();
    }
    assert_eq!(check(&scanned, &model), (0, reclaimable));

    let hints = hint_files(&dir);
    fs::remove_file(&hints[0]).unwrap(); // missing
    let len = fs::metadata(&hints[1]).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&hints[1])
        .unwrap()
        .set_len(len - 3)
        .unwrap(); // cut short
    let mut damaged = fs::read(&hints[2]).unwrap();
    damaged[40] ^= 0x01;
    fs::write(&hints[2], damaged).unwrap(); // a flipped bit
    fs::copy(&hints[4], &hints[3]).unwrap(); // another file's hint (stale)
    let (used, after) = check(&dir, &model);
    assert_eq!(used, files - 4, "the four bad hints are ignored");
    assert_eq!(after, reclaimable, "the same reclaimable bytes either way");

    // That open rewrote the four hints (at the latest by its close).
    assert_eq!(check(&dir, &model).0, files);
}

#[test]
fn a_hint_left_by_a_deleted_data_file_or_a_temporary_file_is_removed_at_open() {
    let tmp = TempDir::new("hint-leftovers");
    let dir = tmp.db();
    let model = build(&dir);
    fs::write(dir.join("000099999.hint"), b"orphan").unwrap();
    fs::write(dir.join("000099998.data.tmp"), b"half a merge output").unwrap();
    fs::write(dir.join("000000001.hint.tmp"), b"half a hint").unwrap();
    fs::write(dir.join("notes.txt"), b"not ours").unwrap();
    check(&dir, &model);
    assert!(!dir.join("000099999.hint").exists());
    assert!(!dir.join("000099998.data.tmp").exists());
    assert!(!dir.join("000000001.hint.tmp").exists());
    assert!(
        dir.join("notes.txt").exists(),
        "files that are not ours stay"
    );
}

#[test]
fn batch_sequence_numbers_survive_a_merge_through_the_hint_files() {
    // Sequence numbers are not visible through the API; what is visible is
    // that batches after merge + reopen still commit and load correctly.
    let tmp = TempDir::new("hint-batch");
    let dir = tmp.db();
    let model = build(&dir);
    let db = Bitcask::open(&dir, opts()).unwrap();
    db.merge().unwrap();
    db.close().unwrap();
    let db = Bitcask::open(&dir, opts()).unwrap();
    let mut batch = db.batch();
    batch.put(b"after", b"merge").unwrap();
    db.write(&mut batch).unwrap();
    db.close().unwrap();
    let mut model = model;
    model.insert(b"after".to_vec(), b"merge".to_vec());
    check(&dir, &model);
}

/// Hint files of many thousand entries (open applies them in runs of a few
/// thousand): keys overwritten and deleted within a file and across files,
/// some deleted and put again. Loaded from the hints, the database holds
/// what it holds when scanned, with the same reclaimable bytes, whichever
/// the index type.
#[test]
fn long_hints_load_like_a_scan_with_either_index() {
    for index_type in [IndexType::Ordered, IndexType::Hash] {
        let tmp = TempDir::new("hint-long");
        let dir = tmp.db();
        let mut opts = common::with_index(index_type);
        opts.set_data_file_size(1 << 20).unwrap();
        opts.set_auto_merge_ratio(0.0).unwrap();
        let db = Bitcask::open(&dir, opts.clone()).unwrap();
        let (mut rng, seed) = common::test_seed("long_hints_load_like_a_scan_with_either_index");
        let mut model = BTreeMap::new();
        for n in 0..120_000u32 {
            let k = format!("key{:05}", rng.below(30_000)).into_bytes();
            if rng.below(5) == 0 {
                db.delete(&k).unwrap();
                model.remove(&k);
            } else {
                let v = format!("value {n}").into_bytes();
                db.put(&k, &v).unwrap();
                model.insert(k, v);
            }
        }
        db.close().unwrap();
        let files = data_files(&dir).len();
        assert!(files >= 3, "{files} data files");

        let scanned = tmp.path().join("scanned");
        common::copy_dir(&dir, &scanned);
        for hint in hint_files(&scanned) {
            fs::remove_file(hint).unwrap();
        }
        let mut stats = Vec::new();
        for (path, hints) in [(&dir, files), (&scanned, 0)] {
            common::remove_keydir_file(path);
            let db = Bitcask::open(path, opts.clone()).unwrap();
            assert_eq!(db.hint_files_used(), hints, "{index_type:?}, seed {seed}");
            assert_eq!(db.key_count(), model.len(), "{index_type:?}, seed {seed}");
            for (k, v) in &model {
                assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "seed {seed}");
            }
            let s = db.stats().unwrap();
            // Not disk_bytes: one directory has hint files, the other not.
            stats.push((s.key_count, s.data_file_count, s.reclaimable_bytes));
            db.close().unwrap();
        }
        assert_eq!(stats[0], stats[1], "{index_type:?}, seed {seed}");
        assert!(stats[0].2 > 0, "{:?}", stats[0]);
    }
}

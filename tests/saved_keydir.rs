//! The keydir file close writes (db/saved_keydir.rs): the next open loads
//! the index from it when it describes the data files as they are, and
//! never when it could be wrong: stale (written before later writes or a
//! merge), damaged, cut short. Loaded or not, the database holds the same
//! keys, values and reclaimable bytes; either index type opens it.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use bitcask::{Bitcask, IndexType, Options};
use common::{copy_dir, TempDir};

fn options(index_type: IndexType) -> Options {
    let mut o = Options::default();
    o.set_index_type(index_type);
    o.set_data_file_size(64 << 10).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

/// Puts, overwrites and deletes over several data files, and a batch.
fn write(db: &Bitcask, model: &mut Model, round: u32) {
    for i in 0..3000u32 {
        let k = format!("key{:05}", (i * 7 + round) % 2000).into_bytes();
        if i % 9 == 4 {
            db.delete(&k).unwrap();
            model.remove(&k);
        } else {
            let v = format!("value {i} of round {round}").into_bytes();
            db.put(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    let mut b = db.batch();
    b.put(format!("batched{round}").as_bytes(), b"yes").unwrap();
    b.delete(b"key00003").unwrap();
    db.write(&mut b).unwrap();
    model.insert(format!("batched{round}").into_bytes(), b"yes".to_vec());
    model.remove(&b"key00003"[..]);
}

/// Opens `dir`, checks every key, the key order of an iterator and the
/// key count against `model`; returns whether the open took the keydir
/// file (whole, or and then what was written after it) and the
/// reclaimable bytes.
fn check(dir: &Path, index_type: IndexType, model: &Model) -> (bool, u64) {
    let had_file = dir.join("KEYDIR").exists();
    let db = Bitcask::open(dir, options(index_type)).unwrap();
    let report = db.recovery();
    let used = report.from_saved_keydir || report.resumed_from_keydir;
    assert!(had_file || !used);
    assert_eq!(
        dir.join("KEYDIR").exists(),
        used,
        "open keeps the keydir file it used and removes one it did not"
    );
    assert_eq!(db.key_count(), model.len());
    for (k, v) in model {
        assert_eq!(db.get(k).unwrap().as_ref(), Some(v), "{k:?}");
    }
    let mut it = db.iter(b"", false).unwrap();
    let mut keys = Vec::new();
    while let Some(k) = it.key() {
        keys.push(k.to_vec());
        it.next();
    }
    assert!(keys.iter().eq(model.keys()), "iteration order");
    let loaded = used;
    if report.from_saved_keydir {
        assert_eq!(db.hint_files_used(), 0, "nothing read besides the file");
    }
    let reclaimable = db.stats().unwrap().reclaimable_bytes;
    // Nothing written: close writes the file again, as it found it.
    db.close().unwrap();
    (loaded, reclaimable)
}

/// A database closed once with the hash index (which writes the file).
fn build(dir: &Path) -> Model {
    let mut model = Model::new();
    let db = Bitcask::open(dir, options(IndexType::Hash)).unwrap();
    write(&db, &mut model, 1);
    db.close().unwrap();
    assert!(dir.join("KEYDIR").exists(), "close writes the keydir file");
    model
}

#[test]
fn open_loads_the_keydir_file_into_either_index_type_with_what_hints_give() {
    let tmp = TempDir::new("keydir-load");
    let dir = tmp.db();
    let model = build(&dir);
    let from_hints = tmp.path().join("hints");
    copy_dir(&dir, &from_hints);
    common::remove_keydir_file(&from_hints);
    let (loaded, reclaimable) = check(&dir, IndexType::Hash, &model);
    assert!(loaded, "a clean close's keydir file is used");
    assert_eq!(
        check(&from_hints, IndexType::Hash, &model),
        (false, reclaimable)
    );
    // The ordered index builds itself from the same file.
    assert_eq!(check(&dir, IndexType::Ordered, &model), (true, reclaimable));
    // Closed with the ordered index, which has no saved form, the file it
    // loaded stays: it still describes the log up to where it ends.
    assert!(dir.join("KEYDIR").exists());
    assert_eq!(check(&dir, IndexType::Hash, &model), (true, reclaimable));
}

/// What a database opened without its keydir file holds as reclaimable:
/// the reference for one opened with it.
fn reclaimable_from_hints(tmp: &TempDir, dir: &Path, model: &Model) -> u64 {
    let copy = tmp.path().join("from-hints");
    let _ = fs::remove_dir_all(&copy);
    copy_dir(dir, &copy);
    common::remove_keydir_file(&copy);
    let (loaded, reclaimable) = check(&copy, IndexType::Hash, model);
    assert!(!loaded);
    reclaimable
}

/// A keydir file from before later writes describes the log up to where it
/// ended then (as a checkpoint does): open loads it and reads what was
/// written after it. One from before a merge names files that are gone:
/// not used.
#[test]
fn a_keydir_file_older_than_the_data_files_is_used_up_to_where_it_ends() {
    let tmp = TempDir::new("keydir-stale");
    let dir = tmp.db();
    let mut model = build(&dir);
    let old = tmp.path().join("KEYDIR.old");
    fs::copy(dir.join("KEYDIR"), &old).unwrap();

    // One put after the reopen makes the newest data file longer, the same
    // files otherwise.
    let db = Bitcask::open(&dir, options(IndexType::Hash)).unwrap();
    let files = db.stats().unwrap().data_file_count;
    db.put(b"key00001", b"one more").unwrap();
    model.insert(b"key00001".to_vec(), b"one more".to_vec());
    assert_eq!(db.stats().unwrap().data_file_count, files, "no rollover");
    db.close().unwrap();
    fs::copy(&old, dir.join("KEYDIR")).unwrap();
    let expected = reclaimable_from_hints(&tmp, &dir, &model);
    let db = Bitcask::open(&dir, options(IndexType::Hash)).unwrap();
    let report = db.recovery();
    assert!(report.resumed_from_keydir && !report.from_saved_keydir);
    assert_eq!(
        report.files_scanned, 1,
        "the newest file, from where it ended"
    );
    drop(db);
    fs::copy(&old, dir.join("KEYDIR")).unwrap();
    assert_eq!(check(&dir, IndexType::Hash, &model), (true, expected));

    // Many writes add data files: likewise, the files after it loaded.
    let db = Bitcask::open(&dir, options(IndexType::Hash)).unwrap();
    write(&db, &mut model, 2);
    db.close().unwrap();
    fs::copy(&old, dir.join("KEYDIR")).unwrap();
    let expected = reclaimable_from_hints(&tmp, &dir, &model);
    assert_eq!(check(&dir, IndexType::Hash, &model), (true, expected));

    // A merge replaces data files: not used.
    fs::copy(dir.join("KEYDIR"), &old).unwrap();
    let db = Bitcask::open(&dir, options(IndexType::Hash)).unwrap();
    db.merge().unwrap();
    db.close().unwrap();
    fs::copy(&old, dir.join("KEYDIR")).unwrap();
    let (loaded, reclaimable) = check(&dir, IndexType::Hash, &model);
    assert!(!loaded, "a keydir file from before a merge is ignored");
    assert_eq!(reclaimable, 0);

    // And the current one is used.
    assert!(check(&dir, IndexType::Hash, &model).0);
}

#[test]
fn a_damaged_or_cut_keydir_file_is_not_used() {
    let tmp = TempDir::new("keydir-damaged");
    let dir = tmp.db();
    let model = build(&dir);
    let good = fs::read(dir.join("KEYDIR")).unwrap();
    let (_, reclaimable) = check(&dir, IndexType::Hash, &model);
    let mut flipped = good.clone();
    for at in [9, 40, good.len() / 2, good.len() - 1] {
        flipped[at] ^= 0x10;
        fs::write(dir.join("KEYDIR"), &flipped).unwrap();
        assert_eq!(
            check(&dir, IndexType::Hash, &model),
            (false, reclaimable),
            "byte {at}"
        );
        flipped[at] ^= 0x10;
    }
    for len in [0, 7, good.len() / 3, good.len() - 1] {
        fs::write(dir.join("KEYDIR"), &good[..len]).unwrap();
        assert_eq!(
            check(&dir, IndexType::Hash, &model),
            (false, reclaimable),
            "cut at {len}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    fs::write(dir.join("KEYDIR"), &longer).unwrap();
    assert_eq!(
        check(&dir, IndexType::Hash, &model),
        (false, reclaimable),
        "a byte too many"
    );
    // The control: the intact file is used.
    fs::write(dir.join("KEYDIR"), &good).unwrap();
    assert_eq!(check(&dir, IndexType::Hash, &model), (true, reclaimable));
}

/// A keydir file of an older version (1 or 2: the hash index placed keys
/// by other bits of their hash then; 3 or 4: its slots had no record
/// starts beside them) is not used, even with a checksum that holds: its
/// tables would hide keys from gets, or send them to other records.
#[test]
fn a_keydir_file_of_an_older_version_is_not_used() {
    let tmp = TempDir::new("keydir-old-version");
    let dir = tmp.db();
    let model = build(&dir);
    let good = fs::read(dir.join("KEYDIR")).unwrap();
    let (_, reclaimable) = check(&dir, IndexType::Hash, &model);
    let with_version = |version: u32| {
        let mut bytes = good.clone();
        bytes[8..12].copy_from_slice(&version.to_le_bytes());
        let end = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..end]);
        bytes[end..].copy_from_slice(&crc.to_le_bytes());
        bytes
    };
    for version in [1, 2, 3, 4] {
        fs::write(dir.join("KEYDIR"), with_version(version)).unwrap();
        assert_eq!(
            check(&dir, IndexType::Hash, &model),
            (false, reclaimable),
            "version {version}"
        );
    }
    // The control: the file rewritten the same way with its own version
    // (5, close's) is used, so the checksum above was made right.
    assert_eq!(with_version(5), good);
    fs::write(dir.join("KEYDIR"), with_version(5)).unwrap();
    assert_eq!(check(&dir, IndexType::Hash, &model), (true, reclaimable));
}

/// A hint file removed since the clean close (by hand, or by a test that
/// makes the directory look as a crash leaves it): the keydir file is not
/// used, so open treats that data file as it would without a clean close,
/// as `bitcask_verify` predicts. (The damage tests in tests/damage.rs rely
/// on it: with the keydir file used, a damaged sealed file would open.)
#[test]
fn a_hint_file_removed_since_close_makes_open_read_the_files() {
    let tmp = TempDir::new("keydir-hint-gone");
    let dir = tmp.db();
    let model = build(&dir);
    let second = common::data_files(&dir)[1].with_extension("hint");
    fs::remove_file(&second).unwrap();
    let (loaded, _) = check(&dir, IndexType::Hash, &model);
    assert!(
        !loaded,
        "a keydir file is not used when a hint file is gone"
    );
    // That open's close saved the index again, with every hint file there.
    assert!(second.exists(), "the missing hint file was written again");
    assert!(check(&dir, IndexType::Hash, &model).0);
}

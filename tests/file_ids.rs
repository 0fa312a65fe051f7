//! Data file ids go up to 2^32 - 1, and every one of them gets a name that
//! open loads: a database renumbered to just below 1,000,000,000 (nine
//! digits) and written past it keeps every key across reopens, and its
//! rollovers and merges go on.
//!
//! Pins: names of nine digits only, so that ids from 1,000,000,000 on were
//! written but never loaded (21 keys before close, 8 after reopen), and the
//! next rollover after a reopen failed with "File exists".

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bitcask::{Bitcask, Options};
use common::TempDir;

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

/// Renames every data and hint file of `dir` so that the newest gets id
/// `newest`, keeping their order and gaps.
fn renumber(dir: &Path, newest: u64) {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".data")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    let shift = newest - ids.last().unwrap();
    // Newest first, so that no new name is an old one still to be moved.
    for &id in ids.iter().rev() {
        for ext in ["data", "hint"] {
            let from = dir.join(format!("{id:09}.{ext}"));
            if from.exists() {
                std::fs::rename(&from, dir.join(format!("{:09}.{ext}", id + shift))).unwrap();
            }
        }
    }
}

fn check(db: &Bitcask, model: &BTreeMap<String, String>, when: &str) {
    assert_eq!(db.key_count(), model.len(), "{when}: key count");
    for (k, v) in model {
        assert_eq!(
            db.get(k.as_bytes()).unwrap().as_deref(),
            Some(v.as_bytes()),
            "{when}: {k}"
        );
    }
}

fn write(db: &Bitcask, model: &mut BTreeMap<String, String>, round: u32, keys: u32) {
    for i in 0..keys {
        let (k, v) = (
            format!("key{i:04}"),
            format!("value-{round}-{i}-{:0200}", 0),
        );
        db.put(k.as_bytes(), v.as_bytes()).unwrap();
        model.insert(k, v);
    }
}

#[test]
fn ids_past_nine_digits_are_loaded_and_rollovers_and_merges_go_on() {
    let tmp = TempDir::new("file-ids");
    let mut model = BTreeMap::new();
    let db = Bitcask::open(tmp.db(), options()).unwrap();
    write(&db, &mut model, 0, 40);
    db.close().unwrap();
    // Three files short of the ten-digit names.
    renumber(&tmp.db(), 999_999_997);

    let db = Bitcask::open(tmp.db(), options()).unwrap();
    check(&db, &model, "after renumbering");
    // About 20 files of 4 KiB: well past 1,000,000,000.
    write(&db, &mut model, 1, 200);
    check(&db, &model, "written past 1e9");
    db.close().unwrap();
    let names: Vec<String> = std::fs::read_dir(tmp.db())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.starts_with("10000000") && n.len() == 15),
        "no ten-digit data file name among {names:?}"
    );

    let db = Bitcask::open(tmp.db(), options()).unwrap();
    check(&db, &model, "after reopen");
    // Rollovers after the reopen, and a merge (which skips ids ahead).
    write(&db, &mut model, 2, 200);
    db.merge().unwrap();
    check(&db, &model, "after merge");
    write(&db, &mut model, 3, 50);
    db.close().unwrap();

    let db = Bitcask::open(tmp.db(), options()).unwrap();
    check(&db, &model, "after merge and reopen");
    db.close().unwrap();
}

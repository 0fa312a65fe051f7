//! Open after a crash or damage: a torn tail of the newest file is cut back
//! (into a quarantine file when it holds anything but zeros) and writing
//! continues after it; damage in a sealed file is Corruption with the file
//! and offset, never wrong data. tests/damage.rs has every damage case of
//! docs/format.md; this file has the torn tails and headers.

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bitcask::{Bitcask, Error, Options};
use common::{copy_dir, data_files, TempDir};

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(4096).unwrap();
    o
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-").repeat(3).into_bytes()
}

fn open_err(dir: &Path) -> String {
    match Bitcask::open(dir, options()) {
        Err(Error::Corruption(msg)) => msg,
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged directory opened without complaint"),
    }
}

/// A database of several files whose last record is `last`; returns the
/// newest file and the offset where that last record starts.
fn build(dir: &Path) -> (std::path::PathBuf, u64) {
    let db = Bitcask::open(dir, options()).unwrap();
    for i in 0..400 {
        db.put(format!("k{i:03}").as_bytes(), &value(i)).unwrap();
    }
    db.put(b"k007", b"overwritten").unwrap();
    db.delete(b"k008").unwrap();
    db.put(b"last", &[0xEE; 300]).unwrap();
    db.close().unwrap();
    let newest = data_files(dir).pop().unwrap();
    // Close cut the file to its last record, "last" (which may have rolled
    // over into a file of its own).
    let last_len = 4 + 1 + 1 + 2 + 4 + 4 + 300;
    let last_start = std::fs::metadata(&newest).unwrap().len() - last_len;
    assert!(data_files(dir).len() > 3);
    // Close wrote a hint for the newest file too. A hint is valid only for
    // a file as it was at a clean close, so open would take it and not read
    // the file: these tests are about what a scan finds, so it goes.
    std::fs::remove_file(newest.with_extension("hint")).unwrap();
    (newest, last_start)
}

fn check_earlier_records(db: &Bitcask) {
    for i in 0..200u32 {
        let got = db.get(format!("k{i:03}").as_bytes()).unwrap();
        match i {
            7 => assert_eq!(got.as_deref(), Some(&b"overwritten"[..])),
            8 => assert_eq!(got, None),
            _ => assert_eq!(got, Some(value(i)), "k{i:03}"),
        }
    }
}

#[test]
fn a_tail_torn_at_every_byte_of_the_last_record_is_cut_back_and_writing_continues() {
    let tmp = TempDir::new("torn");
    let original = tmp.path().join("original");
    let (newest, last_start) = build(&original);
    let full_len = std::fs::metadata(&newest).unwrap().len();
    let name = newest.file_name().unwrap().to_owned();
    for cut in last_start..full_len {
        let dir = tmp.path().join(format!("cut-{cut}"));
        copy_dir(&original, &dir);
        OpenOptions::new()
            .write(true)
            .open(dir.join(&name))
            .unwrap()
            .set_len(cut)
            .unwrap();

        let db = Bitcask::open(&dir, options()).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        check_earlier_records(&db);
        assert_eq!(db.get(b"last").unwrap(), None, "cut at {cut}");
        assert_eq!(
            std::fs::metadata(dir.join(&name)).unwrap().len(),
            last_start,
            "not cut back"
        );
        db.put(b"after-crash", b"new").unwrap();
        db.close().unwrap();

        let db = Bitcask::open(&dir, options())
            .unwrap_or_else(|e| panic!("reopen after cut at {cut}: {e}"));
        check_earlier_records(&db);
        assert_eq!(
            db.get(b"after-crash").unwrap().as_deref(),
            Some(&b"new"[..])
        );
        db.close().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn zero_filled_space_after_the_last_record_is_cut_back() {
    let tmp = TempDir::new("zerofill");
    let (newest, _) = build(tmp.path());
    let len = std::fs::metadata(&newest).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&newest)
        .unwrap()
        .set_len(len + 8192)
        .unwrap();
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    check_earlier_records(&db);
    assert_eq!(db.get(b"last").unwrap(), Some(vec![0xEE; 300]));
    drop(db);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), len);
}

#[test]
fn a_damaged_last_record_is_a_torn_tail() {
    let tmp = TempDir::new("lastcrc");
    let (newest, last_start) = build(tmp.path());
    let len = std::fs::metadata(&newest).unwrap().len();
    let file = OpenOptions::new().write(true).open(&newest).unwrap();
    file.write_all_at(&[0x00], len - 10).unwrap();
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    check_earlier_records(&db);
    assert_eq!(db.get(b"last").unwrap(), None);
    drop(db);
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), last_start);
}

#[test]
fn damage_in_an_older_file_is_corruption_with_file_and_offset() {
    let tmp = TempDir::new("older");
    build(tmp.path());
    let second = &data_files(tmp.path())[1];
    let file = OpenOptions::new().write(true).open(second).unwrap();
    file.write_all_at(b"\xFF", 100).unwrap();

    // With its hint file, open does not read the damaged file: the damage is
    // found by the read of that record, and every other key reads fine.
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    assert!(db.hint_files_used() >= 1);
    let mut damaged = Vec::new();
    for i in 0..400 {
        let key = format!("k{i:03}");
        match db.get(key.as_bytes()) {
            Ok(_) => {}
            Err(Error::Corruption(msg)) => {
                assert!(msg.contains("000000002.data"), "{msg}");
                damaged.push(key);
            }
            Err(other) => panic!("{key}: {other}"),
        }
    }
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    db.close().unwrap();

    // Without it, open scans the file and refuses it, naming file and offset.
    std::fs::remove_file(tmp.path().join("000000002.hint")).unwrap();
    let msg = open_err(tmp.path());
    assert!(msg.contains("000000002.data"), "{msg}");
    assert!(msg.contains("offset"), "{msg}");
}

#[test]
fn an_older_file_cut_short_is_corruption_not_a_torn_tail() {
    let tmp = TempDir::new("oldercut");
    build(tmp.path());
    let first = &data_files(tmp.path())[0];
    let len = std::fs::metadata(first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let msg = open_err(tmp.path());
    assert!(
        msg.contains("000000001.data") && msg.contains("sealed") && msg.contains("repair"),
        "{msg}"
    );
}

/// The first bad record of the newest file ends its good data, wherever it
/// lies: what follows goes to a quarantine file, and open says how many
/// intact records lay after it (here: all but the damaged one).
#[test]
fn damage_in_the_middle_of_the_newest_file_ends_its_good_data_and_is_quarantined() {
    let tmp = TempDir::new("middle");
    let (newest, last_start) = build(tmp.path());
    assert!(
        last_start > 200,
        "the newest file needs records before the last one"
    );
    let len = std::fs::metadata(&newest).unwrap().len();
    let file = OpenOptions::new().write(true).open(&newest).unwrap();
    // A byte inside the first record of the newest file (after the 16-byte file header).
    file.write_all_at(b"\x01", 30).unwrap();
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    let tail = db.recovery().tail.clone().expect("a tail was cut");
    assert_eq!((tail.offset, tail.bytes_cut), (16, len - 16));
    assert!(tail.intact_records_after > 0, "{tail:?}");
    let quarantine = tail.quarantine_file.expect("the bytes are kept");
    assert!(tmp.path().join(&quarantine).is_file());
    assert_eq!(std::fs::metadata(&newest).unwrap().len(), 16);
    drop(db);
}

#[test]
fn a_torn_file_header_in_the_newest_file_is_rewritten() {
    let tmp = TempDir::new("header");
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    // A crash while creating the next file leaves it empty or with part of its header.
    for partial in [0usize, 7, 15] {
        let next = tmp.path().join("000000002.data");
        std::fs::write(&next, &b"BCSKDATA\x01\x00\x00\x00\x00\x00\x00"[..partial]).unwrap();
        let db = Bitcask::open(tmp.path(), options()).unwrap();
        assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
        db.put(b"k2", b"v2").unwrap();
        db.close().unwrap();
        let db = Bitcask::open(tmp.path(), options()).unwrap();
        assert_eq!(db.get(b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
        db.delete(b"k2").unwrap();
        db.close().unwrap();
        std::fs::remove_file(&next).unwrap();
    }
}

#[test]
fn a_file_of_an_unknown_format_version_is_refused_with_the_version() {
    let tmp = TempDir::new("version");
    Bitcask::open(tmp.path(), options())
        .unwrap()
        .close()
        .unwrap();
    let path = &data_files(tmp.path())[0];
    let mut header = std::fs::read(path).unwrap();
    header[8..12].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(path, &header).unwrap();
    let msg = open_err(tmp.path());
    assert!(
        msg.contains("format version 2") && msg.contains("version 1"),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_a_data_file_is_refused() {
    let tmp = TempDir::new("magic");
    build(tmp.path());
    let first = &data_files(tmp.path())[0];
    let file = OpenOptions::new().write(true).open(first).unwrap();
    file.write_all_at(b"NOTADATA", 0).unwrap();
    let msg = open_err(tmp.path());
    assert!(msg.contains("not a libbitcask data file"), "{msg}");
}

#[test]
fn other_files_in_the_directory_are_ignored() {
    let tmp = TempDir::new("others");
    std::fs::create_dir_all(tmp.db()).unwrap();
    std::fs::write(tmp.db().join("README"), b"mine").unwrap();
    std::fs::write(tmp.db().join("1.data"), b"not ours: wrong name").unwrap();
    let db = Bitcask::open(tmp.db(), options()).unwrap();
    db.put(b"k", b"v").unwrap();
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), options()).unwrap();
    assert_eq!(db.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

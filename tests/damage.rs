//! Every damage case of issue 11, against the rules of docs/format.md
//! ("Recovery rules"): open does what the rules say (cuts and quarantines
//! the newest file's tail, cuts zeros off a sealed file, refuses damage in
//! a sealed file with the file, offset and repair named), no get ever
//! returns bytes that were not written for its key, and after repair every
//! intact record is readable again.
//!
//! The model keeps, for each key, every value it was ever given (and
//! whether it was deleted): a key whose latest record is intact must hold
//! its latest value; a key whose latest record was damaged may hold an
//! earlier value, or be absent, or (in a file loaded from its hint) answer
//! corruption; nothing else.

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bitcask::{AtOpen, Bitcask, Error, Options, RepairOptions};
use common::{data_files, Rng, TempDir};

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(24 << 10).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

/// Every value each key was given, in order; `None` for a delete.
type History = BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>>;

fn value(i: u32, round: u32) -> Vec<u8> {
    let mut v = format!("value-{i}-{round}-").into_bytes();
    v.resize(60 + (i as usize * 7) % 90, b'a' + (i % 26) as u8);
    v
}

/// A database of several data files: 600 keys written, then a third of
/// them written again and a few deleted, closed cleanly (every file has
/// its hint file, the newest one included).
fn build(dir: &Path) -> History {
    let db = Bitcask::open(dir, options()).unwrap();
    let mut history = History::new();
    let mut set = |key: String, v: Option<Vec<u8>>| {
        match &v {
            Some(v) => db.put(key.as_bytes(), v).unwrap(),
            None => db.delete(key.as_bytes()).unwrap(),
        }
        history.entry(key.into_bytes()).or_default().push(v);
    };
    for i in 0..600 {
        set(format!("key-{i:04}"), Some(value(i, 0)));
    }
    for i in (0..600).step_by(3) {
        set(format!("key-{i:04}"), Some(value(i, 1)));
    }
    for i in (1..600).step_by(50) {
        set(format!("key-{i:04}"), None);
    }
    db.close().unwrap();
    assert!(data_files(dir).len() >= 3, "several data files");
    history
}

/// Where each key's latest record lies: (data file, offset, length), found
/// by walking the data files as open would (no damage yet).
fn latest_records(dir: &Path) -> BTreeMap<Vec<u8>, (PathBuf, u64, u64)> {
    let mut latest = BTreeMap::new();
    for file in data_files(dir) {
        let bytes = std::fs::read(&file).unwrap();
        let mut at = 16usize;
        // An open database's active file is grown ahead with zeros.
        while at + 4 < bytes.len() && bytes[at + 4] != 0 {
            let (kind, key_len, value_len, header_len) = parse_header(&bytes[at..]);
            let len = header_len + key_len + value_len;
            let key = bytes[at + header_len..at + header_len + key_len].to_vec();
            if kind == 2 {
                latest.remove(&key);
            } else {
                latest.insert(key, (file.clone(), at as u64, len as u64));
            }
            at += len;
        }
    }
    latest
}

/// Type, key length, value length and header length of the record header
/// at the start of `bytes` (no checks: the files are intact here).
fn parse_header(bytes: &[u8]) -> (u8, usize, usize, usize) {
    let mut at = 5;
    let mut varint = || {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let b = bytes[at];
            at += 1;
            v |= ((b & 0x7f) as usize) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                return v;
            }
        }
    };
    let key_len = varint();
    let value_len = varint();
    (bytes[4], key_len, value_len, at + 4)
}

/// What a get of `key` may answer when `intact`: its latest value; when
/// not: any value it was given, or absent, or (`corruption_ok`) corruption.
fn check_key(
    db: &Bitcask,
    key: &[u8],
    history: &[Option<Vec<u8>>],
    intact: bool,
    corruption_ok: bool,
) {
    let name = String::from_utf8_lossy(key);
    match db.get(key) {
        Ok(got) if intact => assert_eq!(&got, history.last().unwrap(), "{name}"),
        Ok(None) => {}
        Ok(Some(v)) => assert!(
            history.iter().any(|h| h.as_deref() == Some(&v[..])),
            "{name}: a value never written for it"
        ),
        Err(Error::Corruption(_)) if corruption_ok && !intact => {}
        Err(e) => panic!("{name}: {e}"),
    }
}

/// Checks every key of `history`: those in `damaged` may have lost their
/// latest write, all others hold it.
fn check_all(db: &Bitcask, history: &History, damaged: &[Vec<u8>], corruption_ok: bool) {
    for (key, values) in history {
        let intact = !damaged.contains(key);
        check_key(db, key, values, intact, corruption_ok);
    }
}

/// The keys whose latest record overlaps `range` of `file`.
fn keys_in(
    latest: &BTreeMap<Vec<u8>, (PathBuf, u64, u64)>,
    file: &Path,
    range: std::ops::Range<u64>,
) -> Vec<Vec<u8>> {
    latest
        .iter()
        .filter(|(_, (f, offset, len))| {
            f == file && *offset < range.end && offset + len > range.start
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    let len = std::fs::metadata(path).unwrap().len();
    write_at(path, len, bytes);
}

fn open_corruption(dir: &Path, opts: Options) -> String {
    match Bitcask::open(dir, opts) {
        Err(Error::Corruption(msg)) => msg,
        Err(other) => panic!("expected corruption, got {other}"),
        Ok(_) => panic!("a damaged database opened"),
    }
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next() as u8 | 1).collect()
}

/// Garbage appended to the newest file after a clean close (the hint file
/// of that close is then stale): open cuts it into a quarantine file and
/// loses nothing. Zeros are cut without a quarantine file.
#[test]
fn garbage_after_the_last_record_of_the_newest_file_is_quarantined_and_cut() {
    let tmp = TempDir::new("garbage");
    let original = tmp.path().join("original");
    let history = build(&original);
    let mut rng = Rng::new(11);
    let newest = data_files(&original).pop().unwrap();
    let first_100 = std::fs::read(&newest).unwrap()[..100].to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("one byte", vec![0x5A]),
        ("17 random bytes", random_bytes(&mut rng, 17)),
        ("4 KiB random", random_bytes(&mut rng, 4096)),
        ("the file's first 100 bytes", first_100),
        ("4 KiB of zeros", vec![0; 4096]),
    ];
    for (what, garbage) in cases {
        let dir = tmp.path().join(what.replace(' ', "-"));
        common::copy_dir(&original, &dir);
        let newest = data_files(&dir).pop().unwrap();
        let len = std::fs::metadata(&newest).unwrap().len();
        append(&newest, &garbage);
        let db = Bitcask::open(&dir, options()).unwrap_or_else(|e| panic!("{what}: {e}"));
        let tail = db
            .recovery()
            .tail
            .clone()
            .unwrap_or_else(|| panic!("{what}: no tail cut"));
        assert_eq!(
            (tail.offset, tail.bytes_cut),
            (len, garbage.len() as u64),
            "{what}"
        );
        let zeros = garbage.iter().all(|&b| b == 0);
        assert_eq!(tail.quarantine_file.is_none(), zeros, "{what}");
        if let Some(q) = &tail.quarantine_file {
            assert!(dir.join(q).is_file(), "{what}");
            assert!(db.recovery().to_string().contains(q.as_str()));
        }
        check_all(&db, &history, &[], false);
        db.put(b"after", b"garbage").unwrap();
        db.close().unwrap();
        let db = Bitcask::open(&dir, options()).unwrap();
        assert!(db.recovery().tail.is_none(), "{what}: cut once, for good");
        assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"garbage"[..]));
        check_all(&db, &history, &[], false);
        db.close().unwrap();
    }
}

/// strict_recovery refuses what open would otherwise cut (anything but
/// zeros), and names the file, the offset and the way out.
#[test]
fn strict_recovery_refuses_a_tail_but_cuts_zeros() {
    let tmp = TempDir::new("strict");
    let history = build(tmp.path());
    let newest = data_files(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    let mut strict = options();
    strict.set_strict_recovery(true);
    append(&newest, &[0; 3000]);
    let db = Bitcask::open(tmp.path(), strict.clone()).unwrap();
    assert_eq!(db.recovery().tail.as_ref().unwrap().quarantine_file, None);
    db.close().unwrap();
    append(&newest, b"\x01garbage");
    let msg = open_corruption(tmp.path(), strict.clone());
    let name = newest.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        msg.contains(&name)
            && msg.contains(&format!("offset {len}"))
            && msg.contains("strict_recovery"),
        "{msg}"
    );
    assert_eq!(
        std::fs::metadata(&newest).unwrap().len(),
        len + 8,
        "nothing was cut"
    );
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    check_all(&db, &history, &[], false);
}

/// A flipped byte in a sealed file: with its hint file, only the get of
/// that record fails; without it (as after a crash before the hint was
/// written), open refuses, naming file, offset and repair; repair then
/// keeps every intact record, including those after the damage.
#[test]
fn a_flipped_byte_in_a_sealed_file_is_refused_at_open_and_repair_keeps_every_intact_record() {
    let tmp = TempDir::new("sealed-flip");
    let history = build(tmp.path());
    let latest = latest_records(tmp.path());
    let second = data_files(tmp.path())[1].clone();
    let len = std::fs::metadata(&second).unwrap().len();
    let at = len / 3;
    let mut byte = [0u8];
    OpenOptions::new()
        .read(true)
        .open(&second)
        .unwrap()
        .read_exact_at(&mut byte, at)
        .unwrap();
    write_at(&second, at, &[byte[0] ^ 0x20]);
    let damaged = keys_in(&latest, &second, at..at + 1);

    let db = Bitcask::open(tmp.path(), options()).unwrap();
    check_all(&db, &history, &damaged, true);
    for key in &damaged {
        assert!(matches!(db.get(key), Err(Error::Corruption(_))));
    }
    db.close().unwrap();

    let report = bitcask::verify(tmp.path()).unwrap();
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].at_open, AtOpen::FoundByGets);
    assert!(
        report.damaged[0].offset <= at && at < report.damaged[0].offset + report.damaged[0].len
    );
    assert!(
        !report.hint_problems.is_empty(),
        "the hint entry of that record disagrees with it"
    );

    std::fs::remove_file(second.with_extension("hint")).unwrap();
    let msg = open_corruption(tmp.path(), options());
    let name = second.file_name().unwrap().to_string_lossy().to_string();
    assert!(
        msg.contains(&name) && msg.contains("offset") && msg.contains("repair"),
        "{msg}"
    );
    assert_eq!(
        bitcask::verify(tmp.path()).unwrap().damaged[0].at_open,
        AtOpen::Refused
    );

    let repaired = bitcask::repair(tmp.path(), &RepairOptions::default()).unwrap();
    assert_eq!(repaired.damaged.len(), 1, "{repaired:?}");
    assert_eq!(repaired.files_rewritten, vec![name]);
    let q = repaired.damaged[0].quarantine_file.clone().unwrap();
    assert!(tmp.path().join(q).is_file());
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    assert!(db.recovery().changed_nothing(), "{}", db.recovery());
    check_all(&db, &history, &damaged, false);
    db.close().unwrap();
    assert!(bitcask::verify(tmp.path()).unwrap().is_clean());
}

/// The same damage in a sealed file cut short (its last record incomplete):
/// refused; repair cuts it to its last intact record.
#[test]
fn a_sealed_file_cut_short_is_refused_and_repaired() {
    let tmp = TempDir::new("sealed-short");
    let history = build(tmp.path());
    let latest = latest_records(tmp.path());
    let first = data_files(tmp.path())[0].clone();
    std::fs::remove_file(first.with_extension("hint")).unwrap();
    let len = std::fs::metadata(&first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&first)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let damaged = keys_in(&latest, &first, len - 5..len);
    assert!(open_corruption(tmp.path(), options()).contains("000000001.data"));
    bitcask::repair(tmp.path(), &RepairOptions::default()).unwrap();
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    check_all(&db, &history, &damaged, false);
}

/// Zero-filled space after a sealed file's last record (what a failed
/// fallocate leaves) is not damage: open cuts it, and merge works.
#[test]
fn zeros_after_a_sealed_files_last_record_are_cut_at_open() {
    let tmp = TempDir::new("sealed-zeros");
    let history = build(tmp.path());
    let second = data_files(tmp.path())[1].clone();
    std::fs::remove_file(second.with_extension("hint")).unwrap();
    let len = std::fs::metadata(&second).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&second)
        .unwrap()
        .set_len(len + 70_000)
        .unwrap();
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    assert_eq!(db.recovery().zero_bytes_cut, 70_000);
    assert!(db.recovery().tail.is_none());
    assert_eq!(std::fs::metadata(&second).unwrap().len(), len);
    check_all(&db, &history, &[], false);
    db.merge().unwrap();
    check_all(&db, &history, &[], false);
}

/// 4 KiB zeroed in the middle of the newest file, in the state a crash
/// leaves (no hint file of a clean close): open cuts from the first record
/// it spoils, keeps the rest in quarantine and says how many intact
/// records it held; repair with restore_quarantined brings them back.
#[test]
fn a_zeroed_sector_in_the_newest_file_is_cut_and_repair_restores_what_lay_after_it() {
    let tmp = TempDir::new("newest-sector");
    let mut history = build(tmp.path());
    // Fill the newest file past 12 KiB: a sector in its middle, records after it.
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    let mut i = 0;
    let newest_len = |dir: &Path| {
        let newest = data_files(dir).pop().unwrap();
        latest_records(dir)
            .values()
            .filter(|(f, _, _)| *f == newest)
            .map(|(_, o, l)| o + l)
            .max()
            .unwrap_or(0)
    };
    while i < 100 || (newest_len(tmp.path()) < 14 << 10 && i < 1000) {
        let key = format!("fill-{i:04}");
        db.put(key.as_bytes(), &value(i, 2)).unwrap();
        history
            .entry(key.into_bytes())
            .or_default()
            .push(Some(value(i, 2)));
        i += 1;
        if i % 20 == 0 {
            db.sync().unwrap();
        }
    }
    db.close().unwrap();
    let latest = latest_records(tmp.path());
    let newest = data_files(tmp.path()).pop().unwrap();
    std::fs::remove_file(newest.with_extension("hint")).unwrap();
    let len = std::fs::metadata(&newest).unwrap().len();
    assert!(len > 12 << 10, "the newest file needs room for the sector");
    let sector = 4096..8192;
    write_at(&newest, sector.start, &[0; 4096]);
    let damaged = keys_in(&latest, &newest, sector.clone());
    let after = latest
        .iter()
        .filter(|(_, (f, offset, _))| *f == newest && *offset >= sector.end)
        .count() as u64;

    let db = Bitcask::open(tmp.path(), options()).unwrap();
    let tail = db.recovery().tail.clone().expect("a tail was cut");
    assert!(
        tail.offset <= sector.start && tail.quarantine_file.is_some(),
        "{tail:?}"
    );
    assert!(
        tail.intact_records_after >= after,
        "{tail:?}: {after} live records lay after the sector"
    );
    // Whatever the cut took now reads as an earlier value or absent.
    let cut: Vec<_> = keys_in(&latest, &newest, tail.offset..len);
    check_all(&db, &history, &cut, false);
    db.close().unwrap();

    let repaired = bitcask::repair(
        tmp.path(),
        &RepairOptions {
            restore_quarantined: true,
        },
    )
    .unwrap();
    assert!(repaired.records_restored > 0, "{repaired:?}");
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    check_all(&db, &history, &damaged, false);
    db.close().unwrap();
    // Restoring again brings back nothing more: the restored records are later.
    let again = bitcask::repair(
        tmp.path(),
        &RepairOptions {
            restore_quarantined: true,
        },
    )
    .unwrap();
    assert_eq!(again.records_restored, 0, "{again:?}");
}

/// A flipped byte in the middle of the newest file after a clean close: its
/// hint file loads it, so only the get of that record fails.
#[test]
fn a_flipped_byte_in_the_newest_file_after_a_clean_close_is_found_by_its_get() {
    let tmp = TempDir::new("newest-clean");
    let history = build(tmp.path());
    let latest = latest_records(tmp.path());
    let newest = data_files(tmp.path()).pop().unwrap();
    let at = std::fs::metadata(&newest).unwrap().len() / 2;
    write_at(&newest, at, b"\xFF");
    let damaged = keys_in(&latest, &newest, at..at + 1);
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    assert!(db.recovery().changed_nothing());
    check_all(&db, &history, &damaged, true);
}

/// A merge that meets a damaged record quarantines its bytes, merges every
/// other record, frees the space, and reports it; the key whose value was
/// lost answers corruption (never an older value), also after a reopen,
/// until it is written again.
#[test]
fn a_merge_steps_over_a_damaged_record_and_the_key_keeps_answering_corruption() {
    let tmp = TempDir::new("merge-damage");
    let history = build(tmp.path());
    let latest = latest_records(tmp.path());
    let first = data_files(tmp.path())[0].clone();
    // 4 bytes of a live record's value, in the oldest file.
    let (key, (_, offset, len)) = latest
        .iter()
        .find(|(_, (f, _, _))| *f == first)
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    write_at(&first, offset + len - 6, b"\x00\x01\x02\x03");
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    let before = db.stats().unwrap();
    let msg = match db.merge() {
        Err(Error::Corruption(msg)) => msg,
        other => panic!("expected the merge to report damage, got {other:?}"),
    };
    assert!(
        msg.contains("000000001.data") && msg.contains("quarantine"),
        "{msg}"
    );
    let after = db.stats().unwrap();
    assert!(
        after.reclaimable_bytes < before.reclaimable_bytes,
        "{before:?} -> {after:?}"
    );
    assert!(!first.exists(), "the damaged input was merged away too");
    let lost = vec![key.clone()];
    check_all(&db, &history, &lost, true);
    match db.get(&key) {
        Err(Error::Corruption(why)) => {
            assert!(why.contains("lost") && why.contains("quarantine"), "{why}")
        }
        other => panic!("the damaged key answered {other:?}"),
    }
    let mut buf = [0u8; 1];
    assert!(matches!(
        db.get_into(&key, &mut buf),
        Err(Error::Corruption(_))
    ));
    // Every damaged record was dealt with: the next merge is clean.
    db.merge().unwrap();
    db.close().unwrap();
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    assert!(matches!(db.get(&key), Err(Error::Corruption(_))));
    check_all(&db, &history, &lost, true);
    db.put(&key, b"written again").unwrap();
    assert_eq!(
        db.get(&key).unwrap().as_deref(),
        Some(&b"written again"[..])
    );
    db.close().unwrap();
    let report = bitcask::verify(tmp.path()).unwrap();
    assert_eq!(
        report.lost_values, 1,
        "the marker is still in the files (dead)"
    );
    assert!(report.damaged.is_empty());
}

/// A hint file whose checksum holds but whose entries do not decode is
/// ignored, and its data file scanned, by a writable and by a read-only
/// open. The entries are checked as they are
/// applied: a bad one after good ones makes open load everything again
/// without that hint (here the 40th entry has an unknown kind; in a second
/// file, the 40th entry points past the end of the data file).
#[test]
fn a_hint_that_passes_its_checksum_but_does_not_decode_is_ignored() {
    let tmp = TempDir::new("hint-undecodable");
    let history = build(tmp.path());
    // Without the index a clean close saves, open reads the hint files.
    common::remove_keydir_file(tmp.path());
    // Walks to entry `n` of a hint file: (where it starts, where its
    // offset field starts).
    let entry_at = |bytes: &[u8], n: usize| {
        let mut at = 32;
        for _ in 0..n {
            let (key_len, width) = {
                let (mut v, mut i) = (0usize, 0);
                loop {
                    let b = bytes[at + 1 + i];
                    v |= ((b & 0x7f) as usize) << (7 * i);
                    i += 1;
                    if b & 0x80 == 0 {
                        break (v, i);
                    }
                }
            };
            at += 1 + width + 8 + key_len;
        }
        let width = bytes[at + 1..].iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        (at, at + 1 + width)
    };
    let reseal = |bytes: &mut Vec<u8>| {
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    };
    let first = data_files(tmp.path())[1].with_extension("hint");
    let mut bytes = std::fs::read(&first).unwrap();
    let (kind_at, _) = entry_at(&bytes, 40);
    bytes[kind_at] = 7;
    reseal(&mut bytes);
    std::fs::write(&first, &bytes).unwrap();
    let second = data_files(tmp.path())[2].with_extension("hint");
    let mut bytes = std::fs::read(&second).unwrap();
    let (_, offset_at) = entry_at(&bytes, 40);
    bytes[offset_at..offset_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    reseal(&mut bytes);
    std::fs::write(&second, &bytes).unwrap();
    // A read-only open does the same, and changes nothing.
    let mut read_only = options();
    read_only.set_read_only(true);
    let db = Bitcask::open(tmp.path(), read_only).unwrap();
    assert_eq!(db.recovery().hints_ignored, 2, "{}", db.recovery());
    check_all(&db, &history, &[], false);
    db.close().unwrap();
    assert_eq!(std::fs::read(&second).unwrap(), bytes);
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    assert_eq!(db.recovery().hints_ignored, 2, "{}", db.recovery());
    assert_eq!(db.recovery().files_scanned, 2);
    check_all(&db, &history, &[], false);
    db.close().unwrap();
    let report = bitcask::verify(tmp.path()).unwrap();
    assert!(
        report.hint_problems.is_empty(),
        "open wrote both hints again"
    );
}

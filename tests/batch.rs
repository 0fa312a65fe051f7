//! Write batches: visibility and persistence, last operation wins, reuse,
//! the size limit, sequence numbers across reopen, rollover, and what open
//! does with a batch that has no commit record. The tests of what reaches
//! the keydir run on both index types.

mod common;

use bitcask::{Bitcask, Error, IndexType, Options};
use common::{data_files, with_index, TempDir};

fn a_committed_batch_is_visible_and_survives_reopen(index_type: IndexType) {
    let tmp = TempDir::new("batch-basic");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    db.put(b"gone", b"x").unwrap();
    let mut b = db.batch();
    b.put(b"a", b"1").unwrap();
    b.put(b"b", b"").unwrap();
    b.delete(b"gone").unwrap();
    b.delete(b"never-existed").unwrap();
    assert_eq!(
        db.get(b"a").unwrap(),
        None,
        "nothing is visible before commit"
    );
    db.write(&mut b).unwrap();
    assert!(b.is_empty(), "commit empties the batch");
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(db.get(b"gone").unwrap(), None);
    let mut buf = [0u8; 4];
    assert_eq!(db.get_into(b"a", &mut buf).unwrap(), Some(1));
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    assert_eq!(db.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(db.get(b"b").unwrap().as_deref(), Some(&b""[..]));
    assert_eq!(db.get(b"gone").unwrap(), None);
    assert_eq!(db.key_count(), 2);
}

fn within_a_batch_the_last_operation_on_a_key_wins(index_type: IndexType) {
    let tmp = TempDir::new("batch-last");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    db.put(b"k", b"before").unwrap();
    let mut b = db.batch();
    b.put(b"k", b"one").unwrap();
    b.delete(b"k").unwrap(); // put then delete: deleted
    b.delete(b"j").unwrap();
    b.put(b"j", b"two").unwrap(); // delete then put: put
    b.put(b"n", b"x").unwrap();
    b.delete(b"n").unwrap(); // absent, put then delete: nothing
    assert_eq!(b.len(), 3);
    db.write(&mut b).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
    assert_eq!(db.get(b"j").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(db.get(b"n").unwrap(), None);
    drop(db);
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    assert_eq!(db.get(b"k").unwrap(), None);
    assert_eq!(db.get(b"j").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(db.key_count(), 1);
}

#[test]
fn a_batch_is_reusable_after_commit() {
    let tmp = TempDir::new("batch-reuse");
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    let mut b = db.batch();
    for round in 0..5u32 {
        for i in 0..10u32 {
            b.put(format!("k{i}").as_bytes(), format!("r{round}").as_bytes())
                .unwrap();
        }
        db.write(&mut b).unwrap();
        assert!(b.is_empty());
        assert_eq!(
            db.get(b"k3").unwrap().unwrap(),
            format!("r{round}").as_bytes()
        );
    }
    db.write(&mut b).unwrap(); // an empty batch commits as a no-op
    drop(db);
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    assert_eq!(db.get(b"k9").unwrap().as_deref(), Some(&b"r4"[..]));
}

#[test]
fn a_batch_that_outgrows_max_batch_bytes_is_refused_unchanged() {
    let tmp = TempDir::new("batch-max");
    let mut opts = Options::default();
    opts.set_max_batch_bytes(4096).unwrap();
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    let mut b = db.batch();
    b.put(b"a", &[1; 2000]).unwrap();
    b.put(b"b", &[2; 2000]).unwrap();
    let before = b.encoded_len();
    match b.put(b"c", &[3; 100]) {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("max_batch_bytes"), "{why}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!((b.len(), b.encoded_len()), (2, before));
    b.put(b"a", b"small").unwrap(); // replacing shrinks it
    b.put(b"c", &[3; 100]).unwrap();
    db.write(&mut b).unwrap();
    assert_eq!(db.get(b"c").unwrap().unwrap().len(), 100);
}

/// A batch counts exactly the bytes it takes in a data file: each record's
/// header (11 bytes here: checksums, type, two varints), key and value,
/// and the 23-byte commit record. One that reaches max_batch_bytes exactly
/// is accepted and takes exactly that on disk; one byte more, by a put or
/// by a delete, is refused and leaves the batch as it was.
#[test]
fn max_batch_bytes_counts_exactly_to_the_byte() {
    let tmp = TempDir::new("batch-boundary");
    let mut opts = Options::default();
    opts.set_max_batch_bytes(4096).unwrap();
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    let mut b = db.batch();
    assert_eq!(b.encoded_len(), 23, "the commit record alone");
    // 12 bytes of header with a two-byte value length, key "a", 2000 bytes.
    b.put(b"a", &[1; 2000]).unwrap();
    assert_eq!(b.encoded_len(), 23 + 2013);
    // 4096 - 2036 = 2060 bytes left: key "b" and a 2047-byte value.
    match b.put(b"b", &[2; 2048]) {
        Err(Error::InvalidArgument(why)) => {
            assert!(
                why.contains("4097") && why.contains("max_batch_bytes"),
                "{why}"
            )
        }
        other => panic!("one byte over: {other:?}"),
    }
    assert_eq!((b.len(), b.encoded_len()), (1, 2036), "unchanged");
    b.put(b"b", &[2; 2047]).unwrap();
    assert_eq!(b.encoded_len(), 4096, "exactly at the limit");
    // A delete past the limit is refused too, the batch unchanged.
    match b.delete(b"c") {
        Err(Error::InvalidArgument(why)) => assert!(why.contains("max_batch_bytes"), "{why}"),
        other => panic!("a delete over the limit: {other:?}"),
    }
    assert_eq!((b.len(), b.encoded_len()), (2, 4096));
    // Replacing an operation by a smaller one makes room for a delete.
    b.put(b"b", &[2; 2000]).unwrap();
    b.delete(b"c").unwrap();
    b.put(b"c", b"").unwrap();
    b.delete(b"c").unwrap();
    let counted = b.encoded_len();
    db.put(b"c", b"exists").unwrap(); // so that the delete writes its record
    db.close().unwrap();
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    let file = data_files(&tmp.db()).pop().unwrap();
    let before = std::fs::metadata(&file).unwrap().len();
    let mut b2 = db.batch();
    b2.put(b"a", &[1; 2000]).unwrap();
    b2.put(b"b", &[2; 2000]).unwrap();
    b2.delete(b"c").unwrap();
    assert_eq!(b2.encoded_len(), counted);
    db.write(&mut b2).unwrap();
    db.close().unwrap();
    let after = std::fs::metadata(&file).unwrap().len();
    assert_eq!(after - before, counted, "the bytes the batch took on disk");
}

/// Committing an empty batch writes nothing: no record, no sync, no batch
/// number used up.
#[test]
fn an_empty_batch_commits_as_a_no_op_and_writes_nothing() {
    let tmp = TempDir::new("batch-empty");
    let mut opts = Options::default();
    opts.set_sync_writes(true);
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    db.put(b"k", b"v").unwrap();
    let mut b = db.batch();
    b.put(b"x", b"1").unwrap();
    db.write(&mut b).unwrap();
    let (stats, syncs) = (db.stats().unwrap(), db.sync_count());
    db.write(&mut b).unwrap(); // emptied by the commit
    let mut fresh = db.batch();
    db.write(&mut fresh).unwrap();
    let mut only_absent = db.batch();
    only_absent.delete(b"never-there").unwrap();
    db.write(&mut only_absent).unwrap(); // deletes of absent keys write nothing
    assert_eq!(db.sync_count(), syncs, "an empty commit synced");
    assert_eq!(db.stats().unwrap(), stats);
    b.put(b"y", b"2").unwrap();
    db.write(&mut b).unwrap();
    db.close().unwrap();
    // Exactly two batches on disk, numbered 1 and 2, and nothing else but
    // the put: one commit record each.
    let file = data_files(&tmp.db()).pop().unwrap();
    let kinds: Vec<u8> = records(&file).into_iter().map(|(_, ty)| ty).collect();
    let commits = kinds.iter().filter(|&&ty| ty == 5).count();
    assert_eq!((kinds.len(), commits), (5, 2), "{kinds:?}");
}

#[test]
fn batches_never_straddle_data_files() {
    let tmp = TempDir::new("batch-roll");
    let mut opts = Options::default();
    opts.set_data_file_size(4096).unwrap();
    let db = Bitcask::open(tmp.db(), opts.clone()).unwrap();
    db.put(b"first", &[0; 3000]).unwrap();
    let mut b = db.batch();
    for i in 0..20u32 {
        b.put(format!("k{i:02}").as_bytes(), &[i as u8; 500])
            .unwrap();
    }
    db.write(&mut b).unwrap(); // 10 KB: a file of its own
    let mut small = db.batch();
    small.put(b"s", b"x").unwrap();
    db.write(&mut small).unwrap();
    assert_eq!(data_files(&tmp.db()).len(), 3);
    drop(db);
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    for i in 0..20u32 {
        assert_eq!(
            db.get(format!("k{i:02}").as_bytes()).unwrap().unwrap(),
            vec![i as u8; 500]
        );
    }
    assert_eq!(db.get(b"s").unwrap().as_deref(), Some(&b"x"[..]));
}

/// Offsets of the records in a data file: (offset, type byte).
fn records(path: &std::path::Path) -> Vec<(usize, u8)> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut at = 16;
    while at < bytes.len() {
        let ty = bytes[at + 4];
        let (klen, n1) = varint(&bytes[at + 5..]);
        let (vlen, n2) = varint(&bytes[at + 5 + n1..]);
        out.push((at, ty));
        at += 4 + 1 + n1 + n2 + 4 + klen + vlen;
    }
    out
}

fn varint(b: &[u8]) -> (usize, usize) {
    let (mut v, mut i) = (0usize, 0);
    loop {
        v |= ((b[i] & 0x7f) as usize) << (7 * i);
        i += 1;
        if b[i - 1] & 0x80 == 0 {
            return (v, i);
        }
    }
}

fn a_batch_cut_anywhere_before_its_commit_record_ends_is_ignored_and_cut_off(
    index_type: IndexType,
) {
    let tmp = TempDir::new("batch-cut");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    db.put(b"keep", b"v").unwrap();
    let mut b = db.batch();
    for i in 0..3u32 {
        b.put(format!("b{i}").as_bytes(), b"batched").unwrap();
    }
    b.delete(b"keep").unwrap();
    db.write(&mut b).unwrap();
    drop(db);
    let file = data_files(&tmp.db()).pop().unwrap();
    let full = std::fs::read(&file).unwrap();
    let recs = records(&file);
    assert_eq!(
        recs.last().unwrap().1,
        5,
        "the batch ends with its commit record"
    );
    let batch_start = recs[1].0;
    let copy = TempDir::new("batch-cut-copy");
    for cut in batch_start..full.len() {
        let _ = std::fs::remove_dir_all(copy.db());
        std::fs::create_dir_all(copy.db()).unwrap();
        std::fs::write(copy.db().join("000000001.data"), &full[..cut]).unwrap();
        let db = Bitcask::open(copy.db(), with_index(index_type)).unwrap();
        assert_eq!(
            db.get(b"keep").unwrap().as_deref(),
            Some(&b"v"[..]),
            "cut {cut}"
        );
        assert_eq!(db.get(b"b0").unwrap(), None, "cut {cut}");
        assert_eq!(db.key_count(), 1, "cut {cut}");
        // Everything of the dead batch is cut off, so a new write follows
        // the last good record.
        db.put(b"after", b"a").unwrap();
        drop(db);
        let len = std::fs::metadata(copy.db().join("000000001.data"))
            .unwrap()
            .len();
        assert!(len < full.len() as u64, "cut {cut}");
        let db = Bitcask::open(copy.db(), with_index(index_type)).unwrap();
        assert_eq!(db.get(b"after").unwrap().as_deref(), Some(&b"a"[..]));
        assert_eq!(db.key_count(), 2, "cut {cut}");
    }
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    assert_eq!(db.get(b"keep").unwrap(), None);
    assert_eq!(db.key_count(), 3);
}

#[test]
fn sequence_numbers_keep_growing_across_reopen() {
    let tmp = TempDir::new("batch-seq");
    let seqs = |dir: &std::path::Path| -> Vec<u64> {
        let mut out = Vec::new();
        for f in data_files(dir) {
            let bytes = std::fs::read(&f).unwrap();
            for (at, ty) in records(&f) {
                if ty == 5 {
                    // header: crc 4, type 1, key_len 1, value_len 1, body_crc 4
                    let key = &bytes[at + 11..at + 19];
                    out.push(u64::from_le_bytes(key.try_into().unwrap()));
                }
            }
        }
        out
    };
    for _ in 0..3 {
        let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
        for _ in 0..2 {
            let mut b = db.batch();
            b.put(b"k", b"v").unwrap();
            db.write(&mut b).unwrap();
            // An empty commit uses no number.
            db.write(&mut b).unwrap();
        }
        db.close().unwrap();
    }
    let s = seqs(&tmp.db());
    assert_eq!(s, vec![1, 2, 3, 4, 5, 6]);
}

fn an_orphan_batch_followed_by_a_committed_one_is_dropped_alone(index_type: IndexType) {
    // A dead batch's records right before a committed batch: the commit
    // record's count claims only its own.
    let tmp = TempDir::new("batch-orphan");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    let mut b = db.batch();
    b.put(b"dead1", b"x").unwrap();
    b.put(b"dead2", b"x").unwrap();
    db.write(&mut b).unwrap();
    b.put(b"live", b"y").unwrap();
    db.write(&mut b).unwrap();
    drop(db);
    let file = data_files(&tmp.db()).pop().unwrap();
    let bytes = std::fs::read(&file).unwrap();
    let recs = records(&file);
    // Remove the first batch's commit record.
    let (commit, next) = (recs[2].0, recs[3].0);
    assert_eq!(recs[2].1, 5);
    let spliced = [&bytes[..commit], &bytes[next..]].concat();
    std::fs::write(&file, spliced).unwrap();
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    assert_eq!(db.get(b"dead1").unwrap(), None);
    assert_eq!(db.get(b"dead2").unwrap(), None);
    assert_eq!(db.get(b"live").unwrap().as_deref(), Some(&b"y"[..]));
}

test_each_index_type!(
    a_committed_batch_is_visible_and_survives_reopen,
    within_a_batch_the_last_operation_on_a_key_wins,
    a_batch_cut_anywhere_before_its_commit_record_ends_is_ignored_and_cut_off,
    an_orphan_batch_followed_by_a_committed_one_is_dropped_alone,
);

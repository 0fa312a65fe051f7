//! Ordered iteration and fold over a snapshot: byte order with 0x00 and
//! 0xFF, prefix, reverse, seek in both directions, rewind, isolation from
//! later writes, fold early stop and reentrant calls; each on both index
//! types. (Merge does not exist yet, so isolation against merge is not
//! tested here.)

mod common;

use std::ops::ControlFlow;

use bitcask::{Bitcask, IndexType, Iter};
use common::{with_index, TempDir};

fn keys_of(mut it: Iter) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(k) = it.key() {
        out.push(k.to_vec());
        it.next();
    }
    out
}

fn tricky_keys() -> Vec<Vec<u8>> {
    vec![
        vec![0x00],
        vec![0x00, 0x00],
        vec![0x00, 0xFF],
        b"a".to_vec(),
        b"a\x00".to_vec(),
        b"ab".to_vec(),
        b"a\xff".to_vec(),
        vec![0x7F],
        vec![0x80],
        vec![0xFF],
        vec![0xFF, 0x00],
        vec![0xFF, 0xFF],
    ]
}

fn filled(tmp: &TempDir, index_type: IndexType) -> Bitcask {
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    // Inserted out of order, with values naming their key.
    let mut keys = tricky_keys();
    keys.reverse();
    for k in &keys {
        db.put(k, &[b"v:".as_slice(), k].concat()).unwrap();
    }
    db
}

fn keys_come_in_unsigned_byte_order_with_0x00_and_0xff(index_type: IndexType) {
    let tmp = TempDir::new("iter-order");
    let db = filled(&tmp, index_type);
    assert_eq!(keys_of(db.iter(b"", false).unwrap()), tricky_keys());
    let mut rev = tricky_keys();
    rev.reverse();
    assert_eq!(keys_of(db.iter(b"", true).unwrap()), rev);
    let mut it = db.iter(b"", false).unwrap();
    while it.valid() {
        let key = it.key().unwrap().to_vec();
        assert_eq!(it.value().unwrap(), [b"v:".as_slice(), &key].concat());
        it.next();
    }
    assert!(it.value().is_err());
    it.next(); // a move on an exhausted iterator does nothing
    assert!(!it.valid());
}

fn prefix_limits_the_keys_in_both_directions(index_type: IndexType) {
    let tmp = TempDir::new("iter-prefix");
    let db = filled(&tmp, index_type);
    let a = vec![
        b"a".to_vec(),
        b"a\x00".to_vec(),
        b"ab".to_vec(),
        b"a\xff".to_vec(),
    ];
    assert_eq!(keys_of(db.iter(b"a", false).unwrap()), a);
    let mut ra = a.clone();
    ra.reverse();
    assert_eq!(keys_of(db.iter(b"a", true).unwrap()), ra);
    assert_eq!(
        keys_of(db.iter(&[0xFF], false).unwrap()),
        vec![vec![0xFF], vec![0xFF, 0x00], vec![0xFF, 0xFF]]
    );
    assert_eq!(
        keys_of(db.iter(&[0x00], false).unwrap()),
        vec![vec![0x00], vec![0x00, 0x00], vec![0x00, 0xFF]]
    );
    assert!(keys_of(db.iter(b"zzz", false).unwrap()).is_empty());
    assert!(keys_of(db.iter(b"zzz", true).unwrap()).is_empty());
}

fn seek_before_between_and_after_in_both_directions_and_rewind(index_type: IndexType) {
    let tmp = TempDir::new("iter-seek");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
    for k in [&b"b"[..], b"d", b"f"] {
        db.put(k, k).unwrap();
    }
    let at = |it: &Iter| it.key().map(<[u8]>::to_vec);
    let mut fwd = db.iter(b"", false).unwrap();
    fwd.seek(b"a"); // before
    assert_eq!(at(&fwd), Some(b"b".to_vec()));
    fwd.seek(b"c"); // between
    assert_eq!(at(&fwd), Some(b"d".to_vec()));
    fwd.seek(b"d"); // exact
    assert_eq!(at(&fwd), Some(b"d".to_vec()));
    fwd.next();
    assert_eq!(at(&fwd), Some(b"f".to_vec()));
    fwd.seek(b"g"); // after
    assert_eq!(at(&fwd), None);
    fwd.rewind();
    assert_eq!(at(&fwd), Some(b"b".to_vec()));

    let mut rev = db.iter(b"", true).unwrap();
    rev.seek(b"a"); // before every key: nothing is <= it
    assert_eq!(at(&rev), None);
    rev.seek(b"e"); // between
    assert_eq!(at(&rev), Some(b"d".to_vec()));
    rev.next();
    assert_eq!(at(&rev), Some(b"b".to_vec()));
    rev.seek(b"f"); // exact
    assert_eq!(at(&rev), Some(b"f".to_vec()));
    rev.seek(b"z"); // after every key: the largest
    assert_eq!(at(&rev), Some(b"f".to_vec()));
    rev.rewind();
    assert_eq!(at(&rev), Some(b"f".to_vec()));
    rev.seek(b"d\x00");
    assert_eq!(at(&rev), Some(b"d".to_vec()));
}

fn an_iterator_sees_the_database_as_of_its_creation(index_type: IndexType) {
    let tmp = TempDir::new("iter-snapshot");
    let mut opts = with_index(index_type);
    opts.set_data_file_size(4096).unwrap(); // later writes roll over to new files
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    for i in 0..50u32 {
        db.put(format!("k{i:02}").as_bytes(), format!("old{i}").as_bytes())
            .unwrap();
    }
    let mut it = db.iter(b"k", false).unwrap();
    for i in 0..50u32 {
        let key = format!("k{i:02}");
        if i % 2 == 0 {
            db.delete(key.as_bytes()).unwrap();
        } else {
            db.put(key.as_bytes(), &[b'n'; 300]).unwrap();
        }
    }
    db.put(b"k99", b"new key").unwrap();
    let mut n = 0;
    while it.valid() {
        let (k, v) = it.current().unwrap();
        let i: u32 = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        assert_eq!(v, format!("old{i}").as_bytes());
        n += 1;
        it.next();
    }
    assert_eq!(n, 50);
    assert!(db.data_file_count() > 1);
    assert_eq!(db.key_count(), 26);
}

fn fold_walks_in_order_stops_early_and_may_call_the_database(index_type: IndexType) {
    let tmp = TempDir::new("iter-fold");
    let db = filled(&tmp, index_type);
    let mut seen = Vec::new();
    db.fold(b"", |k, v| {
        assert_eq!(v, [b"v:".as_slice(), k].concat());
        // Reentrant calls: a get (which reuses the thread's read buffer)
        // and a put, while the fold's own value stays intact.
        assert_eq!(db.get(k).unwrap().unwrap(), v);
        db.put(&[b"zz-".as_slice(), k].concat(), b"written in fold")
            .unwrap();
        assert_eq!(v, [b"v:".as_slice(), k].concat());
        seen.push(k.to_vec());
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(seen, tricky_keys()); // puts made during the fold are not in it
    let mut count = 0;
    db.fold(b"a", |_, _| {
        count += 1;
        if count == 2 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .unwrap();
    assert_eq!(count, 2);
}

test_each_index_type!(
    keys_come_in_unsigned_byte_order_with_0x00_and_0xff,
    prefix_limits_the_keys_in_both_directions,
    seek_before_between_and_after_in_both_directions_and_rewind,
    an_iterator_sees_the_database_as_of_its_creation,
    fold_walks_in_order_stops_early_and_may_call_the_database,
);

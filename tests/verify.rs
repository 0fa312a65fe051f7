//! `bitcask::verify` beside a handle that has the database open for
//! writing: it takes no lock then (it would fail with BITCASK_LOCKED), and
//! what the writer does meanwhile (appends, batches, rollovers, merges that
//! delete files) is never reported as damage. How each file is judged in
//! either mode, with the same bytes (the controls), is in the unit tests of
//! src/log/verify.rs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bitcask::{Batch, Bitcask, Options};
use common::TempDir;

fn options() -> Options {
    let mut o = Options::default();
    o.set_data_file_size(16 << 10).unwrap();
    o.set_auto_merge_ratio(0.0).unwrap();
    o
}

/// A test that arms `verify:listed` pauses every verify of this process,
/// so this binary's tests run one at a time.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 500 puts, then 10 batches of 3 puts: 540 records in all.
fn fill(db: &Bitcask) {
    for i in 0..500u32 {
        db.put(format!("key{i:04}").as_bytes(), &[b'v'; 60])
            .unwrap();
    }
    for b in 0..10u32 {
        let mut batch: Batch = db.batch();
        for i in 0..3u32 {
            batch
                .put(format!("batch{b}-{i}").as_bytes(), b"batched")
                .unwrap();
        }
        db.write(&mut batch).unwrap();
    }
}

#[test]
fn verify_runs_beside_a_handle_that_has_the_database_open_and_alone_once_it_is_closed() {
    let _serial = serial();
    let tmp = TempDir::new("verify-beside");
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    fill(&db);
    assert!(db.stats().unwrap().data_file_count > 2);
    let beside = bitcask::verify(tmp.path()).unwrap();
    assert!(beside.beside_writer);
    assert!(beside.is_clean(), "{beside:#?}");
    assert_eq!(beside.records, 540, "every record the writer appended");
    let newest = beside.data_files;
    for note in &beside.notes {
        assert!(
            note.what.contains("not read") && note.file == format!("{newest:09}.data"),
            "only the newest file's unread end is noted: {note:?}"
        );
    }
    // While verify runs alone, it holds the lock; beside a writer it took
    // none: the writer still writes, and closes.
    db.put(b"after", b"verify").unwrap();
    db.close().unwrap();
    let alone = bitcask::verify(tmp.path()).unwrap();
    assert!(!alone.beside_writer);
    assert!(alone.is_clean() && alone.notes.is_empty(), "{alone:#?}");
    assert_eq!(alone.records, 541);
}

/// A writer thread puts, writes batches, rolls over and merges (deleting
/// files) without pause while verify runs beside it again and again: no
/// report may show damage.
#[test]
fn verify_beside_a_busy_writer_never_reports_damage() {
    let _serial = serial();
    let tmp = TempDir::new("verify-busy");
    let db = Arc::new(Bitcask::open(tmp.path(), options()).unwrap());
    fill(&db);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (Arc::clone(&db), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut round = 0u32;
            while !stop.load(Ordering::Relaxed) {
                for i in 0..200u32 {
                    let key = format!("key{:04}", (i * 7 + round) % 500);
                    db.put(key.as_bytes(), &[b'a' + (round % 26) as u8; 80])
                        .unwrap();
                }
                let mut batch = db.batch();
                for i in 0..5u32 {
                    batch.put(format!("batch{i}").as_bytes(), b"again").unwrap();
                }
                db.write(&mut batch).unwrap();
                if round % 3 == 2 {
                    db.merge().unwrap();
                }
                round += 1;
            }
            round
        })
    };
    let mut verified = 0;
    let mut beside = 0;
    while verified < 30 {
        let report = bitcask::verify(tmp.path()).unwrap();
        assert!(report.is_clean(), "{report:#?}");
        beside += u64::from(report.beside_writer);
        verified += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let rounds = writer.join().unwrap();
    assert_eq!(beside, 30, "every verify ran beside the writer");
    assert!(rounds > 0);
    let db = Arc::into_inner(db).unwrap();
    db.close().unwrap();
    let alone = bitcask::verify(tmp.path()).unwrap();
    assert!(alone.is_clean() && alone.notes.is_empty(), "{alone:#?}");
}

/// The writer's merge deletes files verify listed before verify opens
/// them (those of the first fill, all overwritten): each is skipped with a
/// note, and nothing is damage.
#[cfg(feature = "failpoints")]
#[test]
fn a_file_a_merge_deletes_before_verify_opens_it_is_skipped_with_a_note() {
    use bitcask::failpoints::{arm, Action};
    let _serial = serial();
    let tmp = TempDir::new("verify-deleted");
    let db = Bitcask::open(tmp.path(), options()).unwrap();
    fill(&db);
    fill(&db);
    let listed = db.stats().unwrap().data_file_count;
    let point = arm("verify:listed", Action::Pause);
    let dir = tmp.path().to_path_buf();
    let verify = std::thread::spawn(move || bitcask::verify(&dir).unwrap());
    point.wait_for_hits(1);
    db.merge().unwrap();
    point.release();
    let report = verify.join().unwrap();
    drop(point);
    assert!(report.beside_writer && report.is_clean(), "{report:#?}");
    let deleted = report
        .notes
        .iter()
        .filter(|n| n.what.contains("deleted before it could be read"))
        .count() as u64;
    assert!(deleted > 0, "{report:#?}");
    assert_eq!(deleted + report.data_files, listed, "{report:#?}");
    db.close().unwrap();
}

//! Synced puts from many threads share fdatasyncs (group commit), and each
//! is durable and visible once its put returns: checked by reading it right
//! away, and after reopen. The rate is measured by `make bench`, not here.

mod common;

use std::sync::Arc;

use bitcask::{Bitcask, Options};
use common::TempDir;

#[test]
fn synced_puts_from_many_threads_are_all_there_and_share_syncs() {
    let tmp = TempDir::new("group-commit");
    let mut opts = Options::default();
    opts.set_sync_writes(true);
    opts.set_data_file_size(64 << 10).unwrap(); // groups cross rollovers
    let db = Arc::new(Bitcask::open(tmp.db(), opts.clone()).unwrap());
    const THREADS: u64 = 8;
    const PUTS: u64 = 300;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..PUTS {
                    let key = format!("t{t}-{i:04}");
                    let value = format!("{key}-{}", "v".repeat((i % 300) as usize));
                    db.put(key.as_bytes(), value.as_bytes()).unwrap();
                    // Visible to this thread as soon as the put returns.
                    assert_eq!(db.get(key.as_bytes()).unwrap().unwrap(), value.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let syncs = db.sync_count();
    eprintln!("{} synced puts, {syncs} fdatasyncs", THREADS * PUTS);
    // While one group's fdatasync runs, the other seven threads queue up:
    // without group commit this would be exactly one sync per put.
    assert!(syncs < THREADS * PUTS, "no put shared a sync: {syncs}");
    assert!(db.data_file_count() > 3);
    drop(db);
    let db = Bitcask::open(tmp.db(), opts).unwrap();
    assert_eq!(db.key_count() as u64, THREADS * PUTS);
    for t in 0..THREADS {
        for i in 0..PUTS {
            let key = format!("t{t}-{i:04}");
            let value = format!("{key}-{}", "v".repeat((i % 300) as usize));
            assert_eq!(db.get(key.as_bytes()).unwrap().unwrap(), value.as_bytes());
        }
    }
}

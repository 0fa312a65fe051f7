//! Synced puts from many threads (group commit) are each durable and visible
//! once their put returns: checked by reading each right away, and after
//! reopen. That they share fdatasyncs is checked exactly in
//! tests/failpoints.rs; the rate is measured by `make bench`, not here.

mod common;

use std::sync::Arc;

use bitcask::{Bitcask, Options};
use common::TempDir;

#[test]
fn synced_puts_from_many_threads_are_each_there_once_they_return() {
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
    // At most one sync per put. How many puts share one depends on how the
    // threads meet, so it is not asserted here: tests/failpoints.rs holds a
    // sync while puts queue up behind it, and counts exactly.
    assert!(syncs <= THREADS * PUTS, "more syncs than puts: {syncs}");
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

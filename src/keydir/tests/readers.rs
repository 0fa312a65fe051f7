//! Readers of the index while a writer changes it.

use super::*;

/// Readers never see a torn or foreign position while one writer puts,
/// overwrites and removes (each key's positions carry its number). Each
/// reader counts what it saw: it reads until the writer is done and it has
/// made at least `MIN_GETS` gets, the writer starts only once every reader
/// has, and a last pass finds exactly the keys the writer left.
#[test]
fn readers_see_whole_positions_during_writes() {
    const READERS: u32 = 3;
    const MIN_GETS: u64 = 20_000;
    const ROUNDS: u32 = 20;
    for (name, index) in indexes() {
        let index: std::sync::Arc<dyn Index> = index.into();
        let keys = 2000u32;
        // Every key is there before the readers start: a reader that ran
        // all its gets before the writer's first put (both threads are
        // scheduled as the machine pleases) still finds keys, rather than
        // failing `found > 0` by chance.
        for k in 0..keys {
            let p = RecordPos {
                file_id: k,
                offset: k,
                size: 1 << 31,
            };
            index.put(format!("key{k}").as_bytes(), p);
        }
        let done = std::sync::atomic::AtomicBool::new(false);
        let start = std::sync::Barrier::new(READERS as usize + 1);
        std::thread::scope(|s| {
            let readers: Vec<_> = (0..READERS)
                .map(|t| {
                    let (index, done, start) = (&index, &done, &start);
                    s.spawn(move || {
                        let check = |k: u32| -> bool {
                            match index.get(format!("key{k}").as_bytes()) {
                                Some(p) => {
                                    assert_eq!(p.file_id, k, "{name}");
                                    assert_eq!(p.size, (p.offset ^ k) | 1 << 31, "{name}");
                                    true
                                }
                                None => false,
                            }
                        };
                        let (mut gets, mut found) = (0u64, 0u64);
                        let mut i = t;
                        start.wait();
                        while !done.load(std::sync::atomic::Ordering::SeqCst) || gets < MIN_GETS {
                            found += u64::from(check(i % keys));
                            gets += 1;
                            i = i.wrapping_add(7);
                        }
                        let at_end = (0..keys).filter(|&k| check(k)).count();
                        (gets, found, at_end)
                    })
                })
                .collect();
            start.wait();
            for round in 0..ROUNDS {
                for k in 0..keys {
                    let key = format!("key{k}");
                    if (k + round) % 3 == 0 {
                        index.remove(key.as_bytes());
                    } else {
                        let offset = round * keys + k;
                        let p = RecordPos {
                            file_id: k,
                            offset,
                            size: (offset ^ k) | 1 << 31,
                        };
                        index.put(key.as_bytes(), p);
                    }
                }
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            let left = (0..keys).filter(|k| (k + ROUNDS - 1) % 3 != 0).count();
            for reader in readers {
                let (gets, found, at_end) = reader.join().unwrap();
                assert!(gets >= MIN_GETS, "{name}: {gets} gets");
                assert!(found > 0, "{name}: {gets} gets found nothing");
                assert_eq!(at_end, left, "{name}: the last pass");
            }
        });
    }
}

//! Throughput numbers for the README, not a pass/fail test (ignored; no
//! timing is asserted). Run in release:
//! `cargo test --release --test bench -- --ignored --nocapture`

mod common;

use std::time::Instant;

use bitcask::{Bitcask, Options};
use common::TempDir;

#[test]
#[ignore]
fn iteration_over_1m_keys() {
    let tmp = TempDir::new("bench-iter");
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    let n = 1_000_000u32;
    let mut b = db.batch();
    for i in 0..n {
        b.put(format!("key{i:010}").as_bytes(), &[7u8; 100])
            .unwrap();
        if b.len() == 10_000 {
            db.write(&mut b).unwrap();
        }
    }
    db.write(&mut b).unwrap();
    let start = Instant::now();
    let mut it = db.iter(b"", false).unwrap();
    let made = start.elapsed();
    let mut count = 0u64;
    while let Some(k) = it.key() {
        count += k.len() as u64;
        it.next();
    }
    let keys_only = start.elapsed();
    assert_eq!(count, u64::from(n) * 13);
    let start = Instant::now();
    let mut it = db.iter(b"", false).unwrap();
    let mut bytes = 0u64;
    while it.valid() {
        bytes += it.value().unwrap().len() as u64;
        it.next();
    }
    let with_values = start.elapsed();
    assert_eq!(bytes, u64::from(n) * 100);
    let rate = |d: std::time::Duration| f64::from(n) / d.as_secs_f64();
    println!(
        "iteration over {n} keys (13-byte keys, 100-byte values): snapshot {:.0} ms; \
         keys only {:.2} M keys/s ({:.0} ms incl. snapshot); keys+values {:.2} M keys/s ({:.0} ms)",
        made.as_secs_f64() * 1e3,
        rate(keys_only) / 1e6,
        keys_only.as_secs_f64() * 1e3,
        rate(with_values) / 1e6,
        with_values.as_secs_f64() * 1e3
    );
}

#[test]
#[ignore]
fn batch_commit_throughput() {
    for sync in [false, true] {
        for size in [1u32, 100, 10_000] {
            let tmp = TempDir::new("bench-batch");
            let mut opts = Options::default();
            opts.set_sync_writes(sync);
            let db = Bitcask::open(tmp.db(), opts).unwrap();
            let total = if sync { 20_000 } else { 200_000 }.max(size);
            let mut b = db.batch();
            let start = Instant::now();
            let mut i = 0u32;
            while i < total {
                for _ in 0..size {
                    b.put(format!("key{i:010}").as_bytes(), &[7u8; 100])
                        .unwrap();
                    i += 1;
                }
                db.write(&mut b).unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            println!(
                "batches of {size:>5} (sync_writes {sync}): {:>10.0} ops/s, {:>8.0} commits/s ({total} ops)",
                f64::from(total) / secs,
                f64::from(total / size) / secs
            );
        }
    }
}

//! Throughput numbers for the README, not a pass/fail test (ignored; no
//! timing is asserted). Run in release:
//! `cargo test --release --test bench -- --ignored --nocapture`

mod common;

use std::time::Instant;

use bitcask::{Bitcask, IndexType, Options};
use common::TempDir;

fn with_index(index_type: IndexType) -> Options {
    let mut opts = Options::default();
    opts.set_index_type(index_type);
    opts
}

#[test]
#[ignore]
fn iteration_over_1m_keys() {
    for index_type in [IndexType::Ordered, IndexType::Hash] {
        iteration_over_1m_keys_with(index_type);
    }
}

fn iteration_over_1m_keys_with(index_type: IndexType) {
    let tmp = TempDir::new("bench-iter");
    let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
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
        "{index_type:?} index: iteration over {n} keys (13-byte keys, 100-byte values): snapshot {:.0} ms; \
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

/// Point operations through the engine on each index type: 1M puts of
/// 16-byte keys with 100-byte values (sync_writes off), then 1M gets of
/// present keys and 1M of absent ones (between present ones in key order),
/// in a random order; twice, with the hash index's rate relative to the
/// ordered one's from the same round.
#[test]
#[ignore]
fn point_operations_by_index_type() {
    let n = 1_000_000u64;
    let key = |i: u64| format!("key{i:013}").into_bytes();
    // A random order (xorshift), the same for every round.
    let mut order: Vec<u64> = (0..n).collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..order.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    for round in 1..=2 {
        let mut ordered = [0.0f64; 3];
        for index_type in [IndexType::Ordered, IndexType::Hash] {
            let tmp = TempDir::new("bench-point");
            let db = Bitcask::open(tmp.db(), with_index(index_type)).unwrap();
            let rate = |start: Instant| n as f64 / start.elapsed().as_secs_f64() / 1e3;
            let start = Instant::now();
            for &i in &order {
                db.put(&key(2 * i), &[7u8; 100]).unwrap();
            }
            let put = rate(start);
            let mut buf = [0u8; 128];
            let start = Instant::now();
            for &i in order.iter().rev() {
                assert_eq!(db.get_into(&key(2 * i), &mut buf).unwrap(), Some(100));
            }
            let hit = rate(start);
            let start = Instant::now();
            for &i in &order {
                assert_eq!(db.get_into(&key(2 * i + 1), &mut buf).unwrap(), None);
            }
            let miss = rate(start);
            if index_type == IndexType::Ordered {
                ordered = [put, hit, miss];
            }
            println!(
                "round {round}: {index_type:?}: put {put:.0} k/s ({:.2}x), get hit {hit:.0} k/s ({:.2}x), \
                 get miss {miss:.0} k/s ({:.2}x)",
                put / ordered[0],
                hit / ordered[1],
                miss / ordered[2]
            );
        }
    }
}

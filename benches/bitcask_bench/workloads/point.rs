//! The point workloads: puts (random, overwriting, synced from one and
//! many threads, in batches), gets of present and missing keys, deletes.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use bitcask::Bitcask;

use super::{
    check_count, missing_key, present_key, remove_if_present, show, Bench, Measured, KEY_LEN,
};
use crate::stalls::{thread_cpu_time, SlowPuts};
use crate::Res;

/// Puts every key once, in random order, into an empty database; then one sync.
pub(crate) fn fill_random(b: &mut Bench) -> Res<Measured> {
    let db = b.open_fresh("db", b.opts.clone())?;
    let order = b.shuffled(b.keys);
    let (elapsed, slow) = timed_puts(&db, b, &order, 0)?;
    check_count(&db, b.keys)?;
    b.db = Some(db);
    let note = format!("random order, empty db; one final sync; {slow}");
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(b.payload(b.keys)),
        note,
    ))
}

/// Puts every key again with a new value, in another random order; then one sync.
pub(crate) fn overwrite(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let (elapsed, slow) = timed_puts(db, b, &order, 1)?;
    check_count(db, b.keys)?;
    let note = format!(
        "every key once, random order; one final sync; data files: {}; {slow}",
        db.data_file_count(),
    );
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(b.payload(b.keys)),
        note,
    ))
}

/// Puts the keys of `order`, each with its value of pass `pass`, then
/// syncs once. Returns the time of the whole and the longest single puts
/// (see [`SlowPuts`]).
fn timed_puts(db: &Bitcask, b: &Bench, order: &[u64], pass: u64) -> Res<(Duration, SlowPuts)> {
    let start = Instant::now();
    let mut slow = SlowPuts::new(db.data_file_count());
    for &i in order {
        let t = Instant::now();
        db.put(&present_key(i), b.values.get(i, pass))?;
        slow.add(t.elapsed(), || db.data_file_count());
    }
    slow.finish(db.data_file_count());
    db.sync()?;
    Ok((start.elapsed(), slow))
}

/// Gets every key once, in random order, copying the value into one reused buffer.
pub(crate) fn read_random(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let mut buf = vec![0u8; b.values.size];
    let mut bytes = 0u64;
    let start = Instant::now();
    let start_cpu = thread_cpu_time();
    for &i in &order {
        let key = present_key(i);
        match db.get_into(&key, &mut buf)? {
            Some(len) => bytes += (KEY_LEN + len) as u64,
            None => return Err(format!("key {} is missing", show(&key)).into()),
        }
    }
    let elapsed = start.elapsed();
    black_box(&buf);
    let cpu = thread_cpu_time().saturating_sub(start_cpu);
    b.read_rate = Some((
        b.keys as f64 / elapsed.as_secs_f64().max(1e-9),
        b.keys as f64 / cpu.as_secs_f64().max(1e-9),
    ));
    let note = "get_into, value copied out; every key once";
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(black_box(bytes)),
        note,
    ))
}

/// readrandom from two threads at once, each getting every key once in an
/// order of its own: ops/s counts both threads' gets. The note compares it
/// with readrandom's rate (one thread), on the clock and per CPU second
/// (each thread's gets divided by its CPU time, added up): on a machine
/// whose cores are busy with other work, the clock ratio is what the
/// threads were given, the CPU ratio what the engine allows.
pub(crate) fn read_random_2_threads(b: &mut Bench) -> Res<Measured> {
    let orders = [b.shuffled(b.keys), b.shuffled(b.keys)];
    let db = b.db()?;
    let size = b.values.size;
    let start = Instant::now();
    let results: Vec<Result<(u64, Duration), String>> = thread::scope(|s| {
        let workers: Vec<_> = orders
            .iter()
            .map(|order| {
                s.spawn(move || {
                    let mut buf = vec![0u8; size];
                    let mut bytes = 0u64;
                    let cpu = thread_cpu_time();
                    for &i in order {
                        let key = present_key(i);
                        match db.get_into(&key, &mut buf) {
                            Ok(Some(len)) => bytes += (KEY_LEN + len) as u64,
                            other => return Err(format!("get of {}: {other:?}", show(&key))),
                        }
                    }
                    Ok((bytes, thread_cpu_time().saturating_sub(cpu)))
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("reader panicked".into())))
            .collect()
    });
    let elapsed = start.elapsed();
    let mut bytes = 0;
    let mut per_cpu_second = 0.0;
    for r in results {
        let (n, cpu) = r?;
        bytes += n;
        per_cpu_second += b.keys as f64 / cpu.as_secs_f64().max(1e-9);
    }
    let ops = 2 * b.keys;
    let rate = ops as f64 / elapsed.as_secs_f64().max(1e-9);
    let note = match b.read_rate {
        Some((one, one_per_cpu)) => format!(
            "2 threads, each every key once; {:.2}x readrandom's rate (1 thread); per CPU \
             second of the readers: {:.2}x",
            rate / one,
            per_cpu_second / one_per_cpu
        ),
        None => "2 threads, each every key once".to_string(),
    };
    Ok(Measured::timed(ops, elapsed, Some(black_box(bytes)), note))
}

/// Gets keys that are not there (odd numbers, spread among the stored ones).
pub(crate) fn read_missing(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let mut buf = vec![0u8; b.values.size];
    let start = Instant::now();
    for &i in &order {
        let key = missing_key(i);
        if db.get_into(&key, &mut buf)?.is_some() {
            return Err(format!("key {} was never written but is found", show(&key)).into());
        }
    }
    let elapsed = start.elapsed();
    let note = "absent keys interleaved with the stored ones";
    Ok(Measured::timed(b.keys, elapsed, None, note))
}

/// Deletes every key, in random order; then one sync. Removes the database.
pub(crate) fn delete_random(b: &mut Bench) -> Res<Measured> {
    let order = b.shuffled(b.keys);
    let db = b.db()?;
    let start = Instant::now();
    for &i in &order {
        db.delete(&present_key(i))?;
    }
    db.sync()?;
    let elapsed = start.elapsed();
    check_count(db, 0)?;
    b.close_db()?;
    remove_if_present(&b.dir.join("db"))?;
    let note = "every key once, random order; one final sync";
    Ok(Measured::timed(b.keys, elapsed, None, note))
}

pub(crate) fn fill_sync_1(b: &mut Bench) -> Res<Measured> {
    fill_sync(b, 1)
}

pub(crate) fn fill_sync_n(b: &mut Bench) -> Res<Measured> {
    fill_sync(b, b.sync_threads)
}

/// `--sync-keys` puts with sync_writes on (each one durable before it
/// returns) into an empty database, from `threads` threads sharing one
/// handle, each putting its share of the keys in random order.
pub(crate) fn fill_sync(b: &mut Bench, threads: usize) -> Res<Measured> {
    let mut opts = b.opts.clone();
    opts.set_sync_writes(true);
    let name = format!("sync-{threads}");
    let db = b.open_fresh(&name, opts)?;
    let order = b.shuffled(b.sync_keys);
    let share = order.len().div_ceil(threads);
    let (db_ref, values) = (&db, &b.values);
    let start = Instant::now();
    let results: Vec<bitcask::Result<()>> = thread::scope(|s| {
        let workers: Vec<_> = order
            .chunks(share)
            .map(|chunk| {
                s.spawn(move || {
                    for &i in chunk {
                        db_ref.put(&present_key(i), values.get(i, 2))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    let elapsed = start.elapsed();
    results.into_iter().collect::<bitcask::Result<()>>()?;
    check_count(&db, b.sync_keys)?;
    let note = format!(
        "sync_writes on; {threads} thread(s) on one handle; {} fdatasyncs",
        db.sync_count()
    );
    db.close()?;
    remove_if_present(&b.dir.join(&name))?;
    Ok(Measured::timed(
        b.sync_keys,
        elapsed,
        Some(b.payload(b.sync_keys)),
        note,
    ))
}

/// How many bytes of keys and values "fillsync every 1 MiB" puts
/// between two syncs.
const SYNC_INTERVAL: u64 = 1 << 20;

/// `--keys` puts into an empty database with sync_writes off and a
/// `sync()` after every [`SYNC_INTERVAL`] bytes of keys and values: a
/// writer that makes its own durability points, between fillrandom (one
/// sync) and fillsync (one per put).
pub(crate) fn fill_sync_every_mib(b: &mut Bench) -> Res<Measured> {
    let db = b.open_fresh("sync-every", b.opts.clone())?;
    let order = b.shuffled(b.keys);
    let record = (KEY_LEN + b.values.size) as u64;
    let per_sync = SYNC_INTERVAL.div_ceil(record);
    let start = Instant::now();
    for (n, &i) in order.iter().enumerate() {
        db.put(&present_key(i), b.values.get(i, 0))?;
        if (n as u64 + 1) % per_sync == 0 {
            db.sync()?;
        }
    }
    db.sync()?;
    let elapsed = start.elapsed();
    check_count(&db, b.keys)?;
    let note = format!(
        "sync_writes off; sync() every {per_sync} puts; {} fdatasyncs",
        db.sync_count()
    );
    db.close()?;
    remove_if_present(&b.dir.join("sync-every"))?;
    Ok(Measured::timed(
        b.keys,
        elapsed,
        Some(b.payload(b.keys)),
        note,
    ))
}

pub(crate) fn batch_of_1(b: &mut Bench) -> Res<Measured> {
    batch_commits(b, 1)
}

pub(crate) fn batch_of_100(b: &mut Bench) -> Res<Measured> {
    batch_commits(b, 100)
}

pub(crate) fn batch_of_10000(b: &mut Bench) -> Res<Measured> {
    batch_commits(b, 10_000)
}

/// 200,000 puts (or the table's key count, if fewer) into an empty database
/// (sync_writes off), in write batches of `size`, in random key order. The
/// note adds the rate per CPU second of the committing thread, which another
/// process taking the core does not lower.
pub(crate) fn batch_commits(b: &mut Bench, size: u64) -> Res<Measured> {
    let name = format!("batch-{size}");
    let db = b.open_fresh(&name, b.opts.clone())?;
    let total = b.keys.min(200_000);
    let order = b.shuffled(total);
    let mut batch = db.batch();
    let start = Instant::now();
    let start_cpu = thread_cpu_time();
    for chunk in order.chunks(size as usize) {
        for &i in chunk {
            batch.put(&present_key(i), b.values.get(i, 3))?;
        }
        db.write(&mut batch)?;
    }
    let elapsed = start.elapsed();
    let cpu = thread_cpu_time().saturating_sub(start_cpu);
    check_count(&db, total)?;
    db.close()?;
    remove_if_present(&b.dir.join(&name))?;
    let note = format!(
        "{:.0} commits/s; {:.0} ops per CPU second of the committing thread",
        total.div_ceil(size) as f64 / elapsed.as_secs_f64(),
        total as f64 / cpu.as_secs_f64().max(1e-9)
    );
    Ok(Measured::timed(
        total,
        elapsed,
        Some(b.payload(total)),
        note,
    ))
}

//! The iterator workloads: walks of keys, of keys and values, and iterators
//! created while a writer puts.

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use super::{check_walk, present_key, Bench, Measured, PROBE_PAUSE};
use crate::stalls::Stall;
use crate::Res;

/// Walks every key in order, without reading values.
pub(crate) fn iterate_keys(b: &mut Bench) -> Res<Measured> {
    let db = b.db()?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut it = db.iter(b"", false)?;
    while let Some(k) = it.key() {
        count += 1;
        bytes += k.len() as u64;
        it.next();
    }
    let elapsed = start.elapsed();
    check_walk(count, b.keys)?;
    let note = "iter(\"\", false); key snapshot included";
    Ok(Measured::timed(
        count,
        elapsed,
        Some(black_box(bytes)),
        note,
    ))
}

/// Walks every key in order and reads each value (one pread per value).
pub(crate) fn iterate_keys_values(b: &mut Bench) -> Res<Measured> {
    let db = b.db()?;
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    let mut it = db.iter(b"", false)?;
    while it.valid() {
        let (k, v) = it.current()?;
        count += 1;
        bytes += (k.len() + v.len()) as u64;
        it.next();
    }
    let elapsed = start.elapsed();
    check_walk(count, b.keys)?;
    let note = "values in key order, i.e. random file positions";
    Ok(Measured::timed(
        count,
        elapsed,
        Some(black_box(bytes)),
        note,
    ))
}

/// Iterators over every key, created one after the other by one thread,
/// while a second thread puts (each key again with the value it has) and a
/// third gets, both paced at one operation per [`PROBE_PAUSE`] so that
/// they probe for stalls rather than compete for the cores: the time to
/// create an iterator (its snapshot of every key), and the longest put and
/// get meanwhile. Then the same paced puts and gets for as long again
/// without iterators: the longest operations the machine gives anyway (a
/// thread that loses its core to another process waits for it). ops/s
/// counts iterators created.
pub(crate) fn iterate_while_writing(b: &mut Bench) -> Res<Measured> {
    use std::sync::atomic::{AtomicBool, Ordering};
    const ITERATORS: usize = 8;
    let db = b.db()?;
    let (keys, values) = (b.keys, &b.values);
    // (puts, longest put, gets, longest get) while `stop` is clear.
    let probe = |stop: &AtomicBool| {
        thread::scope(|s| {
            let writer = s.spawn(|| -> Result<(u64, Stall), String> {
                let (mut ops, mut longest) = (0u64, Stall::default());
                while !stop.load(Ordering::Relaxed) {
                    let n = (ops * 7919) % keys;
                    let t = Stall::start();
                    let put = db.put(&present_key(n), values.get(n, 1));
                    put.map_err(|e| e.to_string())?;
                    longest = longest.max(t.end());
                    ops += 1;
                    thread::sleep(PROBE_PAUSE);
                }
                Ok((ops, longest))
            });
            let reader = s.spawn(|| -> Result<(u64, Stall), String> {
                let (mut ops, mut longest) = (0u64, Stall::default());
                let mut buf = vec![0u8; values.size];
                while !stop.load(Ordering::Relaxed) {
                    let n = (ops * 104_729) % keys;
                    let t = Stall::start();
                    let got = db.get_into(&present_key(n), &mut buf);
                    longest = longest.max(t.end());
                    if !matches!(got, Ok(Some(_))) {
                        return Err(format!("get of stored key {n}: {got:?}"));
                    }
                    ops += 1;
                    thread::sleep(PROBE_PAUSE);
                }
                Ok((ops, longest))
            });
            let w = writer.join().map_err(|_| "writer panicked")??;
            let r = reader.join().map_err(|_| "reader panicked")??;
            Ok::<_, String>((w, r))
        })
    };
    let stop = AtomicBool::new(false);
    let mut made = Vec::new();
    let ((puts, gets), started) = thread::scope(|s| -> Res<_> {
        let probes = s.spawn(|| probe(&stop));
        let started = Instant::now();
        for _ in 0..ITERATORS {
            let t = Instant::now();
            let it = db.iter(b"", false);
            made.push(t.elapsed());
            let it = it?;
            if it.len() as u64 != keys {
                stop.store(true, Ordering::Relaxed);
                return Err(format!("an iterator holds {} keys, not {keys}", it.len()).into());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let elapsed = started.elapsed();
        let probed = probes.join().map_err(|_| "probe panicked")??;
        Ok((probed, elapsed))
    })?;
    // The same probes, as long again, without iterators.
    let stop = AtomicBool::new(false);
    let (calm_puts, calm_gets) = thread::scope(|s| -> Res<_> {
        let probes = s.spawn(|| probe(&stop));
        thread::sleep(started);
        stop.store(true, Ordering::Relaxed);
        Ok(probes.join().map_err(|_| "probe panicked")??)
    })?;
    made.sort();
    let total: Duration = made.iter().sum();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let note = format!(
        "iterator over every key made in best {:.1} ms, median {:.1} ms; meanwhile {} puts, \
         longest {}, {} gets, longest {}; without iterators: longest put {}, longest get {}",
        ms(made[0]),
        ms(made[made.len() / 2]),
        puts.0,
        puts.1,
        gets.0,
        gets.1,
        calm_puts.1,
        calm_gets.1,
    );
    Ok(Measured::timed(ITERATORS as u64, total, None, note))
}

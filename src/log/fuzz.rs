//! Decoder fuzzing on stable Rust: valid data files and hint files, built
//! from a seed, are mutated (bits flipped, bytes overwritten, ranges zeroed,
//! cut, grown, duplicated, moved) and fed to the record header parser, the
//! scanner, open's loader (`recovery::load_file`, one input in 32) and the
//! hint reader. Each must end without a panic and without a hang, and
//! never hand out a wrong value:
//!
//! - every record the scanner returns is exactly the bytes at its offset
//!   (its encoding of kind, key and value is them), and follows the one
//!   before it; every record of the original file that lies wholly before
//!   the first mutated byte is returned, as it was;
//! - a header the parser accepts has a checksum that holds over its bytes;
//! - every key and position the loader applies is a record that checks;
//!   a file it refuses is refused as corruption, nothing else;
//! - every hint entry lies inside the hint.
//!
//! `cargo test --lib log::fuzz` runs 10,000 inputs (mutated files); `BITCASK_FUZZ_INPUTS=N`
//! runs N (the README names the long run), `BITCASK_FUZZ_SEED=S` repeats a
//! seed. A watchdog fails the run if no input finishes for 60 s.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::format::{
    self, encode_batch_commit, encode_record, parse_record_header, ParsedHeader, RecordKind,
    FILE_HEADER_LEN, MAX_RECORD_HEADER_LEN,
};
use super::hint::{Hint, HintBuilder, HintKind};
use super::recovery;
use super::replay::Apply;
use super::scanner::{ScanEntry, Scanner, Source};
use super::RecordPos;
use crate::error::Error;

/// xorshift64*: a failing input is repeated from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Below `large` one time in `one_in`, else below `small`.
    fn size(&mut self, one_in: u64, large: u64, small: u64) -> usize {
        let bound = if self.below(one_in) == 0 {
            large
        } else {
            small
        };
        self.below(bound) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// A file in memory, for the scanner.
struct Bytes<'a>(&'a [u8]);

impl Source for Bytes<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        let start = (offset as usize).min(self.0.len());
        Ok(&self.0[start..start.saturating_add(len).min(self.0.len())])
    }
}

/// A valid data file: the file header, then puts, deletes and batches of
/// short and long keys and values. Returns it with the (offset, length) of
/// each record.
fn valid_data_file(rng: &mut Rng) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut bytes = format::encode_file_header().to_vec();
    let mut records = Vec::new();
    let count = 1 + rng.below(12);
    let mut seq = 1 + rng.below(1000);
    fn push(
        bytes: &mut Vec<u8>,
        records: &mut Vec<(usize, usize)>,
        kind: RecordKind,
        key: &[u8],
        value: &[u8],
    ) {
        let start = bytes.len();
        encode_record(kind, key, value, bytes);
        records.push((start, bytes.len() - start));
    }
    for _ in 0..count {
        let key_len = 1 + rng.size(8, 300, 24);
        let key = rng.bytes(key_len);
        let value_len = rng.size(8, 3000, 100);
        match rng.below(6) {
            0 => push(&mut bytes, &mut records, RecordKind::Delete, &key, b""),
            1 => {
                let n = 1 + rng.below(3) as u32;
                for _ in 0..n {
                    let key_len = 1 + rng.below(16) as usize;
                    let key = rng.bytes(key_len);
                    if rng.below(3) == 0 {
                        push(&mut bytes, &mut records, RecordKind::BatchDelete, &key, b"");
                    } else {
                        let value_len = rng.below(60) as usize;
                        let value = rng.bytes(value_len);
                        push(&mut bytes, &mut records, RecordKind::BatchPut, &key, &value);
                    }
                }
                let start = bytes.len();
                encode_batch_commit(seq, n, &mut bytes);
                records.push((start, bytes.len() - start));
                seq += 1;
            }
            _ => {
                let value = rng.bytes(value_len);
                push(&mut bytes, &mut records, RecordKind::Put, &key, &value);
            }
        }
    }
    (bytes, records)
}

/// Mutates `bytes` one to four times; returns the first offset whose byte
/// may differ from the original (the length, if none does).
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) -> usize {
    let mut first = bytes.len();
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        let at = rng.below(len as u64 + 1) as usize;
        let span = (1 + rng.size(4, 600, 8)).min(len - at);
        match rng.below(9) {
            0 if at < len => bytes[at] ^= 1 << rng.below(8),
            1 if at < len => bytes[at] = rng.next() as u8,
            2 => bytes[at..at + span].fill(0),
            3 => {
                let noise = rng.bytes(span);
                bytes[at..at + span].copy_from_slice(&noise);
            }
            4 => bytes.truncate(at),
            5 => {
                let extra = rng.below(5000) as usize;
                let fill = if rng.below(2) == 0 {
                    vec![0; extra]
                } else {
                    rng.bytes(extra)
                };
                bytes.extend_from_slice(&fill);
                first = first.min(len);
            }
            6 => {
                // A copy of a range of the file elsewhere (a record twice,
                // a header where a value was).
                let from = rng.below(len as u64 + 1) as usize;
                let chunk = bytes[from..(from + span).min(len)].to_vec();
                let end = (at + chunk.len()).min(len);
                bytes[at..end].copy_from_slice(&chunk[..end - at]);
            }
            7 => {
                let insert = rng.bytes(span.max(1));
                bytes.splice(at..at, insert);
            }
            _ => {
                bytes.drain(at..at + span);
            }
        }
        first = first.min(at);
    }
    first
}

/// Scans `bytes` and checks what the scanner returns (see the module doc).
fn check_scan(bytes: &[u8], original: &[(usize, usize)], first_mutated: usize) -> usize {
    let mut scanner = Scanner::new(Bytes(bytes), FILE_HEADER_LEN);
    let mut expected_offset = FILE_HEADER_LEN;
    let mut returned = Vec::new();
    // Each record takes at least 11 bytes, so a scan takes fewer steps.
    let max_steps = bytes.len() / 11 + 2;
    let mut end = None;
    for _ in 0..max_steps {
        match scanner.next_entry().unwrap() {
            ScanEntry::Record {
                offset,
                len,
                kind,
                key,
                value,
            } => {
                assert_eq!(offset, expected_offset, "records out of order");
                let mut again = Vec::new();
                encode_record(kind, key, value, &mut again);
                let at = offset as usize;
                assert_eq!(
                    &bytes[at..at + len as usize],
                    &again[..],
                    "the record at {offset} is not the bytes there"
                );
                returned.push((at, len as usize));
                expected_offset = offset + len;
            }
            other => {
                end = Some(format!("{other:?}"));
                break;
            }
        }
    }
    let end = end.expect("the scan did not end: a hang");
    // The end repeats.
    let repeat = match scanner.next_entry().unwrap() {
        ScanEntry::Record { .. } => "a record".to_string(),
        other => format!("{other:?}"),
    };
    assert_eq!(
        repeat, end,
        "a second call after the end gave another answer"
    );
    let intact: Vec<&(usize, usize)> = original
        .iter()
        .filter(|(at, len)| at + len <= first_mutated)
        .collect();
    assert!(returned.len() >= intact.len(), "intact records lost");
    for (got, want) in returned.iter().zip(intact) {
        assert_eq!(got, want, "an intact record read differently");
    }
    returned.len()
}

/// Parses headers at a few offsets of `bytes` and checks those accepted.
fn check_headers(rng: &mut Rng, bytes: &[u8]) -> usize {
    let mut parsed = 0;
    for _ in 0..4 {
        let at = rng.below(bytes.len() as u64 + 1) as usize;
        let slice = &bytes[at..(at + MAX_RECORD_HEADER_LEN).min(bytes.len())];
        parsed += 1;
        if let ParsedHeader::Valid(h) = parse_record_header(slice) {
            assert!(h.header_len <= slice.len() && h.header_len <= MAX_RECORD_HEADER_LEN);
            let stored = u32::from_le_bytes(slice[..4].try_into().unwrap());
            assert_eq!(crc32fast::hash(&slice[4..h.header_len]), stored);
            assert_eq!(slice[4], h.type_byte);
        }
    }
    parsed
}

/// What open's loader applied: (delete, key, position).
#[derive(Default)]
struct Recorded(Vec<(bool, Vec<u8>, RecordPos)>);

impl Apply for Recorded {
    fn put(&mut self, key: &[u8], pos: RecordPos) {
        self.0.push((false, key.to_vec(), pos));
    }

    fn delete(&mut self, key: &[u8], pos: RecordPos) {
        self.0.push((true, key.to_vec(), pos));
    }
}

/// Loads `bytes` as data file 1 of `dir` the way open does, and checks
/// every change it applies against the bytes.
fn check_load(rng: &mut Rng, dir: &Path, bytes: &[u8]) {
    let path = dir.join(super::filename::data_file_name(1));
    std::fs::write(&path, bytes).unwrap();
    let _ = std::fs::remove_file(dir.join(super::filename::hint_file_name(1)));
    let newest = rng.below(2) == 0;
    let mut sink = Recorded::default();
    let mode = recovery::LoadMode::whole(newest, rng.below(2) == 0, false);
    match recovery::load_file(dir, 1, mode, &mut sink) {
        // There is no hint file to reject.
        Ok(recovery::Loading::HintRejected(_)) => panic!("a hint rejected where there is none"),
        Ok(recovery::Loading::Loaded(loaded)) => {
            // A newest file whose header never got written gets one.
            assert!(loaded.end as usize <= bytes.len().max(FILE_HEADER_LEN as usize));
            for (delete, key, pos) in &sink.0 {
                let at = pos.offset as usize;
                let record = &bytes[at..at + pos.size as usize];
                let ParsedHeader::Valid(h) = parse_record_header(record) else {
                    panic!("applied a change at {at} whose header does not parse");
                };
                let kind = RecordKind::from_byte(h.type_byte).unwrap();
                let body = &record[h.header_len..];
                let mut again = Vec::new();
                encode_record(
                    kind,
                    &body[..h.key_len as usize],
                    &body[h.key_len as usize..],
                    &mut again,
                );
                assert_eq!(
                    record,
                    &again[..],
                    "applied a change at {at} that does not check"
                );
                assert_eq!(&body[..h.key_len as usize], &key[..]);
                assert_eq!(
                    *delete,
                    matches!(kind, RecordKind::Delete | RecordKind::BatchDelete)
                );
            }
        }
        Err(Error::Corruption(_)) => {}
        Err(e) => panic!("open's loader failed with {e} rather than corruption"),
    }
}

/// A valid hint file for a data file of `len` bytes.
fn valid_hint(rng: &mut Rng, id: u32, len: u64) -> Vec<u8> {
    let mut builder = HintBuilder::new(id);
    for _ in 0..rng.below(20) {
        let key_len = 1 + rng.size(8, 200, 20);
        let key = rng.bytes(key_len);
        let pos = RecordPos {
            file_id: id,
            offset: rng.next() as u32,
            size: rng.next() as u32,
        };
        let kind = if rng.below(4) == 0 {
            HintKind::Delete
        } else {
            HintKind::Put
        };
        builder.push(kind, &key, pos);
    }
    builder.finish(len, rng.next())
}

/// Reads a mutated hint (its checksum recomputed half the time, so that
/// the entries themselves are decoded) and checks it.
fn check_hint(rng: &mut Rng) {
    let (id, len) = (rng.next() as u32, rng.below(1 << 40));
    let mut bytes = valid_hint(rng, id, len);
    mutate(rng, &mut bytes);
    if rng.below(2) == 0 && bytes.len() >= 4 {
        let body = bytes.len() - 4;
        let crc = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    }
    let total = bytes.len();
    let Some(hint) = Hint::parse(bytes, id, len) else {
        return;
    };
    // Each entry takes at least its type, the key length's varint (longer
    // if not minimal, which decodes the same), offset, size and key.
    let mut consumed = 32 + 4;
    hint.for_each(|_, key, _, _| {
        assert!(!key.is_empty() && key.len() <= format::MAX_KEY_LEN);
        consumed += 1 + varint_width(key.len()) + 8 + key.len();
        assert!(consumed <= total, "a hint entry beyond the end");
    });
    let _ = hint.max_entries();
    let _ = hint.max_batch_seq();
}

fn varint_width(mut v: usize) -> usize {
    let mut width = 1;
    while v >= 0x80 {
        v >>= 7;
        width += 1;
    }
    width
}

/// Counts of what one fuzz run fed the decoders.
#[derive(Debug, Default)]
struct Fed {
    data_files: u64,
    headers: u64,
    loads: u64,
    hints: u64,
    records_returned: u64,
}

impl Fed {
    /// Mutated files fed to the decoders (each data file also to a few
    /// header parses, one in 32 also to open's loader).
    fn inputs(&self) -> u64 {
        self.data_files + self.hints
    }
}

/// The loader's scratch directory, removed when dropped (a failing input
/// panics through it too).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch_dir() -> Scratch {
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let dir = base.join(format!("bitcask-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

/// Runs about `inputs` inputs from `seed`; sends the number done after
/// each data file.
fn fuzz(seed: u64, inputs: u64, progress: &mpsc::Sender<u64>) -> Fed {
    let mut rng = Rng(seed | 1);
    let dir = scratch_dir();
    let mut fed = Fed::default();
    while fed.inputs() < inputs {
        let (original, records) = valid_data_file(&mut rng);
        let mut bytes = original.clone();
        let first = if rng.below(16) == 0 {
            bytes.len() // the valid file itself, now and then
        } else {
            mutate(&mut rng, &mut bytes)
        };
        // Mutations may leave the header short: the scanner starts after it.
        if bytes.len() >= FILE_HEADER_LEN as usize {
            fed.records_returned += check_scan(&bytes, &records, first) as u64;
        }
        fed.data_files += 1;
        fed.headers += check_headers(&mut rng, &bytes) as u64;
        if rng.below(32) == 0 {
            check_load(&mut rng, &dir.0, &bytes);
            fed.loads += 1;
        }
        check_hint(&mut rng);
        fed.hints += 1;
        let _ = progress.send(fed.inputs());
    }
    fed
}

#[test]
fn mutated_files_never_panic_hang_or_yield_a_wrong_value() {
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    let inputs = env("BITCASK_FUZZ_INPUTS").unwrap_or(10_000);
    let seed = env("BITCASK_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    eprintln!("decoder fuzz: seed {seed} (BITCASK_FUZZ_SEED={seed} repeats it), {inputs} inputs");
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || fuzz(seed, inputs, &tx));
    // The watchdog: a decoder that loops forever stops the progress.
    let mut done = 0;
    loop {
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(n) => done = n,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("no input finished for 60 s after {done} inputs (seed {seed}): a hang")
            }
        }
    }
    let fed = match worker.join() {
        Ok(fed) => fed,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    eprintln!(
        "decoder fuzz: {} inputs ({} data files scanned, {} hint files read; also {} headers \
         parsed, {} data files loaded as open does; {} records returned, each checked) in \
         {:.1} s, seed {seed}",
        fed.inputs(),
        fed.data_files,
        fed.hints,
        fed.headers,
        fed.loads,
        fed.records_returned,
        started.elapsed().as_secs_f64()
    );
}

//! A write that fails midway leaves nothing behind. RLIMIT_FSIZE makes the
//! kernel refuse to grow the data file past a limit (EFBIG), which is what a
//! full disk does to an append: part of the record written, then an error.
//! The child checks the status and that the file was cut back; the parent
//! reopens and checks that every acknowledged record is there.

mod common;

use std::io::{BufRead, BufReader};

use bitcask::{Bitcask, Error, Options};
use common::{child_role, data_files, spawn_child, TempDir};

const TEST_NAME: &str = "a_write_that_fails_midway_is_cut_back_and_writing_continues";
const LIMIT: u64 = 64 << 10;

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn run_child(dir: &std::path::Path) {
    // SAFETY: plain libc calls with valid arguments; SIGXFSZ would otherwise
    // kill the process instead of the write failing with EFBIG.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        let limit = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0);
    }
    println!();
    let db = Bitcask::open(dir, Options::default()).unwrap();
    let value = vec![0x42; 1000];
    let mut acked = 0;
    let err = loop {
        match db.put(&key(acked), &value) {
            Ok(()) => acked += 1,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(libc::EFBIG)),
        "{err}"
    );
    assert!(err.to_string().contains("000000001.data"), "{err}");
    let file = &data_files(dir)[0];
    let len = std::fs::metadata(file).unwrap().len();
    assert!(
        len < LIMIT && LIMIT - len < 1100,
        "the file was not cut back: {len} bytes"
    );
    // A record that fits in the space left goes in right after the last good one.
    db.put(b"small", b"fits").unwrap();
    assert_eq!(db.get(b"small").unwrap().as_deref(), Some(&b"fits"[..]));
    for i in 0..acked {
        assert_eq!(db.get(&key(i)).unwrap().as_deref(), Some(&value[..]));
    }
    db.close().unwrap();
    println!("ACKED {acked}");
}

#[test]
fn a_write_that_fails_midway_is_cut_back_and_writing_continues() {
    if let Some(dir) = child_role("fsize") {
        run_child(&dir);
        return;
    }
    let tmp = TempDir::new("wfail");
    let mut child = spawn_child(TEST_NAME, "fsize", &tmp.db(), &[]);
    // Read to the end, so that the child never writes into a closed pipe.
    let output: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .collect();
    let acked: u32 = output
        .iter()
        .find_map(|l| l.strip_prefix("ACKED ").and_then(|n| n.parse().ok()))
        .expect("the child did not finish its checks");
    assert!(child.wait().unwrap().success());
    assert!(acked > 50);
    let db = Bitcask::open(tmp.db(), Options::default()).unwrap();
    assert_eq!(db.key_count(), acked as usize + 1);
    assert_eq!(db.get(b"small").unwrap().as_deref(), Some(&b"fits"[..]));
    db.put(b"after", b"reopen").unwrap();
}

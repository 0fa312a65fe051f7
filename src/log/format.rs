//! The on-disk layout of a data file, in one place: the file header, the
//! record header, record types and the varint codec. `docs/format.md`
//! describes the same layout in prose; change both together and bump
//! [`FORMAT_VERSION`] whenever a byte moves.
//!
//! A data file is a [`FILE_HEADER_LEN`]-byte file header followed by records:
//!
//! ```text
//! file header: magic "BCSKDATA" (8) | format version u32 LE | CRC-32 of the 12 bytes before u32 LE
//! record:      header_crc u32 LE | type u8 | key_len varint | value_len varint | body_crc u32 LE | key | value
//! ```
//!
//! `header_crc` covers the header bytes after it (type, both lengths and
//! `body_crc`); `body_crc` covers key and value. Checking the header on its
//! own is what lets the reader trust the lengths before it reads the body,
//! and so tell a record cut short by a crash (torn tail) from a damaged one.

use crate::error::{Error, Result};

/// Version of the layout described here; open refuses any other.
pub const FORMAT_VERSION: u32 = 1;

/// First eight bytes of every data file.
pub const DATA_FILE_MAGIC: [u8; 8] = *b"BCSKDATA";

/// Size of the header at the start of every data file.
pub const FILE_HEADER_LEN: u64 = 16;

/// Longest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 65536;

/// Longest value accepted, in bytes (1 GiB).
pub const MAX_VALUE_LEN: usize = 1 << 30;

/// Checks a key against the limits: 1 to [`MAX_KEY_LEN`] bytes.
pub fn check_key(key: &[u8]) -> Result<()> {
    if key.is_empty() {
        return Err(Error::InvalidArgument("key is empty".to_string()));
    }
    if key.len() > MAX_KEY_LEN {
        return Err(Error::InvalidArgument(format!(
            "key is {} bytes, longer than the {MAX_KEY_LEN} allowed",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a value against the limits: at most [`MAX_VALUE_LEN`] bytes.
pub fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidArgument(format!(
            "value is {} bytes, longer than the {MAX_VALUE_LEN} allowed",
            value.len()
        )));
    }
    Ok(())
}

/// Longest possible record header: a key length needs at most 3 varint bytes
/// (65536 < 2^21) and a value length at most 5.
pub const MAX_RECORD_HEADER_LEN: usize = 4 + 1 + 3 + 5 + 4;
/// The shortest record header (lengths below 128): every record is at
/// least this long.
pub const MIN_RECORD_HEADER_LEN: usize = 4 + 1 + 1 + 1 + 4;

/// What a record says about its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// The key holds the record's value.
    Put = 1,
    /// The key is deleted (a tombstone); the value is empty.
    Delete = 2,
    /// A put inside a write batch: laid out as [`RecordKind::Put`], but it
    /// counts only once the batch's commit record follows it.
    BatchPut = 3,
    /// A delete inside a write batch, laid out as [`RecordKind::Delete`].
    BatchDelete = 4,
    /// Ends a write batch: the key is the batch sequence number (u64 LE, 8
    /// bytes), the value the number of batch records right before it (u32
    /// LE, 4 bytes). Without it the batch's records are ignored.
    BatchCommit = 5,
    /// The key's value was lost: a merge found the record that held it
    /// damaged and moved its bytes to a quarantine file. The value is a
    /// description (UTF-8) of where and why. A get of the key answers
    /// corruption, never an older value, until the key is written again.
    LostValue = 6,
}

impl RecordKind {
    /// Decodes a type byte. Type 0 is never written (it is what zero-filled
    /// space reads as); 7 and up are reserved (expiry records).
    pub fn from_byte(byte: u8) -> Option<RecordKind> {
        match byte {
            1 => Some(RecordKind::Put),
            2 => Some(RecordKind::Delete),
            3 => Some(RecordKind::BatchPut),
            4 => Some(RecordKind::BatchDelete),
            5 => Some(RecordKind::BatchCommit),
            6 => Some(RecordKind::LostValue),
            _ => None,
        }
    }

    /// Whether the record holds a value a get may return (a put, in a batch or not).
    pub fn holds_value(self) -> bool {
        matches!(self, RecordKind::Put | RecordKind::BatchPut)
    }
}

/// Key length of a batch commit record: the sequence number, u64 LE.
pub const BATCH_COMMIT_KEY_LEN: usize = 8;
/// Value length of a batch commit record: the record count, u32 LE.
pub const BATCH_COMMIT_VALUE_LEN: usize = 4;

/// Appends the commit record of batch `seq`, which has `count` records.
pub fn encode_batch_commit(seq: u64, count: u32, out: &mut Vec<u8>) {
    encode_record(
        RecordKind::BatchCommit,
        &seq.to_le_bytes(),
        &count.to_le_bytes(),
        out,
    );
}

/// Length of a batch commit record.
pub fn batch_commit_len() -> usize {
    record_len(BATCH_COMMIT_KEY_LEN, BATCH_COMMIT_VALUE_LEN)
}

/// The sequence number and record count of a commit record's key and value
/// (`None` if their lengths are wrong).
pub fn decode_batch_commit(key: &[u8], value: &[u8]) -> Option<(u64, u32)> {
    let seq = u64::from_le_bytes(key.try_into().ok()?);
    let count = u32::from_le_bytes(value.try_into().ok()?);
    Some((seq, count))
}

/// Encodes the header every data file starts with.
pub fn encode_file_header() -> [u8; FILE_HEADER_LEN as usize] {
    let mut header = [0u8; FILE_HEADER_LEN as usize];
    header[..8].copy_from_slice(&DATA_FILE_MAGIC);
    header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    let crc = crc32fast::hash(&header[..12]);
    header[12..16].copy_from_slice(&crc.to_le_bytes());
    header
}

/// What the first [`FILE_HEADER_LEN`] bytes of a data file say.
#[derive(Debug, PartialEq, Eq)]
pub enum FileHeader {
    /// A data file of this library's format version.
    Current,
    /// A valid header of another format version.
    OtherVersion(u32),
    /// Not a data file header (wrong magic or checksum).
    Invalid,
}

/// Checks a complete file header.
pub fn decode_file_header(bytes: &[u8; FILE_HEADER_LEN as usize]) -> FileHeader {
    let stored_crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if bytes[..8] != DATA_FILE_MAGIC || crc32fast::hash(&bytes[..12]) != stored_crc {
        return FileHeader::Invalid;
    }
    match u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) {
        FORMAT_VERSION => FileHeader::Current,
        other => FileHeader::OtherVersion(other),
    }
}

/// Whether `bytes` may be a file header still being written: each byte is
/// either the one [`encode_file_header`] writes there or still zero.
pub fn is_partial_file_header(bytes: &[u8; FILE_HEADER_LEN as usize]) -> bool {
    bytes
        .iter()
        .zip(encode_file_header())
        .all(|(&have, want)| have == 0 || have == want)
}

/// A record header that passed its checksum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    /// The raw type byte (decode with [`RecordKind::from_byte`]).
    pub type_byte: u8,
    pub key_len: u32,
    pub value_len: u32,
    /// CRC-32 of key followed by value.
    pub body_crc: u32,
    /// Bytes of header before the key.
    pub header_len: usize,
}

impl RecordHeader {
    /// Bytes of the whole record.
    pub fn record_len(&self) -> u64 {
        self.header_len as u64 + u64::from(self.key_len) + u64::from(self.value_len)
    }
}

/// The result of parsing the bytes at a record boundary.
#[derive(Debug, PartialEq, Eq)]
pub enum ParsedHeader {
    /// A header whose checksum holds.
    Valid(RecordHeader),
    /// The bytes end before the header does.
    Incomplete,
    /// The header is complete but wrong: bad checksum or malformed length.
    Invalid(&'static str),
}

/// Parses a record header from `bytes`, which start at a record boundary and
/// hold either at least [`MAX_RECORD_HEADER_LEN`] bytes or everything up to
/// the end of the file.
pub fn parse_record_header(bytes: &[u8]) -> ParsedHeader {
    if bytes.len() < 5 {
        return ParsedHeader::Incomplete;
    }
    let stored_crc = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let type_byte = bytes[4];
    let mut at = 5;
    let key_len = match decode_varint(&bytes[at..], 3) {
        Varint::Value(v, n) => {
            at += n;
            v
        }
        Varint::Incomplete => return ParsedHeader::Incomplete,
        Varint::Overlong => return ParsedHeader::Invalid("malformed key length"),
    };
    let value_len = match decode_varint(&bytes[at..], 5) {
        Varint::Value(v, n) => {
            at += n;
            v
        }
        Varint::Incomplete => return ParsedHeader::Incomplete,
        Varint::Overlong => return ParsedHeader::Invalid("malformed value length"),
    };
    if bytes.len() < at + 4 {
        return ParsedHeader::Incomplete;
    }
    let body_crc = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    at += 4;
    if crc32fast::hash(&bytes[4..at]) != stored_crc {
        return ParsedHeader::Invalid("record header checksum mismatch");
    }
    ParsedHeader::Valid(RecordHeader {
        type_byte,
        key_len,
        value_len,
        body_crc,
        header_len: at,
    })
}

/// Length of the record that [`encode_record`] writes for these lengths.
pub fn record_len(key_len: usize, value_len: usize) -> usize {
    4 + 1 + varint_len(key_len as u32) + varint_len(value_len as u32) + 4 + key_len + value_len
}

/// The value length of a record, from its total length and key length,
/// without reading it: the one value length whose varint width fits.
pub fn value_len_of(record_len: u32, key_len: usize) -> Option<usize> {
    let fixed = 4 + 1 + varint_len(key_len as u32) + 4 + key_len;
    (1..=5).find_map(|width| {
        let value_len = (record_len as usize).checked_sub(fixed + width)?;
        (varint_len(value_len as u32) == width).then_some(value_len)
    })
}

/// Appends one encoded record to `out`. The caller has checked the key and
/// value against [`MAX_KEY_LEN`] and [`MAX_VALUE_LEN`].
pub fn encode_record(kind: RecordKind, key: &[u8], value: &[u8], out: &mut Vec<u8>) {
    debug_assert!(key.len() <= MAX_KEY_LEN && value.len() <= MAX_VALUE_LEN);
    let start = out.len();
    out.reserve(record_len(key.len(), value.len()));
    out.extend_from_slice(&[0; 4]); // header_crc, filled in below
    out.push(kind as u8);
    encode_varint(key.len() as u32, out);
    encode_varint(value.len() as u32, out);
    let mut body = crc32fast::Hasher::new();
    body.update(key);
    body.update(value);
    out.extend_from_slice(&body.finalize().to_le_bytes());
    let header_crc = crc32fast::hash(&out[start + 4..]);
    out[start..start + 4].copy_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// CRC-32 of a record body (key then value), as stored in `body_crc`.
pub fn body_crc(body: &[u8]) -> u32 {
    crc32fast::hash(body)
}

fn varint_len(mut value: u32) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

/// Appends `value` as a varint: 7 bits a byte, low first, high bit set on
/// every byte but the last.
pub fn encode_varint(mut value: u32, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

enum Varint {
    /// The value and how many bytes it took.
    Value(u32, usize),
    Incomplete,
    /// More than `max_bytes` bytes, or a value that does not fit in 32 bits.
    Overlong,
}

fn decode_varint(bytes: &[u8], max_bytes: usize) -> Varint {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(max_bytes) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return match u32::try_from(value) {
                Ok(v) => Varint::Value(v, i + 1),
                Err(_) => Varint::Overlong,
            };
        }
    }
    if bytes.len() < max_bytes {
        Varint::Incomplete
    } else {
        Varint::Overlong
    }
}

/// Decodes a varint of at most 5 bytes from the front of `bytes`: the value
/// and its length, or `None` if it is cut short or overlong.
pub fn read_varint(bytes: &[u8]) -> Option<(u32, usize)> {
    match decode_varint(bytes, 5) {
        Varint::Value(value, len) => Some((value, len)),
        Varint::Incomplete | Varint::Overlong => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(kind: RecordKind, key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(kind, key, value, &mut out);
        out
    }

    #[test]
    fn record_round_trips_and_lengths_agree() {
        for (klen, vlen) in [(1, 0), (16, 100), (127, 128), (300, 70000), (65536, 3)] {
            let key = vec![0xAB; klen];
            let value = vec![0xCD; vlen];
            let bytes = encoded(RecordKind::Put, &key, &value);
            assert_eq!(bytes.len(), record_len(klen, vlen));
            let ParsedHeader::Valid(h) = parse_record_header(&bytes) else {
                panic!("header of ({klen}, {vlen}) did not parse");
            };
            assert_eq!((h.key_len as usize, h.value_len as usize), (klen, vlen));
            assert_eq!(h.record_len() as usize, bytes.len());
            assert_eq!(body_crc(&bytes[h.header_len..]), h.body_crc);
            assert_eq!(value_len_of(bytes.len() as u32, klen), Some(vlen));
        }
    }

    #[test]
    fn value_len_of_is_exact_at_varint_width_boundaries() {
        for vlen in [
            0usize,
            1,
            127,
            128,
            129,
            16383,
            16384,
            2097151,
            2097152,
            MAX_VALUE_LEN,
        ] {
            for klen in [1usize, 127, 128, 65536] {
                let len = record_len(klen, vlen) as u32;
                assert_eq!(value_len_of(len, klen), Some(vlen), "k={klen} v={vlen}");
            }
        }
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let bytes = encoded(RecordKind::Put, b"key", b"value");
        let ParsedHeader::Valid(h) = parse_record_header(&bytes) else {
            panic!("full header must parse");
        };
        for cut in 0..h.header_len {
            assert_eq!(
                parse_record_header(&bytes[..cut]),
                ParsedHeader::Incomplete,
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_header_bit_is_invalid_not_misread() {
        let bytes = encoded(RecordKind::Put, b"key", b"value");
        let header_len = 4 + 1 + 1 + 1 + 4; // crc, type, two one-byte lengths, body crc
        for byte in 0..header_len {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    matches!(parse_record_header(&damaged), ParsedHeader::Invalid(_)),
                    "flip of byte {byte} bit {bit} was not caught"
                );
            }
        }
    }

    #[test]
    fn zeroes_never_parse_as_a_record() {
        assert!(matches!(
            parse_record_header(&[0u8; MAX_RECORD_HEADER_LEN]),
            ParsedHeader::Invalid(_)
        ));
    }

    #[test]
    fn file_header_checks_magic_version_and_crc() {
        let good = encode_file_header();
        assert_eq!(decode_file_header(&good), FileHeader::Current);
        let mut other = good;
        other[8..12].copy_from_slice(&7u32.to_le_bytes());
        let crc = crc32fast::hash(&other[..12]);
        other[12..16].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(decode_file_header(&other), FileHeader::OtherVersion(7));
        let mut damaged = good;
        damaged[3] ^= 1;
        assert_eq!(decode_file_header(&damaged), FileHeader::Invalid);
    }

    #[test]
    fn kinds_decode_and_reserved_types_do_not() {
        assert_eq!(RecordKind::from_byte(1), Some(RecordKind::Put));
        assert_eq!(RecordKind::from_byte(2), Some(RecordKind::Delete));
        assert_eq!(RecordKind::from_byte(3), Some(RecordKind::BatchPut));
        assert_eq!(RecordKind::from_byte(4), Some(RecordKind::BatchDelete));
        assert_eq!(RecordKind::from_byte(5), Some(RecordKind::BatchCommit));
        assert_eq!(RecordKind::from_byte(6), Some(RecordKind::LostValue));
        for b in [0u8, 7, 255] {
            assert_eq!(RecordKind::from_byte(b), None);
        }
    }
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn commit_record_round_trips() {
        let mut out = Vec::new();
        encode_batch_commit(0x0102_0304_0506_0708, 77, &mut out);
        assert_eq!(out.len(), batch_commit_len());
        let ParsedHeader::Valid(h) = parse_record_header(&out) else {
            panic!("commit header must parse");
        };
        assert_eq!(h.type_byte, RecordKind::BatchCommit as u8);
        let key = &out[h.header_len..h.header_len + 8];
        let value = &out[h.header_len + 8..];
        assert_eq!(
            decode_batch_commit(key, value),
            Some((0x0102_0304_0506_0708, 77))
        );
        assert_eq!(decode_batch_commit(&key[..7], value), None);
    }
}

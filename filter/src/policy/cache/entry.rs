//! The stored cache entry and its versioned binary codec.
//!
//! # Byte layout (format version 1)
//!
//! All integers are little-endian. `str` = `u32` length + UTF-8 bytes.
//!
//! ```text
//! offset  size  field
//! 0       1     version (= ENTRY_FORMAT_VERSION)
//! 1       1     flags: bit0 = body is LZ4-compressed; other bits must be 0
//! 2       4     raw_body_len    (u32, uncompressed body length)
//! 6       4     stored_body_len (u32, bytes of the body section at the end)
//! 10      4     key_len (u32)
//! 14      k     key (UTF-8)
//! ..      2     status (u16)
//! ..      8     request_time (u64)
//! ..      8     response_time (u64)
//! ..      8     freshness_lifetime (u64)
//! ..      4     hits (u32)
//! ..      1     presence bits: bit0 date, bit1 age_header,
//!               bit2 stale_while_revalidate, bit3 stale_if_error,
//!               bit4 last_modified, bit5 etag, bit6 must_revalidate;
//!               bit7 must be 0
//! ..      8*    one u64 per present numeric option, in bit order (0..=4)
//! ..            etag: str (only when bit5 set)
//! ..      4     header count (u32, <= MAX_HEADERS), then per header: name str, value str
//! ..      4     vary count (u32, <= MAX_HEADERS), then per item: name str, value str
//! ..      4     generation count (u32, <= MAX_GENERATIONS), then u32 each
//! ..            (versions 2 and 3) encodings: count (u32, <= 2), then per encoding:
//!               coding (u8, `Coding::code`), bytes (u32 length + bytes)
//! ..      4     (version 3 only) request_subsec_ms, response_subsec_ms (u16 each, < 1000)
//! ..      s     body section (exactly stored_body_len bytes, must end the buffer):
//!               raw body, or (flag bit0) the lz4_flex block format with its
//!               u32 LE size prefix (`compress_prepend_size`), whose prefix
//!               must equal raw_body_len
//! ```
//!
//! Version 2 is written only for entries with encoded bodies (see `encoding.rs`), version 3
//! only for entries whose times carry milliseconds (every fetched one); an entry with neither
//! is written as version 1, byte for byte as before.
//!
//! The fixed 14-byte prefix makes [`Entry::stored_body_len`] O(1) and
//! [`Entry::decode_key`] O(key length).

use super::encoding::Coding;
use super::reply_block::{Derived, ReplyBlock, PAIR_OVERHEAD};
use crate::policy::codec::{ReadError, Reader, Writer};

/// Version byte written first in every encoded entry.
pub const ENTRY_FORMAT_VERSION: u8 = 1;

/// Version byte of an entry that carries encoded bodies.
pub const ENCODED_FORMAT_VERSION: u8 = 2;

/// Version byte of an entry whose request and response times carry milliseconds.
pub const PRECISE_FORMAT_VERSION: u8 = 3;

/// Bodies strictly larger than this many bytes are LZ4-compressed (when that
/// actually saves bytes).
pub const LZ4_THRESHOLD: usize = 1024;

/// Largest (decompressed) body `decode` accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Largest header (and Vary item) count `decode` accepts.
pub const MAX_HEADERS: usize = 1024;

/// Largest purge-generation count `decode` accepts.
pub const MAX_GENERATIONS: usize = 16;

const FLAG_LZ4: u8 = 0b0000_0001;
const FIXED_PREFIX: usize = 14;

const HAS_DATE: u8 = 1 << 0;
const HAS_AGE: u8 = 1 << 1;
const HAS_SWR: u8 = 1 << 2;
const HAS_SIE: u8 = 1 << 3;
const HAS_LAST_MODIFIED: u8 = 1 << 4;
const HAS_ETAG: u8 = 1 << 5;
const MUST_REVALIDATE: u8 = 1 << 6;
const PRESENCE_RESERVED: u8 = 1 << 7;

/// LZ4's best possible ratio is about 255:1; anything claiming more is
/// corrupt. Checked before allocating the output buffer so a tiny corrupt
/// slot cannot make us allocate 64 MiB.
const LZ4_MAX_RATIO: usize = 256;

/// A stored response. (`Default` is an empty entry, for fixtures.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    /// Full cache key; checked on read (L2 slots are shared by hash).
    pub key: String,
    pub status: u16,
    /// Stored response headers (hop-by-hop ones already removed).
    pub headers: Vec<(String, String)>,
    /// Uncompressed body.
    pub body: Vec<u8>,
    /// Unix seconds.
    pub request_time: u64,
    /// Unix seconds (stored-at).
    pub response_time: u64,
    /// Milliseconds past `request_time`'s second (0..=999): ages are counted to the
    /// millisecond, so a `max-age=1` entry is fresh for a whole second, not until the next
    /// tick of a seconds clock.
    pub request_subsec_ms: u16,
    /// Milliseconds past `response_time`'s second (0..=999).
    pub response_subsec_ms: u16,
    pub date: Option<u64>,
    pub age_header: Option<u64>,
    /// Seconds.
    pub freshness_lifetime: u64,
    pub must_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<u64>,
    /// (request header name, its value at store time) for the response's Vary list.
    pub vary: Vec<(String, String)>,
    /// Purge generations the entry was stored under (≤ 16 values).
    pub generations: Vec<u32>,
    /// Hit counter (informational).
    pub hits: u32,
    /// The body in the content codings the cache made at store time (see `encoding.rs`).
    pub encoded: Vec<(Coding, Vec<u8>)>,
    /// The headers a whole identity answer sends, ready for the host (made on the first).
    pub identity_reply: Derived<ReplyBlock>,
}

/// Why an encoded entry could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Zero-length input.
    Empty,
    /// The version byte is not one this build understands.
    UnknownVersion(u8),
    /// A length field points past the end of the input.
    Truncated,
    /// Structurally inconsistent (bad flags, bad UTF-8, absurd lengths,
    /// trailing bytes, LZ4 failure, ...).
    Corrupt,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Empty => f.write_str("empty cache entry"),
            DecodeError::UnknownVersion(v) => write!(f, "unknown cache entry format version {v}"),
            DecodeError::Truncated => f.write_str("truncated cache entry"),
            DecodeError::Corrupt => f.write_str("corrupt cache entry"),
        }
    }
}

impl std::error::Error for DecodeError {}

impl From<ReadError> for DecodeError {
    fn from(error: ReadError) -> Self {
        match error {
            ReadError::Truncated => DecodeError::Truncated,
            ReadError::Invalid => DecodeError::Corrupt,
        }
    }
}

/// A count field, bounded by `max` and by what the remaining input could possibly hold
/// (`min_item` bytes per item) so we never pre-allocate absurd capacities.
fn count(r: &mut Reader<'_>, max: usize, min_item: usize) -> Result<usize, DecodeError> {
    let n = r.len32()?;
    if n > max {
        return Err(DecodeError::Corrupt);
    }
    if n.saturating_mul(min_item) > r.remaining() {
        return Err(DecodeError::Truncated);
    }
    Ok(n)
}

fn read_pairs(r: &mut Reader<'_>) -> Result<Vec<(String, String)>, DecodeError> {
    let n = count(r, MAX_HEADERS, 8)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let name = r.str32()?.to_owned();
        let value = r.str32()?.to_owned();
        out.push((name, value));
    }
    Ok(out)
}

fn write_pairs(out: &mut Writer, pairs: &[(String, String)]) {
    out.len32(pairs.len());
    for (n, v) in pairs {
        out.str32(n).str32(v);
    }
}

/// Parsed fixed prefix: (flags, raw_body_len, stored_body_len, key), and the reader after it.
struct Prefix<'a> {
    version: u8,
    flags: u8,
    raw_len: usize,
    stored_len: usize,
    key: &'a str,
    rest: Reader<'a>,
}

/// The version byte and the reader after it.
fn check_version(bytes: &[u8]) -> Result<(u8, Reader<'_>), DecodeError> {
    let mut r = Reader::new(bytes);
    match r.u8() {
        Err(_) => Err(DecodeError::Empty),
        Ok(v @ (ENTRY_FORMAT_VERSION | ENCODED_FORMAT_VERSION | PRECISE_FORMAT_VERSION)) => {
            Ok((v, r))
        }
        Ok(v) => Err(DecodeError::UnknownVersion(v)),
    }
}

/// Flags, raw and stored body lengths.
fn read_lengths(r: &mut Reader<'_>) -> Result<(u8, usize, usize), DecodeError> {
    let flags = r.u8()?;
    if flags & !FLAG_LZ4 != 0 {
        return Err(DecodeError::Corrupt);
    }
    Ok((flags, r.len32()?, r.len32()?))
}

fn read_prefix(bytes: &[u8]) -> Result<Prefix<'_>, DecodeError> {
    let (version, mut r) = check_version(bytes)?;
    let (flags, raw_len, stored_len) = read_lengths(&mut r)?;
    if raw_len > MAX_BODY_BYTES {
        return Err(DecodeError::Corrupt);
    }
    let key = r.str32()?;
    Ok(Prefix {
        version,
        flags,
        raw_len,
        stored_len,
        key,
        rest: r,
    })
}

fn decode_body(p: &Prefix<'_>, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
    if p.flags & FLAG_LZ4 == 0 {
        if p.raw_len != stored.len() {
            return Err(DecodeError::Corrupt);
        }
        return Ok(stored.to_vec());
    }
    let mut r = Reader::new(stored);
    let declared = r.len32().map_err(|_| DecodeError::Corrupt)?;
    if declared != p.raw_len {
        return Err(DecodeError::Corrupt);
    }
    let block = r.rest();
    if p.raw_len > block.len().saturating_mul(LZ4_MAX_RATIO).saturating_add(64) {
        return Err(DecodeError::Corrupt);
    }
    let mut out = vec![0u8; p.raw_len];
    let n = lz4_flex::block::decompress_into(block, &mut out).map_err(|_| DecodeError::Corrupt)?;
    if n != p.raw_len {
        return Err(DecodeError::Corrupt);
    }
    Ok(out)
}

impl Entry {
    /// Serializes the entry (layout in the module docs). The body is
    /// LZ4-compressed when longer than [`LZ4_THRESHOLD`] and compression
    /// actually makes it smaller. Never panics; an entry exceeding the decode
    /// bounds (> 64 MiB body, > 1024 headers, > 16 generations) encodes to
    /// bytes that `decode` rejects.
    pub fn encode(&self) -> Vec<u8> {
        let compressed = if self.body.len() > LZ4_THRESHOLD {
            let c = lz4_flex::block::compress_prepend_size(&self.body);
            (c.len() < self.body.len()).then_some(c)
        } else {
            None
        };
        let (flags, stored): (u8, &[u8]) = match &compressed {
            Some(c) => (FLAG_LZ4, c),
            None => (0, &self.body),
        };

        let precise = self.request_subsec_ms != 0 || self.response_subsec_ms != 0;
        let version = match (precise, self.encoded.is_empty()) {
            (true, _) => PRECISE_FORMAT_VERSION,
            (false, true) => ENTRY_FORMAT_VERSION,
            (false, false) => ENCODED_FORMAT_VERSION,
        };
        let encoded_len = self.encoded.iter().fold(0usize, |acc, (_, b)| {
            acc.saturating_add(b.len()).saturating_add(5)
        });
        let mut out = Writer::with_capacity(
            version,
            FIXED_PREFIX
                .saturating_add(self.key.len())
                .saturating_add(64)
                .saturating_add(stored.len())
                .saturating_add(self.headers_len())
                .saturating_add(encoded_len),
        );
        out.u8(flags)
            .len32(self.body.len())
            .len32(stored.len())
            .str32(&self.key)
            .u16(self.status)
            .u64(self.request_time)
            .u64(self.response_time)
            .u64(self.freshness_lifetime)
            .u32(self.hits);

        let opts = [
            (HAS_DATE, self.date),
            (HAS_AGE, self.age_header),
            (HAS_SWR, self.stale_while_revalidate),
            (HAS_SIE, self.stale_if_error),
            (HAS_LAST_MODIFIED, self.last_modified),
        ];
        let mut presence = 0u8;
        for (bit, v) in &opts {
            if v.is_some() {
                presence |= bit;
            }
        }
        if self.etag.is_some() {
            presence |= HAS_ETAG;
        }
        if self.must_revalidate {
            presence |= MUST_REVALIDATE;
        }
        out.u8(presence);
        for (_, v) in &opts {
            if let Some(v) = v {
                out.u64(*v);
            }
        }
        if let Some(etag) = &self.etag {
            out.str32(etag);
        }
        write_pairs(&mut out, &self.headers);
        write_pairs(&mut out, &self.vary);
        out.len32(self.generations.len());
        for g in &self.generations {
            out.u32(*g);
        }
        if version != ENTRY_FORMAT_VERSION {
            out.len32(self.encoded.len());
            for (coding, bytes) in &self.encoded {
                out.u8(coding.code()).bytes32(bytes);
            }
        }
        if version == PRECISE_FORMAT_VERSION {
            out.u16(self.request_subsec_ms).u16(self.response_subsec_ms);
        }
        out.bytes(stored);
        out.finish()
    }

    /// Parses an encoding produced by [`Entry::encode`]. Never panics; any
    /// inconsistency (including trailing bytes) is an error.
    pub fn decode(bytes: &[u8]) -> Result<Entry, DecodeError> {
        let p = read_prefix(bytes)?;
        let mut r = p.rest.clone();
        let status = r.u16()?;
        let request_time = r.u64()?;
        let response_time = r.u64()?;
        let freshness_lifetime = r.u64()?;
        let hits = r.u32()?;
        let presence = r.u8()?;
        if presence & PRESENCE_RESERVED != 0 {
            return Err(DecodeError::Corrupt);
        }
        let mut opt = |bit: u8| -> Result<Option<u64>, DecodeError> {
            if presence & bit != 0 {
                Ok(Some(r.u64()?))
            } else {
                Ok(None)
            }
        };
        let date = opt(HAS_DATE)?;
        let age_header = opt(HAS_AGE)?;
        let stale_while_revalidate = opt(HAS_SWR)?;
        let stale_if_error = opt(HAS_SIE)?;
        let last_modified = opt(HAS_LAST_MODIFIED)?;
        let etag = if presence & HAS_ETAG != 0 {
            Some(r.str32()?.to_owned())
        } else {
            None
        };
        let headers = read_pairs(&mut r)?;
        let vary = read_pairs(&mut r)?;
        let gen_count = count(&mut r, MAX_GENERATIONS, 4)?;
        let mut generations = Vec::with_capacity(gen_count);
        for _ in 0..gen_count {
            generations.push(r.u32()?);
        }
        let mut encoded = Vec::new();
        if p.version != ENTRY_FORMAT_VERSION {
            let n = count(&mut r, Coding::ALL.len(), 5)?;
            for _ in 0..n {
                let coding = Coding::from_code(r.u8()?).ok_or(DecodeError::Corrupt)?;
                encoded.push((coding, r.bytes32()?.to_vec()));
            }
        }
        let (mut request_subsec_ms, mut response_subsec_ms) = (0, 0);
        if p.version == PRECISE_FORMAT_VERSION {
            (request_subsec_ms, response_subsec_ms) = (r.u16()?, r.u16()?);
            if request_subsec_ms > 999 || response_subsec_ms > 999 {
                return Err(DecodeError::Corrupt);
            }
        }
        let stored = r.take(p.stored_len)?;
        r.finish(())?;
        let body = decode_body(&p, stored)?;
        Ok(Entry {
            key: p.key.to_owned(),
            status,
            headers,
            body,
            request_time,
            response_time,
            request_subsec_ms,
            response_subsec_ms,
            date,
            age_header,
            freshness_lifetime,
            must_revalidate: presence & MUST_REVALIDATE != 0,
            stale_while_revalidate,
            stale_if_error,
            etag,
            last_modified,
            vary,
            generations,
            hits,
            encoded,
            identity_reply: Derived::default(),
        })
    }

    /// Reads only the version, flags and key: a cheap check that an L2 slot
    /// holds the wanted key before a full [`Entry::decode`]. `Ok` here does
    /// not guarantee the rest decodes.
    pub fn decode_key(bytes: &[u8]) -> Result<&str, DecodeError> {
        read_prefix(bytes).map(|p| p.key)
    }

    /// When the response arrived, in Unix milliseconds (what [`Entry::decode_stamp`] reads).
    pub fn response_ms(&self) -> u64 {
        self.response_time
            .saturating_mul(1000)
            .saturating_add(u64::from(self.response_subsec_ms))
    }

    /// The status and when the response arrived (Unix milliseconds), read without decoding
    /// the rest: O(key length). Version 3 keeps the milliseconds just before the body section.
    /// Tells an entry from another one stored later without decompressing either body.
    pub fn decode_stamp(bytes: &[u8]) -> Result<(u16, u64), DecodeError> {
        let p = read_prefix(bytes)?;
        let mut r = p.rest.clone();
        let status = r.u16()?;
        let _request_time = r.u64()?;
        let response_time = r.u64()?;
        let subsec_ms = if p.version == PRECISE_FORMAT_VERSION {
            let end = bytes.len().checked_sub(p.stored_len);
            let at = end.and_then(|end| Some(end.checked_sub(2)?..end));
            let word: [u8; 2] = at
                .and_then(|at| bytes.get(at))
                .and_then(|word| word.try_into().ok())
                .ok_or(DecodeError::Truncated)?;
            let ms = u16::from_le_bytes(word);
            if ms > 999 {
                return Err(DecodeError::Corrupt);
            }
            u64::from(ms)
        } else {
            0
        };
        let ms = response_time
            .checked_mul(1000)
            .and_then(|ms| ms.checked_add(subsec_ms))
            .ok_or(DecodeError::Corrupt)?;
        Ok((status, ms))
    }

    /// `(stored, raw)` body lengths from the fixed prefix, O(1): `stored` is
    /// the body section size (including the 4-byte LZ4 size prefix when
    /// compressed), `raw` the uncompressed length. `None` for anything not a
    /// plausible current-version encoding.
    pub fn stored_body_len(bytes: &[u8]) -> Option<(usize, usize)> {
        let (_, mut r) = check_version(bytes).ok()?;
        let (_, raw, stored) = read_lengths(&mut r).ok()?;
        Some((stored, raw))
    }

    fn headers_len(&self) -> usize {
        self.headers
            .iter()
            .chain(self.vary.iter())
            .fold(0usize, |acc, (n, v)| {
                acc.saturating_add(n.len())
                    .saturating_add(v.len())
                    .saturating_add(8)
            })
    }

    /// Approximate in-memory footprint: the struct itself, key, etag, body,
    /// every header/vary name and value plus their `(String, String)` slot,
    /// and the generations. Used for L1 byte accounting.
    pub fn size_bytes(&self) -> usize {
        let pair_slot = std::mem::size_of::<(String, String)>();
        let pairs = self
            .headers
            .iter()
            .chain(self.vary.iter())
            .fold(0usize, |acc, (n, v)| {
                acc.saturating_add(pair_slot)
                    .saturating_add(n.len())
                    .saturating_add(v.len())
            });
        // The identity answer's copy of the headers (`identity_reply`), once made.
        let reply_block = self.headers.iter().fold(0usize, |acc, (n, v)| {
            acc.saturating_add(n.len() + v.len() + PAIR_OVERHEAD)
        });
        std::mem::size_of::<Entry>()
            .saturating_add(self.key.len())
            .saturating_add(self.etag.as_ref().map_or(0, String::len))
            .saturating_add(self.body.len())
            .saturating_add(
                self.encoded
                    .iter()
                    .fold(0usize, |acc, (_, b)| acc.saturating_add(b.len())),
            )
            .saturating_add(pairs)
            .saturating_add(reply_block)
            .saturating_add(
                self.generations
                    .len()
                    .saturating_mul(std::mem::size_of::<u32>()),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::codec::hex;

    /// Bytes written by the format-1 encoder: still read, and written, exactly so.
    #[test]
    fn reads_and_writes_stored_format_1_bytes() {
        let entry = Entry {
            key: "GET|h|/a".into(),
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"hi".to_vec(),
            request_time: 1_700_000_000,
            response_time: 1_700_000_001,
            date: Some(1_700_000_000),
            freshness_lifetime: 60,
            must_revalidate: true,
            stale_while_revalidate: Some(30),
            etag: Some("\"e\"".into()),
            vary: vec![("accept".into(), "x".into())],
            generations: vec![1, 7],
            hits: 3,
            ..Default::default()
        };
        let stored = hex(
            "01000200000002000000080000004745547c687c2f61c80000f1536500000000\
             01f15365000000003c00000000000000030000006500f15365000000001e0000\
             000000000003000000226522010000000c000000636f6e74656e742d74797065\
             0a000000746578742f706c61696e010000000600000061636365707401000000\
             780200000001000000070000006869",
        );
        assert_eq!(Entry::decode(&stored), Ok(entry.clone()));
        assert_eq!(entry.encode(), stored);
        // A compressed body (decoded only: the compressor's choices may change).
        let compressed = Entry {
            body: b"abcdefgh".repeat(200),
            ..entry
        };
        let stored = hex(
            "0101400600001d000000080000004745547c687c2f61c80000f1536500000000\
             01f15365000000003c00000000000000030000006500f15365000000001e0000\
             000000000003000000226522010000000c000000636f6e74656e742d74797065\
             0a000000746578742f706c61696e010000000600000061636365707401000000\
             78020000000100000007000000400600008f61626364656667680800ffffffff\
             ffff2560636465666768",
        );
        assert_eq!(Entry::decode(&stored), Ok(compressed));
    }

    fn json_body(target: usize) -> Vec<u8> {
        let mut s = String::from("{\"items\":[");
        let mut i = 0u32;
        while s.len() < target {
            if i > 0 {
                s.push(',');
            }
            s.push_str(&format!(
                "{{\"id\":{i},\"sku\":\"SKU-{:06}\",\"name\":\"Product number {i}\",\
                 \"price\":{}.{:02},\"currency\":\"EUR\",\"in_stock\":{},\
                 \"tags\":[\"catalog\",\"edge\"],\"rating\":{}.{}}}",
                i.wrapping_mul(7919) % 1_000_000,
                (i * 37) % 500,
                (i * 13) % 100,
                !i.is_multiple_of(3),
                i % 5,
                (i * 7) % 10,
            ));
            i += 1;
        }
        s.push_str("]}");
        s.into_bytes()
    }

    /// xorshift noise: incompressible.
    fn noise(len: usize) -> Vec<u8> {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn sample(body: Vec<u8>) -> Entry {
        Entry {
            key: "GET|example.com|/api/items?page=1".into(),
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "max-age=60".into()),
            ],
            body,
            request_time: 1_700_000_000,
            response_time: 1_700_000_001,
            date: Some(1_700_000_000),
            freshness_lifetime: 60,
            must_revalidate: true,
            stale_while_revalidate: Some(30),
            etag: Some("\"abc123\"".into()),
            last_modified: Some(1_690_000_000),
            vary: vec![("accept-encoding".into(), "gzip".into())],
            generations: vec![1, 7, 42],
            hits: 3,
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_small_uncompressed() {
        let e = sample(b"hello".to_vec());
        let bytes = e.encode();
        assert_eq!(bytes[0], ENTRY_FORMAT_VERSION);
        assert_eq!(bytes[1] & FLAG_LZ4, 0);
        assert_eq!(Entry::decode(&bytes), Ok(e.clone()));
        assert_eq!(Entry::stored_body_len(&bytes), Some((5, 5)));
    }

    #[test]
    fn round_trip_all_options_absent_and_empty() {
        let e = Entry {
            response_time: u64::MAX,
            age_header: Some(0),
            stale_if_error: Some(u64::MAX),
            etag: Some(String::new()),
            vary: vec![("x".into(), String::new())],
            hits: u32::MAX,
            ..Default::default()
        };
        assert_eq!(Entry::decode(&e.encode()), Ok(e));
    }

    #[test]
    fn round_trip_compressed_json() {
        for size in [1_100, 4_000, 7_000, 20_000] {
            let e = sample(json_body(size));
            let bytes = e.encode();
            assert_eq!(bytes[1] & FLAG_LZ4, FLAG_LZ4, "size {size} should compress");
            let (stored, raw) = Entry::stored_body_len(&bytes).unwrap();
            assert_eq!(raw, e.body.len());
            assert!(stored < raw);
            assert_eq!(Entry::decode(&bytes), Ok(e));
        }
    }

    #[test]
    fn threshold_boundary_is_not_compressed() {
        let e = sample(vec![b'a'; LZ4_THRESHOLD]);
        let bytes = e.encode();
        assert_eq!(bytes[1] & FLAG_LZ4, 0);
        assert_eq!(Entry::decode(&bytes), Ok(e));
        let e = sample(vec![b'a'; LZ4_THRESHOLD + 1]);
        let bytes = e.encode();
        assert_eq!(bytes[1] & FLAG_LZ4, FLAG_LZ4);
        assert_eq!(Entry::decode(&bytes), Ok(e));
    }

    #[test]
    fn incompressible_body_stored_raw() {
        let e = sample(noise(8_000));
        let bytes = e.encode();
        assert_eq!(bytes[1] & FLAG_LZ4, 0);
        assert_eq!(Entry::stored_body_len(&bytes), Some((8_000, 8_000)));
        assert_eq!(Entry::decode(&bytes), Ok(e));
    }

    #[test]
    fn highly_compressible_body_within_ratio_guard() {
        let e = sample(vec![0u8; 4 * 1024 * 1024]);
        let bytes = e.encode();
        let (stored, raw) = Entry::stored_body_len(&bytes).unwrap();
        assert!(
            raw <= (stored - 4) * LZ4_MAX_RATIO + 64,
            "stored {stored} raw {raw}"
        );
        assert_eq!(Entry::decode(&bytes), Ok(e));
    }

    #[test]
    fn every_truncation_is_an_error() {
        for body in [b"small body".to_vec(), json_body(3_000), noise(1_500)] {
            let bytes = sample(body).encode();
            for n in 0..bytes.len() {
                let r = Entry::decode(&bytes[..n]);
                assert!(r.is_err(), "prefix of len {n} decoded");
                if n == 0 {
                    assert_eq!(r, Err(DecodeError::Empty));
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_corrupt() {
        let mut bytes = sample(b"x".to_vec()).encode();
        bytes.push(0);
        assert_eq!(Entry::decode(&bytes), Err(DecodeError::Corrupt));
    }

    #[test]
    fn byte_flips_never_panic() {
        for body in [b"tiny".to_vec(), json_body(1_500)] {
            let bytes = sample(body).encode();
            for i in 0..bytes.len() {
                for mask in [0x01u8, 0x80, 0xFF] {
                    let mut b = bytes.clone();
                    b[i] ^= mask;
                    let _ = Entry::decode(&b);
                    let _ = Entry::decode_key(&b);
                    let _ = Entry::stored_body_len(&b);
                }
            }
        }
    }

    #[test]
    fn absurd_lengths_rejected() {
        let bytes = sample(b"abc".to_vec()).encode();
        // raw body length > 64 MiB.
        let mut b = bytes.clone();
        b[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Entry::decode(&b), Err(DecodeError::Corrupt));
        // key length past the end.
        let mut b = bytes.clone();
        b[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Entry::decode(&b), Err(DecodeError::Truncated));
        assert_eq!(Entry::decode_key(&b), Err(DecodeError::Truncated));
        // too many headers.
        let mut e = sample(vec![]);
        e.headers = (0..=MAX_HEADERS)
            .map(|i| (format!("h{i}"), String::new()))
            .collect();
        assert_eq!(Entry::decode(&e.encode()), Err(DecodeError::Corrupt));
        e.headers.pop();
        assert!(Entry::decode(&e.encode()).is_ok());
        // too many generations.
        let mut e = sample(vec![]);
        e.generations = (0..=MAX_GENERATIONS as u32).collect();
        assert_eq!(Entry::decode(&e.encode()), Err(DecodeError::Corrupt));
        // unknown flag bits.
        let mut b = bytes;
        b[1] |= 0x80;
        assert_eq!(Entry::decode(&b), Err(DecodeError::Corrupt));
        assert_eq!(Entry::stored_body_len(&b), None);
    }

    #[test]
    fn corrupt_lz4_payload_is_error() {
        let bytes = sample(json_body(4_000)).encode();
        let (stored, _) = Entry::stored_body_len(&bytes).unwrap();
        let body_start = bytes.len() - stored;
        // Claimed size prefix no longer matches raw_len.
        let mut b = bytes.clone();
        b[body_start] ^= 1;
        assert_eq!(Entry::decode(&b), Err(DecodeError::Corrupt));
        // Garbage block.
        let mut b = bytes.clone();
        for x in &mut b[body_start + 4..] {
            *x = 0xFF;
        }
        assert_eq!(Entry::decode(&b), Err(DecodeError::Corrupt));
    }

    /// The stamp reads what a full decode reads (status, arrival in ms) in every version, and
    /// refuses what a full decode refuses there.
    #[test]
    fn the_stamp_is_what_a_decode_reads() {
        let mut v1 = sample(json_body(4_000));
        (v1.request_subsec_ms, v1.response_subsec_ms) = (0, 0);
        let mut v2 = v1.clone();
        v2.encoded = vec![(Coding::Gzip, vec![0x1f, 0x8b, 8, 0])];
        let mut v3 = v1.clone();
        (v3.request_subsec_ms, v3.response_subsec_ms) = (998, 417);
        for (entry, version) in [
            (v1, ENTRY_FORMAT_VERSION),
            (v2, ENCODED_FORMAT_VERSION),
            (v3, PRECISE_FORMAT_VERSION),
        ] {
            let bytes = entry.encode();
            assert_eq!(bytes[0], version);
            let decoded = Entry::decode(&bytes).unwrap();
            assert_eq!(
                Entry::decode_stamp(&bytes),
                Ok((decoded.status, decoded.response_ms()))
            );
            assert_eq!(
                decoded.response_ms() % 1000,
                u64::from(entry.response_subsec_ms)
            );
            for cut in [0, 1, 13, 20] {
                assert!(Entry::decode_stamp(&bytes[..cut]).is_err(), "cut at {cut}");
            }
        }
        // Milliseconds past 999 are corrupt, as in a full decode.
        let mut v3 = sample(vec![1, 2, 3]);
        v3.response_subsec_ms = 5;
        let mut bytes = v3.encode();
        let (stored, _) = Entry::stored_body_len(&bytes).unwrap();
        let at = bytes.len() - stored - 2;
        bytes[at..at + 2].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(Entry::decode(&bytes), Err(DecodeError::Corrupt));
        assert_eq!(Entry::decode_stamp(&bytes), Err(DecodeError::Corrupt));
    }

    /// The LZ4 decoder runs without `safe-decode` (half the fuel of an L2 hit) but with
    /// `checked-decode`: a block that lies — a match reaching before the output, a literal run
    /// past the input, any flipped byte — is an error or some body, never a panic.
    #[test]
    fn a_lying_lz4_block_never_panics() {
        let bytes = sample(json_body(4_000)).encode();
        let (stored, raw) = Entry::stored_body_len(&bytes).unwrap();
        let body_start = bytes.len() - stored;
        for at in body_start + 4..bytes.len() {
            for flip in [0x01, 0x10, 0x80, 0xFF] {
                let mut b = bytes.clone();
                b[at] ^= flip;
                if let Ok(entry) = Entry::decode(&b) {
                    assert_eq!(entry.body.len(), raw);
                }
            }
        }
        // Hand-made blocks: literals then a match at offset 0xFFFF (before the output's start);
        // a literal run longer than the block; a match with no literals before it.
        for block in [
            &[0x10, b'a', 0xFF, 0xFF][..],
            &[0xF0, 0xFF, 0xFF, b'a'][..],
            &[0x0F, 0x01, 0x00, 0xFF, 0xFF][..],
        ] {
            let mut b = bytes[..body_start].to_vec();
            b.extend_from_slice(&u32::try_from(raw).unwrap().to_le_bytes());
            b.extend_from_slice(block);
            // The body section's length in the prefix no longer matches: put it right, so the
            // block itself is what gets decoded.
            let section = u32::try_from(block.len() + 4).unwrap().to_le_bytes();
            b[6..10].copy_from_slice(&section);
            assert_eq!(Entry::decode(&b), Err(DecodeError::Corrupt), "{block:?}");
        }
    }

    /// Encoded bodies make a version-2 entry; without them the bytes stay version 1.
    #[test]
    fn round_trip_with_encodings() {
        let mut e = sample(json_body(4_000));
        assert_eq!(e.encode()[0], ENTRY_FORMAT_VERSION);
        e.encoded = vec![
            (Coding::Br, b"br-bytes".to_vec()),
            (Coding::Gzip, vec![0x1f, 0x8b, 8, 0]),
        ];
        let bytes = e.encode();
        assert_eq!(bytes[0], ENCODED_FORMAT_VERSION);
        assert_eq!(Entry::decode(&bytes), Ok(e.clone()));
        assert_eq!(Entry::decode_key(&bytes), Ok(e.key.as_str()));
        assert!(e.size_bytes() > sample(json_body(4_000)).size_bytes() + 11);
        // An unknown coding byte, or a third encoding, is corrupt.
        let mut unknown = bytes.clone();
        let at = unknown
            .windows(9)
            .position(|w| w == b"br-bytes\0" || w.starts_with(b"br-bytes"))
            .unwrap();
        unknown[at - 5] = 9;
        assert_eq!(Entry::decode(&unknown), Err(DecodeError::Corrupt));
        for cut in 1..bytes.len() {
            assert!(Entry::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    /// Times with milliseconds make a version-3 entry that keeps them (with or without
    /// encoded bodies); milliseconds over 999 are corrupt.
    #[test]
    fn milliseconds_make_a_version_3_entry() {
        let mut e = sample(b"abc".to_vec());
        e.request_subsec_ms = 950;
        e.response_subsec_ms = 100;
        let bytes = e.encode();
        assert_eq!(bytes[0], PRECISE_FORMAT_VERSION);
        assert_eq!(Entry::decode(&bytes), Ok(e.clone()));
        e.encoded = vec![(Coding::Gzip, b"gz".to_vec())];
        let bytes = e.encode();
        assert_eq!(bytes[0], PRECISE_FORMAT_VERSION);
        assert_eq!(Entry::decode(&bytes), Ok(e.clone()));
        e.response_subsec_ms = 1000;
        assert_eq!(Entry::decode(&e.encode()), Err(DecodeError::Corrupt));
    }

    #[test]
    fn version_and_empty() {
        assert_eq!(Entry::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(Entry::decode_key(&[]), Err(DecodeError::Empty));
        assert_eq!(Entry::stored_body_len(&[]), None);
        let mut bytes = sample(b"abc".to_vec()).encode();
        bytes[0] = 4;
        assert_eq!(Entry::decode(&bytes), Err(DecodeError::UnknownVersion(4)));
        assert_eq!(
            Entry::decode_key(&bytes),
            Err(DecodeError::UnknownVersion(4))
        );
        assert_eq!(Entry::stored_body_len(&bytes), None);
        assert_eq!(Entry::decode(&[0]), Err(DecodeError::UnknownVersion(0)));
        assert_eq!(
            Entry::decode(&[ENTRY_FORMAT_VERSION]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn decode_key_consistent() {
        for body in [vec![], json_body(5_000), noise(2_000)] {
            let e = sample(body);
            let bytes = e.encode();
            assert_eq!(Entry::decode_key(&bytes), Ok(e.key.as_str()));
            assert_eq!(
                Entry::decode(&bytes).unwrap().key,
                Entry::decode_key(&bytes).unwrap()
            );
            // decode_key only needs the prefix.
            let key_end = FIXED_PREFIX + e.key.len();
            assert_eq!(Entry::decode_key(&bytes[..key_end]), Ok(e.key.as_str()));
            assert_eq!(
                Entry::decode_key(&bytes[..key_end - 1]),
                Err(DecodeError::Truncated)
            );
        }
        let mut e = sample(vec![]);
        e.key = "clé/ünïcode".into();
        assert_eq!(Entry::decode_key(&e.encode()), Ok("clé/ünïcode"));
        // Invalid UTF-8 in the key.
        let mut b = e.encode();
        b[FIXED_PREFIX] = 0xFF;
        assert_eq!(Entry::decode_key(&b), Err(DecodeError::Corrupt));
    }

    #[test]
    fn size_accounting_sane() {
        let small = sample(vec![]);
        let base = small.size_bytes();
        assert!(base >= std::mem::size_of::<Entry>() + small.key.len());
        let big = sample(vec![0u8; 10_000]);
        assert_eq!(big.size_bytes(), base + 10_000);
        let mut more = small.clone();
        more.headers.push(("x-a".into(), "bcd".into()));
        // The pair, and its copy in the identity answer's header block.
        assert_eq!(
            more.size_bytes(),
            base + 6 + std::mem::size_of::<(String, String)>() + 6 + PAIR_OVERHEAD
        );
        // Encoding of an uncompressed entry is in the same ballpark.
        assert!(big.encode().len() <= big.size_bytes());
    }

    #[test]
    fn print_compression_ratio_realistic_json() {
        let body = json_body(7 * 1024);
        let e = sample(body);
        let bytes = e.encode();
        let (stored, raw) = Entry::stored_body_len(&bytes).unwrap();
        println!(
            "LZ4 on ~7 KB JSON: raw {raw} B -> stored {stored} B (ratio {:.2}x, {:.1}% of raw); \
             full entry encoding {} B",
            raw as f64 / stored as f64,
            100.0 * stored as f64 / raw as f64,
            bytes.len()
        );
        assert!(stored < raw);
    }
}

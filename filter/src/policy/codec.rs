//! The byte codec of every value kept in shared data.
//!
//! Each format starts with its version byte ([`Writer::new`], [`Reader::version`]); integers
//! are little-endian; variable-length fields carry a `u16` or `u32` length prefix. Reading
//! never panics: running out of input is [`ReadError::Truncated`], anything a format does not
//! allow (an unknown version, bad UTF-8, trailing bytes, a value out of range) is
//! [`ReadError::Invalid`]. The formats themselves read either as "absent".

/// Why bytes could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// The input ends before the value does.
    Truncated,
    /// The bytes are there but the format does not allow them.
    Invalid,
}

/// Bounds-checked forward reader over stored bytes.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { rest: bytes }
    }

    /// The version byte, which must be one of `known`.
    pub fn version(&mut self, known: &[u8]) -> Result<u8, ReadError> {
        let version = self.u8()?;
        if known.contains(&version) {
            Ok(version)
        } else {
            Err(ReadError::Invalid)
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ReadError> {
        let (head, rest) = self.rest.split_at_checked(n).ok_or(ReadError::Truncated)?;
        self.rest = rest;
        Ok(head)
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], ReadError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| ReadError::Truncated)
    }

    pub fn u8(&mut self) -> Result<u8, ReadError> {
        self.array().map(u8::from_le_bytes)
    }

    pub fn u16(&mut self) -> Result<u16, ReadError> {
        self.array().map(u16::from_le_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, ReadError> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, ReadError> {
        self.array().map(u64::from_le_bytes)
    }

    /// A `u32` length or count.
    pub fn len32(&mut self) -> Result<usize, ReadError> {
        // A length this target cannot hold cannot fit in the input either.
        usize::try_from(self.u32()?).map_err(|_| ReadError::Truncated)
    }

    /// Bytes after a `u16` length.
    pub fn bytes16(&mut self) -> Result<&'a [u8], ReadError> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }

    /// Bytes after a `u32` length.
    pub fn bytes32(&mut self) -> Result<&'a [u8], ReadError> {
        let n = self.len32()?;
        self.take(n)
    }

    /// UTF-8 after a `u32` length.
    pub fn str32(&mut self) -> Result<&'a str, ReadError> {
        std::str::from_utf8(self.bytes32()?).map_err(|_| ReadError::Invalid)
    }

    /// How many bytes are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Everything left.
    pub fn rest(self) -> &'a [u8] {
        self.rest
    }

    /// `value` if the input ends here (trailing bytes are [`ReadError::Invalid`]).
    pub fn finish<T>(self, value: T) -> Result<T, ReadError> {
        if self.rest.is_empty() {
            Ok(value)
        } else {
            Err(ReadError::Invalid)
        }
    }
}

/// The counterpart of [`Reader`]: builds a value that starts with its format version.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    pub fn new(version: u8) -> Self {
        Self::with_capacity(version, 0)
    }

    /// Room for `capacity` bytes after the version.
    pub fn with_capacity(version: u8, capacity: usize) -> Self {
        let mut out = Vec::with_capacity(capacity.saturating_add(1));
        out.push(version);
        Self { out }
    }

    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.out.push(value);
        self
    }

    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    /// A `u32` length or count; one beyond `u32::MAX` is written as `u32::MAX`, which the
    /// reader then finds truncated or out of range (never a panic here).
    pub fn len32(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Bytes as they are.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// Bytes after a `u16` length (saturating, like [`Writer::len32`]: check longer ones first).
    pub fn bytes16(&mut self, bytes: &[u8]) -> &mut Self {
        self.u16(u16::try_from(bytes.len()).unwrap_or(u16::MAX))
            .bytes(bytes)
    }

    /// Bytes after a `u32` length.
    pub fn bytes32(&mut self, bytes: &[u8]) -> &mut Self {
        self.len32(bytes.len()).bytes(bytes)
    }

    /// UTF-8 after a `u32` length.
    pub fn str32(&mut self, text: &str) -> &mut Self {
        self.bytes32(text.as_bytes())
    }

    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

/// Test helper: bytes from hex digits (whitespace ignored), for stored-format tests.
#[cfg(test)]
pub(crate) fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => 255,
        })
        .collect();
    assert!(
        digits.len().is_multiple_of(2) && digits.iter().all(|d| *d < 16),
        "{text}"
    );
    digits
        .chunks(2)
        .map(|pair| pair[0] << 4 | pair[1])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_it_reads() {
        let mut writer = Writer::new(7);
        writer
            .u8(1)
            .u16(0x0203)
            .u32(0x0405_0607)
            .u64(0x0809_0a0b_0c0d_0e0f)
            .bytes16(b"ab")
            .bytes32(b"cde")
            .str32("fé")
            .bytes(b"tail");
        let bytes = writer.finish();
        assert_eq!(
            bytes,
            hex(
                "07 01 0302 07060504 0f0e0d0c0b0a0908 0200 6162 03000000 636465 \
                 03000000 66c3a9 7461696c"
            )
        );
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.version(&[6, 7]), Ok(7));
        assert_eq!(reader.u8(), Ok(1));
        assert_eq!(reader.u16(), Ok(0x0203));
        assert_eq!(reader.u32(), Ok(0x0405_0607));
        assert_eq!(reader.u64(), Ok(0x0809_0a0b_0c0d_0e0f));
        assert_eq!(reader.bytes16(), Ok(&b"ab"[..]));
        assert_eq!(reader.bytes32(), Ok(&b"cde"[..]));
        assert_eq!(reader.str32(), Ok("fé"));
        assert_eq!(reader.remaining(), 4);
        assert_eq!(reader.clone().finish(()), Err(ReadError::Invalid));
        assert_eq!(reader.clone().rest(), b"tail");
        assert_eq!(reader.take(4), Ok(&b"tail"[..]));
        assert_eq!(reader.finish(9), Ok(9));
    }

    #[test]
    fn short_or_foreign_input_is_an_error_never_a_panic() {
        assert_eq!(Reader::new(&[]).u8(), Err(ReadError::Truncated));
        assert_eq!(Reader::new(&[1]).version(&[2]), Err(ReadError::Invalid));
        assert_eq!(Reader::new(&[1, 2, 3]).u32(), Err(ReadError::Truncated));
        assert_eq!(Reader::new(&[0; 7]).u64(), Err(ReadError::Truncated));
        assert_eq!(Reader::new(&[3, 0, 1]).bytes16(), Err(ReadError::Truncated));
        assert_eq!(
            Reader::new(&[255, 255, 255, 255, 1]).bytes32(),
            Err(ReadError::Truncated)
        );
        assert_eq!(
            Reader::new(&[1, 0, 0, 0, 0xff]).str32(),
            Err(ReadError::Invalid)
        );
        let mut reader = Reader::new(&[1, 2]);
        assert_eq!(reader.take(3), Err(ReadError::Truncated));
        assert_eq!(reader.take(usize::MAX), Err(ReadError::Truncated));
        assert_eq!(reader.remaining(), 2, "a failed read takes nothing");
    }

    #[test]
    fn over_long_lengths_saturate() {
        let long = vec![0; usize::from(u16::MAX) + 1];
        let mut writer = Writer::with_capacity(1, 0);
        writer.bytes16(&long);
        let bytes = writer.finish();
        assert_eq!(bytes.get(1..3), Some(&[255, 255][..]));
        let mut reader = Reader::new(&bytes);
        assert_eq!(reader.version(&[1]), Ok(1));
        assert_eq!(reader.bytes16().map(<[u8]>::len), Ok(usize::from(u16::MAX)));
        assert_eq!(reader.finish(()), Err(ReadError::Invalid));
    }
}

//! What makes a tenant id usable, for every feature that partitions by tenant (cache
//! namespaces, rate-limit buckets): ids are compared as the bytes the client sent, so anything
//! that could make two different byte strings one id, or one id two, is refused.

/// Longest tenant id in bytes.
pub const MAX_TENANT_ID_LEN: usize = 128;

/// Why bytes are not a usable tenant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdError {
    /// Longer than [`MAX_TENANT_ID_LEN`] bytes.
    TooLong,
    /// Empty, not UTF-8, or holding a control character, whitespace, a comma (how repeated
    /// header values are joined) or U+FFFD (what a lossy decoding of other bytes produces).
    Invalid,
}

/// The tenant id `bytes` spell, if they are usable as one.
pub fn tenant_id(bytes: Vec<u8>) -> Result<String, IdError> {
    if bytes.len() > MAX_TENANT_ID_LEN {
        return Err(IdError::TooLong);
    }
    // The common id is printable ASCII: decided per byte, without decoding characters.
    if !bytes.is_empty() && bytes.iter().all(|&b| b.is_ascii_graphic() && b != b',') {
        return String::from_utf8(bytes).map_err(|_| IdError::Invalid);
    }
    let id = String::from_utf8(bytes).map_err(|_| IdError::Invalid)?;
    let forbidden = |c: char| {
        c.is_control() || c.is_whitespace() || c == ',' || c == char::REPLACEMENT_CHARACTER
    };
    if id.is_empty() || id.contains(forbidden) {
        return Err(IdError::Invalid);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unambiguous_ids_pass() {
        assert_eq!(tenant_id(b"loc-7".to_vec()), Ok("loc-7".to_string()));
        assert_eq!(tenant_id(vec![b'a'; 128]).map(|id| id.len()), Ok(128));
        assert_eq!(tenant_id(vec![b'a'; 129]), Err(IdError::TooLong));
        for bad in [
            &b""[..],
            b"a b",
            b"a,b",
            b"a\x07",
            b"\xff",
            "a\u{fffd}".as_bytes(),
        ] {
            assert_eq!(tenant_id(bad.to_vec()), Err(IdError::Invalid), "{bad:?}");
        }
    }
}

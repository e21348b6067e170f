//! Redis replies in RESP (webdis's `.raw` output), parsed with bounds: anything malformed,
//! truncated, too deep or too large is an error, never a panic.

/// One RESP value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`
    Status(String),
    /// `-ERR …`
    Error(String),
    /// `:42`
    Int(i64),
    /// `$n` bytes, or `$-1` (nil).
    Bulk(Option<Vec<u8>>),
    /// `*n` values, or `*-1` (nil).
    Array(Option<Vec<Reply>>),
}

/// Why a bridge answer is not a Redis reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyError {
    /// Not RESP, or cut short.
    Malformed,
    /// Nested deeper or longer than any reply the filter asks for.
    TooLarge,
    /// Bytes after the reply.
    Trailing,
}

/// Deepest array nesting the filter's commands produce (and then some).
const MAX_DEPTH: usize = 4;
/// Most elements of one array.
const MAX_ELEMENTS: usize = 1024;

impl Reply {
    /// Parses one whole reply.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReplyError> {
        let (reply, rest) = parse_at(bytes, 0)?;
        if rest.is_empty() {
            Ok(reply)
        } else {
            Err(ReplyError::Trailing)
        }
    }

    /// The bytes of a bulk string (`None` for nil or another kind).
    pub fn bulk(&self) -> Option<&[u8]> {
        match self {
            Self::Bulk(Some(bytes)) => Some(bytes),
            _ => None,
        }
    }

    pub fn is_nil(&self) -> bool {
        matches!(self, Self::Bulk(None) | Self::Array(None))
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Self::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// A `NOSCRIPT` error: the script must be sent whole (`EVAL`) once.
    pub fn is_noscript(&self) -> bool {
        matches!(self, Self::Error(message) if message.starts_with("NOSCRIPT"))
    }
}

fn line(bytes: &[u8]) -> Result<(&[u8], &[u8]), ReplyError> {
    let end = bytes
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or(ReplyError::Malformed)?;
    let head = bytes.get(..end).ok_or(ReplyError::Malformed)?;
    let rest = bytes.get(end + 2..).ok_or(ReplyError::Malformed)?;
    Ok((head, rest))
}

fn number(text: &[u8]) -> Result<i64, ReplyError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(ReplyError::Malformed)
}

fn parse_at(bytes: &[u8], depth: usize) -> Result<(Reply, &[u8]), ReplyError> {
    if depth > MAX_DEPTH {
        return Err(ReplyError::TooLarge);
    }
    let (&kind, after) = bytes.split_first().ok_or(ReplyError::Malformed)?;
    let (head, rest) = line(after)?;
    let text = || String::from_utf8_lossy(head).into_owned();
    match kind {
        b'+' => Ok((Reply::Status(text()), rest)),
        b'-' => Ok((Reply::Error(text()), rest)),
        b':' => Ok((Reply::Int(number(head)?), rest)),
        b'$' => {
            let n = number(head)?;
            if n == -1 {
                return Ok((Reply::Bulk(None), rest));
            }
            let n = usize::try_from(n).map_err(|_| ReplyError::Malformed)?;
            let data = rest.get(..n).ok_or(ReplyError::Malformed)?;
            if rest.get(n..n + 2) != Some(b"\r\n".as_slice()) {
                return Err(ReplyError::Malformed);
            }
            let rest = rest.get(n + 2..).ok_or(ReplyError::Malformed)?;
            Ok((Reply::Bulk(Some(data.to_vec())), rest))
        }
        b'*' => {
            let n = number(head)?;
            if n == -1 {
                return Ok((Reply::Array(None), rest));
            }
            let n = usize::try_from(n).map_err(|_| ReplyError::Malformed)?;
            if n > MAX_ELEMENTS {
                return Err(ReplyError::TooLarge);
            }
            let mut items = Vec::with_capacity(n.min(16));
            let mut rest = rest;
            for _ in 0..n {
                let (item, after) = parse_at(rest, depth + 1)?;
                items.push(item);
                rest = after;
            }
            Ok((Reply::Array(Some(items)), rest))
        }
        _ => Err(ReplyError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind() {
        assert_eq!(Reply::parse(b"+OK\r\n"), Ok(Reply::Status("OK".into())));
        assert_eq!(Reply::parse(b":-3\r\n"), Ok(Reply::Int(-3)));
        assert_eq!(Reply::parse(b"$-1\r\n"), Ok(Reply::Bulk(None)));
        assert_eq!(
            Reply::parse(b"$5\r\n\0\xff.\r\n\r\n"),
            Ok(Reply::Bulk(Some(b"\0\xff.\r\n".to_vec())))
        );
        assert_eq!(
            Reply::parse(b"*2\r\n:1\r\n$1\r\na\r\n"),
            Ok(Reply::Array(Some(vec![
                Reply::Int(1),
                Reply::Bulk(Some(b"a".to_vec()))
            ])))
        );
        let noscript = Reply::parse(b"-NOSCRIPT No matching script.\r\n").unwrap();
        assert!(noscript.is_noscript());
    }

    #[test]
    fn garbage_is_an_error() {
        for bad in [
            &b""[..],
            b"OK",
            b"+OK",
            b"$5\r\nab\r\n",
            b":x\r\n",
            b"$-2\r\n",
            b"*1\r\n",
            b"<html>503</html>",
            b"{\"GET\":null}",
        ] {
            assert!(Reply::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Reply::parse(b"+OK\r\n+OK\r\n"), Err(ReplyError::Trailing));
        let deep = b"*1\r\n".repeat(10);
        assert_eq!(Reply::parse(&deep), Err(ReplyError::TooLarge));
        assert_eq!(Reply::parse(b"*9999\r\n"), Err(ReplyError::TooLarge));
    }
}

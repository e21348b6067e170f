//! The proxy-wasm header map format (a count, (name length, value length) per pair, then each
//! name and value NUL-terminated) read as borrowed text pairs without a copy per header.

use std::ops::Range;

use super::header_list::RequestHeaders;

/// A little-endian u32 at `at`, if there.
fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    let word: [u8; 4] = word.try_into().ok()?;
    Some(u32::from_le_bytes(word) as usize)
}

/// Where a pair's name and value are in the map's bytes.
type FieldSpans = (Range<usize>, Range<usize>);

/// Where each name and value is in a serialized map (count, (name length, value length) per
/// pair, then each name and value NUL-terminated), read as the pairs are taken, and where the
/// text part starts. A malformed map ends where it goes wrong.
fn spans(bytes: &[u8]) -> (impl Iterator<Item = FieldSpans> + '_, usize) {
    let count = u32_at(bytes, 0).unwrap_or(0).min(bytes.len() / 8);
    let text_start = 4 + count * 8;
    let mut at = text_start;
    let spans = (0..count).map_while(move |index| {
        let name_len = u32_at(bytes, 4 + index * 8)?;
        let value_len = u32_at(bytes, 8 + index * 8)?;
        let name = at..at.saturating_add(name_len);
        let value_start = name.end.saturating_add(1);
        let value = value_start..value_start.saturating_add(value_len);
        if value.end > bytes.len() {
            return None;
        }
        at = value.end + 1;
        Some((name, value))
    });
    (spans, text_start)
}

/// Runs `f` on a header map as text pairs, and the names whose value was not UTF-8 (replaced
/// in the text: whoever compares values as identities must refuse those). A pair whose name
/// is not UTF-8 is left out (Envoy never passes one).
pub fn with_pairs<R>(bytes: &[u8], f: impl FnOnce(&RequestHeaders, &[&str]) -> R) -> R {
    let (spans, text_start) = spans(bytes);
    // Usually the whole text part is UTF-8, checked at once: names and values end at a NUL, so
    // each is UTF-8 too, and the pairs are cut from it in the same pass as their spans are read.
    if let Some(text) = bytes
        .get(text_start..)
        .and_then(|text| std::str::from_utf8(text).ok())
    {
        let field =
            |range: &Range<usize>| text.get(range.start - text_start..range.end - text_start);
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(spans.size_hint().1.unwrap_or(0));
        pairs.extend(spans.filter_map(|(name, value)| Some((field(&name)?, field(&value)?))));
        return f(&pairs, &[]);
    }
    // Rare: some name or value is not UTF-8; values get their lossy text.
    let field = |range: &Range<usize>| bytes.get(range.clone()).unwrap_or_default();
    let mut non_utf8: Vec<&str> = Vec::new();
    let mut lossy: Vec<String> = Vec::new();
    let mut texts: Vec<(&str, Option<&str>)> = Vec::with_capacity(spans.size_hint().1.unwrap_or(0));
    for (name, value) in spans {
        let Ok(name) = std::str::from_utf8(field(&name)) else {
            continue;
        };
        match std::str::from_utf8(field(&value)) {
            Ok(value) => texts.push((name, Some(value))),
            Err(_) => {
                non_utf8.push(name);
                lossy.push(String::from_utf8_lossy(field(&value)).into_owned());
                texts.push((name, None));
            }
        }
    }
    let mut replaced = lossy.iter().map(String::as_str);
    let pairs: Vec<(&str, &str)> = texts
        .into_iter()
        .map(|(name, value)| (name, value.or_else(|| replaced.next()).unwrap_or_default()))
        .collect();
    f(&pairs, &non_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialize(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (n, v) in pairs {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            out.extend_from_slice(n);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    fn read(bytes: &[u8]) -> (Vec<(String, String)>, Vec<String>) {
        with_pairs(bytes, |pairs, non_utf8| {
            (
                super::super::header_list::owned(pairs),
                non_utf8.iter().map(|n| n.to_string()).collect(),
            )
        })
    }

    #[test]
    fn pairs_in_order_with_their_text() {
        let map = serialize(&[
            (b":path", b"/a?b=\xc3\xa9"),
            (b"x-name", "caf\u{e9}".as_bytes()),
            (b"empty", b""),
        ]);
        let (pairs, non_utf8) = read(&map);
        assert_eq!(
            pairs,
            [
                (":path".to_string(), "/a?b=\u{e9}".to_string()),
                ("x-name".to_string(), "caf\u{e9}".to_string()),
                ("empty".to_string(), String::new()),
            ]
        );
        assert!(non_utf8.is_empty());
    }

    #[test]
    fn a_value_that_is_not_utf8_is_replaced_and_named() {
        let map = serialize(&[(b"a", b"1"), (b"x-tenant", b"lo\xffc"), (b"b", b"2")]);
        let (pairs, non_utf8) = read(&map);
        assert_eq!(
            pairs,
            [
                ("a".to_string(), "1".to_string()),
                ("x-tenant".to_string(), "lo\u{fffd}c".to_string()),
                ("b".to_string(), "2".to_string()),
            ]
        );
        assert_eq!(non_utf8, ["x-tenant"]);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_left_out() {
        let map = serialize(&[(b"\xfe", b"1"), (b"b", b"2")]);
        let (pairs, non_utf8) = read(&map);
        assert_eq!(pairs, [("b".to_string(), "2".to_string())]);
        assert!(non_utf8.is_empty());
    }

    #[test]
    fn malformed_maps_end_where_they_go_wrong() {
        let whole = serialize(&[(b"a", b"1"), (b"bb", b"22")]);
        // Only the last NUL may be missing.
        for cut in 0..whole.len() - 1 {
            let (pairs, _) = read(&whole[..cut]);
            assert!(pairs.len() <= 1, "cut at {cut}: {pairs:?}");
        }
        assert_eq!(read(&whole).0.len(), 2);
        // A count far beyond the bytes, and lengths that overflow.
        let mut huge = u32::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0xff; 16]);
        assert!(read(&huge).0.is_empty());
        assert!(read(&[]).0.is_empty());
    }
}

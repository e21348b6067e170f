//! The query string as origins read it, and its canonical spelling for cache keys.
//!
//! Origins split a query at `&` (some also at `;`), split each piece at its first `=`, and
//! percent-decode name and value; form decoders also read `+` as a space, some frameworks
//! compare names without case, read `.` as `_` or `name[]` as `name`. Two spellings share a
//! key only where every such reader agrees they are equal: a percent-encoded unreserved
//! character is that character (`%63` is `c`, RFC 3986 §2.3) and hex digits are upper-cased.
//! Everything else keeps its spelling, so `+`, `%2B` and `%20` stay three keys and `%26` or
//! `%3D` stay data inside a name or value. Forms readers disagree on — `;`, a malformed `%`
//! escape, bytes outside printable ASCII — make the whole query ambiguous.

/// Why a query cannot be keyed: readers may disagree about what it says.
pub const AMBIGUOUS_QUERY: &str = "ambiguous-query";

/// One `name[=value]` piece, both parts in canonical spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    /// `None` for a piece without `=` (`?flag`), which some readers tell from `?flag=`.
    pub value: Option<String>,
}

/// The pieces of a raw query (without the `?`) in order; empty pieces (`&&`) are skipped, as
/// every reader skips them.
pub fn parse(query: &str) -> Result<Vec<Param>, &'static str> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match piece.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (piece, None),
            };
            Ok(Param {
                name: canonical(name)?,
                value: value.map(canonical).transpose()?,
            })
        })
        .collect()
}

/// The parameters joined back into a query string (`name=value&...`).
pub fn join(params: &[Param]) -> String {
    let mut out = String::new();
    for (index, param) in params.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(&param.name);
        if let Some(value) = &param.value {
            out.push('=');
            out.push_str(value);
        }
    }
    out
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Decodes the `%XX` escape at the start of `rest` (which begins after the `%`).
fn escape(rest: &[u8]) -> Option<u8> {
    match rest {
        [high, low, ..] => Some(hex_value(*high)? * 16 + hex_value(*low)?),
        _ => None,
    }
}

/// One name or value in canonical spelling: unreserved characters decoded, other escapes with
/// upper-case hex, everything else as sent. `;`, a malformed escape, a space, a control
/// character or a byte outside ASCII is ambiguous.
pub fn canonical(component: &str) -> Result<String, &'static str> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = component.as_bytes();
    let mut out = String::with_capacity(component.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        if byte == b'%' {
            let decoded =
                escape(bytes.get(index + 1..).unwrap_or_default()).ok_or(AMBIGUOUS_QUERY)?;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                for digit in [decoded >> 4, decoded & 0xf] {
                    out.push(char::from(
                        HEX.get(usize::from(digit)).copied().unwrap_or(b'0'),
                    ));
                }
            }
            index += 3;
            continue;
        }
        if !byte.is_ascii_graphic() || byte == b';' {
            return Err(AMBIGUOUS_QUERY);
        }
        out.push(char::from(byte));
        index += 1;
    }
    Ok(out)
}

/// A name as the most lenient readers may see it: fully decoded (`+` as a space), cut at `[`
/// (array syntax) or NUL, trimmed, lower-cased, with `.` and spaces read as `_`.
fn folded(name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let (byte, width) = match byte {
            b'%' => match escape(bytes.get(index + 1..).unwrap_or_default()) {
                Some(decoded) => (decoded, 3),
                None => (byte, 1),
            },
            b'+' => (b' ', 1),
            _ => (byte, 1),
        };
        if byte == b'[' || byte == 0 {
            break;
        }
        decoded.push(byte);
        index += width;
    }
    decoded
        .trim_ascii()
        .iter()
        .map(|byte| match byte.to_ascii_lowercase() {
            b'.' | b' ' => b'_',
            other => other,
        })
        .collect()
}

/// Sorts parameters by name for the key. Names are compared as the most lenient reader sees
/// them (see [`folded`]) and the sort is stable, so parameters that some origin reads under
/// one name (`city`, `CITY`, `city[]`) keep the order they were sent in: first-wins,
/// last-wins and list readers all see the same values in the same order.
pub fn sort(params: &mut [Param]) {
    params.sort_by_cached_key(|param| folded(&param.name));
}

/// Whether a canonical `name` matches one of `patterns` (a trailing `*` matches a prefix).
pub fn matches(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
}

/// Whether some reader may take a canonical `name` for one matching `patterns` (compared
/// folded, see [`folded`]).
pub fn may_match(patterns: &[String], name: &str) -> bool {
    let name = folded(name);
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(&folded(prefix)),
            None => name == folded(pattern),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(query: &str) -> Vec<String> {
        parse(query).unwrap().into_iter().map(|p| p.name).collect()
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_hex_upper_cased() {
        assert_eq!(canonical("%63ity").unwrap(), "city");
        assert_eq!(canonical("%7e%2d%2E%5f").unwrap(), "~-._");
        assert_eq!(canonical("a%2bb").unwrap(), "a%2Bb");
        assert_eq!(canonical("a+b").unwrap(), "a+b");
        assert_eq!(canonical("1%262%3d3").unwrap(), "1%262%3D3");
        assert_eq!(canonical("%e2%82%ac").unwrap(), "%E2%82%AC");
    }

    #[test]
    fn ambiguous_components_are_refused() {
        for bad in [
            "a;b",
            "%",
            "%4",
            "%zz",
            "a b",
            "a\tb",
            "caf\u{e9}",
            "a\u{7f}",
        ] {
            assert_eq!(canonical(bad), Err(AMBIGUOUS_QUERY), "{bad:?}");
        }
    }

    #[test]
    fn pieces_keep_order_presence_of_equals_and_skip_empty_ones() {
        let params = parse("b=2&&a&a=&%3D=x=y").unwrap();
        assert_eq!(names("b=2&&a&a=&%3D=x=y"), ["b", "a", "a", "%3D"]);
        assert_eq!(params.get(1).unwrap().value, None);
        assert_eq!(params.get(2).unwrap().value.as_deref(), Some(""));
        assert_eq!(params.get(3).unwrap().value.as_deref(), Some("x=y"));
        assert_eq!(join(&params), "b=2&a&a=&%3D=x=y");
    }

    #[test]
    fn lenient_readings_of_names() {
        let allow = vec!["city".to_string(), "page*".to_string()];
        for name in [
            "city",
            "CITY",
            "City",
            "city%5B%5D",
            "city[x]",
            "+city",
            "city%00x",
            "%20city",
            "PAGE2",
        ] {
            let name = canonical(name).unwrap();
            assert!(may_match(&allow, &name), "{name} may be read as allowed");
        }
        for name in ["x%26city", "cities", "ci.ty", "citypage"] {
            let name = canonical(name).unwrap();
            assert!(!may_match(&allow, &name), "{name}");
        }
        assert!(may_match(&["ci_ty".to_string()], "ci.ty"));
    }
}

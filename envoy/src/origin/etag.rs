//! Entity tags: a quoted hex hash of the body, and `If-None-Match` matching.

use super::prng::fnv1a64;

/// The strong ETag of a body: `"<16 hex digits of FNV-1a 64>"`.
pub fn etag_for(body: &[u8]) -> String {
    format!("\"{:016x}\"", fnv1a64(body))
}

/// Whether an `If-None-Match` header value matches `etag` (weak comparison, as RFC 9110
/// asks for `If-None-Match`): `*`, or any listed tag equal to it ignoring a `W/` prefix.
pub fn if_none_match_matches(header: &str, etag: &str) -> bool {
    let strip = |t: &str| -> String { t.trim().trim_start_matches("W/").to_string() };
    let ours = strip(etag);
    header.split(',').any(|t| {
        let t = t.trim();
        t == "*" || (!t.is_empty() && strip(t) == ours)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_quoted_hex_and_stable() {
        let e = etag_for(b"{\"a\":1}");
        assert_eq!(e.len(), 18);
        assert!(e.starts_with('"') && e.ends_with('"'));
        assert!(e[1..17].chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(e, etag_for(b"{\"a\":1}"));
        assert_ne!(e, etag_for(b"{\"a\":2}"));
    }

    #[test]
    fn if_none_match_forms() {
        let e = etag_for(b"x");
        assert!(if_none_match_matches(&e, &e));
        assert!(if_none_match_matches(&format!("W/{e}"), &e));
        assert!(if_none_match_matches(&format!("\"other\", {e}"), &e));
        assert!(if_none_match_matches("*", &e));
        assert!(!if_none_match_matches("\"other\"", &e));
        assert!(!if_none_match_matches("", &e));
    }
}

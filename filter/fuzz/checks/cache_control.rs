//! `Cache-Control` (request and response headers, from clients and origins): parsing is total,
//! values stay within their clamps, directive names are case-insensitive, and two field lines
//! joined with a comma mean what the two lines mean together.

use edge_filter::policy::cache::cache_control::{CacheControl, DELTA_SECONDS_MAX};

pub fn check(data: &[u8]) {
    let (split, text) = match data.split_first() {
        Some((split, rest)) => (usize::from(*split), String::from_utf8_lossy(rest)),
        None => (0, String::from_utf8_lossy(data)),
    };
    let cc = CacheControl::parse(&text);
    for value in [
        cc.max_age,
        cc.s_maxage,
        cc.stale_while_revalidate,
        cc.stale_if_error,
        cc.min_fresh,
    ]
    .into_iter()
    .flatten()
    {
        assert!(value <= DELTA_SECONDS_MAX, "{value} above the clamp");
    }
    assert!(cc
        .max_stale
        .is_none_or(|v| v <= DELTA_SECONDS_MAX || v == u64::MAX));
    assert_eq!(CacheControl::parse(&text.to_ascii_uppercase()), cc, "case");
    assert_eq!(CacheControl::parse(&text.to_ascii_lowercase()), cc, "case");

    // Two field lines: split the text at a character boundary chosen by the first byte.
    let mut at = (split * text.len() / 255).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let (first, second) = text.split_at(at);
    // An unterminated quoted string in the first line would swallow the second.
    if !first.contains('"') {
        let joined = CacheControl::parse(&format!("{first},{second}"));
        assert_eq!(
            joined,
            merged(&CacheControl::parse(first), &CacheControl::parse(second)),
            "lines {first:?} and {second:?}"
        );
    }
}

/// What two field lines mean together (RFC 9111 §4.2.1: the smallest lifetime wins; the
/// largest `min-fresh`, the strictest requirement, wins).
fn merged(a: &CacheControl, b: &CacheControl) -> CacheControl {
    let min = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    };
    CacheControl {
        no_store: a.no_store || b.no_store,
        no_cache: a.no_cache || b.no_cache,
        private: a.private || b.private,
        public: a.public || b.public,
        max_age: min(a.max_age, b.max_age),
        s_maxage: min(a.s_maxage, b.s_maxage),
        must_revalidate: a.must_revalidate || b.must_revalidate,
        proxy_revalidate: a.proxy_revalidate || b.proxy_revalidate,
        immutable: a.immutable || b.immutable,
        must_understand: a.must_understand || b.must_understand,
        stale_while_revalidate: min(a.stale_while_revalidate, b.stale_while_revalidate),
        stale_if_error: min(a.stale_if_error, b.stale_if_error),
        max_stale: min(a.max_stale, b.max_stale),
        min_fresh: match (a.min_fresh, b.min_fresh) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
        only_if_cached: a.only_if_cached || b.only_if_cached,
    }
}

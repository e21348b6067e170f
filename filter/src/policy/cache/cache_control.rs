//! `Cache-Control` parsing (RFC 9111 §5.2), for both request and response directives.
//!
//! The parser never fails: unknown directives are ignored, and malformed values are read the
//! conservative way (RFC 9111 §4.2.1): an unparsable or duplicated `max-age` / `s-maxage`
//! makes the response stale (the smallest value wins, garbage reads as 0), while values that
//! would only *extend* what a cache may do (`stale-while-revalidate`, `stale-if-error`,
//! `max-stale`) are dropped when unparsable.

/// The greatest delta-seconds value kept: RFC 9111 §1.2.2 lets a cache clamp anything larger
/// (or any overflow) to 2^31 seconds (68 years).
pub const DELTA_SECONDS_MAX: u64 = 1 << 31;

/// The directives of one message's `Cache-Control` header field(s).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheControl {
    pub no_store: bool,
    /// Also set by the qualified form `no-cache="field"` (treated as unqualified: conservative).
    pub no_cache: bool,
    /// Also set by the qualified form `private="field"` (treated as unqualified: conservative).
    pub private: bool,
    pub public: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub immutable: bool,
    /// RFC 9111 §5.2.2.3: store only if the status is understood; then `no-store` is ignored.
    pub must_understand: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// Request directive; `max-stale` without a value is `u64::MAX` (any staleness).
    pub max_stale: Option<u64>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
}

impl CacheControl {
    /// Parses `value`: every `Cache-Control` field line of the message joined with `","`.
    ///
    /// Directive names are case-insensitive, values may be tokens or quoted strings (a quoted
    /// string may contain commas), and whitespace around names, `=` and values is ignored.
    pub fn parse(value: &str) -> Self {
        let mut cc = CacheControl::default();
        for (name, arg) in Directives::new(value) {
            cc.apply(name, arg);
        }
        cc
    }

    fn apply(&mut self, name: &str, arg: Option<Arg<'_>>) {
        // Lower-case into a small buffer and match on bytes: far smaller wasm than a chain of
        // `eq_ignore_ascii_case` calls. No known directive is longer than the buffer.
        let mut buf = [0u8; 24];
        let Some(slot) = buf.get_mut(..name.len()) else {
            return;
        };
        slot.copy_from_slice(name.as_bytes());
        slot.make_ascii_lowercase();
        match &*slot {
            b"no-store" => self.no_store = true,
            b"no-cache" => self.no_cache = true,
            b"private" => self.private = true,
            b"public" => self.public = true,
            b"must-revalidate" => self.must_revalidate = true,
            b"proxy-revalidate" => self.proxy_revalidate = true,
            b"immutable" => self.immutable = true,
            b"must-understand" => self.must_understand = true,
            b"only-if-cached" => self.only_if_cached = true,
            // Invalid → 0 (stale); duplicates → smallest (RFC 9111 §4.2.1).
            b"max-age" => keep_min(&mut self.max_age, delta_seconds(arg).unwrap_or(0)),
            b"s-maxage" => keep_min(&mut self.s_maxage, delta_seconds(arg).unwrap_or(0)),
            b"stale-while-revalidate" => {
                if let Some(v) = delta_seconds(arg) {
                    keep_min(&mut self.stale_while_revalidate, v);
                }
            }
            b"stale-if-error" => {
                if let Some(v) = delta_seconds(arg) {
                    keep_min(&mut self.stale_if_error, v);
                }
            }
            b"max-stale" => match arg {
                None => keep_min(&mut self.max_stale, u64::MAX),
                Some(_) => {
                    if let Some(v) = delta_seconds(arg) {
                        keep_min(&mut self.max_stale, v);
                    }
                }
            },
            // The stricter (larger) requirement wins.
            b"min-fresh" => {
                if let Some(v) = delta_seconds(arg) {
                    self.min_fresh = Some(self.min_fresh.map_or(v, |old| old.max(v)));
                }
            }
            _ => {}
        }
    }
}

fn keep_min(slot: &mut Option<u64>, v: u64) {
    *slot = Some(slot.map_or(v, |old| old.min(v)));
}

/// A directive argument: a token or the content of a quoted string (escapes not yet removed;
/// they never matter for the values this parser reads).
#[derive(Debug, Clone, Copy)]
struct Arg<'a>(&'a str);

/// `delta-seconds = 1*DIGIT`, token or quoted form; anything else is `None`. Clamped to
/// [`DELTA_SECONDS_MAX`].
fn delta_seconds(arg: Option<Arg<'_>>) -> Option<u64> {
    let s = arg?.0.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        v = v
            .saturating_mul(10)
            .saturating_add(u64::from(b.saturating_sub(b'0')));
        if v > DELTA_SECONDS_MAX {
            return Some(DELTA_SECONDS_MAX);
        }
    }
    Some(v)
}

/// Iterator over `(name, argument)` pairs of a comma-separated directive list.
struct Directives<'a> {
    rest: &'a str,
}

impl<'a> Directives<'a> {
    fn new(value: &'a str) -> Self {
        Directives { rest: value }
    }
}

impl<'a> Iterator for Directives<'a> {
    type Item = (&'a str, Option<Arg<'a>>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = self
                .rest
                .trim_start_matches(|c: char| c == ',' || is_ows(c));
            if s.is_empty() {
                self.rest = s;
                return None;
            }
            // Name: up to '=' or ','.
            let name_end = s.find(['=', ',']).unwrap_or(s.len());
            let name = s.get(..name_end).unwrap_or("").trim_matches(is_ows);
            let after_name = s.get(name_end..).unwrap_or("");
            let (arg, rest) = match after_name.strip_prefix('=') {
                None => (None, after_name),
                Some(v) => {
                    let v = v.trim_start_matches(is_ows);
                    if let Some(q) = v.strip_prefix('"') {
                        let (content, rest) = split_quoted(q);
                        // Skip anything between the closing quote and the next comma.
                        let rest = rest.find(',').and_then(|i| rest.get(i..)).unwrap_or("");
                        (Some(Arg(content)), rest)
                    } else {
                        let end = v.find(',').unwrap_or(v.len());
                        let tok = v.get(..end).unwrap_or("").trim_matches(is_ows);
                        (Some(Arg(tok)), v.get(end..).unwrap_or(""))
                    }
                }
            };
            self.rest = rest;
            if !name.is_empty() {
                return Some((name, arg));
            }
        }
    }
}

/// Splits the text after an opening `"` into (quoted content, text after the closing quote).
/// An unterminated string takes everything.
fn split_quoted(s: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            let content = s.get(..i).unwrap_or("");
            let rest = s.get(i.saturating_add(1)..).unwrap_or("");
            return (content, rest);
        }
    }
    (s, "")
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_unknown() {
        assert_eq!(CacheControl::parse(""), CacheControl::default());
        assert_eq!(CacheControl::parse(" , ,, "), CacheControl::default());
        assert_eq!(
            CacheControl::parse("foo, bar=baz, x=\"a,b\""),
            CacheControl::default()
        );
    }

    #[test]
    fn response_directives() {
        let cc = CacheControl::parse(
            "public, max-age=60, s-maxage=120, must-revalidate, proxy-revalidate, immutable, \
             stale-while-revalidate=30, stale-if-error=600",
        );
        assert_eq!(
            cc,
            CacheControl {
                public: true,
                max_age: Some(60),
                s_maxage: Some(120),
                must_revalidate: true,
                proxy_revalidate: true,
                immutable: true,
                stale_while_revalidate: Some(30),
                stale_if_error: Some(600),
                ..Default::default()
            }
        );
        let cc = CacheControl::parse("no-store, no-cache, private, Must-Understand");
        assert!(cc.no_store && cc.no_cache && cc.private && cc.must_understand);
        assert!(!cc.public);
    }

    #[test]
    fn request_directives() {
        let cc = CacheControl::parse("max-stale, min-fresh=10, only-if-cached, max-age=0");
        assert_eq!(cc.max_stale, Some(u64::MAX));
        assert_eq!(cc.min_fresh, Some(10));
        assert!(cc.only_if_cached);
        assert_eq!(cc.max_age, Some(0));
        assert_eq!(CacheControl::parse("max-stale=5").max_stale, Some(5));
        // Invalid max-stale is dropped (it would only loosen freshness).
        assert_eq!(CacheControl::parse("max-stale=abc").max_stale, None);
        // Several min-fresh: the strictest wins.
        assert_eq!(
            CacheControl::parse("min-fresh=5, min-fresh=20").min_fresh,
            Some(20)
        );
        assert_eq!(CacheControl::parse("min-fresh=x").min_fresh, None);
    }

    #[test]
    fn case_and_whitespace() {
        let cc = CacheControl::parse("  MAX-AGE = 5 ,\tNo-Store ,PUBLIC");
        assert_eq!(cc.max_age, Some(5));
        assert!(cc.no_store && cc.public);
        let cc = CacheControl::parse("S-MaxAge=7");
        assert_eq!(cc.s_maxage, Some(7));
    }

    #[test]
    fn quoted_values() {
        // RFC 9111 §5.2: senders should use the token form, but the quoted form is read.
        assert_eq!(CacheControl::parse("max-age=\"30\"").max_age, Some(30));
        // A quoted value may contain commas; the directives after it still count.
        let cc = CacheControl::parse("no-cache=\"set-cookie, x-foo\", max-age=9");
        assert!(cc.no_cache);
        assert_eq!(cc.max_age, Some(9));
        let cc = CacheControl::parse("foo=\"a\\\"b,max-age=1\", public");
        assert_eq!(cc.max_age, None);
        assert!(cc.public);
        // Trailing garbage after a quoted value is skipped up to the next comma.
        let cc = CacheControl::parse("ext=\"x\"junk, s-maxage=3");
        assert_eq!(cc.s_maxage, Some(3));
        // Unterminated quote swallows the rest.
        let cc = CacheControl::parse("ext=\"x, max-age=3");
        assert_eq!(cc.max_age, None);
    }

    #[test]
    fn qualified_no_cache_and_private_are_unqualified() {
        assert!(CacheControl::parse("no-cache=\"set-cookie\"").no_cache);
        assert!(CacheControl::parse("private=\"x-user\"").private);
        assert!(CacheControl::parse("private=x-user").private);
    }

    #[test]
    fn duplicates_and_invalid_freshness() {
        // RFC 9111 §4.2.1: duplicates → the response is treated as stale: keep the smallest.
        assert_eq!(
            CacheControl::parse("max-age=60, max-age=10").max_age,
            Some(10)
        );
        assert_eq!(
            CacheControl::parse("max-age=10, max-age=60").max_age,
            Some(10)
        );
        // Invalid delta-seconds → 0.
        for bad in [
            "max-age",
            "max-age=",
            "max-age=abc",
            "max-age=-1",
            "max-age=+5",
            "max-age=1.5",
            "max-age=5s",
            "max-age=\"\"",
        ] {
            assert_eq!(CacheControl::parse(bad).max_age, Some(0), "{bad}");
        }
        assert_eq!(CacheControl::parse("s-maxage=oops").s_maxage, Some(0));
        assert_eq!(
            CacheControl::parse("max-age=100, max-age=bad").max_age,
            Some(0)
        );
        // Invalid stale-* extensions are dropped.
        let cc = CacheControl::parse("stale-while-revalidate, stale-if-error=x");
        assert_eq!(cc.stale_while_revalidate, None);
        assert_eq!(cc.stale_if_error, None);
        let cc = CacheControl::parse("stale-if-error=50, stale-if-error=5");
        assert_eq!(cc.stale_if_error, Some(5));
    }

    #[test]
    fn huge_numbers_clamp() {
        assert_eq!(
            CacheControl::parse("max-age=99999999999999999999999999999").max_age,
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(
            CacheControl::parse("max-age=2147483648").max_age,
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(
            CacheControl::parse("max-age=2147483647").max_age,
            Some(2_147_483_647)
        );
        assert_eq!(CacheControl::parse("max-age=000042").max_age, Some(42));
    }

    #[test]
    fn joined_field_lines() {
        let cc = CacheControl::parse("public,max-age=5,no-cache");
        assert!(cc.public && cc.no_cache);
        assert_eq!(cc.max_age, Some(5));
    }

    #[test]
    fn garbage_never_panics() {
        let nasty =
            "mAx-AgE=\"9\\\"9,\u{e9}\u{1F600}=,,==\"\"\" s-maxage=\t-0x1F;;no-cache=\"private\
                     , max-stale=184467440737095516160 ,\\\"min-fresh==,\r\n\0public";
        let chars: Vec<(usize, char)> = nasty.char_indices().collect();
        for (i, &(start, _)) in chars.iter().enumerate() {
            for &(end, _) in chars.iter().skip(i) {
                let _ = CacheControl::parse(&nasty[start..end]);
            }
            let _ = CacheControl::parse(&nasty[start..]);
        }
        // Pseudo-random strings over an alphabet of meaningful characters.
        let alphabet: Vec<char> = "=,\"\\ \tmax-age0123456789s-nocachepublic\u{e9}"
            .chars()
            .collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let _ = CacheControl::parse(&s);
            state = state.wrapping_add(1);
        }
    }
}

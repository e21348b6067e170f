//! Targeted cache-control fields (RFC 9213): `CDN-Cache-Control` and an optional field of the
//! operator's own (`targeted_cache_control`, e.g. `Edge-Cache-Control`), which comes first.
//!
//! The first of those fields that a response carries with a valid, non-empty value decides how
//! this cache stores it, and the response's `Cache-Control`, `Expires` and `Pragma` are then
//! ignored by this cache (they still reach the client, as do the targeted fields). A field is a
//! Structured Field Dictionary (RFC 8941): one that does not parse (`max-age =1`, `&&&`,
//! upper-case keys), or gives a known directive a value of the wrong type (`max-age="60"`,
//! `max-age=-1`, `no-store=1`), is ignored as if absent. Unknown directives are ignored.

use super::cache_control::{CacheControl, DELTA_SECONDS_MAX};
use crate::policy::header_list::{header_joined, Headers};

/// The targeted field RFC 9213 defines for CDN caches.
pub const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The directives of the first targeted field (`configured`, then `CDN-Cache-Control`) with a
/// valid, non-empty value; `None` when there is none and `Cache-Control` applies.
pub fn select(headers: &Headers, configured: Option<&str>) -> Option<CacheControl> {
    configured
        .into_iter()
        .chain([CDN_CACHE_CONTROL])
        .find_map(|name| header_joined(headers, name).and_then(|value| parse(&value)))
}

/// Parses a targeted field's value (every field line joined with `,`); `None` when it is
/// empty or invalid.
pub fn parse(value: &str) -> Option<CacheControl> {
    let mut parser = Parser {
        s: value.as_bytes(),
        at: 0,
    };
    let mut cc = CacheControl::default();
    parser.skip_sp();
    if parser.at_end() {
        return None;
    }
    loop {
        let key = parser.key()?;
        let value = if parser.eat(b'=') {
            parser.member_value()?
        } else {
            parser.parameters()?;
            Value::Bool(true)
        };
        apply(&mut cc, key, value)?;
        parser.skip_ows();
        if parser.at_end() {
            return Some(cc);
        }
        if !parser.eat(b',') {
            return None;
        }
        parser.skip_ows();
        if parser.at_end() {
            return None;
        }
    }
}

/// The type of a member's value, as far as directives care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Integer(i64),
    Bool(bool),
    String,
    InnerList,
    Other,
}

/// Sets the directive `key` to `value`; `None` when a known directive has a value of the wrong
/// type (the whole field is then ignored). Later members replace earlier ones.
fn apply(cc: &mut CacheControl, key: &[u8], value: Value) -> Option<()> {
    let seconds = || match value {
        Value::Integer(v) => u64::try_from(v).ok().map(|v| v.min(DELTA_SECONDS_MAX)),
        _ => None,
    };
    let flag = || match value {
        Value::Bool(b) => Some(b),
        _ => None,
    };
    // no-cache and private may name fields (a String or an Inner List): read as unqualified.
    let qualified_flag = || match value {
        Value::Bool(b) => Some(b),
        Value::String | Value::InnerList => Some(true),
        _ => None,
    };
    match key {
        b"max-age" => cc.max_age = Some(seconds()?),
        b"s-maxage" => cc.s_maxage = Some(seconds()?),
        b"stale-while-revalidate" => cc.stale_while_revalidate = Some(seconds()?),
        b"stale-if-error" => cc.stale_if_error = Some(seconds()?),
        b"no-store" => cc.no_store = flag()?,
        b"must-revalidate" => cc.must_revalidate = flag()?,
        b"proxy-revalidate" => cc.proxy_revalidate = flag()?,
        b"public" => cc.public = flag()?,
        b"immutable" => cc.immutable = flag()?,
        b"must-understand" => cc.must_understand = flag()?,
        b"no-cache" => cc.no_cache = qualified_flag()?,
        b"private" => cc.private = qualified_flag()?,
        _ => {}
    }
    Some(())
}

/// A Structured Fields (RFC 8941, RFC 9651) reader over one field value.
struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn at_end(&self) -> bool {
        self.at >= self.s.len()
    }

    fn bump(&mut self) {
        self.at = self.at.saturating_add(1);
    }

    fn eat(&mut self, b: u8) -> bool {
        let matched = self.peek() == Some(b);
        if matched {
            self.bump();
        }
        matched
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
    }

    /// `key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )`
    fn key(&mut self) -> Option<&'a [u8]> {
        let start = self.at;
        if !matches!(self.peek(), Some(b'a'..=b'z' | b'*')) {
            return None;
        }
        while matches!(
            self.peek(),
            Some(b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'.' | b'*')
        ) {
            self.bump();
        }
        self.s.get(start..self.at)
    }

    /// An Item or an Inner List, with its parameters.
    fn member_value(&mut self) -> Option<Value> {
        if self.eat(b'(') {
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    break;
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return None;
                }
            }
            self.parameters()?;
            return Some(Value::InnerList);
        }
        let value = self.bare_item()?;
        self.parameters()?;
        Some(value)
    }

    /// `*( ";" *SP key [ "=" bare-item ] )`; their values do not matter here.
    fn parameters(&mut self) -> Option<()> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn bare_item(&mut self) -> Option<Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => {
                self.bump();
                self.string()?;
                Some(Value::String)
            }
            b'*' | b'a'..=b'z' | b'A'..=b'Z' => {
                self.bump();
                while self.peek().is_some_and(is_token_char) {
                    self.bump();
                }
                Some(Value::Other)
            }
            b':' => {
                self.bump();
                while self
                    .peek()
                    .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
                {
                    self.bump();
                }
                self.eat(b':').then_some(Value::Other)
            }
            b'?' => {
                self.bump();
                let value = match self.peek()? {
                    b'0' => false,
                    b'1' => true,
                    _ => return None,
                };
                self.bump();
                Some(Value::Bool(value))
            }
            b'@' => {
                self.bump();
                match self.number()? {
                    Value::Integer(_) => Some(Value::Other),
                    _ => None,
                }
            }
            b'%' => {
                self.bump();
                if !self.eat(b'"') {
                    return None;
                }
                self.display_string()?;
                Some(Value::Other)
            }
            _ => None,
        }
    }

    /// An Integer (at most 15 digits) or a Decimal (at most 12 + 3 digits).
    fn number(&mut self) -> Option<Value> {
        let negative = self.eat(b'-');
        let start = self.at;
        let mut value: i64 = 0;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            value = value
                .saturating_mul(10)
                .saturating_add(i64::from(d.saturating_sub(b'0')));
            self.bump();
        }
        let int_digits = self.at.saturating_sub(start);
        if int_digits == 0 {
            return None;
        }
        if self.eat(b'.') {
            let frac_start = self.at;
            while matches!(self.peek(), Some(b'0'..=b'9')) {
                self.bump();
            }
            let frac_digits = self.at.saturating_sub(frac_start);
            return (int_digits <= 12 && (1..=3).contains(&frac_digits)).then_some(Value::Other);
        }
        if int_digits > 15 {
            return None;
        }
        Some(Value::Integer(if negative { -value } else { value }))
    }

    /// The rest of a String after its opening quote.
    fn string(&mut self) -> Option<()> {
        loop {
            match self.peek()? {
                b'"' => {
                    self.bump();
                    return Some(());
                }
                b'\\' => {
                    self.bump();
                    if !matches!(self.peek()?, b'"' | b'\\') {
                        return None;
                    }
                    self.bump();
                }
                0x20..=0x7e => self.bump(),
                _ => return None,
            }
        }
    }

    /// The rest of a Display String after `%"`: printable ASCII, `%` + two lower-case hex.
    fn display_string(&mut self) -> Option<()> {
        loop {
            match self.peek()? {
                b'"' => {
                    self.bump();
                    return Some(());
                }
                b'%' => {
                    self.bump();
                    for _ in 0..2 {
                        if !matches!(self.peek()?, b'0'..=b'9' | b'a'..=b'f') {
                            return None;
                        }
                        self.bump();
                    }
                }
                0x20..=0x7e => self.bump(),
                _ => return None,
            }
        }
    }
}

/// `tchar / ":" / "/"` (RFC 8941 sf-token after its first character).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::header_list::owned as h;

    #[test]
    fn directives() {
        let cc = parse("max-age=60, s-maxage=30, must-revalidate, no-cache, private").unwrap();
        assert_eq!(cc.max_age, Some(60));
        assert_eq!(cc.s_maxage, Some(30));
        assert!(cc.must_revalidate && cc.no_cache && cc.private);
        assert!(parse("no-store").unwrap().no_store);
        let cc = parse("stale-while-revalidate=5, stale-if-error=9, immutable, public").unwrap();
        assert_eq!(cc.stale_while_revalidate, Some(5));
        assert_eq!(cc.stale_if_error, Some(9));
        assert!(cc.immutable && cc.public);
        // Qualified forms, parameters, explicit booleans.
        assert!(parse("no-cache=\"set-cookie\"").unwrap().no_cache);
        assert!(parse("private=(\"x-user\" foo)").unwrap().private);
        assert!(!parse("no-store=?0").unwrap().no_store);
        assert!(parse("no-store=?1;x=1").unwrap().no_store);
        assert_eq!(parse("max-age=60;a=b;c").unwrap().max_age, Some(60));
    }

    #[test]
    fn extensions_are_ignored() {
        let cc = parse(
            "foobar, max-age=3600, x=\"y\", z=(1 2), w=:aGk=:, d=1.5, t=tok/en, q=@1, \
                        r=%\"caf%c3%a9\"",
        )
        .unwrap();
        assert_eq!(cc.max_age, Some(3600));
        assert_eq!(parse("foobar").unwrap(), CacheControl::default());
    }

    #[test]
    fn large_values_clamp_and_duplicates_take_the_last() {
        assert_eq!(
            parse("max-age=99999999999").unwrap().max_age,
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(
            parse("max-age=2147483648").unwrap().max_age,
            Some(DELTA_SECONDS_MAX)
        );
        assert_eq!(parse("max-age=10, max-age=20").unwrap().max_age, Some(20));
    }

    #[test]
    fn invalid_fields_are_ignored_whole() {
        for bad in [
            "",
            "   ",
            "max-age =100",
            "max-age= 100",
            "MaX-aGe=3600",
            "max-age=10000, &&&&&",
            "max-age=\"10000\"",
            "max-age=-1",
            "max-age=1.5",
            "max-age=1234567890123456",
            "max-age=60,",
            "max-age=60 no-store",
            "no-store=1",
            "no-store=\"x\"",
            "private=1",
            "x=\"unterminated",
            "x=(1 2",
            "x=?2",
            "x=%\"A%ZZ\"",
            "max-age=60;",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn whitespace() {
        assert_eq!(parse("  max-age=5 ,\tno-cache  ").unwrap().max_age, Some(5));
    }

    #[test]
    fn the_configured_field_comes_first_then_cdn_cache_control() {
        let headers = h(&[
            ("cache-control", "max-age=1"),
            ("cdn-cache-control", "max-age=20"),
            ("edge-cache-control", "max-age=300"),
        ]);
        assert_eq!(
            select(&headers, Some("edge-cache-control"))
                .unwrap()
                .max_age,
            Some(300)
        );
        assert_eq!(select(&headers, None).unwrap().max_age, Some(20));
        // An invalid configured field falls through to CDN-Cache-Control, then to nothing.
        let headers = h(&[
            ("edge-cache-control", "max-age=\"300\""),
            ("cdn-cache-control", "max-age=20"),
        ]);
        assert_eq!(
            select(&headers, Some("edge-cache-control"))
                .unwrap()
                .max_age,
            Some(20)
        );
        assert_eq!(
            select(&h(&[("cache-control", "max-age=1")]), Some("x")),
            None
        );
        // Several field lines are one dictionary.
        let headers = h(&[
            ("cdn-cache-control", "max-age=20"),
            ("cdn-cache-control", "must-revalidate"),
        ]);
        let cc = select(&headers, None).unwrap();
        assert!(cc.must_revalidate && cc.max_age == Some(20));
    }

    #[test]
    fn garbage_never_panics() {
        let nasty = "max-age=9;a=(\"x\\\" 1.234 :YQ==: ?1 @-5 %\"%e9\") , *k=\u{e9}\u{1F600}-0.,,";
        let chars: Vec<(usize, char)> = nasty.char_indices().collect();
        for (i, &(start, _)) in chars.iter().enumerate() {
            for &(end, _) in chars.iter().skip(i) {
                let _ = parse(&nasty[start..end]);
            }
        }
    }
}

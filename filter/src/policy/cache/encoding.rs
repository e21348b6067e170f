//! Content codings the cache makes itself: a compressible stored response gets its `br` and
//! `gzip` bodies once per worker, on the first hit whose client accepts a coding (never on the
//! miss path, so clients that only make misses cannot make the cache compress), and each hit
//! picks the one the client prefers (`Accept-Encoding`). Encoded answers carry `Vary:
//! Accept-Encoding` and a weak validator of their own (`W/"<tag>-<coding>"`).

use std::io::Write;

use crate::policy::header_list::{header, header_members, Headers};

/// A coding the cache stores, in the order it prefers them when the client likes both equally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Br,
    Gzip,
}

impl Coding {
    /// Every coding the cache makes, most preferred first.
    pub const ALL: [Coding; 2] = [Coding::Br, Coding::Gzip];

    /// The `Content-Encoding` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Br => "br",
            Coding::Gzip => "gzip",
        }
    }

    /// The byte that names it in the entry codec.
    pub fn code(self) -> u8 {
        match self {
            Coding::Br => 1,
            Coding::Gzip => 2,
        }
    }

    pub fn from_code(code: u8) -> Option<Self> {
        Coding::ALL.into_iter().find(|c| c.code() == code)
    }

    /// Whether an `Accept-Encoding` member names this coding (`x-gzip` is gzip, RFC 9110 §8.4.1.3).
    fn is_named(self, name: &str) -> bool {
        name.eq_ignore_ascii_case(self.as_str())
            || (self == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"))
    }
}

/// Whether the cache negotiates codings itself for a service (then it asks the origin for the
/// identity body): unless the operator keys the cache on `Accept-Encoding`.
pub fn cache_negotiates(section: &crate::policy::CacheSection) -> bool {
    !section
        .key
        .headers
        .iter()
        .any(|k| k.eq_ignore_ascii_case("accept-encoding"))
}

/// Smallest identity body worth encoding (smaller ones gain little and cost a header).
pub const MIN_ENCODED_BYTES: usize = 256;

/// Largest identity body the cache encodes (a bound on the work one hit can cause); larger
/// ones are answered in identity.
pub const MAX_ENCODED_BYTES: usize = 256 * 1024;

/// Brotli quality used at store time: close to the best ratio for JSON and text at a fraction of
/// quality 11's time (the store happens on the miss path).
const BROTLI_QUALITY: i32 = 6;

/// Most `Accept-Encoding` members looked at (a longer list is a client to ignore past this).
const MAX_MEMBERS: usize = 32;

/// Media types worth compressing (compared case-insensitively, without allocating: this runs
/// on every hit).
fn compressible_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    let starts = |prefix: &str| {
        essence
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let ends = |suffix: &str| {
        essence
            .len()
            .checked_sub(suffix.len())
            .and_then(|at| essence.get(at..))
            .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
    };
    starts("text/")
        || ends("+json")
        || ends("+xml")
        || [
            "application/json",
            "application/javascript",
            "application/xml",
            "application/x-javascript",
            "application/ecmascript",
            "image/svg+xml",
        ]
        .iter()
        .any(|t| essence.eq_ignore_ascii_case(t))
}

/// Whether a stored response may get encoded bodies: a compressible type, not encoded already,
/// large enough, and the origin did not forbid transforming it (`no-transform`).
pub fn encodable(headers: &Headers, body: &[u8]) -> bool {
    // Cheapest test first: most bodies that fail, fail on their size.
    if !(MIN_ENCODED_BYTES..=MAX_ENCODED_BYTES).contains(&body.len()) {
        return false;
    }
    let identity = header(headers, "content-encoding")
        .is_none_or(|v| v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity"));
    let no_transform =
        header_members(headers, "cache-control").any(|d| d.eq_ignore_ascii_case("no-transform"));
    identity
        && !no_transform
        && header(headers, "content-range").is_none()
        && header(headers, "content-type").is_some_and(compressible_type)
}

/// `body` in `coding`, when that is smaller.
pub fn encode(coding: Coding, body: &[u8]) -> Option<Vec<u8>> {
    let encoded = match coding {
        Coding::Gzip => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(body).ok()?;
            encoder.finish().ok()?
        }
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                ..Default::default()
            };
            let mut out = Vec::new();
            brotli::BrotliCompress(&mut &body[..], &mut out, &params).ok()?;
            out
        }
    };
    (encoded.len() < body.len()).then_some(encoded)
}

/// Every coding of `body` worth keeping (none when the response is not [`encodable`]).
pub fn encode_all(headers: &Headers, body: &[u8]) -> Vec<(Coding, Vec<u8>)> {
    if !encodable(headers, body) {
        return Vec::new();
    }
    Coding::ALL
        .into_iter()
        .filter_map(|coding| encode(coding, body).map(|bytes| (coding, bytes)))
        .collect()
}

/// A member's quality value in thousandths (`q=0.5` is 500); malformed is 0 (not acceptable).
fn quality(params: &str) -> u16 {
    for param in params.split(';') {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("q") {
            continue;
        }
        let value = value.trim();
        let (int, frac) = value.split_once('.').unwrap_or((value, ""));
        let valid = matches!(int, "0" | "1")
            && frac.len() <= 3
            && frac.bytes().all(|b| b.is_ascii_digit())
            && (int == "0" || frac.bytes().all(|b| b == b'0'));
        if !valid {
            return 0;
        }
        let thousandths = frac
            .bytes()
            .zip([100u16, 10, 1])
            .map(|(digit, scale)| u16::from(digit - b'0') * scale)
            .sum();
        return if int == "1" { 1000 } else { thousandths };
    }
    1000
}

/// The coding to answer with, of those `available`, given the request's `Accept-Encoding`
/// (`None`: identity). Highest quality wins; a coding wins a tie with identity (it is
/// smaller), and the cache's order breaks ties between codings. Case, order, whitespace and
/// repeated fields do not matter; no header means identity.
pub fn negotiate(accept_encoding: Option<&str>, available: &[Coding]) -> Option<Coding> {
    let accept = accept_encoding?;
    if accept.split(',').nth(MAX_MEMBERS).is_some() {
        // Longer than any real client's list: identity, never a guess from part of it.
        return None;
    }
    let mut explicit: Vec<(&str, u16)> = Vec::new();
    let mut star = None;
    for member in accept.split(',').take(MAX_MEMBERS) {
        let (name, params) = member.split_once(';').unwrap_or((member, ""));
        let name = name.trim();
        if name.is_empty() {
            continue;
        }
        let q = quality(params);
        if name == "*" {
            star = Some(q);
        } else {
            explicit.push((name, q));
        }
    }
    let q_of = |matches: &dyn Fn(&str) -> bool| -> Option<u16> {
        explicit
            .iter()
            .filter(|(name, _)| matches(name))
            .map(|(_, q)| *q)
            .max()
    };
    // Identity is acceptable unless refused by name, or by `*;q=0` without naming it.
    let identity = q_of(&|n| n.eq_ignore_ascii_case("identity")).unwrap_or(match star {
        Some(0) => 0,
        _ => 1,
    });
    let mut best: Option<(Coding, u16)> = None;
    for coding in Coding::ALL {
        if !available.contains(&coding) {
            continue;
        }
        let q = q_of(&|n| coding.is_named(n)).or(star).unwrap_or(0);
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((coding, q));
        }
    }
    best.filter(|(_, q)| *q >= identity)
        .map(|(coding, _)| coding)
}

/// Whether a request's `Accept-Encoding` would take one of the cache's codings.
pub fn wants_coding(accept_encoding: Option<&str>) -> bool {
    negotiate(accept_encoding, &Coding::ALL).is_some()
}

/// Whether a request's `Accept-Encoding` takes `coding` at all (quality above 0, by name or
/// through `*`), whatever it prefers. No header takes none: such clients (scripts, `curl`
/// without `--compressed`) often cannot decode anything.
pub fn accepts_coding(accept_encoding: Option<&str>, coding: Coding) -> bool {
    let Some(accept) = accept_encoding else {
        return false;
    };
    let (mut named, mut star) = (None::<u16>, None::<u16>);
    for member in accept.split(',').take(MAX_MEMBERS) {
        let (name, params) = member.split_once(';').unwrap_or((member, ""));
        let (name, q) = (name.trim(), quality(params));
        if coding.is_named(name) {
            named = Some(named.map_or(q, |before| before.max(q)));
        } else if name == "*" {
            star = Some(q);
        }
    }
    named.or(star).is_some_and(|q| q > 0)
}

/// Whether an `If-None-Match` list names the weak validator of one of `codings`' variants of
/// `etag` (weak comparison).
pub fn names_variant(if_none_match: &str, etag: &str, codings: &[Coding]) -> bool {
    let opaque = |tag: &str| {
        let tag = tag.trim();
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag)
            .to_string()
    };
    let stored = opaque(etag);
    !stored.is_empty()
        && if_none_match.split(',').any(|member| {
            let member = opaque(member);
            codings.iter().any(|c| {
                member
                    .strip_suffix(c.as_str())
                    .and_then(|m| m.strip_suffix('-'))
                    == Some(stored.as_str())
            })
        })
}

/// The weak validator of `etag`'s `coding` variant: `"v1"` becomes `W/"v1-gzip"`.
pub fn variant_etag(etag: &str, coding: Coding) -> String {
    let etag = etag.trim();
    let opaque = etag.strip_prefix("W/").unwrap_or(etag);
    let opaque = opaque
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(opaque);
    format!("W/\"{opaque}-{}\"", coding.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(target_arch = "wasm32"))]
    use proptest::prelude::*;
    use std::io::Read;

    const BOTH: [Coding; 2] = [Coding::Br, Coding::Gzip];

    fn json_headers() -> Vec<(String, String)> {
        vec![(
            "content-type".into(),
            "application/json; charset=utf-8".into(),
        )]
    }

    fn sample(len: usize) -> Vec<u8> {
        let row = br#"{"id":17,"name":"Coaching session","status":"scheduled","tags":["a","b"]},"#;
        row.iter().cycle().take(len).copied().collect()
    }

    #[test]
    fn compressible_types_match_in_any_case_with_parameters() {
        for yes in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "text/html",
            "TEXT/plain;x=1",
            "application/problem+json",
            "application/graphql-response+json",
            "image/svg+xml",
            " application/xml ",
        ] {
            assert!(compressible_type(yes), "{yes}");
        }
        for no in ["image/png", "application/octet-stream", "", "json", "text"] {
            assert!(!compressible_type(no), "{no}");
        }
    }

    #[test]
    fn negotiation_follows_quality_then_the_cache_order() {
        assert_eq!(negotiate(None, &BOTH), None);
        assert_eq!(
            negotiate(Some("gzip, deflate, br"), &BOTH),
            Some(Coding::Br)
        );
        assert_eq!(negotiate(Some("GZIP"), &BOTH), Some(Coding::Gzip));
        assert_eq!(negotiate(Some("x-gzip"), &BOTH), Some(Coding::Gzip));
        assert_eq!(negotiate(Some("br;q=0.5, gzip"), &BOTH), Some(Coding::Gzip));
        assert_eq!(negotiate(Some("br;q=0, gzip;q=0"), &BOTH), None);
        assert_eq!(negotiate(Some("identity"), &BOTH), None);
        assert_eq!(negotiate(Some("*"), &BOTH), Some(Coding::Br));
        assert_eq!(negotiate(Some("*;q=0.1, identity;q=1"), &BOTH), None);
        assert_eq!(
            negotiate(Some("gzip;q=0.9, identity;q=0.5"), &BOTH),
            Some(Coding::Gzip)
        );
        assert_eq!(negotiate(Some("br"), &[Coding::Gzip]), None);
        assert_eq!(negotiate(Some("deflate"), &BOTH), None);
        assert_eq!(negotiate(Some(" gzip ; q=1.0 "), &BOTH), Some(Coding::Gzip));
        assert_eq!(negotiate(Some("gzip;q=2"), &BOTH), None);
        assert_eq!(negotiate(Some(""), &BOTH), None);
        // Past 32 members the list is not read at all (a refusal at its end must not be lost).
        let mut long: Vec<String> = (0..40).map(|i| format!("x{i}")).collect();
        long.insert(0, "*".into());
        long.push("br;q=0, gzip;q=0".into());
        assert_eq!(negotiate(Some(&long.join(", ")), &BOTH), None);
    }

    #[test]
    fn weak_validators_per_coding() {
        assert_eq!(variant_etag("\"v1\"", Coding::Gzip), "W/\"v1-gzip\"");
        assert_eq!(variant_etag("W/\"v1\"", Coding::Br), "W/\"v1-br\"");
        assert!(names_variant("W/\"v1-gzip\"", "\"v1\"", &BOTH));
        assert!(names_variant("\"x\", W/\"v1-br\"", "W/\"v1\"", &BOTH));
        assert!(!names_variant("W/\"v1-gzip\"", "\"v1\"", &[Coding::Br]));
        assert!(!names_variant("W/\"v2-gzip\"", "\"v1\"", &BOTH));
        assert!(!names_variant("\"v1\"", "\"v1\"", &BOTH));
    }

    #[test]
    fn only_compressible_identity_bodies_are_encoded() {
        let body = sample(4096);
        let encoded = encode_all(&json_headers(), &body);
        assert_eq!(
            encoded.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
            vec![Coding::Br, Coding::Gzip]
        );
        let small = sample(MIN_ENCODED_BYTES - 1);
        assert!(encode_all(&json_headers(), &small).is_empty());
        let huge = sample(MAX_ENCODED_BYTES + 1);
        assert!(encode_all(&json_headers(), &huge).is_empty());
        let mut gzipped = json_headers();
        gzipped.push(("content-encoding".into(), "gzip".into()));
        assert!(encode_all(&gzipped, &body).is_empty());
        let mut no_transform = json_headers();
        no_transform.push(("cache-control".into(), "max-age=60, no-transform".into()));
        assert!(encode_all(&no_transform, &body).is_empty());
        let image = vec![("content-type".into(), "image/png".into())];
        assert!(encode_all(&image, &body).is_empty());
    }

    #[test]
    fn encoded_bodies_decode_to_the_identity_body() {
        let body = sample(10_000);
        for (coding, bytes) in encode_all(&json_headers(), &body) {
            let mut decoded = Vec::new();
            match coding {
                Coding::Gzip => {
                    flate2::read::GzDecoder::new(&bytes[..])
                        .read_to_end(&mut decoded)
                        .unwrap();
                }
                Coding::Br => {
                    brotli::BrotliDecompress(&mut &bytes[..], &mut decoded).unwrap();
                }
            }
            assert_eq!(decoded, body, "{coding:?}");
            assert!(bytes.len() < body.len() / 3, "{coding:?}: {}", bytes.len());
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest! {
        #[test]
        fn negotiation_never_panics_and_picks_an_available_coding(header in ".{0,200}") {
            if let Some(coding) = negotiate(Some(&header), &[Coding::Gzip]) {
                prop_assert_eq!(coding, Coding::Gzip);
            }
        }
    }
}

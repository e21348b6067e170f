//! Cache keys: which requests may share a stored response.
//!
//! A key names the service, the tenant, scheme, authority, path, the canonical query (see
//! [`super::query`]) and the configured request headers: two requests share a key only when
//! every origin reads them as the same resource. Requests whose path could mean different
//! things to us and to the origin (encoded delimiters, dot segments, empty segments, `;`,
//! backslashes, control characters), whose query readers may disagree on, or whose tenant or
//! key headers are ambiguous are not cached at all: that is what keeps a private response from
//! landing under a public key and one tenant's entries from reaching another.

use super::query::{self, may_match, Param, AMBIGUOUS_QUERY};
use super::tenant::{cache_tenant, HeaderView, Single};
use crate::policy::header_list::{HeaderPair, RequestHeaders};
use crate::policy::{CacheSection, KeyConfig, QueryMode};

pub use super::tenant::MAX_TENANT_LEN;

/// What a request's key is derived from.
pub struct KeyInput<'a> {
    pub service: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    /// `:path` including the query string.
    pub path: &'a str,
    /// The request's headers (lower-case names; a repeated header once per value).
    pub headers: &'a RequestHeaders<'a>,
    /// Names of headers whose value was not valid UTF-8 (their text in `headers` is lossy).
    pub non_utf8: &'a [&'a str],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    /// The full key entries are stored and found under.
    pub primary: String,
    /// The tenant namespace, if the service has one and the request names it.
    pub tenant: Option<String>,
    /// Scheme, authority, path and query without tenant or headers: what a URL purge and an
    /// unsafe request invalidate.
    pub url: String,
    /// Where the path starts in `url`.
    path_at: usize,
}

impl CacheKey {
    /// The path and query of `url`: what the key keeps of the request (the service's query
    /// rules applied), so the hot-key table shows no parameter the key ignores and counts
    /// cache-busted variants of one key as one row.
    pub fn path_and_query(&self) -> &str {
        self.url.get(self.path_at..).unwrap_or("/")
    }
}

/// Longest path (with query) the cache considers.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest value of a key header; longer values bypass the cache.
pub const MAX_KEY_HEADER_LEN: usize = 256;

/// Request headers that cache-poisoning attacks use to change what an origin (or a framework
/// in front of it) answers without changing the URL: forwarded host, scheme, port and prefix,
/// rewritten URLs and overridden methods. They are removed from cacheable requests unless the
/// service makes them part of its key.
pub const UNKEYED_POISONING_HEADERS: [&str; 21] = [
    "forwarded",
    "x-forwarded-host",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-forwarded-path",
    "x-forwarded-uri",
    "x-forwarded-ssl",
    "x-forwarded-protocol",
    "x-url-scheme",
    "front-end-https",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
    "x-host",
    "x-original-host",
    "x-http-host-override",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// The poisoning headers a cacheable request carries that its service does not key on.
/// Names as the request spelled them, so each can be removed; `x_forwarded_host` counts as
/// `x-forwarded-host` (CGI-style origins read both as `HTTP_X_FORWARDED_HOST`).
pub fn unkeyed_headers_present<'a>(
    section: &'a CacheSection,
    request_headers: &'a [impl HeaderPair],
) -> impl Iterator<Item = &'a str> + 'a {
    request_headers
        .iter()
        .map(HeaderPair::name)
        .filter(move |n| {
            UNKEYED_POISONING_HEADERS.iter().any(|name| {
                same_header_name(n, name) && !section.key.headers.iter().any(|k| k == name)
            })
        })
}

/// Whether two header names are one for an origin: case-insensitive, `_` read as `-`.
pub fn same_header_name(a: &str, b: &str) -> bool {
    let fold = |c: u8| match c {
        b'_' => b'-',
        c => c.to_ascii_lowercase(),
    };
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| fold(x) == fold(y))
}

/// The key for a request, or why the request bypasses the cache.
pub fn cache_key(section: &CacheSection, input: &KeyInput<'_>) -> Result<CacheKey, &'static str> {
    if input.path.len() > MAX_PATH_LEN {
        return Err("path-too-long");
    }
    let (path, query) = match input.path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (input.path, None),
    };
    check_path(path)?;
    // A control character in the query would end the URL's line of the key early. (One pass
    // over bytes: a `str` pattern search costs more in wasm than the path is long.)
    if input
        .path
        .bytes()
        .any(|b| b < b' ' || b == 0x7f || b == b'#')
    {
        return Err("ambiguous-path");
    }
    if input.authority.is_empty() || !input.authority.bytes().all(is_authority_byte) {
        return Err("bad-authority");
    }
    let params = query::parse(query.unwrap_or(""))?;
    let query = normalise_query(&section.key, &params)?;
    // Built by pushes, not `format!`: this runs on every cacheable request, hits included.
    let mut url = String::with_capacity(
        input.scheme.len() + 3 + input.authority.len() + path.len() + 1 + query.len(),
    );
    url.push_str(input.scheme);
    url.push_str("://");
    url.push_str(input.authority);
    let path_at = url.len();
    if let Some(authority) = url.get_mut(path_at - input.authority.len()..path_at) {
        authority.make_ascii_lowercase();
    }
    url.push_str(path);
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query);
    }
    let headers = HeaderView {
        headers: input.headers,
        non_utf8: input.non_utf8,
    };
    let tenant = match &section.tenant {
        Some(config) => cache_tenant(config, path, &params, &headers)?,
        None => None,
    };
    // No tenant is an empty field: a tenant id is never empty, so no id can name it.
    let tenant_field = tenant.as_deref().unwrap_or("");
    let mut primary =
        String::with_capacity(6 + input.service.len() + tenant_field.len() + url.len() + 64);
    for piece in ["v2\n", input.service, "\n", tenant_field, "\n", &url] {
        primary.push_str(piece);
    }
    for name in &section.key.headers {
        let value = match headers.single(name) {
            Single::Absent => "",
            Single::One(value) => value,
            Single::Repeated | Single::NotUtf8 => return Err("ambiguous-key-header"),
        };
        if value.len() > MAX_KEY_HEADER_LEN {
            return Err("key-header-too-long");
        }
        if value.contains(|c: char| c.is_control()) {
            return Err("ambiguous-key-header");
        }
        primary.push('\n');
        primary.push_str(name);
        primary.push('=');
        primary.push_str(value);
    }
    Ok(CacheKey {
        primary,
        tenant,
        url,
        path_at,
    })
}

/// RFC 3986 §3.2 `authority` without userinfo: host name, IP literal, port. A `/`, `?`, `#`,
/// `@` or `\` would let one authority pose as another plus a path in the key's URL.
fn is_authority_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'!' | b'$'
        | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'=' | b':' | b'[' | b']' | b'%')
}

/// Refuses paths that an origin may read differently from how the key reads them: no
/// `//`, no `.` or `..` segment, no byte outside printable ASCII, no `\\` or `;`, and no
/// percent-encoded delimiter (`%2F %5C %3B %2E %00 %23 %3F`, either case). One pass over the
/// bytes: this runs on every cacheable request, hits included.
fn check_path(path: &str) -> Result<(), &'static str> {
    const AMBIGUOUS: Result<(), &str> = Err("ambiguous-path");
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return AMBIGUOUS;
    }
    let mut segment_start = 1;
    for (i, &b) in bytes.iter().enumerate() {
        if b <= b' ' || b >= 0x7f || b == b'\\' || b == b';' {
            return AMBIGUOUS;
        }
        if b == b'%' && encodes_delimiter(bytes.get(i + 1..i + 3)) {
            return AMBIGUOUS;
        }
        if b == b'/' && i > 0 {
            // The segment that ends here; an empty one is `//`.
            if !is_plain_segment(bytes.get(segment_start..i)) {
                return AMBIGUOUS;
            }
            segment_start = i + 1;
        }
    }
    match bytes.get(segment_start..) {
        // A trailing `/` ends in an empty last segment, which is fine.
        Some([]) => Ok(()),
        last if is_plain_segment(last) => Ok(()),
        _ => AMBIGUOUS,
    }
}

/// The two hex digits after a `%` spell one of the delimiters an origin may decode.
fn encodes_delimiter(digits: Option<&[u8]>) -> bool {
    matches!(
        digits.map(|d| d.to_ascii_lowercase()).as_deref(),
        Some(b"2f" | b"5c" | b"3b" | b"2e" | b"00" | b"23" | b"3f")
    )
}

/// A path segment between two slashes that is neither empty, `.` nor `..`.
fn is_plain_segment(segment: Option<&[u8]>) -> bool {
    !matches!(segment, None | Some(b"" | b"." | b".."))
}

/// The keyed parameters in canonical spelling, sorted by name; a repeated name keeps its
/// values in the order sent (origins read the first, the last or all of them), see
/// [`query::sort`]. With
/// `"allow"`, a dropped parameter that some origin may read as an allowed one (`CITY`,
/// `city[]`, `ci%74y%00`) makes the query ambiguous.
fn normalise_query(key: &KeyConfig, params: &[Param]) -> Result<String, &'static str> {
    let mut kept: Vec<Param> = Vec::with_capacity(params.len());
    for param in params {
        let keep = match key.query {
            QueryMode::All => !query::matches(&key.query_deny, &param.name),
            QueryMode::Allow => query::matches(&key.query_allow, &param.name),
            QueryMode::None => false,
        };
        if keep {
            kept.push(param.clone());
        } else if key.query == QueryMode::Allow && may_match(&key.query_allow, &param.name) {
            return Err(AMBIGUOUS_QUERY);
        }
    }
    query::sort(&mut kept);
    Ok(query::join(&kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(json: &str) -> CacheSection {
        serde_json::from_str(json).unwrap()
    }

    fn key_for(
        section: &CacheSection,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<CacheKey, &'static str> {
        key_with(section, path, headers, &[])
    }

    fn key_with(
        section: &CacheSection,
        path: &str,
        headers: &[(&str, &str)],
        non_utf8: &[&str],
    ) -> Result<CacheKey, &'static str> {
        cache_key(
            section,
            &KeyInput {
                service: "leads",
                scheme: "http",
                authority: "API.example.com",
                path,
                headers,
                non_utf8,
            },
        )
    }

    #[test]
    fn the_path_and_query_are_the_urls_tail() {
        let s = section("{}");
        let key = key_for(&s, "/a/b?z=1&a=2", &[]).unwrap();
        assert_eq!(key.url, "http://api.example.com/a/b?a=2&z=1");
        assert_eq!(key.path_and_query(), "/a/b?a=2&z=1");
        assert_eq!(key_for(&s, "/", &[]).unwrap().path_and_query(), "/");
    }

    #[test]
    fn query_is_sorted_and_tracking_params_dropped() {
        let s = section("{}");
        let a = key_for(&s, "/a?b=2&a=1&utm_source=x&fbclid=y", &[]).unwrap();
        let b = key_for(&s, "/a?a=1&b=2", &[]).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.url, "http://api.example.com/a?a=1&b=2");
        assert_ne!(a, key_for(&s, "/a?a=1&b=3", &[]).unwrap());
    }

    #[test]
    fn allow_list_and_none() {
        let s = section(r#"{"key": {"query": "allow", "query_allow": ["page", "city"]}}"#);
        assert_eq!(
            key_for(&s, "/p?x=1&city=austin", &[]).unwrap().url,
            "http://api.example.com/p?city=austin"
        );
        let s = section(r#"{"key": {"query": "none"}}"#);
        assert_eq!(
            key_for(&s, "/p?x=1", &[]).unwrap().url,
            "http://api.example.com/p"
        );
    }

    #[test]
    fn unkeyed_headers_do_not_change_the_key_but_keyed_ones_do() {
        let s = section(r#"{"key": {"headers": ["accept-language"]}}"#);
        let plain = key_for(&s, "/a", &[("accept-language", "en")]).unwrap();
        let forwarded = key_for(
            &s,
            "/a",
            &[
                ("accept-language", "en"),
                ("x-forwarded-host", "evil.example"),
            ],
        )
        .unwrap();
        assert_eq!(plain, forwarded);
        assert_ne!(
            plain,
            key_for(&s, "/a", &[("accept-language", "de")]).unwrap()
        );
    }

    #[test]
    fn tenant_namespaces_keys_but_not_urls() {
        let s = section(r#"{"tenant": {"header": "x-location-id"}}"#);
        let a = key_for(&s, "/a", &[("x-location-id", "loc-1")]).unwrap();
        let b = key_for(&s, "/a", &[("x-location-id", "loc-2")]).unwrap();
        assert_ne!(a.primary, b.primary);
        assert_eq!(a.url, b.url);
        assert_eq!(a.tenant.as_deref(), Some("loc-1"));
        let s = section(r#"{"tenant": {"path_segment": 3}}"#);
        assert_eq!(
            key_for(&s, "/api/v1/acme/leads", &[])
                .unwrap()
                .tenant
                .as_deref(),
            Some("acme")
        );
        let s = section(r#"{"tenant": {"query": "location"}}"#);
        assert_eq!(
            key_for(&s, "/p?location=l7&x=1", &[])
                .unwrap()
                .tenant
                .as_deref(),
            Some("l7")
        );
    }

    #[test]
    fn ambiguous_paths_bypass() {
        let s = section("{}");
        for path in [
            "/account;.css",
            "/static/..%2Faccount",
            "/static/%2e%2e/account",
            "/a/../account",
            "/a/./b",
            "/a\\b",
            "/a%00.css",
            "/a%3Bb",
            "/a b",
            "relative",
            "/a#frag",
            "//a",
            "/a//b",
            "/a/b//",
        ] {
            assert_eq!(key_for(&s, path, &[]), Err("ambiguous-path"), "{path}");
        }
        assert!(key_for(&s, "/account/profile.css", &[]).is_ok());
    }

    #[test]
    fn no_tenant_id_shares_the_keys_of_requests_naming_none() {
        let s = section(r#"{"tenant": {"header": "x-location-id"}}"#);
        let none = key_for(&s, "/a", &[]).unwrap();
        assert_eq!(none.tenant, None);
        // Found by the `key` fuzz target: `-` had the keys of requests naming no tenant.
        for id in ["-", "default"] {
            let named = key_for(&s, "/a", &[("x-location-id", id)]).unwrap();
            assert_eq!(named.tenant.as_deref(), Some(id));
            assert_ne!(named.primary, none.primary, "{id:?}");
        }
        // An id the key cannot hold is not read as none: the request bypasses the cache.
        let long = "t".repeat(MAX_TENANT_LEN + 1);
        for id in ["", " ", long.as_str(), "a\u{1}b", "a\tb"] {
            assert_eq!(
                key_for(&s, "/a", &[("x-location-id", id)]),
                Err(super::super::tenant::INVALID_TENANT),
                "{id:?}"
            );
        }
    }

    #[test]
    fn underscore_spellings_of_tenant_and_forwarding_headers_are_caught() {
        let s = section(r#"{"tenant": {"header": "x-location-id"}}"#);
        assert_eq!(
            key_for(&s, "/a", &[("x_location_id", "victim")]),
            Err(super::super::tenant::REPEATED_TENANT)
        );
        let headers = [
            ("x_forwarded_host".to_string(), "evil".to_string()),
            ("X-Forwarded_Prefix".to_string(), "/x".to_string()),
            ("accept".to_string(), "*/*".to_string()),
        ];
        let present: Vec<&str> = unkeyed_headers_present(&s, &headers).collect();
        assert_eq!(present, ["x_forwarded_host", "X-Forwarded_Prefix"]);
        assert!(same_header_name("X_Method-Override", "x-method-override"));
        assert!(!same_header_name("x-forwarded-hos", "x-forwarded-host"));
    }

    #[test]
    fn control_characters_in_the_query_bypass() {
        let s = section(r#"{"key": {"headers": ["accept-language"]}}"#);
        // Found by the `key` fuzz target: a newline in the query added a line to the key, whose
        // parts are one line each (that is what keeps two requests' keys apart).
        for path in [
            "/a?a=1\naccept-language=de",
            "/a?a=\u{0}",
            "/a?a=\u{7f}",
            "/a?\t",
        ] {
            assert_eq!(key_for(&s, path, &[]), Err("ambiguous-path"), "{path:?}");
        }
        assert!(key_for(&s, "/a?a=%0A", &[]).is_ok());
    }

    #[test]
    fn authorities_with_url_delimiters_bypass() {
        let s = section("{}");
        let key = |authority: &str, path: &str| {
            cache_key(
                &s,
                &KeyInput {
                    service: "leads",
                    scheme: "http",
                    authority,
                    path,
                    headers: &[],
                    non_utf8: &[],
                },
            )
        };
        // Found by the `key` fuzz target: "a/b" + "/c" had the URL of "a" + "/b/c".
        for authority in [
            "a/b",
            "a?b",
            "a#b",
            "user@a",
            "a\\b",
            "caf\u{e9}",
            "a b",
            "a\u{7f}",
        ] {
            assert_eq!(key(authority, "/c"), Err("bad-authority"), "{authority:?}");
        }
        for authority in [
            "a",
            "a:8080",
            "[::1]:80",
            "xn--caf-dma.example",
            "a_b.example",
        ] {
            assert!(key(authority, "/c").is_ok(), "{authority:?}");
        }
        assert_ne!(key("a", "/b/c"), key("a/b", "/c"));
    }

    #[test]
    fn default_key_config_drops_tracking_params() {
        assert_eq!(
            KeyConfig::default().query_deny,
            ["utm_*", "fbclid", "gclid"]
        );
    }

    #[test]
    fn encoded_names_are_read_as_the_origin_reads_them() {
        let s = section(r#"{"key": {"query": "allow", "query_allow": ["city", "page"]}}"#);
        let url = |path: &str| key_for(&s, path, &[]).map(|k| k.url);
        // The poisoning request: the origin reads `%63ity` as `city`, and so does the key.
        let poison = url("/p?%63ity=PWNED&city=zz1").unwrap();
        assert_eq!(poison, "http://api.example.com/p?city=PWNED&city=zz1");
        assert_ne!(poison, url("/p?city=zz1").unwrap());
        // A repeated name keeps its order (first-wins and last-wins origins differ).
        assert_ne!(url("/p?city=a&city=b"), url("/p?city=b&city=a"));
        assert_eq!(url("/p?page=2&city=a"), url("/p?city=a&page=2"));
        // Spellings every origin reads alike share a key.
        assert_eq!(url("/p?ci%74y=%61"), url("/p?city=a"));
        assert_eq!(url("/p?city=a%2bb"), url("/p?city=a%2Bb"));
        assert_eq!(url("/p?city=a&&x=1&"), url("/p?city=a"));
        // Spellings origins may read differently do not.
        let plus = url("/p?city=a+b").unwrap();
        assert_ne!(Ok(plus.clone()), url("/p?city=a%20b"));
        assert_ne!(Ok(plus), url("/p?city=a%2Bb"));
        assert_ne!(url("/p?city=1%262"), url("/p?city=1&2"));
        assert_ne!(url("/p?city=1%3D2"), url("/p?city=1=2"));
        assert_ne!(url("/p?city"), url("/p?city="));
        // Forms readers disagree on bypass.
        for ambiguous in [
            "/p?city=a;city=b",
            "/p?x=1;city=b&city=a",
            "/p?city=%zz",
            "/p?city=%4",
            "/p?CITY=PWNED&city=zz1",
            "/p?city%5B%5D=PWNED&city=zz1",
            "/p?city[]=PWNED",
            "/p?city%00=PWNED&city=zz1",
            "/p?+city=PWNED&city=zz1",
            "/p?Page=9",
        ] {
            assert_eq!(url(ambiguous), Err(AMBIGUOUS_QUERY), "{ambiguous}");
        }
        // Unrelated parameters still pass unkeyed.
        assert_eq!(
            url("/p?x%26city=1&city=a&cities=2").unwrap(),
            "http://api.example.com/p?city=a"
        );
        // With "all", encoded names are keyed under their decoded spelling.
        let all = section("{}");
        assert_eq!(
            key_for(&all, "/p?utm%5Fsource=x&%61=1", &[]).unwrap().url,
            "http://api.example.com/p?a=1"
        );
        assert_eq!(
            key_for(&all, "/p?a=1;b=2", &[]),
            Err(AMBIGUOUS_QUERY),
            "`;` splits for some origins"
        );
    }

    #[test]
    fn invalid_or_repeated_tenants_bypass_instead_of_sharing() {
        let s = section(r#"{"tenant": {"header": "x-location-id"}}"#);
        let none = key_for(&s, "/a", &[]).unwrap();
        assert_eq!(none.tenant, None);
        let long_a = "a".repeat(MAX_TENANT_LEN + 1);
        let long_b = format!("{}b", "a".repeat(MAX_TENANT_LEN));
        for bad in [long_a.as_str(), long_b.as_str(), "x\u{1}y", ""] {
            assert_eq!(
                key_for(&s, "/a", &[("x-location-id", bad)]),
                Err("invalid-tenant"),
                "{bad:?}"
            );
        }
        // Lossily decoded bytes (two different ids read as U+FFFD) are not an id.
        assert_eq!(
            key_with(
                &s,
                "/a",
                &[("x-location-id", "\u{fffd}")],
                &["x-location-id"]
            ),
            Err("invalid-tenant")
        );
        assert_eq!(
            key_for(&s, "/a", &[("x-location-id", "a"), ("x-location-id", "b")]),
            Err("repeated-tenant")
        );
        // A tenant named like the "no tenant" placeholder of earlier keys is still its own.
        let dash = key_for(&s, "/a", &[("x-location-id", "-")]).unwrap();
        assert_ne!(dash.primary, none.primary);
    }

    #[test]
    fn key_headers_must_be_single_and_exact() {
        let s = section(r#"{"key": {"headers": ["accept-language"]}}"#);
        assert_eq!(
            key_for(
                &s,
                "/a",
                &[("accept-language", "en"), ("accept-language", "de")]
            ),
            Err("ambiguous-key-header")
        );
        assert_eq!(
            key_with(
                &s,
                "/a",
                &[("accept-language", "\u{fffd}")],
                &["accept-language"]
            ),
            Err("ambiguous-key-header")
        );
        assert!(key_with(&s, "/a", &[("accept-language", "en")], &["x-other"]).is_ok());
    }

    #[test]
    fn forwarding_and_override_headers_are_unkeyed_unless_listed() {
        let s = section(r#"{"key": {"headers": ["x-forwarded-prefix"]}}"#);
        let headers: Vec<(String, String)> = [
            "Forwarded",
            "x-forwarded-prefix",
            "x-http-method",
            "x-method-override",
            "x-http-method-override",
            "x-original-url",
            "x-rewrite-url",
            "x-forwarded-scheme",
            "accept",
        ]
        .iter()
        .map(|n| (n.to_string(), "v".to_string()))
        .collect();
        let present: Vec<&str> = unkeyed_headers_present(&s, &headers).collect();
        // As the request spells them, in its order.
        assert_eq!(
            present,
            [
                "Forwarded",
                "x-http-method",
                "x-method-override",
                "x-http-method-override",
                "x-original-url",
                "x-rewrite-url",
                "x-forwarded-scheme",
            ]
        );
    }

    /// The key-normalisation property, against models of how origins read a query.
    #[cfg(not(target_arch = "wasm32"))]
    mod properties {
        use super::*;
        use std::collections::{BTreeMap, HashMap};

        use proptest::prelude::*;

        /// How one kind of origin reads a query: which separators it splits at, whether `+` is a
        /// space, and how it compares names.
        #[derive(Debug, Clone, Copy)]
        struct Reader {
            semicolon: bool,
            plus_is_space: bool,
            names: NameRule,
        }

        #[derive(Debug, Clone, Copy, PartialEq)]
        enum NameRule {
            Exact,
            CaseInsensitive,
            /// PHP: leading spaces dropped, `.` and ` ` read as `_`, `name[...]` read as `name`.
            Php,
        }

        const READERS: [Reader; 5] = [
            Reader {
                semicolon: false,
                plus_is_space: true,
                names: NameRule::Exact,
            },
            Reader {
                semicolon: false,
                plus_is_space: false,
                names: NameRule::Exact,
            },
            Reader {
                semicolon: true,
                plus_is_space: true,
                names: NameRule::Exact,
            },
            Reader {
                semicolon: false,
                plus_is_space: true,
                names: NameRule::CaseInsensitive,
            },
            Reader {
                semicolon: false,
                plus_is_space: true,
                names: NameRule::Php,
            },
        ];

        fn decode(component: &str, plus_is_space: bool) -> Vec<u8> {
            let bytes = component.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < bytes.len() {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match (bytes[i], hex) {
                    (b'%', Some(byte)) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    (b'+', _) if plus_is_space => out.push(b' '),
                    (byte, _) => out.push(byte),
                }
                i += 1;
            }
            out
        }

        type View = BTreeMap<Vec<u8>, Vec<Option<Vec<u8>>>>;

        /// What `reader` reads from `query` that the resource depends on: every parameter the
        /// key settings say the origin uses, by name, with its values in order.
        fn view(reader: Reader, query: &str, key: &KeyConfig) -> View {
            let mut view = View::new();
            let pieces = query.split(|c| c == '&' || (reader.semicolon && c == ';'));
            for piece in pieces.filter(|p| !p.is_empty()) {
                let (name, value) = match piece.split_once('=') {
                    Some((n, v)) => (n, Some(v)),
                    None => (piece, None),
                };
                let mut name = decode(name, reader.plus_is_space);
                match reader.names {
                    NameRule::Exact => {}
                    NameRule::CaseInsensitive => name.make_ascii_lowercase(),
                    NameRule::Php => {
                        if let Some(cut) = name.iter().position(|b| *b == b'[') {
                            name.truncate(cut);
                        }
                        let start = name.iter().position(|b| *b != b' ').unwrap_or(name.len());
                        name = name[start..]
                            .iter()
                            .map(|b| if *b == b'.' || *b == b' ' { b'_' } else { *b })
                            .collect();
                    }
                }
                let text = String::from_utf8_lossy(&name).into_owned();
                let used = match key.query {
                    QueryMode::All => !query::matches(&key.query_deny, &text),
                    QueryMode::Allow => query::matches(&key.query_allow, &text),
                    QueryMode::None => false,
                };
                if used {
                    view.entry(name)
                        .or_default()
                        .push(value.map(|v| decode(v, reader.plus_is_space)));
                }
            }
            view
        }

        const NAMES: [&str; 22] = [
            "ci_ty",
            "c%20ity",
            "c ity",
            "utm.source",
            "city",
            "%63ity",
            "ci%74y",
            "CITY",
            "City",
            "city%5B%5D",
            "city[]",
            "page",
            "pag%65",
            "x",
            "utm_source",
            "utm%5Fsource",
            "",
            "ci.ty",
            "%20city",
            "city%00",
            "x%26city",
            "c+ity",
        ];
        const VALUES: [&str; 15] = [
            "a", "b", "%61", "A", "a+b", "a%20b", "a%2Bb", "a%2bb", "1%262", "1%3D2", "1=2", "",
            "%7E", "~", "a%3Bb",
        ];

        fn piece() -> impl Strategy<Value = String> {
            (
                0..NAMES.len(),
                prop::option::weighted(0.85, 0..VALUES.len()),
                prop::sample::select(vec!["&", "&", "&", "&", ";", "&&"]),
            )
                .prop_map(|(n, v, sep)| match v {
                    Some(v) => format!("{}={}{sep}", NAMES[n], VALUES[v]),
                    None => format!("{}{sep}", NAMES[n]),
                })
        }

        fn query() -> impl Strategy<Value = String> {
            prop::collection::vec(piece(), 1..4).prop_map(|pieces| pieces.concat())
        }

        /// Spells a query differently the way every reader reads alike: unreserved characters
        /// percent-encoded (upper or lower hex), other escapes re-cased, empty pieces added.
        fn respell(query: &str, choices: &[u8]) -> String {
            let mut out = String::new();
            let mut choice = choices.iter().cycle();
            let bytes = query.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                let c = *choice.next().unwrap_or(&0);
                let b = bytes[i];
                if b == b'%' && i + 3 <= bytes.len() {
                    let hex = &query[i + 1..i + 3];
                    out.push('%');
                    out.push_str(&if c.is_multiple_of(2) {
                        hex.to_ascii_lowercase()
                    } else {
                        hex.to_ascii_uppercase()
                    });
                    i += 3;
                    continue;
                }
                if (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) && c.is_multiple_of(3) {
                    out.push_str(&if c.is_multiple_of(2) {
                        format!("%{b:02x}")
                    } else {
                        format!("%{b:02X}")
                    });
                } else if b == b'&' && c.is_multiple_of(5) {
                    out.push_str("&&");
                } else {
                    out.push(char::from(b));
                }
                i += 1;
            }
            out
        }

        fn sections() -> [CacheSection; 2] {
            [
                section(r#"{"key": {"query": "allow", "query_allow": ["city", "page"]}}"#),
                section(r#"{"key": {"query": "all", "query_deny": ["utm_*"]}}"#),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

            /// Two queries that share a key are read alike by every origin model (form decoders,
            /// RFC 3986 decoders, `;`-splitting, case-insensitive and PHP-style names): the key
            /// never merges requests an origin could answer differently.
            #[test]
            fn a_shared_key_means_every_origin_reads_the_same_resource(
                queries in prop::collection::vec(query(), 24..48),
            ) {
                for s in sections() {
                    let mut groups: HashMap<String, &String> = HashMap::new();
                    for q in &queries {
                        let Ok(key) = key_for(&s, &format!("/p?{q}"), &[]) else { continue };
                        let Some(first) = groups.get(&key.primary) else {
                            groups.insert(key.primary, q);
                            continue;
                        };
                        for reader in READERS {
                            prop_assert_eq!(
                                view(reader, first, &s.key),
                                view(reader, q, &s.key),
                                "{:?} reads {:?} and {:?} differently, yet they share a key",
                                reader, first, q
                            );
                        }
                    }
                }
            }

            /// Spellings every origin reads alike (percent-encoded unreserved characters, hex
            /// case, empty pieces) share one key.
            #[test]
            fn every_spelling_of_one_query_has_one_key(
                q in query(),
                choices in prop::collection::vec(any::<u8>(), 1..32),
            ) {
                let other = respell(&q, &choices);
                for s in sections() {
                    let a = key_for(&s, &format!("/p?{q}"), &[]);
                    let b = key_for(&s, &format!("/p?{other}"), &[]);
                    prop_assert_eq!(&a, &b, "{} vs {}", q, other);
                }
            }

            /// Any path, query and header bytes give a key or a reason, never a panic.
            #[test]
            fn any_input_gives_a_key_or_a_reason(
                path in "/[ -~]{0,40}",
                tenant in proptest::option::of(r"[\x00-\x7e]{0,140}"),
            ) {
                let s = section(r#"{"tenant": {"header": "x-location-id"}}"#);
                let headers: Vec<(&str, &str)> =
                    tenant.iter().map(|t| ("x-location-id", t.as_str())).collect();
                let _ = key_for(&s, &path, &headers);
            }

            /// The one-pass path check refuses exactly what the plain spelling refuses, on
            /// paths built from the characters that matter to it.
            #[test]
            fn the_path_check_agrees_with_its_plain_spelling(
                path in r"/?([a-z]|[/.;%\\ ]|%(2[fFeE3]|5[cC]|3[bBfF]|00|[0-9a-fA-F]{2})|[\x00\x7f\xe9]){0,16}",
            ) {
                prop_assert_eq!(check_path(&path), check_path_reference(&path), "{:?}", path);
            }
        }

        /// The straightforward spelling of `check_path`, kept as its oracle.
        fn check_path_reference(path: &str) -> Result<(), &'static str> {
            if !path.starts_with('/') || path.contains("//") {
                return Err("ambiguous-path");
            }
            if path
                .bytes()
                .any(|b| b <= b' ' || b >= 0x7f || b == b'\\' || b == b';')
            {
                return Err("ambiguous-path");
            }
            let lower = path.to_ascii_lowercase();
            const ENCODED_DELIMITERS: [&str; 7] = ["%2f", "%5c", "%3b", "%2e", "%00", "%23", "%3f"];
            if ENCODED_DELIMITERS.iter().any(|d| lower.contains(d)) {
                return Err("ambiguous-path");
            }
            if path
                .split('/')
                .any(|segment| segment == "." || segment == "..")
            {
                return Err("ambiguous-path");
            }
            Ok(())
        }
    }
}

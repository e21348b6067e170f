//! Cache keys: which requests may share a stored response.
//!
//! A key names the service, the tenant, scheme, authority, path, the normalised query and the
//! configured request headers. Requests whose path could mean different things to us and to
//! the origin (encoded delimiters, dot segments, `;`, backslashes, control characters) are not
//! cached at all: that is what keeps a private response from landing under a public key.

use crate::policy::{CacheSection, QueryMode, TenantConfig};

/// What a request's key is derived from.
pub struct KeyInput<'a> {
    pub service: &'a str,
    pub scheme: &'a str,
    pub authority: &'a str,
    /// `:path` including the query string.
    pub path: &'a str,
    /// Reads a request header (lower-case name).
    pub header: &'a dyn Fn(&str) -> Option<String>,
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
}

/// Longest path (with query) the cache considers.
pub const MAX_PATH_LEN: usize = 2048;
/// Longest tenant id; a request naming a longer one bypasses the cache.
pub const MAX_TENANT_LEN: usize = 128;
/// Longest value of a key header; longer values bypass the cache.
pub const MAX_KEY_HEADER_LEN: usize = 256;

/// Request headers that classic cache-poisoning attacks use to change what an origin answers
/// without changing the URL. They are removed from cacheable requests unless the service
/// makes them part of its key.
pub const UNKEYED_POISONING_HEADERS: [&str; 9] = [
    "x-forwarded-host",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-original-url",
    "x-rewrite-url",
    "x-host",
    "x-http-method-override",
    "x-original-host",
];

/// The poisoning headers a cacheable request carries that its service does not key on.
pub fn unkeyed_headers_present<'a>(
    section: &'a CacheSection,
    request_headers: &'a [(String, String)],
) -> impl Iterator<Item = &'static str> + 'a {
    UNKEYED_POISONING_HEADERS.into_iter().filter(move |name| {
        !section.key.headers.iter().any(|k| k == name)
            && request_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
    })
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
    // A control character in the query would end the URL's line of the key early.
    if input.path.contains('#') || input.path.bytes().any(|b| b < b' ' || b == 0x7f) {
        return Err("ambiguous-path");
    }
    let authority = input.authority.to_ascii_lowercase();
    if authority.is_empty() || !authority.bytes().all(is_authority_byte) {
        return Err("bad-authority");
    }
    let query = normalise_query(section, query.unwrap_or(""));
    let url = if query.is_empty() {
        format!("{}://{authority}{path}", input.scheme)
    } else {
        format!("{}://{authority}{path}?{query}", input.scheme)
    };
    let tenant = section
        .tenant
        .as_ref()
        .and_then(|t| tenant_id(t, input.path, input.header));
    if tenant
        .as_ref()
        .is_some_and(|t| t.len() > MAX_TENANT_LEN || t.contains(|c: char| c.is_control()))
    {
        return Err("bad-tenant");
    }
    // No tenant is an empty line: a tenant id is never empty, so no id (not even `-`) can
    // share the keys of requests that name none. `v2`: `v1` keys wrote `-` there.
    let mut primary = format!(
        "v2\n{}\n{}\n{url}",
        input.service,
        tenant.as_deref().unwrap_or_default()
    );
    for name in &section.key.headers {
        let value = (input.header)(name).unwrap_or_default();
        if value.len() > MAX_KEY_HEADER_LEN || value.contains(|c: char| c.is_control()) {
            return Err("key-header-too-long");
        }
        primary.push('\n');
        primary.push_str(name);
        primary.push('=');
        primary.push_str(&value);
    }
    Ok(CacheKey {
        primary,
        tenant,
        url,
    })
}

/// RFC 3986 §3.2 `authority` without userinfo: host name, IP literal, port. A `/`, `?`, `#`,
/// `@` or `\` would let one authority pose as another plus a path in the key's URL.
fn is_authority_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

/// Refuses paths that an origin may read differently from how the key reads them.
fn check_path(path: &str) -> Result<(), &'static str> {
    if !path.starts_with('/') {
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

fn param_matches(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == pattern,
        })
}

/// The query with parameters filtered by the key settings and sorted by name, then value.
fn normalise_query(section: &CacheSection, query: &str) -> String {
    let key = &section.key;
    let mut params: Vec<&str> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .filter(|p| {
            let name = p.split('=').next().unwrap_or("");
            match key.query {
                QueryMode::All => !param_matches(&key.query_deny, name),
                QueryMode::Allow => param_matches(&key.query_allow, name),
                QueryMode::None => false,
            }
        })
        .collect();
    params.sort_by(|a, b| {
        let (an, av) = a.split_once('=').unwrap_or((a, ""));
        let (bn, bv) = b.split_once('=').unwrap_or((b, ""));
        (an, av).cmp(&(bn, bv))
    });
    params.join("&")
}

/// A request's tenant id from its header, query parameter or path segment (`full_path` may
/// carry a query string); `None` when the request names none.
pub fn tenant_id(
    tenant: &TenantConfig,
    full_path: &str,
    header: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(name) = &tenant.header {
        return header(name).filter(|v| !v.is_empty());
    }
    let (path, query) = match full_path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (full_path, None),
    };
    if let Some(name) = &tenant.query {
        let query = query?;
        return query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty());
    }
    let index = usize::try_from(tenant.path_segment?).ok()?;
    path.split('/')
        .nth(index)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::KeyConfig;

    fn section(json: &str) -> CacheSection {
        serde_json::from_str(json).unwrap()
    }

    fn key_for(
        section: &CacheSection,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<CacheKey, &'static str> {
        let headers: Vec<(String, String)> = headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        cache_key(
            section,
            &KeyInput {
                service: "leads",
                scheme: "http",
                authority: "API.example.com",
                path,
                header: &lookup,
            },
        )
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
        assert_eq!(
            key_for(&s, "/a", &[("x-location-id", "")]),
            Ok(none.clone())
        );
        // Found by the `key` fuzz target: `-` had the keys of requests naming no tenant.
        for id in ["-", " ", "default"] {
            let named = key_for(&s, "/a", &[("x-location-id", id)]).unwrap();
            assert_eq!(named.tenant.as_deref(), Some(id));
            assert_ne!(named.primary, none.primary, "{id:?}");
        }
        // An id the key cannot hold is not read as none: the request bypasses the cache.
        let long = "t".repeat(MAX_TENANT_LEN + 1);
        for id in [long.as_str(), "a\u{1}b", "a\tb"] {
            assert_eq!(
                key_for(&s, "/a", &[("x-location-id", id)]),
                Err("bad-tenant"),
                "{id:?}"
            );
        }
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
                    header: &|_: &str| None,
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
}

//! A `POST` response stored as its target's `GET` response (RFC 9110 §9.3.3, RFC 9111 §4.4):
//! allowed when it has explicit freshness and a `Content-Location` naming the request's own URL
//! — the origin then says the response is the current representation of that URL.

use super::exchange::response_facts_for;
use crate::policy::header_list::{header, Headers};

/// Whether the response (`status`, `headers`) to a POST of `path` (with its query) on
/// `scheme://authority` may be stored as the GET response for that URL. Whether it is stored
/// is then decided as for a GET. `targeted`: the service's targeted cache-control field.
pub fn reusable_for_get(
    status: u16,
    headers: &Headers,
    targeted: Option<&str>,
    (scheme, authority, path): (&str, &str, &str),
) -> bool {
    let facts = response_facts_for(status, headers, targeted);
    let cc = &facts.cache_control;
    let explicit = cc.s_maxage.is_some() || cc.max_age.is_some() || facts.expires.is_some();
    explicit
        && header(headers, "content-location")
            .and_then(|value| same_origin_path(value.trim(), scheme, authority))
            .is_some_and(|location| location == path)
}

/// `Location`/`Content-Location` as a path (with its query), when it points at the request's
/// own origin.
pub fn same_origin_path(value: &str, scheme: &str, authority: &str) -> Option<String> {
    if value.starts_with('/') && !value.starts_with("//") {
        return Some(value.to_string());
    }
    let rest = value.strip_prefix(scheme)?.strip_prefix("://")?;
    let path = rest.strip_prefix(authority)?;
    if path.is_empty() {
        return Some("/".to_string());
    }
    path.starts_with('/').then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::header_list::owned as h;

    const TARGET: (&str, &str, &str) = ("https", "edge.test", "/p?q=1");

    #[test]
    fn explicit_freshness_and_its_own_url() {
        for location in ["/p?q=1", "https://edge.test/p?q=1", " /p?q=1 "] {
            let headers = h(&[
                ("cache-control", "max-age=60"),
                ("content-location", location),
            ]);
            assert!(reusable_for_get(200, &headers, None, TARGET), "{location}");
        }
        let expires = h(&[
            ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ("content-location", "/p?q=1"),
        ]);
        assert!(reusable_for_get(200, &expires, None, TARGET));
        let cdn = h(&[
            ("cdn-cache-control", "max-age=60"),
            ("content-location", "/p?q=1"),
        ]);
        assert!(reusable_for_get(200, &cdn, None, TARGET));
    }

    #[test]
    fn anything_else_is_not() {
        for location in [
            "/p",
            "/p?q=2",
            "http://edge.test/p?q=1",
            "https://other.test/p?q=1",
            "//edge.test/p?q=1",
            "",
        ] {
            let headers = h(&[
                ("cache-control", "max-age=60"),
                ("content-location", location),
            ]);
            assert!(
                !reusable_for_get(200, &headers, None, TARGET),
                "{location:?}"
            );
        }
        assert!(!reusable_for_get(
            200,
            &h(&[("content-location", "/p?q=1")]),
            None,
            TARGET
        ));
        assert!(!reusable_for_get(
            200,
            &h(&[("cache-control", "max-age=60")]),
            None,
            TARGET
        ));
    }

    #[test]
    fn same_origin_paths() {
        assert_eq!(same_origin_path("/a", "http", "h").as_deref(), Some("/a"));
        assert_eq!(
            same_origin_path("http://h", "http", "h").as_deref(),
            Some("/")
        );
        assert_eq!(
            same_origin_path("http://h/a", "http", "h").as_deref(),
            Some("/a")
        );
        assert_eq!(same_origin_path("http://hx/a", "http", "h"), None);
        assert_eq!(same_origin_path("//h/a", "http", "h"), None);
        assert_eq!(same_origin_path("a", "http", "h"), None);
    }
}

//! What a trace is asked about: a request, and optionally the origin's response.

use serde::{Deserialize, Serialize};

/// A request to explain. `url` is `/path?query` or `scheme://authority/path?query`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TraceRequest {
    pub method: String,
    pub url: String,
    /// `name: value` lines (a repeated header on several lines).
    pub headers: String,
    pub body: String,
    /// The origin's answer to the request, when known.
    pub response: Option<OriginResponse>,
    /// Unix seconds the request is evaluated at (default: the response's `Date`, else 0).
    pub now: Option<u64>,
    /// Also explain the same request sent again this many seconds later (a hit, stale, …).
    pub again_after_s: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct OriginResponse {
    pub status: u16,
    /// `name: value` lines.
    pub headers: String,
    /// Body length (stands in for `Content-Length` when the headers have none).
    pub body_bytes: Option<u64>,
}

/// `name: value` lines into lower-case names and trimmed values; blank lines and lines
/// without `:` (after a leading `:` of a pseudo-header) are skipped.
pub fn parse_header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (pseudo, rest) = match line.strip_prefix(':') {
                Some(rest) => (":", rest),
                None => ("", line),
            };
            let (name, value) = rest.split_once(':')?;
            let name = name.trim();
            (!name.is_empty()).then(|| {
                (
                    format!("{pseudo}{}", name.to_ascii_lowercase()),
                    value.trim().to_string(),
                )
            })
        })
        .collect()
}

/// Scheme, authority and path (with query) of a request's `url`; the authority falls back to
/// a `host` header, then `localhost`.
pub(crate) fn split_url(url: &str, headers: &[(String, String)]) -> (String, String, String) {
    let url = url.trim();
    let host_header = || {
        headers
            .iter()
            .find(|(n, _)| n == "host" || n == ":authority")
            .map_or_else(|| "localhost".to_string(), |(_, v)| v.clone())
    };
    for scheme in ["http", "https"] {
        if let Some(rest) = url.strip_prefix(&format!("{scheme}://")) {
            let (authority, path) = match rest.find(['/', '?']) {
                Some(at) => (
                    rest.get(..at).unwrap_or(rest),
                    rest.get(at..).unwrap_or("/"),
                ),
                None => (rest, "/"),
            };
            let path = if path.starts_with('?') {
                format!("/{path}")
            } else {
                path.to_string()
            };
            return (scheme.to_string(), authority.to_string(), path);
        }
    }
    let path = if url.is_empty() { "/" } else { url };
    ("http".to_string(), host_header(), path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_and_urls() {
        let headers = parse_header_lines("X-Location-Id: loc-1\n\n:authority: a.test\nbad\n");
        assert_eq!(
            headers,
            vec![
                ("x-location-id".to_string(), "loc-1".to_string()),
                (":authority".to_string(), "a.test".to_string())
            ]
        );
        assert_eq!(
            split_url("https://Edge.test:8443/a?b=1", &[]),
            ("https".into(), "Edge.test:8443".into(), "/a?b=1".into())
        );
        assert_eq!(
            split_url("/a", &headers),
            ("http".into(), "a.test".into(), "/a".into())
        );
        assert_eq!(
            split_url("http://h?x", &[]),
            ("http".into(), "h".into(), "/?x".into())
        );
    }
}

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
/// without `:` (after a leading `:` of a pseudo-header) are skipped. [`header_lines`] refuses
/// those lines instead.
pub fn parse_header_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|line| header_line(line).ok().flatten())
        .collect()
}

/// One `name: value` line: `Ok(None)` when blank, an error saying what is wrong when it is not
/// a header (no `:`, an empty name, a name with characters a header name cannot have).
pub fn header_line(line: &str) -> Result<Option<(String, String)>, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(None);
    }
    let (pseudo, rest) = match line.strip_prefix(':') {
        Some(rest) => (":", rest),
        None => ("", line),
    };
    let Some((name, value)) = rest.split_once(':') else {
        return Err(format!("{line:?} is not NAME: VALUE (no colon)"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{line:?} has no header name before the colon"));
    }
    if !is_token(name) {
        return Err(format!("{line:?}: {name:?} is not a header name"));
    }
    Ok(Some((
        format!("{pseudo}{}", name.to_ascii_lowercase()),
        value.trim().to_string(),
    )))
}

/// `name: value` lines, refusing the first that is not a header (`what` names the field, e.g.
/// `request header`; the error says which line).
pub fn header_lines(text: &str, what: &str) -> Result<Vec<(String, String)>, String> {
    let mut headers = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match header_line(line) {
            Ok(Some(header)) => headers.push(header),
            Ok(None) => {}
            Err(err) => return Err(format!("{what} line {}: {err}", n + 1)),
        }
    }
    Ok(headers)
}

/// An RFC 9110 token (a method, a header name).
pub fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// What is wrong with a request given to [`crate::trace`], if anything: a method that is not
/// a token, a header line that is not `name: value`, a status outside 100..=599. The trace
/// refuses such a request rather than tracing a different one.
pub fn check_request(request: &TraceRequest) -> Result<(), String> {
    let method = request.method.trim();
    if !method.is_empty() && !is_token(method) {
        return Err(format!("method {method:?} is not an HTTP method (a token)"));
    }
    header_lines(&request.headers, "request header")?;
    if let Some(response) = &request.response {
        if !(100..=599).contains(&response.status) {
            return Err(format!(
                "origin status {} is not an HTTP status (100 to 599)",
                response.status
            ));
        }
        header_lines(&response.headers, "response header")?;
    }
    Ok(())
}

/// The URL without its fragment (`#…`, which clients never send), and the fragment dropped.
pub(crate) fn without_fragment(url: &str) -> (&str, Option<&str>) {
    match url.trim().split_once('#') {
        Some((url, fragment)) => (url, Some(fragment)),
        None => (url.trim(), None),
    }
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

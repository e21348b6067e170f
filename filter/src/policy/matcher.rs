//! Which service a request belongs to: a compiled `match` section (authority, path exact or
//! prefix, methods) tested against the attributes the glue reads from the request.

use super::MatchConfig;

/// The request attributes services are matched by, as the glue reads them from the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestAttributes<'a> {
    /// `:authority` (host, optionally with port).
    pub authority: &'a str,
    /// `:path`, possibly with a query string.
    pub path: &'a str,
    /// `:method`.
    pub method: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Exact(String),
}

/// A compiled [`MatchConfig`]: every attribute it names must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// Lower-cased; compared with the port stripped from the request unless it has one itself.
    authority: Option<String>,
    path: PathMatch,
    methods: Option<Vec<String>>,
}

impl Matcher {
    pub fn new(config: &MatchConfig) -> Self {
        let path = match (&config.path_exact, &config.path_prefix) {
            (Some(exact), _) => PathMatch::Exact(exact.clone()),
            (None, Some(prefix)) => PathMatch::Prefix(prefix.clone()),
            (None, None) => PathMatch::Any,
        };
        Self {
            authority: config.authority.as_ref().map(|a| a.to_ascii_lowercase()),
            path,
            methods: config.methods.clone(),
        }
    }

    pub fn matches(&self, request: &RequestAttributes<'_>) -> bool {
        self.method_matches(request.method)
            && self.path_matches(request.path)
            && self.authority_matches(request.authority)
    }

    fn method_matches(&self, method: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|methods| methods.iter().any(|m| m == method))
    }

    fn path_matches(&self, path: &str) -> bool {
        let path = path_without_query(path);
        match &self.path {
            PathMatch::Any => true,
            PathMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathMatch::Exact(exact) => path == exact,
        }
    }

    fn authority_matches(&self, authority: &str) -> bool {
        let Some(pattern) = &self.authority else {
            return true;
        };
        let candidate = if has_port(pattern) {
            authority
        } else {
            host_of(authority)
        };
        candidate.eq_ignore_ascii_case(pattern)
    }
}

/// The path without its query string or fragment.
pub fn path_without_query(path: &str) -> &str {
    // A byte search: a `char` pattern costs more in wasm than a short path is long.
    match path.bytes().position(|b| b == b'?' || b == b'#') {
        Some(end) => path.get(..end).unwrap_or(path),
        None => path,
    }
}

fn has_port(authority: &str) -> bool {
    host_of(authority).len() != authority.len()
}

/// `host:port` → `host`; `[v6]:port` → `[v6]`.
fn host_of(authority: &str) -> &str {
    let port_start = match authority.rfind(']') {
        Some(bracket) => authority
            .get(bracket..)
            .and_then(|rest| rest.find(':'))
            .map(|colon| bracket + colon),
        None => authority.rfind(':'),
    };
    match port_start {
        Some(colon) => authority.get(..colon).unwrap_or(authority),
        None => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(authority: &'a str, path: &'a str, method: &'a str) -> RequestAttributes<'a> {
        RequestAttributes {
            authority,
            path,
            method,
        }
    }

    fn matcher(authority: Option<&str>, prefix: Option<&str>, exact: Option<&str>) -> Matcher {
        Matcher::new(&MatchConfig {
            authority: authority.map(str::to_string),
            path_prefix: prefix.map(str::to_string),
            path_exact: exact.map(str::to_string),
            methods: None,
        })
    }

    #[test]
    fn prefix_ignores_query_string() {
        let m = matcher(None, Some("/api/v1/leads/"), None);
        assert!(m.matches(&request("x", "/api/v1/leads/7?full=1", "GET")));
        assert!(!m.matches(&request("x", "/api/v1/lead?x=/api/v1/leads/", "GET")));
    }

    #[test]
    fn exact_path_must_be_equal_without_query() {
        let m = matcher(None, None, Some("/health"));
        assert!(m.matches(&request("x", "/health?probe=1", "GET")));
        assert!(!m.matches(&request("x", "/healthz", "GET")));
    }

    #[test]
    fn authority_is_case_insensitive_and_ignores_request_port() {
        let m = matcher(Some("API.example.com"), None, None);
        assert!(m.matches(&request("api.EXAMPLE.com:8080", "/", "GET")));
        assert!(!m.matches(&request("other.example.com", "/", "GET")));
    }

    #[test]
    fn authority_with_port_needs_that_port() {
        let m = matcher(Some("localhost:10000"), None, None);
        assert!(m.matches(&request("localhost:10000", "/", "GET")));
        assert!(!m.matches(&request("localhost:9999", "/", "GET")));
        assert!(!m.matches(&request("localhost", "/", "GET")));
    }

    #[test]
    fn ipv6_authority() {
        let m = matcher(Some("[::1]"), None, None);
        assert!(m.matches(&request("[::1]:10000", "/", "GET")));
        assert!(!m.matches(&request("[::2]", "/", "GET")));
    }

    #[test]
    fn methods_restrict() {
        let m = Matcher::new(&MatchConfig {
            methods: Some(vec!["POST".into()]),
            ..MatchConfig::default()
        });
        assert!(m.matches(&request("x", "/webhooks", "POST")));
        assert!(!m.matches(&request("x", "/webhooks", "GET")));
    }
}

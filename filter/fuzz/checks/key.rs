//! Cache keys from request paths, queries, hosts and headers (all from clients): derivation never
//! panics; a key has one line per part, so no input can forge another request's key; the order
//! of query parameters does not matter and a normalised query normalises to itself; requests of
//! different tenants never share a key.
//!
//! Written against the public `cache_key` only, so it holds whatever the normalisation does.

use edge_filter::policy::cache::key::{cache_key, CacheKey, KeyInput};
use edge_filter::policy::CacheSection;
use serde_json::{json, Value};

use super::input::Input;

const TENANT_HEADER: &str = "x-tenant";

fn section(input: &mut Input<'_>) -> Option<CacheSection> {
    let names = ["a", "b", "page", "t", "utm_*", "b*", "%61", "A"];
    let list = |input: &mut Input<'_>| -> Vec<&str> {
        (0..input.below(4))
            .filter_map(|_| input.pick(&names))
            .collect()
    };
    let headers: Vec<&str> = (0..input.below(3))
        .filter_map(|_| input.pick(&["accept-language", "x-v"]))
        .collect();
    let tenant = match input.range(0, 3) {
        0 => Value::Null,
        1 => json!({ "header": TENANT_HEADER }),
        2 => json!({ "query": "t" }),
        _ => json!({ "path_segment": input.range(1, 4) }),
    };
    let section = json!({
        "key": {
            "query": input.pick(&["all", "allow", "none"]),
            "query_allow": list(input),
            "query_deny": list(input),
            "headers": headers,
        },
        "tenant": tenant,
    });
    serde_json::from_value(section).ok()
}

struct Request {
    scheme: &'static str,
    authority: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    fn key(&self, section: &CacheSection) -> Result<CacheKey, &'static str> {
        cache_key(
            section,
            &KeyInput {
                service: "svc",
                scheme: self.scheme,
                authority: &self.authority,
                path: &self.path,
                headers: &edge_filter::policy::header_list::borrowed(&self.headers),
                non_utf8: &[],
            },
        )
    }

    fn with_path(&self, path: String) -> Self {
        Self {
            scheme: self.scheme,
            authority: self.authority.clone(),
            path,
            headers: self.headers.clone(),
        }
    }
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(section) = section(&mut input) else {
        return;
    };
    let mut headers = vec![
        (TENANT_HEADER.to_string(), input.string(12)),
        ("accept-language".to_string(), input.string(12)),
        ("x-v".to_string(), input.string(12)),
    ];
    headers.retain(|_| !input.bool());
    let request = Request {
        scheme: input.pick(&["http", "https"]).unwrap_or("http"),
        authority: input.string(24),
        path: String::from_utf8_lossy(input.rest()).into_owned(),
        headers,
    };
    let Ok(key) = request.key(&section) else {
        return;
    };

    let parts = 4 + section.key.headers.len();
    assert_eq!(
        key.primary.split('\n').count(),
        parts,
        "one line per key part: {:?}",
        key.primary
    );
    assert_eq!(key.primary.split('\n').nth(1), Some("svc"));
    assert!(key.url.starts_with(&format!("{}://", request.scheme)));
    assert!(key.primary.contains(&key.url));
    if let Some(tenant) = &key.tenant {
        assert!(!tenant.is_empty() && !tenant.contains(char::is_control));
    }

    if let Some((path, query)) = request.path.split_once('?') {
        // The order of parameters with distinct names does not matter. (Several with one name
        // may mean a list, whose order an origin may read; the target leaves that open.)
        let mut names: Vec<&str> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split('=').next().unwrap_or_default())
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        if names.len() == count {
            let reversed: Vec<&str> = query.split('&').rev().collect();
            let swapped = request.with_path(format!("{path}?{}", reversed.join("&")));
            assert_eq!(swapped.key(&section), Ok(key.clone()), "order of {query:?}");
        }
    }

    // The URL reads back as the request's authority and path: no authority can pose as
    // another authority plus a path (`a/b` + `/c` against `a` + `/b/c`).
    let origin = format!(
        "{}://{}",
        request.scheme,
        request.authority.to_ascii_lowercase()
    );
    let path_and_query = key.url.strip_prefix(&origin).unwrap_or_default();
    let after_scheme = key.url.split_once("://").map_or("", |(_, rest)| rest);
    let url_authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    assert_eq!(
        url_authority,
        request.authority.to_ascii_lowercase(),
        "the URL {:?} names another authority",
        key.url
    );

    // The key's own path and query, asked for again, keep the URL.
    let again = request.with_path(path_and_query.to_string());
    assert_eq!(
        again.key(&section).map(|k| k.url),
        Ok(key.url.clone()),
        "normalised once is normalised"
    );

    // Requests naming different tenants (or one naming none) never share a key.
    let by_header = section
        .tenant
        .as_ref()
        .is_some_and(|t| t.header.as_deref() == Some(TENANT_HEADER));
    if !by_header {
        return;
    }
    let named = |r: &Request| {
        r.headers
            .iter()
            .find(|(n, _)| n == TENANT_HEADER)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    for other_value in ["", "-", "other", "t2"] {
        let mut other = request.with_path(request.path.clone());
        other.headers.retain(|(n, _)| n != TENANT_HEADER);
        other
            .headers
            .push((TENANT_HEADER.to_string(), other_value.to_string()));
        if named(&other) == named(&request) {
            continue;
        }
        if let Ok(other_key) = other.key(&section) {
            assert_ne!(
                other_key.primary,
                key.primary,
                "tenants {:?} and {:?} share a key",
                named(&request),
                named(&other)
            );
        }
    }
}

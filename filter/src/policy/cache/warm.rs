//! Cache warming: `POST <admin prefix>/cache/warm` with the paths to fetch and store ahead of
//! traffic. The request is checked whole before anything is fetched.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::key::{cache_key, CacheKey, KeyInput};
use crate::policy::header_list::borrowed;
use crate::policy::{Registry, RequestAttributes};

/// Most paths one warm request may name.
pub const MAX_WARM_PATHS: usize = 100;
/// Most extra headers (tenant headers and the like) one warm request may set.
pub const MAX_WARM_HEADERS: usize = 16;
/// Fetches one warm request runs at a time.
pub const WARM_CONCURRENCY: usize = 8;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WarmBody {
    paths: Vec<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// One path to fetch and store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarmTarget {
    pub path: String,
    pub service_index: usize,
    pub service: String,
    pub key: CacheKey,
    /// Request headers of the fetch (pseudo-headers, the service tag and the extra headers).
    pub headers: Vec<(String, String)>,
}

/// Checks a warm request and turns it into fetches; any bad part refuses the whole request.
pub fn plan_warm(
    registry: &Registry,
    scheme: &str,
    authority: &str,
    body: &[u8],
) -> Result<Vec<WarmTarget>, String> {
    let body: WarmBody =
        serde_json::from_slice(body).map_err(|err| format!("invalid JSON: {err}"))?;
    if body.paths.is_empty() {
        return Err("paths: give at least one path".to_string());
    }
    if body.paths.len() > MAX_WARM_PATHS {
        return Err(format!(
            "paths: {} given, at most {MAX_WARM_PATHS} per request",
            body.paths.len()
        ));
    }
    if body.headers.len() > MAX_WARM_HEADERS {
        return Err(format!("headers: at most {MAX_WARM_HEADERS}"));
    }
    for name in body.headers.keys() {
        let valid = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !valid {
            return Err(format!("headers: {name:?} is not a lower-case header name"));
        }
    }
    let extra: Vec<(String, String)> = body.headers.into_iter().collect();
    body.paths
        .iter()
        .enumerate()
        .map(|(index, path)| {
            if !path.starts_with('/') {
                return Err(format!("paths[{index}]: {path:?} must start with '/'"));
            }
            let service = registry.match_request(&RequestAttributes {
                authority,
                path,
                method: "GET",
            });
            let Some(section) = &service.cache else {
                return Err(format!(
                    "paths[{index}]: {path:?} belongs to service {:?}, which does not cache",
                    service.name
                ));
            };
            let key = cache_key(
                section,
                &KeyInput {
                    service: &service.name,
                    scheme,
                    authority,
                    path,
                    headers: &borrowed(&extra),
                    non_utf8: &[],
                },
            )
            .map_err(|reason| format!("paths[{index}]: {path:?} cannot be cached ({reason})"))?;
            let mut headers = vec![
                (":method".to_string(), "GET".to_string()),
                (":path".to_string(), path.clone()),
                (":authority".to_string(), authority.to_string()),
                (":scheme".to_string(), scheme.to_string()),
                ("x-edge-service".to_string(), service.name.clone()),
            ];
            headers.extend(extra.iter().cloned());
            Ok(WarmTarget {
                path: path.clone(),
                service_index: service.index,
                service: service.name.clone(),
                key,
                headers,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Config;

    fn registry() -> Registry {
        Config::parse_registry(
            br#"{"services": [
                {"name": "leads", "match": {"path_prefix": "/api/v1/leads/"}, "cache": {"tenant": {"header": "x-location-id"}}},
                {"name": "hooks", "match": {"path_prefix": "/webhooks/"}}
            ]}"#,
        )
        .unwrap()
    }

    #[test]
    fn plans_each_path_with_its_key() {
        let plan = plan_warm(&registry(), "http", "edge.test", br#"{"paths": ["/api/v1/leads/1", "/api/v1/leads/2"], "headers": {"x-location-id": "loc-1"}}"#).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].key.tenant.as_deref(), Some("loc-1"));
        assert!(plan[1]
            .headers
            .contains(&("x-location-id".to_string(), "loc-1".to_string())));
        assert!(plan[0]
            .headers
            .contains(&(":path".to_string(), "/api/v1/leads/1".to_string())));
    }

    #[test]
    fn refuses_bad_input_whole() {
        let r = registry();
        let bad = |body: &str| plan_warm(&r, "http", "edge.test", body.as_bytes()).unwrap_err();
        assert!(bad("nope").starts_with("invalid JSON"));
        assert_eq!(bad(r#"{"paths": []}"#), "paths: give at least one path");
        assert_eq!(
            bad(r#"{"paths": ["api/v1/leads/1"]}"#),
            "paths[0]: \"api/v1/leads/1\" must start with '/'"
        );
        assert_eq!(
            bad(r#"{"paths": ["/api/v1/leads/1", "/webhooks/x"]}"#),
            "paths[1]: \"/webhooks/x\" belongs to service \"hooks\", which does not cache"
        );
        let many: Vec<String> = (0..101).map(|i| format!("\"/api/v1/leads/{i}\"")).collect();
        assert_eq!(
            bad(&format!(r#"{{"paths": [{}]}}"#, many.join(","))),
            "paths: 101 given, at most 100 per request"
        );
        assert!(bad(r#"{"paths": ["/api/v1/leads/1"], "extra": 1}"#).starts_with("invalid JSON"));
        assert_eq!(
            bad(r#"{"paths": ["/api/v1/leads/1"], "headers": {"X-Bad": "1"}}"#),
            "headers: \"X-Bad\" is not a lower-case header name"
        );
    }
}

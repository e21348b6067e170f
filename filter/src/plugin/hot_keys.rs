//! The worker's hottest cache keys: noted on every cache lookup (when `monitoring.hot_keys` >
//! 0), listed by `GET <admin prefix>/cache/hot?limit=N` (token or allowed address) for
//! `edge-ctl warm-cache --hot N`. Each worker answers with its own table.

use serde_json::json;

use super::reply::{json_error, Reply};
use crate::policy::cache::hot_keys::{hot_key_id, hot_limit, HotKey, HotKeys};
use crate::policy::CacheSection;

/// Counts one lookup of `path` (with its query) under `tenant` for `service`.
pub fn note(
    hot: &mut HotKeys,
    (service, section): (&str, &CacheSection),
    path: &str,
    tenant: Option<&str>,
    now_ms: u64,
) {
    let make = || {
        let tenant_header = match (&section.tenant, tenant) {
            (Some(source), Some(id)) => source
                .header
                .as_ref()
                .map(|name| (name.clone(), id.to_string())),
            _ => None,
        };
        Some(HotKey {
            service: service.to_string(),
            path: path.to_string(),
            tenant_header,
        })
    };
    hot.note(hot_key_id(path, tenant), make, now_ms);
}

/// `{"worker_only": true, "keys": [{"service", "path", "headers", "count"}]}`, hottest first.
pub fn report(hot: &HotKeys, request_path: &str, capacity: u64) -> Reply {
    let limit = match hot_limit(request_path, usize::try_from(capacity).unwrap_or(0)) {
        Ok(limit) => limit,
        Err(reason) => return json_error(400, &reason),
    };
    let keys: Vec<serde_json::Value> = hot
        .hottest(limit)
        .into_iter()
        .map(|(key, count)| {
            let headers = match &key.tenant_header {
                Some((name, value)) => json!({ name.as_str(): value }),
                None => json!({}),
            };
            json!({ "service": key.service, "path": key.path, "headers": headers, "count": count })
        })
        .collect();
    (
        200,
        json!({ "worker_only": true, "keys": keys }).to_string(),
    )
}

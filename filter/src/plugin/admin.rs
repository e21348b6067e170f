//! Management requests answered by the filter itself: `PURGE <url>` and
//! `POST <admin prefix>/cache/purge`, and who may make them. They need the admin token or an
//! allowed client address (see `policy::admin_guard`); the token is never logged.

use proxy_wasm::hostcalls;
use serde_json::json;

use super::env::Env;
use super::metrics::Stat;
use super::reply::{json_error as error, Reply};
use super::tiers::Tiers;
use crate::policy::admin_guard::{admit, ManagementRequest};
use crate::policy::cache::generations::Dimension;
use crate::policy::cache::key::{cache_key, KeyInput};
use crate::policy::cache::purge_request::{parse_purge_request, split_url, PurgeTarget};
use crate::policy::header_list::{header, HeaderPair};
use crate::policy::{Registry, RequestAttributes};

/// The header a management request may carry the admin token in (never forwarded).
pub const TOKEN_HEADER: &str = "x-edge-admin-token";

/// The token a management request presents: `x-edge-admin-token`, or `Authorization: Bearer`.
pub fn presented_token(headers: &[impl HeaderPair]) -> Option<&str> {
    header(headers, TOKEN_HEADER).or_else(|| {
        // The auth scheme is case-insensitive (RFC 9110 §11.1).
        header(headers, "authorization").and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        })
    })
}

/// The downstream peer's address (`ip:port`) as Envoy gives it.
fn client_address() -> Option<String> {
    hostcalls::get_property(vec!["source", "address"])
        .ok()
        .flatten()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Lets a management request through with the right token or from an allowed address (with a
/// `Host` that is no site's name), never from a page of another site, and writes only as JSON;
/// otherwise 401 (no token presented), 403 (a wrong one, cross-site, a foreign `Host`) or 415.
/// No data either way.
pub fn authorize(registry: &Registry, headers: &[impl HeaderPair]) -> Result<(), Reply> {
    let admin = &registry.settings().admin;
    let address = (!admin.allow_addresses.is_empty())
        .then(client_address)
        .flatten();
    let request = ManagementRequest {
        method: header(headers, ":method").unwrap_or_default(),
        scheme: header(headers, ":scheme").unwrap_or("http"),
        authority: header(headers, ":authority").unwrap_or_default(),
        origin: header(headers, "origin"),
        sec_fetch_site: header(headers, "sec-fetch-site"),
        content_type: header(headers, "content-type"),
        token: presented_token(headers),
        client_address: address.as_deref(),
    };
    match admit(admin, &request) {
        Ok(_) => Ok(()),
        Err(refusal) => Err(error(refusal.status(), refusal.message())),
    }
}

/// The cache URL (what URL purges and invalidations name) of a request URL, if its service
/// caches.
pub fn cache_url(registry: &Registry, scheme: &str, authority: &str, path: &str) -> Option<String> {
    let service = registry.match_request(&RequestAttributes {
        authority,
        path,
        method: "GET",
    });
    let section = service.cache.as_ref()?;
    cache_key(
        section,
        &KeyInput {
            service: &service.name,
            scheme,
            authority,
            path,
            headers: &[],
            non_utf8: &[],
        },
    )
    .ok()
    .map(|key| key.url)
}

fn purged(
    (env, tiers): (&Env, &mut Tiers),
    dimension: Dimension<'_>,
    what: serde_json::Value,
) -> Reply {
    if tiers.purge(dimension) {
        env.metrics.inc(Stat::Purge);
        (200, json!({ "purged": what }).to_string())
    } else {
        error(503, "other workers kept purging at the same moment; retry")
    }
}

/// `PURGE <path>`: invalidates one URL (all its tenants and variants).
pub fn purge_url(
    (env, tiers): (&Env, &mut Tiers),
    scheme: &str,
    authority: &str,
    path: &str,
) -> Reply {
    match cache_url(&env.registry, scheme, authority, path) {
        Some(url) => purged((env, tiers), Dimension::Url(&url), json!({ "url": url })),
        None => error(404, "no caching service serves this URL"),
    }
}

/// `POST <prefix>/cache/purge` with `{"tenant"|"service"|"tag"|"url": ...}`.
pub fn purge_request((env, tiers): (&Env, &mut Tiers), body: &[u8]) -> Reply {
    let target = match parse_purge_request(body) {
        Ok(target) => target,
        Err(reason) => return error(400, &reason),
    };
    let registry = &env.registry;
    match target {
        PurgeTarget::Tenant(tenant) => purged(
            (env, tiers),
            Dimension::Tenant(&tenant),
            json!({ "tenant": tenant }),
        ),
        PurgeTarget::Tag(tag) => purged((env, tiers), Dimension::Tag(&tag), json!({ "tag": tag })),
        PurgeTarget::Service(name) => match registry.service_named(&name) {
            Some(service) => purged(
                (env, tiers),
                Dimension::Service(service.index),
                json!({ "service": name }),
            ),
            None => error(400, &format!("unknown service {name:?}")),
        },
        PurgeTarget::Url(url) => {
            let Some((scheme, authority, path)) = split_url(&url) else {
                return error(400, "url must be absolute: http(s)://host/path");
            };
            match cache_url(registry, scheme, authority, path) {
                Some(cache_url) => purged(
                    (env, tiers),
                    Dimension::Url(&cache_url),
                    json!({ "url": cache_url }),
                ),
                None => error(404, "no caching service serves this URL"),
            }
        }
    }
}

//! Edge caching through real Envoy 1.40 with 2 workers: miss then hit with the origin's own
//! counter as proof, purge, and a cache-poisoning attempt.

use std::time::Duration;

use edge_envoy::launch::{http_request, origin_requests, test_stack, HttpResponse, Stack};

const TOKEN: &str = "demo-admin-token-change-me";

fn get(stack: &Stack, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(stack.listen, "GET", path, headers, b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

fn cache_status(response: &HttpResponse) -> &str {
    response.header("cache-status").unwrap_or_default()
}

#[test]
fn miss_then_hits_reach_the_origin_once() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let first = get(&stack, "/api/v1/leads/42", &[]);
    assert_eq!(first.status, 200);
    assert!(
        cache_status(&first).starts_with("edge; fwd=uri-miss; stored"),
        "{}",
        cache_status(&first)
    );
    // New connections land on either worker: L2 serves the other one, then its own L1.
    for _ in 0..10 {
        let hit = get(&stack, "/api/v1/leads/42", &[]);
        assert_eq!(hit.status, 200);
        assert!(
            cache_status(&hit).starts_with("edge; hit"),
            "{}",
            cache_status(&hit)
        );
        assert_eq!(hit.body, first.body);
        assert!(hit.header("age").is_some());
    }
    assert_eq!(origin_requests(origin, "leads"), 1);
    // A compressed hit: the compressor encodes what the cache serves.
    let gzip = get(&stack, "/api/v1/leads/42", &[("accept-encoding", "gzip")]);
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert!(cache_status(&gzip).contains("hit"));
    assert_eq!(origin_requests(origin, "leads"), 1);
    let stats = http_request(stack.admin, "GET", "/stats?filter=edge.cache", &[], b"")
        .unwrap()
        .text();
    assert!(stats.contains("edge.cache.miss: 1"), "{stats}");
}

#[test]
fn purge_needs_the_token_and_takes_effect_on_every_worker() {
    // The shipped configuration trusts loopback clients (the demo listens on loopback only);
    // without that allow-list, a client from 127.0.0.1 needs the token like any other.
    let mut config: serde_json::Value =
        serde_json::from_str(include_str!("../plugin-config.json")).unwrap();
    config["admin"]
        .as_object_mut()
        .unwrap()
        .remove("allow_addresses");
    let stack = test_stack(Some(&config.to_string()), 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    get(&stack, "/api/v1/coaching/7", &[]);
    get(&stack, "/api/v1/coaching/7", &[]);
    assert_eq!(origin_requests(origin, "coaching"), 1);
    let url = format!(r#"{{"url": "http://{}/api/v1/coaching/7"}}"#, stack.listen);
    let refused = http_request(
        stack.listen,
        "POST",
        "/api/v1/performance/cache/purge",
        &[],
        url.as_bytes(),
    )
    .unwrap();
    assert_eq!(refused.status, 401, "no token given");
    assert!(cache_status(&get(&stack, "/api/v1/coaching/7", &[])).contains("hit"));
    let purged = http_request(
        stack.listen,
        "POST",
        "/api/v1/performance/cache/purge",
        &[
            ("x-edge-admin-token", TOKEN),
            ("content-type", "application/json"),
        ],
        url.as_bytes(),
    )
    .unwrap();
    assert_eq!(purged.status, 200, "{}", purged.text());
    std::thread::sleep(Duration::from_millis(400)); // > generation_refresh_ms
    for _ in 0..4 {
        get(&stack, "/api/v1/coaching/7", &[]);
    }
    assert_eq!(
        origin_requests(origin, "coaching"),
        2,
        "one miss after the purge, whichever worker"
    );
    assert!(
        !stack.envoy.log().contains(TOKEN),
        "the token never reaches the log"
    );
}

#[test]
fn unkeyed_headers_do_not_reach_the_origin_or_the_stored_response() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let attack = get(
        &stack,
        "/api/v1/properties?city=austin",
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
        ],
    );
    assert_eq!(attack.status, 200);
    let log = http_request(origin, "GET", "/__origin/requests", &[], b"").unwrap();
    let log: Vec<serde_json::Value> = serde_json::from_slice(&log.body).unwrap();
    let seen = &log.last().unwrap()["headers"];
    assert!(seen.get("x-forwarded-host").is_none(), "{seen}");
    assert!(seen.get("x-original-url").is_none(), "{seen}");
    let victim = get(
        &stack,
        "/api/v1/properties?city=austin&utm_source=mail",
        &[],
    );
    assert!(cache_status(&victim).contains("hit"));
    assert_eq!(victim.body, attack.body);
    assert!(!victim.text().contains("evil"));
    assert_eq!(origin_requests(origin, "properties"), 1);
}

/// Found by the `key` fuzz target: a tenant id `-` had the keys of requests naming no tenant, so
/// it read (and could write) the anonymous namespace.
#[test]
fn a_tenant_named_dash_does_not_share_the_keys_of_requests_naming_none() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let anonymous = get(&stack, "/api/v1/coaching/9", &[]);
    assert!(
        cache_status(&anonymous).contains("stored"),
        "{}",
        cache_status(&anonymous)
    );
    assert!(cache_status(&get(&stack, "/api/v1/coaching/9", &[])).contains("hit"));
    let dash = get(&stack, "/api/v1/coaching/9", &[("x-location-id", "-")]);
    assert_eq!(dash.status, 200);
    assert!(
        !cache_status(&dash).contains("hit"),
        "{}",
        cache_status(&dash)
    );
    assert_eq!(origin_requests(origin, "coaching"), 2);
}

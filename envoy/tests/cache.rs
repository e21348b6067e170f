//! Edge caching through real Envoy 1.40 with 2 workers: miss then hit with the origin's own
//! counter as proof, purge, writes and purges that spare other URLs' misses in flight, and
//! cache-poisoning and cross-tenant attempts.

use std::time::Duration;

use edge_envoy::launch::{
    admin_stats, cache_status, http_request, http_request_bytes, origin_requests, test_stack,
    test_stack_before, HttpResponse, Stack, TestOrigin, TestOriginSpec,
};

const TOKEN: &str = "demo-admin-token-change-me";

fn get(stack: &Stack, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(stack.listen, "GET", path, headers, b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
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
    let stats = admin_stats(stack.admin, "edge.cache");
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
            ("forwarded", "host=evil.example;proto=http"),
            ("x-forwarded-prefix", "/evil"),
            ("x-http-method", "DELETE"),
            ("x-method-override", "DELETE"),
        ],
    );
    assert_eq!(attack.status, 200);
    let log = http_request(origin, "GET", "/__origin/requests", &[], b"").unwrap();
    let log: Vec<serde_json::Value> = serde_json::from_slice(&log.body).unwrap();
    let seen = &log.last().unwrap()["headers"];
    for name in [
        "x-forwarded-host",
        "x-original-url",
        "forwarded",
        "x-forwarded-prefix",
        "x-http-method",
        "x-method-override",
    ] {
        assert!(
            seen.get(name).is_none(),
            "{name} reached the origin: {seen}"
        );
    }
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

#[test]
fn encoded_query_names_and_unusable_tenant_ids_never_share_entries() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    // `properties` keys on `city` only; the origin reads `%63ity` as `city` (the first wins).
    let attack = get(&stack, "/api/v1/properties?%63ity=PWNED&city=zz1", &[]);
    assert_eq!(attack.status, 200);
    assert!(attack.text().contains("PWNED"));
    let victim = get(&stack, "/api/v1/properties?city=zz1", &[]);
    assert!(
        !victim.text().contains("PWNED"),
        "{}: {}",
        cache_status(&victim),
        victim.text()
    );
    assert_eq!(origin_requests(origin, "properties"), 2);
    // A spelling every origin reads alike shares the entry.
    let same = get(&stack, "/api/v1/properties?ci%74y=zz%31&x=1", &[]);
    assert!(
        cache_status(&same).contains("hit"),
        "{}",
        cache_status(&same)
    );

    // `coaching` namespaces entries per `x-location-id`. Ids that cannot be used (too long,
    // not UTF-8, sent twice) bypass instead of falling into the shared namespace.
    let coaching = |headers: &[(&str, &[u8])]| {
        http_request_bytes(stack.listen, "GET", "/api/v1/coaching/9", headers, b"").unwrap()
    };
    let long_a = format!("{}a", "x".repeat(130));
    let long_b = format!("{}b", "x".repeat(130));
    coaching(&[("x-location-id", long_a.as_bytes())]);
    for headers in [
        vec![("x-location-id", long_b.as_bytes())],
        vec![],
        vec![("x-location-id", b"loc-\xff".as_slice())],
        vec![("x-location-id", b"loc-\xfe".as_slice())],
        vec![
            ("x-location-id", b"loc-1".as_slice()),
            ("x-location-id", b"loc-2".as_slice()),
        ],
    ] {
        let response = coaching(&headers);
        assert_eq!(response.status, 200);
        assert!(
            !cache_status(&response).contains("hit"),
            "{headers:?}: {}",
            cache_status(&response)
        );
    }
    assert_eq!(origin_requests(origin, "coaching"), 6);
    // Valid ids still get their own entries.
    coaching(&[("x-location-id", b"loc-1")]);
    let again = coaching(&[("x-location-id", b"loc-1")]);
    assert!(
        cache_status(&again).contains("hit"),
        "{}",
        cache_status(&again)
    );
    assert_eq!(origin_requests(origin, "coaching"), 7);
}

/// A write or a purge stops storing only the responses it may have made stale: those of its own
/// URL. Misses in flight for other URLs are stored as usual. (Any successful POST or purge used
/// to stop storing every response in flight on its worker: any client could switch caching
/// off.)
#[test]
fn writes_and_purges_spare_the_misses_of_other_urls() {
    const CONFIG: &str = r#"{
        "services": [{"name": "z", "match": {"path_prefix": "/z/"}, "cache": {}}],
        "admin": {"allow_addresses": ["127.0.0.1"]}
    }"#;
    let origin = TestOrigin::start(TestOriginSpec {
        get_delay: Duration::from_millis(1000),
        cache_control: "max-age=60".into(),
        ..TestOriginSpec::default()
    })
    .unwrap();
    let stack = test_stack_before(&origin, CONFIG, 2);
    let listen = stack.listen;
    let slow_get = |path: &'static str| {
        std::thread::spawn(move || http_request(listen, "GET", path, &[], b"").unwrap())
    };
    let in_flight: Vec<_> = ["/z/a", "/z/b", "/z/c"].map(slow_get).into();
    std::thread::sleep(Duration::from_millis(300));
    let post = http_request(listen, "POST", "/z/x", &[], b"{}").unwrap();
    assert_eq!(post.status, 200, "{}", post.text());
    let purge = http_request(listen, "PURGE", "/z/y", &[], b"").unwrap();
    assert_eq!(purge.status, 200, "{}", purge.text());
    for fetch in in_flight {
        let response = fetch.join().unwrap();
        assert_eq!(response.status, 200);
        assert!(
            cache_status(&response).contains("fwd=uri-miss"),
            "{}",
            cache_status(&response)
        );
    }
    std::thread::sleep(Duration::from_millis(400)); // > generation_refresh_ms, every worker
    for path in ["/z/a", "/z/b", "/z/c"] {
        for _ in 0..3 {
            let again = get(&stack, path, &[]);
            assert!(
                cache_status(&again).contains("hit"),
                "{path} was stored although only /z/x and /z/y changed: {}",
                cache_status(&again)
            );
        }
        assert_eq!(origin.requests_for("GET", path), 1, "{path}");
    }
    // A write to the URL being fetched: that response may predate it, so it is not stored.
    let fetch = slow_get("/z/d");
    std::thread::sleep(Duration::from_millis(300));
    let post = http_request(listen, "POST", "/z/d", &[], b"{}").unwrap();
    assert_eq!(post.status, 200, "{}", post.text());
    assert_eq!(fetch.join().unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(400));
    let after = get(&stack, "/z/d", &[]);
    assert!(
        cache_status(&after).contains("fwd="),
        "the response fetched across the write to /z/d is not served: {}",
        cache_status(&after)
    );
    assert_eq!(origin.requests_for("GET", "/z/d"), 2);
    assert_eq!(origin.requests_for("POST", "/z/x"), 1);
    assert_eq!(origin.requests_for("POST", "/z/d"), 1);
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

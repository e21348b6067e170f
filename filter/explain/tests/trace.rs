//! The trace on the shipped demo configuration: each decision and the field behind it.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use edge_explain::{trace, OriginResponse, TraceRequest};

fn demo() -> String {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../envoy/plugin-config.json"
    );
    std::fs::read_to_string(path).unwrap()
}

fn get(url: &str, headers: &str) -> TraceRequest {
    TraceRequest {
        method: "GET".into(),
        url: url.into(),
        headers: headers.into(),
        response: Some(OriginResponse {
            status: 200,
            headers: "cache-control: public, max-age=60\ncontent-type: application/json".into(),
            body_bytes: Some(20),
        }),
        now: Some(1_700_000_000),
        again_after_s: Some(5),
        ..TraceRequest::default()
    }
}

fn step<'a>(t: &'a edge_explain::Trace, stage: &str) -> Vec<&'a edge_explain::Step> {
    t.steps.iter().filter(|s| s.stage == stage).collect()
}

#[test]
fn a_tenant_request_to_leads() {
    let t = trace(
        &demo(),
        &get(
            "http://edge.test/api/v1/leads/7?b=2&a=1",
            "x-location-id: loc-1",
        ),
    );
    assert_eq!(t.service.as_deref(), Some("leads"));
    assert_eq!(step(&t, "service")[0].field, "services[2].match");
    let rl = step(&t, "rate_limit");
    assert!(rl[0].decision.contains("tenant loc-1"), "{rl:?}");
    assert_eq!(rl[0].field, "services[2].rate_limit.tenant.header");
    assert!(rl[1].decision.contains("200 requests/s, burst 400"));
    assert!(step(&t, "breaker")[0]
        .decision
        .contains("edge:breaker:leads"));
    let key = t.key.as_ref().unwrap();
    assert_eq!(key.tenant.as_deref(), Some("loc-1"));
    assert_eq!(key.url, "http://edge.test/api/v1/leads/7?a=1&b=2");
    assert_eq!(
        t.cache_status.as_deref(),
        Some("edge; fwd=uri-miss; stored")
    );
    let cache = step(&t, "cache");
    assert_eq!(cache[1].field, "services[2].cache.coalesce");
    let fresh = step(&t, "freshness");
    assert!(
        fresh[0]
            .decision
            .contains("fresh for 60 s: 60 s from max-age"),
        "{fresh:?}"
    );
    assert_eq!(t.cache_status_again.as_deref(), Some("edge; hit; ttl=55"));
    assert_eq!(t.local_reply, None);
}

#[test]
fn bypasses_and_refusals_name_their_field() {
    let config = demo();
    // No tenant id: the rate limiter's anonymous bucket, cached in the shared namespace.
    let t = trace(&config, &get("/api/v1/leads/7", ""));
    assert!(step(&t, "rate_limit")[0]
        .decision
        .contains("anonymous bucket"));
    // A dot segment: no key, no Cache-Status.
    let t = trace(
        &config,
        &get("/api/v1/coaching/a/../b", "x-location-id: loc-1"),
    );
    let cache = step(&t, "cache");
    assert!(cache[0].decision.starts_with("bypass"), "{cache:?}");
    assert_eq!(t.cache_status, None);
    // A tenant id given twice: no key (the tenant section's field is named).
    let t = trace(
        &config,
        &get("/api/v1/coaching/1", "x-location-id: a\nx-location-id: b"),
    );
    let cache = step(&t, "cache");
    assert!(
        cache[0].decision.starts_with("bypass (repeated-tenant)"),
        "{cache:?}"
    );
    assert_eq!(cache[0].field, "services[1].cache.tenant");
    // Set-Cookie: not stored, because of the service's store_set_cookie.
    let mut request = get("/api/v1/properties?city=x&utm=1", "");
    request
        .response
        .as_mut()
        .unwrap()
        .headers
        .push_str("\nset-cookie: a=b");
    let t = trace(&config, &request);
    let storable = step(&t, "storable");
    assert_eq!(storable[0].field, "services[3].cache.store_set_cookie");
    assert_eq!(t.cache_status.as_deref(), Some("edge; fwd=uri-miss"));
    assert_eq!(
        t.key.unwrap().url,
        "http://localhost/api/v1/properties?city=x"
    );
    // A webhook delivery: dedup identity.
    let t = trace(
        &config,
        &TraceRequest {
            method: "POST".into(),
            url: "/webhooks/ghl".into(),
            headers: "webhook-id: msg_1".into(),
            body: "{}".into(),
            ..TraceRequest::default()
        },
    );
    assert_eq!(t.service.as_deref(), Some("webhooks"));
    assert!(step(&t, "dedup")[0]
        .decision
        .contains("identity webhook-id:msg_1"));
    // A refused configuration: the filter's message and field path.
    let t = trace(
        r#"{"services":[{"name":"x","match":{"path_prefix":"/"},"cache":{"max_ttl_s":0}}]}"#,
        &get("/", ""),
    );
    assert!(t
        .config_error
        .unwrap()
        .starts_with("services[0].cache.max_ttl_s: "));
}

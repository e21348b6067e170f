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

const SECRET: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1";

fn hooks(secret: &str) -> String {
    format!(
        r#"{{"services":[{{"name":"hooks","match":{{"path_prefix":"/hooks/"}},
            "dedup":{{"signature":{{"secret":"{secret}"}}}}}}]}}"#
    )
}

fn delivery(headers: &str) -> TraceRequest {
    TraceRequest {
        method: "POST".into(),
        url: "http://127.0.0.1:18082/hooks/a".into(),
        headers: headers.into(),
        body: r#"{"a":1}"#.into(),
        ..TraceRequest::default()
    }
}

#[test]
fn a_signed_service_refuses_deliveries_without_a_valid_signature() {
    use edge_filter::policy::dedup::signature::{decode_secret, sign};
    // No signature headers: the filter answers 401 (policy::dedup::signature::verify).
    let t = trace(&hooks(SECRET), &delivery("webhook-id: msg_2"));
    assert_eq!(t.local_reply, Some(401), "{t:?}");
    assert_eq!(t.headline, "answered here with 401");
    let dedup = step(&t, "dedup");
    assert_eq!(dedup[0].field, "services[0].dedup.signature");
    assert!(
        dedup[0]
            .decision
            .contains("missing: webhook-timestamp, webhook-signature"),
        "{dedup:?}"
    );
    // A signature that does not verify: 401.
    let forged = "webhook-id: msg_2\nwebhook-timestamp: 1700000000\nwebhook-signature: v1,AAAA";
    let t = trace(&hooks(SECRET), &delivery(forged));
    assert_eq!(t.local_reply, Some(401), "{t:?}");
    // One that verifies: forwarded, the tolerance stated when no clock is given.
    let key = decode_secret(SECRET).unwrap();
    let signed = sign(&key, "msg_2", "1700000000", br#"{"a":1}"#);
    let good =
        format!("webhook-id: msg_2\nwebhook-timestamp: 1700000000\nwebhook-signature: {signed}");
    let t = trace(&hooks(SECRET), &delivery(&good));
    assert_eq!(t.local_reply, None, "{t:?}");
    assert_eq!(t.headline, "forwarded to the origin");
    assert!(step(&t, "dedup")[0].decision.contains("verifies"), "{t:?}");
    // ... and refused when evaluated later than the tolerance.
    let mut late = delivery(&good);
    late.now = Some(1_700_000_000 + 3600);
    assert_eq!(trace(&hooks(SECRET), &late).local_reply, Some(401));
    // The redacted secret (the page served by the edge): the trace cannot check, and says so.
    let redacted = edge_filter::policy::config_redact::REDACTED_SECRET;
    let t = trace(&hooks(redacted), &delivery(&good));
    assert_eq!(t.local_reply, None);
    assert!(
        t.headline
            .starts_with("answered here with 401 unless the webhook signature verifies"),
        "{}",
        t.headline
    );
    let t = trace(&hooks(redacted), &delivery("webhook-id: msg_2"));
    assert_eq!(t.local_reply, Some(401));
}

#[test]
fn malformed_inputs_are_refused_not_dropped() {
    let config = demo();
    let refused = |request: &TraceRequest| {
        let t = trace(&config, request);
        assert!(t.steps.is_empty(), "nothing traced: {t:?}");
        t.input_error.unwrap_or_default()
    };
    let err = refused(&get("/api/v1/leads/7", "x-location-id ab"));
    assert!(
        err.starts_with("request header line 1: \"x-location-id ab\""),
        "{err}"
    );
    let mut request = get("/api/v1/leads/7", "x-location-id: a\n:x");
    assert!(refused(&request).starts_with("request header line 2"));
    request.headers = "x-location-id: a".into();
    request.response.as_mut().unwrap().headers = "cache-control max-age=60".into();
    let err = refused(&request);
    assert!(err.contains("response header line 1"), "{err}");
    request.response.as_mut().unwrap().headers = String::new();
    for status in [99, 1000] {
        request.response.as_mut().unwrap().status = status;
        assert!(refused(&request).contains("not an HTTP status"));
    }
    request.response.as_mut().unwrap().status = 200;
    request.method = "G E T".into();
    assert!(refused(&request).contains("not an HTTP method"));

    // `again` without a response (or a stored one) says why it is not evaluated.
    let mut request = get("/api/v1/leads/7", "x-location-id: a");
    request.response = None;
    let t = trace(&config, &request);
    let again = step(&t, "again");
    assert!(
        again[0].decision.contains("no origin response"),
        "{again:?}"
    );
    let mut request = get("/api/v1/leads/7", "x-location-id: a");
    request.response.as_mut().unwrap().headers = "cache-control: no-store".into();
    let t = trace(&config, &request);
    let again = step(&t, "again");
    assert!(again[0].decision.contains("not stored"), "{again:?}");
}

#[test]
fn a_url_fragment_is_dropped_and_noted() {
    let t = trace(&demo(), &get("/api/v1/properties?city=f#frag", ""));
    let request = step(&t, "request");
    assert!(request[0].decision.contains("#frag is dropped"), "{t:?}");
    assert!(
        !step(&t, "cache")[0].decision.starts_with("bypass"),
        "{t:?}"
    );
    assert_eq!(
        t.key.unwrap().url,
        "http://localhost/api/v1/properties?city=f"
    );
    assert_eq!(
        t.cache_status.as_deref(),
        Some("edge; fwd=uri-miss; stored")
    );
}

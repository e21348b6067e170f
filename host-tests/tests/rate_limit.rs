//! Per-tenant token buckets in shared data: one limit across workers, 429 with the IETF
//! fields, overrides and costs, contention, shadow mode, serving from the cache when limited.

use std::time::Duration;

use proxy_wasm_host::test_support::{as_tenant, metric};
use proxy_wasm_host::{Host, Reply, Request, Response, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "api", "match": {"path_prefix": "/api/"},
         "rate_limit": {"tenant": {"header": "x-location-id"}, "requests_per_second": 10, "burst": 5,
                        "overrides": {"vip": {"requests_per_second": 100, "burst": 50}},
                        "cost": {"POST": 5}}},
        {"name": "strict", "match": {"path_prefix": "/strict/"},
         "rate_limit": {"tenant": {"query": "key"}, "missing_tenant": "reject", "requests_per_second": 1, "burst": 1,
                        "on_contention": "deny"}},
        {"name": "shadow", "match": {"path_prefix": "/shadow/"},
         "rate_limit": {"tenant": {"header": "x-location-id"}, "requests_per_second": 1, "burst": 2, "mode": "shadow"}},
        {"name": "cached", "match": {"path_prefix": "/cached/"}, "cache": {},
         "rate_limit": {"tenant": {"header": "x-location-id"}, "requests_per_second": 1, "burst": 1}}
    ],
    "limits": {"rate_limit_slots": 256}
}"#;

fn setup(vms: usize) -> (Host, Vec<VmId>) {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("fine").header("cache-control", "max-age=1"));
    let vms = host.start_vms(vms, CONFIG);
    (host, vms)
}

#[test]
fn two_workers_share_one_bucket() {
    let (mut host, vms) = setup(2);
    let mut admitted = 0;
    // 100 requests/s for 2 s, alternating workers, against 10/s with a burst of 5.
    for i in 0..200 {
        let response = host.request(vms[i % 2], as_tenant("/api/x", "loc-1"));
        if response.status == 200 {
            admitted += 1;
        }
        host.advance(Duration::from_millis(10));
    }
    assert!(admitted <= 10 * 2 + 5, "{admitted} admitted");
    assert!(admitted >= 10 * 2, "{admitted} admitted");
    // Another tenant is unaffected.
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-2")).status,
        200
    );
}

#[test]
fn rejection_carries_retry_after_and_ratelimit_fields() {
    let (mut host, vms) = setup(1);
    let first: Response = host.request(vms[0], as_tenant("/api/x", "loc-3"));
    assert_eq!(
        first.header("ratelimit-policy").as_deref(),
        Some("\"default\";q=5;w=1")
    );
    assert_eq!(
        first.header("ratelimit").as_deref(),
        Some("\"default\";r=4;t=1")
    );
    for _ in 0..4 {
        host.request(vms[0], as_tenant("/api/x", "loc-3"));
    }
    let limited = host.request(vms[0], as_tenant("/api/x", "loc-3"));
    assert_eq!(limited.status, 429);
    assert_eq!(limited.header("retry-after").as_deref(), Some("1"));
    assert_eq!(
        limited.header("ratelimit").as_deref(),
        Some("\"default\";r=0;t=1")
    );
    assert_eq!(
        limited.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(limited.body_text().contains(r#""tenant":"loc-3""#));
    assert_eq!(host.origin_calls().len(), 5);
    assert_eq!(metric(&host, "edge.ratelimit.rejected"), 1);
}

#[test]
fn overrides_and_costs() {
    let (mut host, vms) = setup(1);
    let vip = (0..50)
        .filter(|_| host.request(vms[0], as_tenant("/api/x", "vip")).status == 200)
        .count();
    assert_eq!(vip, 50);
    let post = |host: &mut Host| {
        host.request(
            vms[0],
            Request::post("/api/x", "{}").header("x-location-id", "poster"),
        )
        .status
    };
    assert_eq!(post(&mut host), 200, "a POST costs 5 of the burst of 5");
    assert_eq!(post(&mut host), 429);
}

#[test]
fn missing_tenant_is_rejected_or_anonymous() {
    let (mut host, vms) = setup(1);
    let response = host.request(vms[0], Request::get("/strict/x"));
    assert_eq!(response.status, 400);
    assert_eq!(
        host.request(vms[0], Request::get("/strict/x?key=a")).status,
        200
    );
    assert_eq!(
        host.request(vms[0], Request::get("/api/anon")).status,
        200,
        "anonymous bucket"
    );
}

#[test]
fn contention_exhaustion_follows_on_contention() {
    let (mut host, vms) = setup(1);
    host.fail_next_cas_writes(8);
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-4")).status,
        200,
        "allow"
    );
    assert_eq!(metric(&host, "edge.ratelimit.contention_exhausted"), 1);
    host.fail_next_cas_writes(8);
    assert_eq!(
        host.request(vms[0], Request::get("/strict/x?key=b")).status,
        429,
        "deny"
    );
    assert_eq!(metric(&host, "edge.ratelimit.contention_exhausted"), 2);
    // Fewer races than attempts: the update goes through.
    host.fail_next_cas_writes(3);
    assert_eq!(
        host.request(vms[0], Request::get("/strict/x?key=c")).status,
        200
    );
}

#[test]
fn shadow_mode_counts_but_admits() {
    let (mut host, vms) = setup(1);
    let statuses: Vec<u16> = (0..6)
        .map(|_| host.request(vms[0], as_tenant("/shadow/x", "loc-5")).status)
        .collect();
    assert!(statuses.iter().all(|s| *s == 200));
    assert_eq!(metric(&host, "edge.ratelimit.shadow_rejected"), 4);
}

#[test]
fn a_limited_tenant_is_served_from_the_cache() {
    let (mut host, vms) = setup(1);
    let first = host.request(vms[0], as_tenant("/cached/page", "loc-6"));
    assert_eq!(first.status, 200);
    host.advance(Duration::from_millis(500));
    // The bucket (1/s, burst 1) is empty; the entry is fresh.
    let degraded = host.request(vms[0], as_tenant("/cached/page", "loc-6"));
    assert_eq!(degraded.status, 200);
    assert!(degraded
        .header("cache-status")
        .unwrap()
        .contains("detail=rate-limited"));
    assert!(degraded.header("ratelimit").is_some());
    host.advance(Duration::from_millis(100));
    assert_eq!(
        host.request(vms[0], as_tenant("/cached/other", "loc-6"))
            .status,
        429,
        "nothing stored for it"
    );
    assert_eq!(host.origin_calls().len(), 1);
    assert_eq!(metric(&host, "edge.ratelimit.served_from_cache"), 1);
}

#[test]
fn a_repeated_or_invalid_tenant_header_opens_no_new_bucket() {
    let (mut host, vms) = setup(1);
    for _ in 0..5 {
        assert_eq!(
            host.request(vms[0], as_tenant("/api/x", "loc-r")).status,
            200
        );
    }
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-r")).status,
        429
    );
    // The header twice with another value: refused, not a bucket of its own ("loc-r, x").
    let mut twice = as_tenant("/api/x", "loc-r");
    twice.headers.add("x-location-id", "x");
    let refused = host.request(vms[0], twice);
    assert_eq!(refused.status, 400, "{}", refused.body_text());
    assert!(refused.body_text().contains("more than once"));
    // The same value twice is the same tenant, still limited.
    let mut same = as_tenant("/api/x", "loc-r");
    same.headers.add("x-location-id", "loc-r");
    assert_eq!(host.request(vms[0], same).status, 429);
    // What a proxy joining the two would send, an over-long id, and what invalid UTF-8
    // becomes when the filter reads it (U+FFFD): 400 each, never merged with another id.
    for bad in ["loc-r, x", &"t".repeat(129), "\u{fffd}", "lo\u{fffd}c"] {
        let response = host.request(vms[0], as_tenant("/api/x", bad));
        assert_eq!(response.status, 400, "{bad:?}");
    }
    assert_eq!(metric(&host, "edge.ratelimit.invalid_tenant"), 5);
    assert_eq!(
        host.origin_calls().len(),
        5,
        "none of them reached the origin"
    );
}

#[test]
fn a_percent_encoded_tenant_is_the_same_tenant() {
    let (mut host, vms) = setup(1);
    assert_eq!(
        host.request(vms[0], Request::get("/strict/x?key=acme"))
            .status,
        200
    );
    for spelling in [
        "/strict/x?key=%61cme",
        "/strict/x?%6bey=acme",
        "/strict/x?key=acme&key=acme",
    ] {
        assert_eq!(
            host.request(vms[0], Request::get(spelling)).status,
            429,
            "{spelling}"
        );
    }
    assert_eq!(
        host.request(vms[0], Request::get("/strict/x?key=acme&key=other"))
            .status,
        400
    );
}

#[test]
fn a_colliding_tenant_does_not_reset_another_tenants_bucket() {
    // One slot for everyone: every tenant collides.
    let config = CONFIG.replace(r#""rate_limit_slots": 256"#, r#""rate_limit_slots": 1"#);
    let mut host = Host::new();
    host.origin(|_| Reply::ok("fine"));
    let vms = host.start_vms(2, &config);
    for i in 0..5 {
        assert_eq!(
            host.request(vms[i % 2], as_tenant("/api/x", "loc-a"))
                .status,
            200
        );
    }
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-a")).status,
        429
    );
    for tenant in ["loc-b", "loc-c", "loc-d"] {
        assert_eq!(
            host.request(vms[1], as_tenant("/api/x", tenant)).status,
            200
        );
        assert_eq!(
            host.request(vms[0], as_tenant("/api/x", "loc-a")).status,
            429,
            "{tenant} in the same slot gave loc-a nothing"
        );
    }
    host.advance(Duration::from_millis(100));
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-a")).status,
        200,
        "refilled"
    );
    // A tenant literally named "-" is not the anonymous bucket.
    for _ in 0..5 {
        assert_eq!(host.request(vms[0], as_tenant("/api/x", "-")).status, 200);
    }
    assert_eq!(host.request(vms[0], Request::get("/api/x")).status, 200);
}

#[test]
fn a_full_slot_refuses_newcomers_until_a_bucket_has_refilled() {
    let config = CONFIG.replace(
        r#""rate_limit_slots": 256"#,
        r#""rate_limit_slots": 1, "rate_limit_tenants_per_slot": 2"#,
    );
    let mut host = Host::new();
    host.origin(|_| Reply::ok("fine"));
    let vms = host.start_vms(1, &config);
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-a")).status,
        200
    );
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-b")).status,
        200
    );
    let refused = host.request(vms[0], as_tenant("/api/x", "loc-c"));
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    assert_eq!(metric(&host, "edge.ratelimit.slot_full"), 1);
    // One token at 10/s: loc-a's bucket is full again after 100 ms and gives up its place.
    host.advance(Duration::from_millis(100));
    assert_eq!(
        host.request(vms[0], as_tenant("/api/x", "loc-c")).status,
        200
    );
}

#[test]
fn a_limited_tenant_gets_no_stale_entry_that_forbids_it_or_is_too_old() {
    let mut host = Host::new();
    host.origin(|request| {
        let cache_control = if request.path().contains("strict") {
            "max-age=1, must-revalidate"
        } else {
            "max-age=1"
        };
        Reply::ok("fine").header("cache-control", cache_control)
    });
    let vms = host.start_vms(1, CONFIG);
    let vm = vms[0];
    // Stored at 0; the bucket (1/s, burst 1) is spent.
    assert_eq!(
        host.request(vm, as_tenant("/cached/strict", "loc-7"))
            .status,
        200
    );
    host.advance(Duration::from_millis(2500));
    assert_eq!(
        host.request(vm, as_tenant("/cached/old", "loc-7")).status,
        200
    );
    // Limited: the must-revalidate entry is 1.5 s stale: 429, not the stale entry.
    let strict = host.request(vm, as_tenant("/cached/strict", "loc-7"));
    assert_eq!(strict.status, 429, "{:?}", strict.header("cache-status"));
    // Within the default bound (60 s past its lifetime) a plain stale entry answers.
    host.advance(Duration::from_millis(30_000));
    assert_eq!(
        host.request(vm, as_tenant("/cached/new", "loc-7")).status,
        200
    );
    let stale = host.request(vm, as_tenant("/cached/old", "loc-7"));
    assert_eq!(stale.status, 200);
    assert!(stale
        .header("cache-status")
        .unwrap()
        .contains("detail=rate-limited"));
    // Beyond it, 429.
    host.advance(Duration::from_millis(40_000));
    assert_eq!(
        host.request(vm, as_tenant("/cached/newer", "loc-7")).status,
        200
    );
    let too_old = host.request(vm, as_tenant("/cached/old", "loc-7"));
    assert_eq!(too_old.status, 429, "{:?}", too_old.header("cache-status"));
    assert_eq!(metric(&host, "edge.ratelimit.served_from_cache"), 1);
}

#[test]
fn the_stale_bound_is_configurable() {
    let config = CONFIG.replace(
        r#""requests_per_second": 1, "burst": 1}}"#,
        r#""requests_per_second": 1, "burst": 1, "max_stale_when_limited_s": 0}}"#,
    );
    assert_ne!(config, CONFIG);
    let mut host = Host::new();
    host.origin(|_| Reply::ok("fine").header("cache-control", "max-age=1"));
    let vm = host.start_vm(&config).unwrap();
    assert_eq!(
        host.request(vm, as_tenant("/cached/page", "loc-8")).status,
        200
    );
    host.advance(Duration::from_millis(3000));
    assert_eq!(
        host.request(vm, as_tenant("/cached/other", "loc-8")).status,
        200
    );
    assert_eq!(
        host.request(vm, as_tenant("/cached/page", "loc-8")).status,
        429,
        "0: fresh entries only"
    );
}

//! Monitoring: labelled stats after scripted traffic (exact counts), the JSON endpoints' shape
//! and values across workers, access control, the bounded top-tenant table, and what stats cost
//! on the hit path.

use std::time::Duration;

use proxy_wasm_host::test_support::{as_tenant as get, cache_status, counted, metric as counter};
use proxy_wasm_host::{Host, Reply, Request, Response, VmId};
use serde_json::Value;

const TOKEN: &str = "monitor-token-0123456789";

fn config(monitoring: &str) -> String {
    format!(
        r#"{{
    "services": [
        {{"name": "leads", "match": {{"path_prefix": "/api/v1/leads/"}}, "latency_target_ms": 50,
         "cache": {{"tenant": {{"header": "x-location-id"}}}}}},
        {{"name": "api.v2", "match": {{"path_prefix": "/limited/"}},
         "rate_limit": {{"tenant": {{"header": "x-location-id"}}, "requests_per_second": 1, "burst": 2}}}},
        {{"name": "fragile", "match": {{"path_prefix": "/fragile/"}},
         "breaker": {{"min_requests": 5, "open_base_ms": 60000, "jitter_percent": 0}}}}
    ],
    "admin": {{"token": "{TOKEN}", "allow_addresses": ["10.9.0.0/16"]}},
    "limits": {{"l2_slots": 64, "lease_slots": 32}},
    "monitoring": {monitoring}
}}"#
    )
}

fn setup(vms: usize) -> (Host, Vec<VmId>) {
    let mut host = Host::new();
    host.origin(|request| {
        if request.path().starts_with("/fragile/") {
            Reply::status(503).body("down")
        } else {
            Reply::ok("x".repeat(2000))
                .header("cache-control", "max-age=60")
                .delay_ms(150)
        }
    });
    let vms = host.start_vms(vms, &config("{}"));
    (host, vms)
}

fn requests(host: &mut Host, service: &str, outcome: &str) -> u64 {
    counted(
        host,
        &format!("edge.requests.service.{service}.outcome.{outcome}"),
    )
}

fn admin_get(host: &mut Host, vm: VmId, endpoint: &str) -> Response {
    host.request(
        vm,
        Request::get(&format!("/api/v1/performance{endpoint}"))
            .header("authorization", &format!("Bearer {TOKEN}")),
    )
}

fn json(response: &Response) -> Value {
    assert_eq!(response.status, 200, "{}", response.body_text());
    serde_json::from_str(&response.body_text()).unwrap()
}

/// Scripted traffic on two workers: leads 1 miss, 1 L2 hit, 3 L1 hits (tenant loc-1), one
/// pass-through on the default service, 4 requests of tenant loc-7 against a burst of 2.
fn scripted_traffic(host: &mut Host, vms: &[VmId]) {
    host.request(vms[0], get("/api/v1/leads/1", "loc-1"));
    host.request(vms[1], get("/api/v1/leads/1", "loc-1"));
    for _ in 0..3 {
        host.request(vms[1], get("/api/v1/leads/1", "loc-1"));
    }
    host.request(vms[0], Request::get("/elsewhere"));
    for _ in 0..4 {
        host.request(vms[0], get("/limited/x", "loc-7"));
    }
}

#[test]
fn labelled_stats_count_every_outcome_exactly() {
    let (mut host, vms) = setup(2);
    scripted_traffic(&mut host, &vms);
    assert_eq!(requests(&mut host, "leads", "miss"), 1);
    assert_eq!(requests(&mut host, "leads", "hit_l2"), 1);
    assert_eq!(requests(&mut host, "leads", "hit_l1"), 3);
    assert_eq!(requests(&mut host, "default", "pass"), 1);
    // A dot in a service name would split the stat name: it becomes '_'.
    assert_eq!(requests(&mut host, "api_v2", "pass"), 2);
    assert_eq!(requests(&mut host, "api_v2", "rate_limited"), 2);
    let edge = host
        .metric("edge.latency_ms.service.leads.stage.edge")
        .unwrap();
    // The miss only: the four hits were answered at once (the monitor still counts them).
    assert_eq!(edge.samples.len(), 1);
    assert!(edge.samples[0] >= 150, "{:?}", edge.samples);
    let origin = host
        .metric("edge.latency_ms.service.leads.stage.origin")
        .unwrap();
    assert_eq!(origin.samples, vec![150]);
    // L2: one slot filled; stored bytes before and after LZ4.
    assert_eq!(counter(&host, "edge.cache.l2.entries"), 1);
    assert_eq!(counter(&host, "edge.cache.l2.slots"), 64);
    let raw = counter(&host, "edge.cache.l2.stored_bytes_raw");
    let compressed = counter(&host, "edge.cache.l2.stored_bytes_compressed");
    assert_eq!(raw, 2000);
    assert!(compressed < raw / 10, "{compressed}");
    // What the slot holds: the encoded entry (headers, metadata and the compressed body).
    let l2_bytes = counter(&host, "edge.cache.l2.bytes");
    assert!(l2_bytes > compressed && l2_bytes < raw, "{l2_bytes}");
    assert_eq!(counter(&host, "edge.config.loaded"), 2);
}

#[test]
fn metrics_endpoint_adds_up_all_workers() {
    let (mut host, vms) = setup(2);
    scripted_traffic(&mut host, &vms);
    host.advance(Duration::from_millis(1_100)); // both workers publish
    let report = json(&admin_get(&mut host, vms[0], "/metrics"));
    assert_eq!(report["freshness"]["workers_reporting"], 2);
    assert!(
        report["freshness"]["oldest_snapshot_age_ms"]
            .as_u64()
            .unwrap()
            <= 1_100
    );
    let services = report["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["leads", "api.v2", "fragile", "default"]);
    let leads = &services[0];
    assert_eq!(leads["requests"], 5);
    assert_eq!(leads["outcomes"]["hit_l1"], 3);
    assert_eq!(leads["outcomes"]["hit_l2"], 1);
    assert_eq!(leads["outcomes"]["miss"], 1);
    assert_eq!(leads["hit_rate"], 0.8);
    assert_eq!(leads["hit_rate_by_tier"]["l1"], 0.6);
    assert_eq!(leads["hit_rate_by_tier"]["l2"], 0.2);
    let origin_p50 = leads["latency_ms"]["origin"]["p50"].as_f64().unwrap();
    assert!((150.0..=190.0).contains(&origin_p50), "{origin_p50}");
    assert_eq!(leads["latency_ms"]["edge"]["count"], 5);
    assert_eq!(services[1]["rate_limited"], 2);
    assert_eq!(services[1]["breaker"], Value::Null);
    assert_eq!(services[2]["breaker"], "closed");
    assert_eq!(report["totals"]["requests"], 10);
    let tenants = &report["top_tenants"]["by_requests"];
    assert_eq!(tenants[0]["tenant"], "loc-1");
    assert_eq!(tenants[0]["requests"], 5);
    assert_eq!(
        report["top_tenants"]["by_rate_limited"][0]["tenant"],
        "loc-7"
    );
    assert_eq!(
        report["top_tenants"]["by_rate_limited"][0]["rate_limited"],
        2
    );
    assert_eq!(report["counters"]["edge.ratelimit.rejected"], 2);
    // Too few requests for hit-rate or tenant alerts; leads' p95 (150 ms) is over 2 × 50 ms.
    let alerts: Vec<(&str, &str)> = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["kind"].as_str().unwrap(), a["subject"].as_str().unwrap()))
        .collect();
    assert_eq!(alerts, [("latency", "leads")]);
}

#[test]
fn a_worker_that_stops_publishing_drops_out() {
    let (mut host, vms) = setup(2);
    scripted_traffic(&mut host, &vms);
    host.advance(Duration::from_millis(1_100));
    let before = json(&admin_get(&mut host, vms[0], "/metrics"));
    assert_eq!(before["freshness"]["workers_reporting"], 2);
    let slots: Vec<String> = host
        .shared_keys()
        .into_iter()
        .filter(|k| k.starts_with("edge:mon:"))
        .filter(|k| host.shared_get(k).unwrap().0.len() > 1)
        .collect();
    assert_eq!(slots.len(), 2, "one slot per worker");
    // Both snapshots as if written 20 s ago: vm1 seems stuck. vm0 republishes its own before
    // answering; vm1's is left out of the figures.
    for key in &slots {
        let mut snapshot: Value = serde_json::from_slice(&host.shared_get(key).unwrap().0).unwrap();
        let published = snapshot["published_ms"].as_u64().unwrap();
        snapshot["published_ms"] = (published - 20_000).into();
        host.shared_set(key, snapshot.to_string().as_bytes(), 0)
            .unwrap();
    }
    let after = json(&admin_get(&mut host, vms[0], "/metrics"));
    assert_eq!(after["freshness"]["workers_reporting"], 1);
    // vm0 served the miss and the rate-limited requests, vm1 the L2 and L1 hits.
    assert_eq!(after["services"][0]["requests"], 1);
    assert_eq!(after["services"][0]["outcomes"]["miss"], 1);
}

#[test]
fn cache_stats_has_tiers_compression_and_tenants() {
    let (mut host, vms) = setup(2);
    scripted_traffic(&mut host, &vms);
    host.request(vms[0], get("/api/v1/leads/2", "loc-2"));
    host.advance(Duration::from_millis(1_100));
    let stats = json(&admin_get(&mut host, vms[1], "/cache/stats"));
    let l1 = &stats["tiers"]["l1"];
    assert_eq!(l1["hits"], 3);
    assert_eq!(l1["misses"], 3);
    assert_eq!(l1["entries"], 3, "leads/1 on both workers, leads/2 on vm0");
    let l2 = &stats["tiers"]["l2"];
    assert_eq!(l2["hits"], 1);
    assert_eq!(l2["entries"], 2);
    assert_eq!(l2["slots"], 64);
    assert!(l2["bytes"].as_u64().unwrap() > 0);
    assert_eq!(l2["occupancy"], 0.0313);
    assert!(l2["compression_ratio"].as_f64().unwrap() < 0.1);
    let services = stats["services"].as_array().unwrap();
    assert_eq!(services.len(), 1, "only caching services");
    assert_eq!(services[0]["l1_entries"], 3);
    assert_eq!(services[0]["top_tenants"][0]["tenant"], "loc-1");
    assert_eq!(services[0]["top_tenants"][0]["l1_entries"], 2);
}

#[test]
fn read_endpoints_need_the_token_or_an_allowed_address() {
    let (mut host, vms) = setup(1);
    let vm = vms[0];
    for endpoint in ["/metrics", "/cache/stats", "/dashboard"] {
        let path = format!("/api/v1/performance{endpoint}");
        let missing = host.request(vm, Request::get(&path));
        assert_eq!(missing.status, 401, "{endpoint}");
        assert!(!missing.body_text().contains("services"));
        let wrong = host.request(
            vm,
            Request::get(&path).header("x-edge-admin-token", "wrong-token-wrong-token"),
        );
        assert_eq!(wrong.status, 403, "{endpoint}");
        assert_eq!(admin_get(&mut host, vm, endpoint).status, 200, "{endpoint}");
    }
    // Health needs nothing.
    let health = host.request(vm, Request::get("/api/v1/performance/health"));
    assert_eq!(health.status, 200);
    // From an allowed network no token is needed (with a local Host); from elsewhere it is.
    let local = || Request::get("/api/v1/performance/metrics").authority("127.0.0.1:10000");
    host.set_property(vm, "source.address", b"10.9.3.4:50000");
    assert_eq!(host.request(vm, local()).status, 200);
    host.set_property(vm, "source.address", b"10.8.3.4:50000");
    assert_eq!(host.request(vm, local()).status, 401);
    // Management requests are not counted as traffic, and never reach the origin.
    assert!(host.origin_calls().is_empty());
    assert_eq!(requests(&mut host, "default", "pass"), 0);
}

#[test]
fn management_endpoints_refuse_cross_site_and_rebound_requests() {
    let (mut host, vms) = setup(1);
    let vm = vms[0];
    host.request(vm, get("/api/v1/leads/1", "loc-1"));
    // The operator's machine is on the allow-list; a page they open is not.
    host.set_property(vm, "source.address", b"10.9.3.4:50000");
    let purge = |authority: &str| {
        Request::post(
            "/api/v1/performance/cache/purge",
            br#"{"service": "leads"}"#.to_vec(),
        )
        .authority(authority)
    };
    // CSRF / DNS rebinding: a form post from evil.example (a simple request, text/plain).
    let csrf = purge("evil.example")
        .header("origin", "http://evil.example")
        .header("content-type", "text/plain");
    assert_eq!(host.request(vm, csrf).status, 403);
    // Rebinding without Origin (a same-origin GET of the rebound name): 403, no data.
    let rebound = host.request(
        vm,
        Request::get("/api/v1/performance/metrics").authority("evil.example:10000"),
    );
    assert_eq!(rebound.status, 403);
    assert!(!rebound.body_text().contains("services"));
    // A foreign Origin or Sec-Fetch-Site is refused even with the token.
    let with_token = |request: Request| request.header("x-edge-admin-token", TOKEN);
    let foreign = with_token(purge("127.0.0.1:10000"))
        .header("content-type", "application/json")
        .header("origin", "http://evil.example");
    assert_eq!(host.request(vm, foreign).status, 403);
    let cross = with_token(Request::get("/api/v1/performance/metrics"))
        .header("sec-fetch-site", "cross-site");
    assert_eq!(host.request(vm, cross).status, 403);
    // Writes need JSON.
    let plain = purge("127.0.0.1:10000").header("content-type", "text/plain");
    assert_eq!(host.request(vm, plain).status, 415);
    let still_cached = host.request(vm, get("/api/v1/leads/1", "loc-1"));
    assert!(
        still_cached.header("cache-status").unwrap().contains("hit"),
        "nothing purged"
    );
    // What still works: the allow-list with a local Host (its own page: same Origin,
    // Sec-Fetch-Site same-origin), and the token from any client without Origin.
    let own_page = purge("127.0.0.1:10000")
        .header("content-type", "application/json")
        .header("origin", "http://127.0.0.1:10000")
        .header("sec-fetch-site", "same-origin");
    assert_eq!(host.request(vm, own_page).status, 200);
    host.set_property(vm, "source.address", b"192.0.2.1:50000");
    let scripted = with_token(purge("edge.example.com")).header("content-type", "application/json");
    assert_eq!(host.request(vm, scripted).status, 200);
    assert_eq!(
        host.request(
            vm,
            with_token(Request::get("/api/v1/performance/metrics").authority("edge.example.com"))
        )
        .status,
        200
    );
    assert_eq!(
        counter(&host, "edge.cache.purge"),
        2,
        "only the two allowed purges"
    );
}

#[test]
fn allowed_hosts_extend_the_local_names() {
    let mut host = Host::new();
    let config = config("{}").replace(
        r#""allow_addresses": ["10.9.0.0/16"]"#,
        r#""allow_addresses": ["10.9.0.0/16"], "allowed_hosts": ["edge.internal"]"#,
    );
    let vm = host.start_vm(&config).unwrap();
    host.set_property(vm, "source.address", b"10.9.3.4:50000");
    for (authority, status) in [
        ("edge.internal:10000", 200),
        ("localhost:10000", 200),
        ("[::1]:10000", 200),
        ("evil.example", 403),
    ] {
        let request = Request::get("/api/v1/performance/metrics").authority(authority);
        assert_eq!(host.request(vm, request).status, status, "{authority}");
    }
}

#[test]
fn dashboard_is_one_self_contained_page() {
    let (mut host, vms) = setup(1);
    let page = admin_get(&mut host, vms[0], "/dashboard");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
    let html = page.body_text();
    assert!(html.contains("fetch("), "it polls the metrics endpoint");
    for external in ["http://", "https://", "//cdn", "src=\"/"] {
        assert!(!html.contains(external), "no external fetch: {external}");
    }
    assert!(html.len() < 20 * 1024, "{} bytes", html.len());
    // Without access: 401 and a token form, which loads the page with the token; no data.
    let login = host.request(vms[0], Request::get("/api/v1/performance/dashboard"));
    assert_eq!(login.status, 401);
    assert_eq!(login.header("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(
        login.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    let form = login.body_text();
    assert!(form.contains("Authorization: 'Bearer '"), "{form}");
    assert!(!form.contains("requests_per_s") && !form.contains("leads"));
    for external in ["http://", "https://"] {
        assert!(!form.contains(external));
    }
}

#[test]
fn breaker_state_gauge_and_health_follow_the_breaker() {
    let (mut host, vms) = setup(1);
    for _ in 0..5 {
        host.request(vms[0], Request::get("/fragile/x"));
    }
    host.advance(Duration::from_millis(1_100)); // trips, then publishes the state
    assert_eq!(counter(&host, "edge.breaker.state.service.fragile"), 2);
    let rejected = host.request(vms[0], Request::get("/fragile/x"));
    assert_eq!(rejected.status, 503);
    assert_eq!(requests(&mut host, "fragile", "breaker_open"), 1);
    assert_eq!(requests(&mut host, "fragile", "pass"), 5);
    let report = json(&admin_get(&mut host, vms[0], "/metrics"));
    assert_eq!(report["services"][2]["breaker"], "open");
    let kinds: Vec<&str> = report["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"breaker_open"), "{kinds:?}");
}

#[test]
fn health_reports_a_low_hit_rate_and_a_rejected_configuration() {
    let (mut host, vms) = setup(1);
    for i in 0..30 {
        host.request(vms[0], get(&format!("/api/v1/leads/{i}"), "loc-1"));
    }
    let health = host.request(vms[0], Request::get("/api/v1/performance/health"));
    assert_eq!(health.status, 200);
    let body: Value = serde_json::from_str(&health.body_text()).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(
        body["reasons"][0], "hit rate 0% under target 90%: leads",
        "{body}"
    );
    // A configuration a new VM refuses is counted; what /health says comes from the
    // configuration serving, not from the refusing VM (Envoy may never configure a VM for a
    // refusal it has cached).
    assert!(host.start_vm(r#"{"services": 7}"#).is_err());
    assert_eq!(counter(&host, "edge.config.rejected"), 1);
    let health = host.request(vms[0], Request::get("/api/v1/performance/health"));
    let body: Value = serde_json::from_str(&health.body_text()).unwrap();
    assert!(
        !body["reasons"].to_string().contains("configuration update"),
        "{body}"
    );
}

#[test]
fn health_reports_the_refusal_noted_in_the_serving_configuration() {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("x"));
    let noted = config("{}").replacen(
        "{",
        r#"{"update_refused": "limits.l2_slots: must be at least 1","#,
        1,
    );
    let vm = host.start_vm(&noted).unwrap();
    let health = host.request(vm, Request::get("/api/v1/performance/health"));
    let body: Value = serde_json::from_str(&health.body_text()).unwrap();
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(
        body["reasons"][0],
        "configuration update rejected: limits.l2_slots: must be at least 1"
    );
    // The same configuration without the note (a valid one written again): healthy.
    let clean = host.start_vm(&config("{}")).unwrap();
    let health = host.request(clean, Request::get("/api/v1/performance/health"));
    let body: Value = serde_json::from_str(&health.body_text()).unwrap();
    assert_eq!(body["status"], "healthy", "{body}");
}

#[test]
fn top_tenant_table_stays_bounded_under_a_hundred_thousand_tenants() {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("fine"));
    let config = config(r#"{"top_tenants": 32}"#);
    let vm = host.start_vm(&config).unwrap();
    for i in 0..100_000u32 {
        host.request(vm, get("/limited/y", &format!("tenant-{i}")));
        if i % 10 == 0 {
            host.request(vm, get("/limited/y", "heavy"));
        }
    }
    let report = json(&admin_get(&mut host, vm, "/metrics"));
    let by_requests = report["top_tenants"]["by_requests"].as_array().unwrap();
    assert_eq!(by_requests.len(), 10);
    assert_eq!(by_requests[0]["tenant"], "heavy");
    assert!(by_requests[0]["requests"].as_u64().unwrap() >= 10_000);
    // The worker's snapshot carries at most its 20 busiest and 20 most limited tenants,
    // whatever the traffic. (100,000 tenants in one instant hold more buckets than the
    // default 16384 slots × 4 have places: the latecomers are refused, fail-closed, and so
    // some of them are among the most limited.)
    let (snapshot, _) = host
        .shared_keys()
        .iter()
        .filter(|k| k.starts_with("edge:mon:"))
        .filter_map(|k| host.shared_get(k))
        .find(|(bytes, _)| bytes.len() > 1)
        .unwrap();
    let snapshot: Value = serde_json::from_slice(&snapshot).unwrap();
    let published = snapshot["tenants"].as_array().unwrap().len();
    assert!((20..=40).contains(&published), "{published}");
    assert!(snapshot.to_string().len() < 8 * 1024);
}

/// Fuel of an L1 hit with monitoring on and off, and the ratio (the goal: at most 10% dearer).
#[test]
fn hit_path_cost_of_monitoring() {
    let (mut fuel, mut pass_fuel) = (Vec::new(), Vec::new());
    for monitoring in [r#"{"enabled": false}"#, r#"{"enabled": true}"#] {
        let mut host = Host::new();
        host.origin(|_| Reply::ok("fine").header("cache-control", "max-age=60"));
        let vm = host.start_vm(&config(monitoring)).unwrap();
        host.request(vm, get("/api/v1/leads/1", "loc-1"));
        host.request(vm, get("/api/v1/leads/1", "loc-1"));
        let before = host.fuel_used(vm);
        for _ in 0..100 {
            host.request(vm, get("/api/v1/leads/1", "loc-1"));
        }
        fuel.push((host.fuel_used(vm) - before) / 100);
        let before = host.fuel_used(vm);
        for _ in 0..100 {
            host.request(vm, Request::get("/elsewhere"));
        }
        pass_fuel.push((host.fuel_used(vm) - before) / 100);
        assert_eq!(
            requests(&mut host, "leads", "hit_l1"),
            if monitoring.contains("true") { 101 } else { 0 }
        );
    }
    let ratio = fuel[1] as f64 / fuel[0] as f64;
    println!(
        "fuel per L1 hit: monitoring off {}, on {} (ratio {ratio:.3}); per pass-through: off {}, \
         on {} (ratio {:.3})",
        fuel[0],
        fuel[1],
        pass_fuel[0],
        pass_fuel[1],
        pass_fuel[1] as f64 / pass_fuel[0] as f64
    );
}

/// Every host call costs Envoy a crossing out of V8 and work of its own (one histogram sample
/// cost about 4% of a hit's throughput): an L1 hit with monitoring on reads the request
/// headers, the clock once and sends the reply — nothing else (its counters wait for the
/// tick, and only 1 in 16 hits reads the clock again to time itself).
#[test]
fn an_l1_hit_calls_the_host_three_times() {
    let (mut host, vm) = lead_cached_with_monitoring();
    hit_host_calls(&mut host, vm); // the first hit is timed
    host.trace_crossings(vm);
    let calls = hit_host_calls(&mut host, vm);
    let crossings = host.take_crossings(vm);
    assert_eq!(
        crossings.iter().filter(|c| c.calls_host).count() as u64,
        calls
    );
    assert!(crossings
        .windows(2)
        .all(|w| w[0].fuel_used <= w[1].fuel_used));
    assert_eq!(calls, 3, "host calls per L1 hit");
}

/// A host whose VM (monitoring on) has just stored `/api/v1/leads/1` (one miss).
fn lead_cached_with_monitoring() -> (Host, VmId) {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("fine").header("cache-control", "max-age=60"));
    let vm = host.start_vm(&config(r#"{"enabled": true}"#)).unwrap();
    host.request(vm, get("/api/v1/leads/1", "loc-1"));
    (host, vm)
}

/// The host calls of one request for the cached lead, which must be a hit.
fn hit_host_calls(host: &mut Host, vm: VmId) -> u64 {
    let before = host.host_calls(vm);
    let hit = host.request(vm, get("/api/v1/leads/1", "loc-1"));
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    host.host_calls(vm) - before
}

#[test]
fn one_answer_in_sixteen_sent_at_once_is_timed_and_the_latency_count_stays_exact() {
    let (mut host, vm) = lead_cached_with_monitoring();
    let calls_per_hit: Vec<u64> = (0..40).map(|_| hit_host_calls(&mut host, vm)).collect();
    // The first hit and every 16th after it read the clock once more, in `on_log`.
    let timed: Vec<usize> = (0..40).filter(|i| calls_per_hit[*i] == 4).collect();
    assert_eq!(timed, [0, 16, 32], "{calls_per_hit:?}");
    assert!(calls_per_hit.iter().all(|c| *c == 3 || *c == 4));
    host.advance(Duration::from_millis(1_100)); // the worker publishes
    let report = json(&admin_get(&mut host, vm, "/metrics"));
    let leads = &report["services"][0];
    assert_eq!(leads["requests"], 41);
    assert_eq!(leads["latency_ms"]["edge"]["count"], 41);
    let p50 = leads["latency_ms"]["edge"]["p50"].as_f64().unwrap();
    assert!(
        p50 < 1.0,
        "hits take under a millisecond at the edge: {p50}"
    );
}

#[test]
fn a_slow_timed_answer_is_not_repeated_for_the_untimed_ones() {
    let (mut host, vm) = lead_cached_with_monitoring();
    // The first hit is timed, and 5 ms pass between its two clock reads (a stalled worker or
    // a clock that jumped): it is recorded, but not carried to the next ones...
    host.set_clock_step_per_read(Duration::from_millis(5));
    assert_eq!(hit_host_calls(&mut host, vm), 4);
    host.set_clock_step_per_read(Duration::ZERO);
    // ...so the next one is timed again, and its (quick) latency is what the untimed carry.
    assert_eq!(hit_host_calls(&mut host, vm), 4);
    assert_eq!(hit_host_calls(&mut host, vm), 3);
    host.advance(Duration::from_millis(1_100));
    let report = json(&admin_get(&mut host, vm, "/metrics"));
    let edge = &report["services"][0]["latency_ms"]["edge"];
    assert_eq!(edge["count"], 4);
    // Of the four: the miss, the slow hit, two quick hits; the median is a quick one.
    assert!(edge["p50"].as_f64().unwrap() < 1.0, "{edge}");
}

#[test]
fn refusals_and_replays_are_told_apart() {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("done"));
    let vm = host
        .start_vm(
            r#"{"services": [
                {"name": "hooks", "match": {"path_prefix": "/hooks"}, "dedup": {}},
                {"name": "strict", "match": {"path_prefix": "/strict"},
                 "rate_limit": {"tenant": {"header": "x-location-id"}, "missing_tenant": "reject",
                                "requests_per_second": 10, "burst": 10}}
            ]}"#,
        )
        .unwrap();
    let delivery = |body: &str| {
        Request::post("/hooks", body.as_bytes().to_vec()).header("webhook-id", "msg_1")
    };
    assert_eq!(host.request(vm, delivery("a")).status, 200);
    assert_eq!(host.request(vm, delivery("a")).status, 200);
    assert_eq!(host.request(vm, delivery("b")).status, 422);
    assert_eq!(host.request(vm, Request::get("/strict")).status, 400);
    assert_eq!(requests(&mut host, "hooks", "pass"), 1);
    assert_eq!(requests(&mut host, "hooks", "dedup_replay"), 1);
    assert_eq!(requests(&mut host, "hooks", "refused"), 1);
    assert_eq!(requests(&mut host, "strict", "refused"), 1);
    assert_eq!(host.origin_calls().len(), 1);
}

/// Found by the `snapshot` fuzz target: figures read back from other workers' snapshots were
/// added with `+`, which wraps in the release `.wasm` (and traps in a debug build), so a corrupt
/// or hostile slot turned huge counts into small ones. They saturate now.
#[test]
fn huge_published_figures_saturate_instead_of_wrapping() {
    let (mut host, vms) = setup(2);
    scripted_traffic(&mut host, &vms);
    host.advance(Duration::from_millis(1_100));
    json(&admin_get(&mut host, vms[0], "/metrics"));
    let slots: Vec<String> = host
        .shared_keys()
        .into_iter()
        .filter(|k| k.starts_with("edge:mon:"))
        .filter(|k| host.shared_get(k).unwrap().0.len() > 1)
        .collect();
    assert_eq!(slots.len(), 2);
    // vm0 republishes its own slot before answering; the other one keeps these figures.
    for key in &slots {
        let mut snapshot: Value = serde_json::from_slice(&host.shared_get(key).unwrap().0).unwrap();
        for service in snapshot["services"].as_array_mut().unwrap() {
            for count in service["outcomes"].as_array_mut().unwrap() {
                *count = u64::MAX.into();
            }
        }
        host.shared_set(key, snapshot.to_string().as_bytes(), 0)
            .unwrap();
    }
    let report = json(&admin_get(&mut host, vms[0], "/metrics"));
    let leads = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "leads")
        .unwrap();
    assert_eq!(leads["requests"].as_u64(), Some(u64::MAX), "{leads}");
    assert_eq!(report["totals"]["requests"].as_u64(), Some(u64::MAX));
}

#[test]
fn the_bearer_scheme_is_case_insensitive() {
    let (mut host, vms) = setup(1);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = host.request(
            vms[0],
            Request::get("/api/v1/performance/metrics")
                .header("authorization", &format!("{scheme} {TOKEN}")),
        );
        assert_eq!(response.status, 200, "{scheme}: {}", response.body_text());
    }
    let wrong = host.request(
        vms[0],
        Request::get("/api/v1/performance/metrics")
            .header("authorization", &format!("Basic {TOKEN}")),
    );
    assert_eq!(wrong.status, 401);
}

//! Monitoring through real Envoy 1.40 with 2 workers: after a scripted run, Envoy's
//! `/stats/prometheus` carries the filter's stats as labelled metrics (the shipped `stats_tags`)
//! with the right values, and the filter's `/metrics` endpoint adds up both workers.

use std::time::{Duration, Instant};

use edge_envoy::launch::{admin_stats, http_request, test_stack, Stack};

fn prometheus(stack: &Stack) -> String {
    http_request(stack.admin, "GET", "/stats/prometheus", &[], b"")
        .unwrap()
        .text()
        .to_string()
}

/// The value of one sample line (`name{labels} value`), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn prometheus_output_has_labelled_metrics_with_the_right_values() {
    let stack = test_stack(None, 0.0);
    let tenant = [("x-location-id", "loc-1")];
    for _ in 0..5 {
        let response = http_request(stack.listen, "GET", "/api/v1/leads/1", &tenant, b"").unwrap();
        assert_eq!(response.status, 200);
    }
    for _ in 0..2 {
        http_request(stack.listen, "GET", "/nowhere", &[], b"").unwrap();
    }
    // The per-outcome counters reach Envoy on each worker's next 20 ms tick: wait until all
    // seven requests are counted (or 5 s), then read one snapshot.
    let outcomes = |text: &str| -> f64 {
        text.lines()
            .filter(|line| line.starts_with("edge_requests{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let waited = Instant::now();
    let mut text = prometheus(&stack);
    while outcomes(&text) < 7.0 && waited.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
        text = prometheus(&stack);
    }
    let count = |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series}\n{text}"));
    assert_eq!(
        count(r#"edge_requests{service="leads",outcome="miss"}"#),
        1.0
    );
    let hits = count(r#"edge_requests{service="leads",outcome="hit_l1"}"#)
        + count(r#"edge_requests{service="leads",outcome="hit_l2"}"#);
    assert_eq!(hits, 4.0);
    assert_eq!(
        count(r#"edge_requests{service="default",outcome="pass"}"#),
        2.0
    );
    assert_eq!(
        count(r#"edge_requests{service="coaching",outcome="hit_l1"}"#),
        0.0
    );
    assert_eq!(count(r#"edge_cache_store{tier="l2"}"#), 1.0);
    assert_eq!(count(r#"edge_cache_entries{tier="l2"}"#), 1.0);
    assert_eq!(count(r#"edge_cache_slots{tier="l2"}"#), 65536.0);
    assert_eq!(count(r#"edge_breaker_state{service="leads"}"#), 0.0);
    assert_eq!(count("edge_ratelimit_admitted{}"), 5.0);
    // Envoy configures a VM per worker and on the main thread (and may validate with another).
    assert!(count("edge_config_loaded{}") >= 3.0);
    assert_eq!(count("edge_config_rejected{}"), 0.0);
    // One metric name per family, labels for the rest: no service name inside a metric name.
    assert!(!text.contains("edge_requests_service"), "{text}");
    // Histograms reach the admin output at Envoy's stats flush (every 5 s). The miss is
    // sampled; the four hits, answered at once, are not.
    let started = Instant::now();
    let edge_count = r#"edge_latency_ms_count{service="leads",stage="edge"}"#;
    let mut text = prometheus(&stack);
    while sample(&text, edge_count) != Some(1.0) && started.elapsed() < Duration::from_secs(12) {
        std::thread::sleep(Duration::from_millis(250));
        text = prometheus(&stack);
    }
    assert_eq!(sample(&text, edge_count), Some(1.0), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"edge_latency_ms_count{service="leads",stage="origin"}"#
        ),
        Some(1.0)
    );
    // Every metric the shipped Grafana dashboard queries is in Envoy's output.
    let grafana: serde_json::Value =
        serde_json::from_str(include_str!("../grafana/edge-dashboard.json")).unwrap();
    let queried = grafana_metrics(&grafana);
    assert!(queried.len() >= 20, "{queried:?}");
    for name in queried {
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "Grafana queries {name}, which Envoy does not export"
        );
    }
    println!(
        "{}",
        text.lines()
            .filter(|l| l.starts_with("edge_requests{service=\"leads\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// `edge_*` metric names in the dashboard's queries.
fn grafana_metrics(value: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if let (true, Some(expr)) = (key == "expr", value.as_str()) {
                    let mut rest = expr;
                    while let Some(at) = rest.find("edge_") {
                        let name: String = rest[at..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        rest = &rest[at + name.len()..];
                        names.push(name);
                    }
                } else {
                    names.extend(grafana_metrics(value));
                }
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| names.extend(grafana_metrics(v)))
        }
        _ => {}
    }
    names.sort();
    names.dedup();
    names
}

#[test]
fn metrics_endpoint_adds_up_both_workers() {
    let stack = test_stack(None, 0.0);
    let tenant = [("x-location-id", "loc-3")];
    for i in 0..40 {
        let path = format!("/api/v1/coaching/{}", i % 4);
        http_request(stack.listen, "GET", &path, &tenant, b"").unwrap();
    }
    std::thread::sleep(Duration::from_millis(1_200)); // every worker publishes
    let response =
        http_request(stack.listen, "GET", "/api/v1/performance/metrics", &[], b"").unwrap();
    assert_eq!(
        response.status, 200,
        "loopback is allowed by the shipped config"
    );
    let report: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    // Workers that served traffic publish; the main-thread VM never does.
    let reporting = report["freshness"]["workers_reporting"].as_u64().unwrap();
    assert!((1..=2).contains(&reporting), "{report}");
    let coaching = report["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "coaching")
        .unwrap();
    assert_eq!(coaching["requests"], 40);
    assert_eq!(coaching["outcomes"]["miss"], 4);
    assert_eq!(coaching["hit_rate"], 0.9);
    assert_eq!(report["top_tenants"]["by_requests"][0]["tenant"], "loc-3");
}

#[test]
fn the_allow_list_checks_the_peer_not_x_forwarded_for() {
    let config = r#"{"admin": {"token": "a-token-of-16-chars", "allow_addresses": ["10.1.2.3"]}}"#;
    let stack = test_stack(Some(config), 0.0);
    let forged = [("x-forwarded-for", "10.1.2.3")];
    let path = "/api/v1/performance/metrics";
    let response = http_request(stack.listen, "GET", path, &forged, b"").unwrap();
    assert_eq!(response.status, 401, "{}", response.text());
    let bearer = [("authorization", "Bearer a-token-of-16-chars")];
    let response = http_request(stack.listen, "GET", path, &bearer, b"").unwrap();
    assert_eq!(response.status, 200);
}

/// CSRF and DNS rebinding against the management endpoints with the shipped configuration
/// (loopback on the allow-list): a foreign Host, Origin or Sec-Fetch-Site is refused, writes
/// need JSON; the token from a script and the dashboard's own requests still work.
#[test]
fn management_endpoints_refuse_cross_site_and_rebound_requests() {
    let stack = test_stack(None, 0.0);
    let listen = stack.listen;
    let purge = "/api/v1/performance/cache/purge";
    let metrics = "/api/v1/performance/metrics";
    let body = br#"{"service": "coaching"}"#;
    let send = |method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]| {
        http_request(listen, method, path, headers, body).unwrap()
    };
    let evil = [
        ("host", "evil.example"),
        ("origin", "http://evil.example"),
        ("content-type", "text/plain"),
    ];
    assert_eq!(
        send("POST", purge, &evil, body).status,
        403,
        "CSRF via rebinding"
    );
    let rebound = send("GET", metrics, &[("host", "evil.example:10000")], b"");
    assert_eq!(rebound.status, 403);
    assert!(!rebound.text().contains("services"));
    let cross = [("sec-fetch-site", "cross-site")];
    assert_eq!(send("GET", metrics, &cross, b"").status, 403);
    let plain = [("content-type", "text/plain")];
    assert_eq!(send("POST", purge, &plain, body).status, 415);
    let stats = admin_stats(stack.admin, "edge.cache.purge");
    assert!(
        stats.contains("edge.cache.purge: 0"),
        "nothing purged: {stats}"
    );
    // What keeps working: loopback with its own Host (and its own Origin), JSON writes, and
    // the token from a client without Origin whatever the Host.
    let own = format!("http://{listen}");
    let json = [
        ("content-type", "application/json"),
        ("origin", own.as_str()),
    ];
    assert_eq!(send("POST", purge, &json, body).status, 200);
    assert_eq!(send("GET", metrics, &[], b"").status, 200);
    let token = [
        ("host", "edge.example.com"),
        ("x-edge-admin-token", "demo-admin-token-change-me"),
    ];
    assert_eq!(send("GET", metrics, &token, b"").status, 200);
    let page = send("GET", "/api/v1/performance/dashboard", &[], b"");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
}

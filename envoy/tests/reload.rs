//! Live reload through real Envoy 1.40: the launcher watches `--plugin-config` and hands each
//! change to Envoy through the filter's ECDS file. A new service applies without a restart, an
//! invalid configuration is refused while the old one keeps serving (and `/health` says so),
//! and L2 entries still hit after a reload (each worker's L1 starts anew with its new VM).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edge_envoy::launch::{
    admin_stats, cache_status, http_request, origin_requests, set_origin_fault, test_stack_with,
    wasm_counter, workspace_root, KeepAliveClient, ReloadEvent, Stack,
};

const SHIPPED: &str = include_str!("../plugin-config.json");

fn config_file(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target/edge-runs")
        .join(format!("reload-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("plugin-config.json")
}

/// Replaces the file the way an editor or `edge-ctl optimize --apply` does (rename).
fn replace(path: &Path, config: &serde_json::Value) {
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, serde_json::to_string_pretty(config).unwrap()).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

/// The service the origin saw on the last request it served.
fn last_service(origin: SocketAddr) -> String {
    let log = http_request(origin, "GET", "/__origin/requests", &[], b"").unwrap();
    let log: Vec<serde_json::Value> = serde_json::from_slice(&log.body).unwrap();
    log.last().unwrap()["headers"]["x-edge-service"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn get(stack: &Stack, path: &str) -> edge_envoy::launch::HttpResponse {
    http_request(stack.listen, "GET", path, &[], b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

fn health(stack: &Stack) -> serde_json::Value {
    let response = get(stack, "/api/v1/performance/health");
    serde_json::from_slice(&response.body).unwrap()
}

#[test]
fn a_service_added_live_applies_an_invalid_one_is_refused_and_l2_still_hits() {
    let file = config_file("live");
    std::fs::write(&file, SHIPPED).unwrap();
    let stack = test_stack_with(None, 0.0, |options| {
        options.plugin_config = file.clone();
        options.static_config = false;
    });
    assert!(stack.live.is_some() && stack.watcher.is_some());
    let origin = stack.origin.as_ref().unwrap().addr();

    // An entry in L2 before the reload.
    assert_eq!(get(&stack, "/api/v1/leads/42").status, 200);
    assert!(cache_status(&get(&stack, "/api/v1/leads/42")).contains("hit"));
    assert_eq!(origin_requests(origin, "leads"), 1);
    get(&stack, "/health");
    assert_eq!(last_service(origin), "default");

    // A keep-alive connection open across the reload.
    let mut kept = KeepAliveClient::new(stack.listen, Duration::from_secs(10));
    assert_eq!(
        kept.request("GET", "/api/v1/leads/42", &[], b"")
            .unwrap()
            .status,
        200
    );

    // Add a service: applied without a restart.
    let pid = stack.envoy.pid();
    let mut config: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
    config["services"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "probes", "match": {"path_exact": "/health"}}
        ));
    let written = Instant::now();
    replace(&file, &config);
    let latency = loop {
        get(&stack, "/health");
        if last_service(origin) == "probes" {
            break written.elapsed();
        }
        assert!(written.elapsed() < Duration::from_secs(60), "never applied");
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "reload latency (file written -> first request attributed to the new service): {} ms",
        latency.as_millis()
    );
    assert_eq!(stack.envoy.pid(), pid, "no restart");
    // The first requests after the reload meet the new VMs, whose L1 is empty: whichever of
    // the two below comes first on its worker is an L2 hit.
    let l2_hits = wasm_counter(stack.admin, "edge.cache.l2.hit");
    // The connection opened before the reload still serves (no drain, no reset).
    let answer = kept
        .request("GET", "/api/v1/leads/42", &[], b"")
        .expect("the connection survives the reload");
    assert_eq!(answer.status, 200);
    assert_eq!(health(&stack)["status"], "healthy", "{}", health(&stack));

    // L2 survives: the entry comes from L2, the origin is not asked.
    let hit = get(&stack, "/api/v1/leads/42");
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    assert_eq!(origin_requests(origin, "leads"), 1);
    // Hit counters reach Envoy on the worker's next 20 ms tick.
    let waited = Instant::now();
    while wasm_counter(stack.admin, "edge.cache.l2.hit") <= l2_hits
        && waited.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(wasm_counter(stack.admin, "edge.cache.l2.hit") > l2_hits);

    // An invalid configuration: refused, the previous one keeps serving, health says so.
    config["services"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!(
            {"name": "broken", "match": {"path_prefix": "no-slash/"}}
        ));
    replace(&file, &config);
    let written = Instant::now();
    let reason = loop {
        let health = health(&stack);
        if health["status"] == "degraded" {
            break health["reasons"].to_string();
        }
        assert!(written.elapsed() < Duration::from_secs(60), "{health}");
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "refusal visible in /health after {} ms",
        written.elapsed().as_millis()
    );
    assert!(
        reason.contains(
            "configuration update rejected: services[5].match.path_prefix: must start with '/'"
        ),
        "{reason}"
    );
    let stats = admin_stats(
        stack.admin,
        "extension_config_discovery.http_filter.edge.update_",
    );
    // The launcher refused it: Envoy got the serving configuration again, with the refusal noted.
    assert!(stats.contains("update_rejected: 0"), "{stats}");
    assert!(stats.contains("update_success: 3"), "{stats}");
    // Traffic unaffected: the added service still applies, hits still hit.
    get(&stack, "/health");
    assert_eq!(last_service(origin), "probes");
    assert!(cache_status(&get(&stack, "/api/v1/leads/42")).contains("hit"));
    assert_eq!(origin_requests(origin, "leads"), 1);
    assert_eq!(stack.envoy.pid(), pid);
    let events: Vec<ReloadEvent> = stack
        .watcher
        .as_ref()
        .unwrap()
        .events()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(matches!(events[0], ReloadEvent::Applied { version: 2 }));
    assert!(
        matches!(&events[1], ReloadEvent::Refused { version: 3, reason }
            if reason == "services[5].match.path_prefix: must start with '/'"),
        "{events:?}"
    );

    // Fixed again: accepted, health clears.
    config["services"].as_array_mut().unwrap().pop();
    config["monitoring"]["hit_rate_target"] = serde_json::json!(0.5);
    replace(&file, &config);
    let written = Instant::now();
    while health(&stack)["status"] != "healthy" {
        assert!(
            written.elapsed() < Duration::from_secs(60),
            "{}",
            health(&stack)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_health(stack: &Stack, status: &str, reason: &str) {
    let written = Instant::now();
    loop {
        let health = health(stack);
        if health["status"] == status && health["reasons"].to_string().contains(reason) {
            return;
        }
        assert!(
            written.elapsed() < Duration::from_secs(60),
            "waiting for {status} {reason:?}: {health}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes `text` as is (a temporary file renamed over `path`).
fn replace_text(path: &Path, text: &str) {
    let temporary = path.with_extension("json.new");
    std::fs::write(&temporary, text).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

#[test]
fn health_tells_the_truth_when_identical_configurations_come_back() {
    let file = config_file("truth");
    std::fs::write(&file, SHIPPED).unwrap();
    let stack = test_stack_with(None, 0.0, |options| {
        options.plugin_config = file.clone();
        options.static_config = false;
    });
    let origin = stack.origin.as_ref().unwrap().addr();
    wait_for_health(&stack, "healthy", "");
    // L1 gauges: a reload's new VMs start with an empty L1 and the replaced ones take theirs
    // back, so the process-wide gauge does not keep what retired VMs held.
    for n in 1..=3 {
        get(&stack, &format!("/api/v1/leads/{n}"));
    }
    assert!(wasm_counter(stack.admin, "edge.cache.l1.entries") >= 3);
    let mut config: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
    config["monitoring"]["hit_rate_target"] = serde_json::json!(0.5);
    replace(&file, &config);
    let written = Instant::now();
    while wasm_counter(stack.admin, "edge.cache.l1.entries") != 0 {
        assert!(
            written.elapsed() < Duration::from_secs(60),
            "L1 gauges kept {} entries of replaced VMs",
            wasm_counter(stack.admin, "edge.cache.l1.entries")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let rejected = "configuration update rejected: config: empty (write {} for all defaults)";
    // B -> empty (a truncated write): refused, B keeps serving.
    replace_text(&file, "");
    wait_for_health(&stack, "degraded", rejected);
    assert_eq!(get(&stack, "/api/v1/leads/7").status, 200);
    assert_eq!(last_service(origin), "leads", "B still serves");
    // -> B byte for byte: healthy again.
    replace_text(&file, SHIPPED);
    wait_for_health(&stack, "healthy", "");
    // -> the same empty file again: degraded again.
    replace_text(&file, "  \n");
    wait_for_health(&stack, "degraded", rejected);
    replace_text(&file, SHIPPED);
    wait_for_health(&stack, "healthy", "");
    replace_text(&file, "");
    wait_for_health(&stack, "degraded", rejected);
    assert_eq!(get(&stack, "/api/v1/leads/8").status, 200);
    assert_eq!(last_service(origin), "leads");

    // A slot count cannot change live (the table would be dropped): refused, L2 kept.
    replace_text(&file, SHIPPED);
    wait_for_health(&stack, "healthy", "");
    let fetched = origin_requests(origin, "leads");
    let mut config: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
    let slots = config["limits"]["l2_slots"].as_u64().unwrap_or(65_536);
    config["limits"]["l2_slots"] = serde_json::json!(slots * 2);
    replace(&file, &config);
    wait_for_health(&stack, "degraded", "limits.l2_slots: ");
    let reasons = health(&stack)["reasons"].to_string();
    assert!(
        reasons.contains("needs a restart of edge-launch"),
        "{reasons}"
    );
    for path in ["/api/v1/leads/7", "/api/v1/leads/8"] {
        assert!(cache_status(&get(&stack, path)).contains("hit"), "{path}");
    }
    assert_eq!(origin_requests(origin, "leads"), fetched);
}

#[test]
fn an_open_breaker_stays_with_its_service_when_a_service_is_inserted_before_it() {
    let file = config_file("breaker");
    let mut config: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
    config["services"][1]["breaker"] =
        serde_json::json!({"open_base_ms": 60000, "min_requests": 5, "jitter_percent": 0});
    std::fs::write(&file, config.to_string()).unwrap();
    let stack = test_stack_with(None, 0.0, |options| {
        options.plugin_config = file.clone();
        options.static_config = false;
    });
    let origin = stack.origin.as_ref().unwrap().addr();
    set_origin_fault(origin, r#"{"endpoint": "coaching", "error_rate": 1.0}"#);
    let started = Instant::now();
    let mut n = 0;
    // Failures until the breaker opens (outcomes reach shared data on the next tick).
    loop {
        n += 1;
        let before = origin_requests(origin, "coaching");
        get(&stack, &format!("/api/v1/coaching/{n}"));
        if origin_requests(origin, "coaching") == before {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "never opened");
        std::thread::sleep(Duration::from_millis(30));
    }
    let tripped_at = origin_requests(origin, "coaching");

    config["services"].as_array_mut().unwrap().insert(
        0,
        serde_json::json!({"name": "probes", "match": {"path_exact": "/health"}}),
    );
    replace(&file, &config);
    let written = Instant::now();
    loop {
        get(&stack, "/health");
        if last_service(origin) == "probes" {
            break;
        }
        assert!(written.elapsed() < Duration::from_secs(60), "never applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    for n in 0..4 {
        let refused = get(&stack, &format!("/api/v1/coaching/after-{n}"));
        assert_eq!(refused.status, 503);
    }
    assert_eq!(
        origin_requests(origin, "coaching"),
        tripped_at,
        "coaching's open breaker still holds its requests after the reload"
    );
}

#[test]
fn an_invalid_configuration_stops_a_live_launch_before_envoy_starts() {
    let mut options = edge_envoy::launch::test_options(0.0);
    options.static_config = false;
    let bad = r#"{"services": [{"name": "c", "match": {"path_prefix": "c/"}}]}"#;
    let err = match Stack::start_with_plugin_config(&options, bad) {
        Ok(_) => panic!("started with an invalid configuration"),
        Err(err) => err.to_string(),
    };
    assert_eq!(
        err,
        "configuration rejected: services[0].match.path_prefix: must start with '/'"
    );
}

#[test]
fn static_config_keeps_the_plugin_configuration_inline() {
    let stack = test_stack_with(None, 0.0, |options| options.static_config = true);
    assert!(stack.live.is_none() && stack.watcher.is_none());
    let rendered = std::fs::read_to_string(stack.run_dir.join("envoy.yaml")).unwrap();
    assert!(rendered.contains("filename:"));
    assert!(!rendered.contains("config_discovery"));
    assert_eq!(get(&stack, "/api/v1/leads/1").status, 200);
}

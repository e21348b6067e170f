//! Figures of the fleet paths through real processes (printed, not asserted: the machine is
//! shared): latency per request on each fleet path as a ratio to the same path local-only,
//! measured interleaved (A B A B …) in one run, and Redis calls per request by path.
//! `cargo test -p edge-envoy --test fleet_figures -- --nocapture`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_envoy::launch::{test_fleet_stack, wasm_counter, FleetTier, KeepAliveClient, Stack};

const CONFIG: &str = r#"{
    "services": [
        {"name": "hooks-fleet", "match": {"authority": "fleet.test", "path_exact": "/webhooks/ghl"},
         "dedup": {}, "fleet": {}},
        {"name": "hooks-local", "match": {"authority": "local.test", "path_exact": "/webhooks/ghl"},
         "dedup": {}},
        {"name": "api-fleet", "match": {"authority": "fleet.test", "path_prefix": "/api/v1/leads/"},
         "rate_limit": {"tenant": {"header": "x-tenant"}, "requests_per_second": 100000,
                        "burst": 100000},
         "fleet": {}},
        {"name": "api-local", "match": {"authority": "local.test", "path_prefix": "/api/v1/leads/"},
         "rate_limit": {"tenant": {"header": "x-tenant"}, "requests_per_second": 100000,
                        "burst": 100000}},
        {"name": "cache-fleet", "match": {"authority": "fleet.test", "path_prefix": "/api/v1/coaching/"},
         "cache": {}, "fleet": {}},
        {"name": "cache-local", "match": {"authority": "local.test", "path_prefix": "/api/v1/coaching/"},
         "cache": {}}
    ],
    "fleet_bridge": {"timeout_ms": 200}
}"#;

const N: usize = 300;

fn calls(stacks: &[&Stack]) -> u64 {
    stacks
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.calls"))
        .sum()
}

fn timed(
    client: &mut KeepAliveClient,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Duration {
    let body: &[u8] = if method == "POST" { br#"{"x":1}"# } else { b"" };
    let start = Instant::now();
    let response = client
        .request(method, path, headers, body)
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
    let took = start.elapsed();
    assert!(
        response.status < 500,
        "{method} {path}: {}",
        response.status
    );
    took
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// One path: `fleet(i)` and `local(i)` run interleaved; medians, ratio, fleet calls per
/// fleet request.
fn compare(
    name: &str,
    stacks: &[&Stack],
    mut fleet: impl FnMut(usize) -> Duration,
    mut local: impl FnMut(usize) -> Duration,
) {
    let (mut f, mut l) = (Vec::new(), Vec::new());
    let before = calls(stacks);
    for i in 0..N {
        f.push(fleet(i));
        l.push(local(i));
    }
    let used = calls(stacks) - before;
    let (f, l) = (median(f), median(l));
    println!(
        "{name:<46} fleet {:>8.3} ms  local-only {:>8.3} ms  ratio {:>5.2}  Redis calls/request {:.2}",
        f.as_secs_f64() * 1e3,
        l.as_secs_f64() * 1e3,
        f.as_secs_f64() / l.as_secs_f64(),
        used as f64 / N as f64,
    );
}

#[test]
fn latency_and_redis_calls_per_fleet_path() {
    let tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    let a = test_fleet_stack(CONFIG, 0.0, 2, tier.bridge, None);
    let origin = a.origin.as_ref().map(|o| o.addr());
    let b = test_fleet_stack(CONFIG, 0.0, 2, tier.bridge, origin);
    let stacks = [&a, &b];
    let client = |addr: SocketAddr| KeepAliveClient::new(addr, Duration::from_secs(10));
    // One client (keep-alive connection) per replica and side.
    let (mut fleet_a, mut local_a) = (client(a.listen), client(a.listen));
    let (mut fleet_b, mut local_b) = (client(b.listen), client(b.listen));
    // Background calls (probes, purge-counter reads) over a quiet second, for reference.
    let quiet = calls(&stacks);
    std::thread::sleep(Duration::from_secs(1));
    println!(
        "background: {} fleet calls/s for 2 replicas x 2 workers (purge counters, probes)",
        calls(&stacks) - quiet
    );
    let hook = |host: &'static str, id: String| {
        move |c: &mut KeepAliveClient| {
            timed(
                c,
                "POST",
                "/webhooks/ghl",
                &[("host", host), ("webhook-id", &id)],
            )
        }
    };
    compare(
        "dedup, first attempt (claim + completion)",
        &stacks,
        |i| hook("fleet.test", format!("f-{i}"))(&mut fleet_a),
        |i| hook("local.test", format!("l-{i}"))(&mut local_a),
    );
    std::thread::sleep(Duration::from_millis(200));
    compare(
        "dedup, duplicate on the other replica",
        &stacks,
        |i| hook("fleet.test", format!("f-{i}"))(&mut fleet_b),
        // Local-only: the duplicate is replayed only on the replica that has the record.
        |i| hook("local.test", format!("l-{i}"))(&mut local_a),
    );
    compare(
        "dedup, duplicate on the same replica",
        &stacks,
        |i| hook("fleet.test", format!("f-{i}"))(&mut fleet_a),
        |i| hook("local.test", format!("l-{i}"))(&mut local_a),
    );
    let api = |host: &'static str| {
        move |c: &mut KeepAliveClient, i: usize| {
            timed(
                c,
                "GET",
                &format!("/api/v1/leads/{}", i % 20),
                &[("host", host), ("x-tenant", "t1")],
            )
        }
    };
    compare(
        "rate limit, admitted",
        &stacks,
        |i| api("fleet.test")(&mut fleet_a, i),
        |i| api("local.test")(&mut local_a, i),
    );
    let page = |host: &'static str| {
        move |c: &mut KeepAliveClient, i: usize| {
            timed(
                c,
                "GET",
                &format!("/api/v1/coaching/{i}"),
                &[("host", host)],
            )
        }
    };
    compare(
        "cache, cold miss (L3 lookup + origin + store)",
        &stacks,
        |i| page("fleet.test")(&mut fleet_a, i),
        |i| page("local.test")(&mut local_a, i),
    );
    std::thread::sleep(Duration::from_millis(200));
    compare(
        "cache, first request on B (L3 hit vs origin)",
        &stacks,
        |i| page("fleet.test")(&mut fleet_b, i),
        |i| page("local.test")(&mut local_b, i),
    );
    compare(
        "cache, L1 hit",
        &stacks,
        |i| page("fleet.test")(&mut fleet_a, i % 10),
        |i| page("local.test")(&mut local_a, i % 10),
    );
}

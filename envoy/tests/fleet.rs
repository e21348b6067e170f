//! The fleet tier through real processes: two Envoy replicas (2 workers each) sharing one
//! `redis-server` behind `webdis`, all started by the test on loopback ports.
//!
//! - a webhook storm spread over both replicas: every unique delivery processed exactly once;
//! - one tenant over both replicas: admitted within 2% of rate × T + burst;
//! - a key fetched through replica A is an L3 hit on replica B (origin count 1); 200
//!   concurrent cold misses spread over both replicas → 1 origin request;
//! - a purge on A takes effect on B within the refresh interval;
//! - Redis killed mid-run (traffic on every fleet path through both replicas throughout):
//!   every request still answered (none lost or hung), `/health` degraded with `fleet tier
//!   unreachable`, failed calls counted; Redis restarted: fleet dedup returns.
//!
//! `cargo test -p edge-envoy --test fleet -- --nocapture` prints the figures.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_envoy::launch::{
    cache_status, http_request, origin_requests, test_fleet_stack, wasm_counter, FleetTier,
    KeepAliveClient, Stack,
};

/// The tests here measure counts and timings over several processes: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    edge_envoy::launch::one_at_a_time()
}

const CONFIG: &str = r#"{
    "services": [
        {"name": "webhooks", "match": {"path_exact": "/webhooks/ghl", "methods": ["POST"]},
         "dedup": {"retry_after_s": 1}, "fleet": {}},
        {"name": "closed", "match": {"path_exact": "/webhooks/closed", "methods": ["POST"]},
         "dedup": {"retry_after_s": 1}, "fleet": {"failure_mode": "fail_closed"}},
        {"name": "leads", "match": {"path_prefix": "/api/v1/leads/"},
         "rate_limit": {"tenant": {"header": "x-tenant"}, "requests_per_second": 100, "burst": 50,
                        "serve_stale_when_limited": false},
         "fleet": {}},
        {"name": "coaching", "match": {"path_prefix": "/api/v1/coaching/"},
         "cache": {"tenant": {"header": "x-location-id"}}, "fleet": {}}
    ],
    "fleet_bridge": {"timeout_ms": 200, "probe_interval_ms": 200},
    "generation_refresh_ms": 250,
    "admin": {"allow_addresses": ["127.0.0.1"]},
    "limits": {"dedup_slots": 65536}
}"#;

/// Two replicas (2 workers each) in front of one demo origin, sharing `tier`.
fn replicas(tier: &FleetTier, latency_scale: f64) -> (Stack, Stack) {
    let a = test_fleet_stack(CONFIG, latency_scale, 2, tier.bridge, None);
    let origin = a.origin.as_ref().map(|o| o.addr());
    let b = test_fleet_stack(CONFIG, latency_scale, 2, tier.bridge, origin);
    (a, b)
}

fn deliver(listen: SocketAddr, path: &str, id: &str) -> (u16, bool) {
    let body = format!(r#"{{"type":"contact.created","delivery":"{id}"}}"#);
    let response = http_request(
        listen,
        "POST",
        path,
        &[("webhook-id", id), ("content-type", "application/json")],
        body.as_bytes(),
    )
    .unwrap_or_else(|err| panic!("delivery {id}: {err}"));
    (
        response.status,
        response.header("x-edge-dedup") == Some("replayed"),
    )
}

/// [`deliver`] retried while it gets 409 (another attempt in flight, or its result not yet
/// written to the fleet tier), as a webhook sender retries; the final answer.
fn deliver_until_final(listen: SocketAddr, path: &str, id: &str) -> (u16, bool) {
    for _ in 0..50 {
        let outcome = deliver(listen, path, id);
        if outcome.0 != 409 {
            return outcome;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    deliver(listen, path, id)
}

/// How many times the origin processed each delivery (`msg_…` ids).
fn processed(origin: SocketAddr) -> BTreeMap<String, u64> {
    let report = http_request(origin, "GET", "/__origin/webhooks", &[], b"").unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.body).unwrap();
    report["deliveries"]
        .as_object()
        .map(|d| {
            d.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn health(stack: &Stack) -> serde_json::Value {
    let response =
        http_request(stack.listen, "GET", "/api/v1/performance/health", &[], b"").unwrap();
    serde_json::from_slice(&response.body).unwrap_or(serde_json::Value::Null)
}

fn fleet_unreachable(stack: &Stack) -> bool {
    // Either worker may answer: ask a few times.
    (0..4).any(|_| {
        let health = health(stack);
        health["status"] == "degraded"
            && health["reasons"]
                .as_array()
                .is_some_and(|r| r.iter().any(|r| r == "fleet tier unreachable"))
    })
}

/// Polls `check` for up to `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

const UNIQUE: usize = 600;
const SENDERS: usize = 32;

#[test]
fn a_webhook_storm_over_two_replicas_reaches_the_origin_once_per_delivery() {
    let _serial = serial();
    let tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    let (a, b) = replicas(&tier, 0.05);
    let origin = a.origin.as_ref().unwrap().addr();
    // Copies of a delivery (1–4) back to back, alternating replicas: concurrent senders pick
    // them up at the same moment on different replicas.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut jobs = Vec::new();
    for id in 0..UNIQUE {
        for copy in 0..1 + (next() % 4) as usize {
            jobs.push((id, (id + copy) % 2));
        }
    }
    jobs.reverse();
    let sent = jobs.len();
    let queue = Arc::new(Mutex::new(jobs));
    let outcomes = Arc::new(Mutex::new(BTreeMap::<(u16, bool), usize>::new()));
    let listens = [a.listen, b.listen];
    let start = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let outcomes = Arc::clone(&outcomes);
            std::thread::spawn(move || loop {
                let Some((id, replica)) = queue.lock().unwrap().pop() else {
                    return;
                };
                let id = format!("msg_{id}");
                // A sender retries a 409 (another replica's attempt in flight) like a real
                // webhook sender does, here after 100 ms, until it gets a final answer.
                let mut tries = 0;
                let outcome = loop {
                    tries += 1;
                    let outcome = deliver(listens[replica], "/webhooks/ghl", &id);
                    if outcome.0 != 409 || tries > 100 {
                        break outcome;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                };
                *outcomes.lock().unwrap().entry(outcome).or_insert(0) += 1;
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let elapsed = start.elapsed();
    let deliveries = processed(origin);
    let lost = (0..UNIQUE)
        .filter(|id| !deliveries.contains_key(&format!("msg_{id}")))
        .count();
    let twice = deliveries.values().filter(|n| **n > 1).count();
    let calls: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.calls"))
        .sum();
    let failed: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.failed"))
        .sum();
    let fleet_replayed: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.dedup.replayed"))
        .sum();
    println!(
        "fleet webhook storm, 2 replicas x 2 workers, {SENDERS} senders: {UNIQUE} unique \
         deliveries sent {sent} times in {elapsed:?}; origin processed {}; lost {lost}; more \
         than once {twice}; replayed from another replica {fleet_replayed}; fleet calls {calls} \
         ({:.2} per delivery copy), failed {failed}; client outcomes {:?}",
        deliveries.values().sum::<u64>(),
        calls as f64 / sent as f64,
        outcomes.lock().unwrap()
    );
    assert_eq!(lost, 0, "every unique delivery reached the origin");
    assert_eq!(twice, 0, "no delivery reached the origin twice");
    assert!(
        fleet_replayed > 0,
        "duplicates were replayed across replicas"
    );
    assert_eq!(failed, 0, "no fleet call failed");
    assert!(outcomes
        .lock()
        .unwrap()
        .keys()
        .all(|(status, _)| *status == 200));
}

#[test]
fn redis_down_every_request_answered_health_degraded_and_back_when_it_returns() {
    let _serial = serial();
    let mut tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    let (a, b) = replicas(&tier, 0.0);
    let origin = a.origin.as_ref().unwrap().addr();
    assert!(!fleet_unreachable(&a) && !fleet_unreachable(&b));
    // Fleet-wide dedup works: a delivery through A is replayed by B.
    assert_eq!(deliver(a.listen, "/webhooks/ghl", "before").0, 200);
    assert_eq!(
        deliver_until_final(b.listen, "/webhooks/ghl", "before"),
        (200, true)
    );

    // Traffic on every fleet path through both replicas for the whole run: deliveries, cached
    // pages (L3), a rate-limited tenant.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let stop = Arc::clone(&stop);
            let listen = [a.listen, b.listen][t % 2];
            std::thread::spawn(move || {
                let mut statuses = BTreeMap::<u16, u64>::new();
                let (mut lost, mut slowest, mut n) = (0u64, Duration::ZERO, 0u64);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let started = Instant::now();
                    let result = match n % 3 {
                        0 => http_request(
                            listen,
                            "POST",
                            "/webhooks/ghl",
                            &[("webhook-id", &format!("load-{t}-{n}"))],
                            b"{}",
                        ),
                        1 => http_request(
                            listen,
                            "GET",
                            &format!("/api/v1/coaching/{}", n % 40),
                            &[("host", "edge.test"), ("x-location-id", "loc-1")],
                            b"",
                        ),
                        _ => http_request(
                            listen,
                            "GET",
                            "/api/v1/leads/1",
                            &[("x-tenant", &format!("t{t}"))],
                            b"",
                        ),
                    };
                    slowest = slowest.max(started.elapsed());
                    match result {
                        Ok(response) => *statuses.entry(response.status).or_insert(0) += 1,
                        Err(_) => lost += 1,
                    }
                }
                (statuses, lost, slowest)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    tier.stop_redis();
    let killed = Instant::now();
    // Every request is answered, none hangs: fail_open goes on with the local tiers,
    // fail_closed answers 503 with Retry-After.
    let mut statuses = BTreeMap::<(&str, u16), usize>::new();
    let mut slowest = Duration::ZERO;
    for i in 0..40 {
        let stack = if i % 2 == 0 { &a } else { &b };
        let started = Instant::now();
        let open = deliver(stack.listen, "/webhooks/ghl", &format!("down-{i}"));
        let closed = deliver(stack.listen, "/webhooks/closed", &format!("closed-{i}"));
        slowest = slowest.max(started.elapsed());
        *statuses.entry(("fail_open", open.0)).or_insert(0) += 1;
        *statuses.entry(("fail_closed", closed.0)).or_insert(0) += 1;
    }
    let degraded = eventually(Duration::from_secs(10), || {
        fleet_unreachable(&a) && fleet_unreachable(&b)
    });
    let failed: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.failed"))
        .sum();
    let skipped: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.skipped"))
        .sum();
    // Down under traffic for a while (at least 1.5 s).
    std::thread::sleep(Duration::from_millis(1500).saturating_sub(killed.elapsed()));
    let down_for = killed.elapsed();

    tier.start_redis().unwrap_or_else(|err| panic!("{err}"));
    let restarted = Instant::now();
    let recovered = eventually(Duration::from_secs(15), || {
        !fleet_unreachable(&a) && !fleet_unreachable(&b)
    });
    let recovery = restarted.elapsed();
    // Fleet dedup is back: a delivery through B is replayed by A.
    let mut replayed_after = false;
    if recovered {
        assert_eq!(deliver(b.listen, "/webhooks/ghl", "after").0, 200);
        replayed_after = deliver_until_final(a.listen, "/webhooks/ghl", "after") == (200, true);
    }
    // Deliveries processed during the outage (fail_open) reached Redis once it was back: a
    // retry through the other replica is replayed, not processed again.
    let mut outage_replayed = 0;
    if recovered {
        std::thread::sleep(Duration::from_millis(300));
        for i in 0..10 {
            let other = if i % 2 == 0 { &b } else { &a };
            let retry = deliver_until_final(other.listen, "/webhooks/ghl", &format!("down-{i}"));
            outage_replayed += usize::from(retry == (200, true));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut load_statuses, mut lost, mut load_slowest) = (BTreeMap::new(), 0, Duration::ZERO);
    for thread in load {
        let (statuses, thread_lost, slowest) = thread.join().unwrap();
        for (status, n) in statuses {
            *load_statuses.entry(status).or_insert(0u64) += n;
        }
        lost += thread_lost;
        load_slowest = load_slowest.max(slowest);
    }
    println!(
        "fleet fault run, background traffic on all fleet paths through both replicas: \
         {} requests answered {load_statuses:?}, lost or hung {lost}, slowest {load_slowest:?}",
        load_statuses.values().sum::<u64>()
    );
    assert_eq!(lost, 0, "no request lost or hung");
    assert!(
        load_statuses.keys().all(|s| matches!(s, 200 | 429)),
        "{load_statuses:?}"
    );
    let deliveries = processed(origin);
    println!(
        "fleet fault run: Redis down {down_for:?}: 80 deliveries answered {statuses:?}, slowest \
         pair {slowest:?}; failed fleet calls {failed}, requests that skipped the tier \
         {skipped}; health degraded on both replicas: {degraded}; back to healthy {recovery:?} \
         after restart; replayed across replicas after: {replayed_after}; deliveries made \
         during the outage replayed by the other replica after it: {outage_replayed}/10; \
         origin processed 'before' {} time(s), 'after' {} time(s)",
        deliveries.get("before").copied().unwrap_or(0),
        deliveries.get("after").copied().unwrap_or(0),
    );
    assert_eq!(
        statuses.values().sum::<usize>(),
        80,
        "every request answered"
    );
    assert_eq!(statuses.get(&("fail_open", 200)), Some(&40));
    assert_eq!(statuses.get(&("fail_closed", 503)), Some(&40));
    assert!(slowest < Duration::from_secs(5), "no request waited long");
    assert!(degraded, "health says the fleet tier is unreachable");
    assert!(failed > 0, "failed fleet calls are counted");
    assert!(recovered, "health is back once Redis is");
    assert!(replayed_after, "fleet dedup is back once Redis is");
    assert_eq!(deliveries.get("before"), Some(&1));
    assert_eq!(deliveries.get("after"), Some(&1));
    assert_eq!(
        outage_replayed, 10,
        "results made during the outage reach Redis"
    );
    for i in 0..10 {
        assert_eq!(deliveries.get(&format!("down-{i}")), Some(&1), "down-{i}");
    }
}

/// The `leads` service's fleet-wide limit.
const RATE: f64 = 100.0;
const BURST: f64 = 50.0;

#[test]
fn one_tenant_over_both_replicas_is_admitted_within_two_percent_of_its_limit() {
    let _serial = serial();
    let tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    let (a, b) = replicas(&tier, 0.0);
    let calls_before: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.calls"))
        .sum();
    // 8 clients (keep-alive), half on each replica, as fast as they can for 6 s: several
    // times the rate, so the limit is what decides.
    let run = Duration::from_secs(6);
    let start = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let listen = if i % 2 == 0 { a.listen } else { b.listen };
            std::thread::spawn(move || {
                let mut client = KeepAliveClient::new(listen, Duration::from_secs(10));
                let mut counts = BTreeMap::<u16, u64>::new();
                let mut n = 0u64;
                while start.elapsed() < run {
                    n += 1;
                    let path = format!("/api/v1/leads/{}", n % 50);
                    let status = client
                        .request("GET", &path, &[("x-tenant", "acme")], b"")
                        .map_or(0, |r| r.status);
                    *counts.entry(status).or_insert(0) += 1;
                }
                counts
            })
        })
        .collect();
    let mut counts = BTreeMap::<u16, u64>::new();
    for client in clients {
        for (status, n) in client.join().unwrap() {
            *counts.entry(status).or_insert(0) += n;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let admitted = counts.get(&200).copied().unwrap_or(0);
    let requests: u64 = counts.values().sum();
    let bound = RATE * elapsed + BURST;
    let calls: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.calls"))
        .sum::<u64>()
        - calls_before;
    let local_limited: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.ratelimit.rejected"))
        .sum();
    let fleet_limited: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.ratelimit.rejected"))
        .sum();
    let batches: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.ratelimit.batches"))
        .sum();
    let failed: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.failed"))
        .sum();
    println!(
        "fleet rate limit, 2 replicas x 2 workers, one tenant at {RATE}/s burst {BURST}: \
         {requests} requests in {elapsed:.2} s, admitted {admitted} = {:.2}% of rate x T + \
         burst ({bound:.0}); refused by the local pre-check {local_limited}, by the fleet \
         {fleet_limited}; fleet calls {calls} ({:.3} per request; {batches} token batches, \
         {failed} failed); statuses {counts:?}",
        100.0 * admitted as f64 / bound,
        calls as f64 / requests as f64,
    );
    assert!(
        requests as f64 > 3.0 * bound,
        "the load is well over the limit"
    );
    assert!(
        (admitted as f64 - bound).abs() <= 0.02 * bound,
        "admitted {admitted}, limit {bound:.0}"
    );
    assert!(counts.keys().all(|s| *s == 200 || *s == 429), "{counts:?}");
}

fn get(listen: SocketAddr, path: &str) -> edge_envoy::launch::HttpResponse {
    // The same Host on every replica (the cache key has it; each replica listens on its port).
    let headers = [("host", "edge.test"), ("x-location-id", "loc-1")];
    http_request(listen, "GET", path, &headers, b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

#[test]
fn a_key_fetched_through_one_replica_is_an_l3_hit_on_the_other() {
    let _serial = serial();
    let tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    let (a, b) = replicas(&tier, 0.0);
    let origin = a.origin.as_ref().unwrap().addr();
    let first = get(a.listen, "/api/v1/coaching/7");
    assert_eq!(first.status, 200);
    assert!(
        cache_status(&first).contains("fwd=uri-miss"),
        "{}",
        cache_status(&first)
    );
    // Written behind by A's root context (its next tick, 20 ms).
    let stored = eventually(Duration::from_secs(5), || {
        [&a].iter()
            .map(|s| wasm_counter(s.admin, "edge.fleet.cache.store"))
            .sum::<u64>()
            >= 1
    });
    assert!(stored, "A wrote the entry to the L3 tier");
    std::thread::sleep(Duration::from_millis(100));
    // B has neither L1 nor L2 for it: an L3 hit, no origin request. Both B workers.
    for _ in 0..4 {
        let on_b = get(b.listen, "/api/v1/coaching/7");
        assert_eq!(on_b.status, 200);
        assert_eq!(on_b.body, first.body);
        assert!(
            cache_status(&on_b).contains("hit"),
            "{}",
            cache_status(&on_b)
        );
    }
    let hits = wasm_counter(b.admin, "edge.fleet.cache.hit");
    println!(
        "fleet L3: fetched through A, then 4 requests on B: origin requests {}, L3 hits on B \
         {hits}, B's cache-status {:?}",
        origin_requests(origin, "coaching"),
        cache_status(&get(b.listen, "/api/v1/coaching/7"))
    );
    assert_eq!(origin_requests(origin, "coaching"), 1);
    assert!(hits >= 1);
}

#[test]
fn a_purge_on_one_replica_takes_effect_on_the_other_within_the_refresh_interval() {
    let _serial = serial();
    let tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    let (a, b) = replicas(&tier, 0.0);
    let origin = a.origin.as_ref().unwrap().addr();
    let path = "/api/v1/coaching/9";
    assert_eq!(get(a.listen, path).status, 200);
    assert!(eventually(Duration::from_secs(5), || {
        wasm_counter(a.admin, "edge.fleet.cache.store") >= 1
    }));
    std::thread::sleep(Duration::from_millis(100));
    // B holds it now (L3 hit, kept in its L1/L2), and keeps answering it without the origin.
    for _ in 0..4 {
        assert!(cache_status(&get(b.listen, path)).contains("hit"));
    }
    assert_eq!(origin_requests(origin, "coaching"), 1);
    let purge = http_request(
        a.listen,
        "POST",
        "/api/v1/performance/cache/purge",
        &[("content-type", "application/json")],
        br#"{"url": "http://edge.test/api/v1/coaching/9"}"#,
    )
    .unwrap();
    assert_eq!(purge.status, 200, "{}", purge.text());
    let purged = Instant::now();
    // Within generation_refresh_ms (250 ms) B reads the fleet's counters: its copies (L1, L2,
    // and the L3 entry) no longer answer.
    let mut took = None;
    while purged.elapsed() < Duration::from_secs(5) {
        let response = get(b.listen, path);
        if !cache_status(&response).contains("hit") {
            took = Some(purged.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!(
        "fleet purge: made on A, B stopped answering from its copies after {took:?} \
         (generation_refresh_ms 250); origin requests {}",
        origin_requests(origin, "coaching")
    );
    let took = took.expect("the purge reached B");
    assert!(
        took < Duration::from_millis(1250),
        "within the refresh interval (+ slack)"
    );
    assert_eq!(origin_requests(origin, "coaching"), 2);
}

#[test]
fn concurrent_cold_misses_over_both_replicas_reach_the_origin_once() {
    let _serial = serial();
    let tier = FleetTier::start().unwrap_or_else(|err| panic!("{err}"));
    // The demo origin's own latency (coaching: tens of ms) keeps the fetch in flight while
    // the others arrive.
    let (a, b) = replicas(&tier, 1.0);
    let origin = a.origin.as_ref().unwrap().addr();
    let listens = [a.listen, b.listen];
    let barrier = Arc::new(std::sync::Barrier::new(200));
    let start = Instant::now();
    let clients: Vec<_> = (0..200)
        .map(|i| {
            let barrier = Arc::clone(&barrier);
            let listen = listens[i % 2];
            std::thread::spawn(move || {
                barrier.wait();
                let response = get(listen, "/api/v1/coaching/77");
                (response.status, cache_status(&response).to_string())
            })
        })
        .collect();
    let answers: Vec<(u16, String)> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let elapsed = start.elapsed();
    let waited: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.cache.waited"))
        .sum();
    let l3_hits: u64 = [&a, &b]
        .iter()
        .map(|s| wasm_counter(s.admin, "edge.fleet.cache.hit"))
        .sum();
    let fetched = origin_requests(origin, "coaching");
    println!(
        "fleet coalescing: 200 concurrent cold misses over 2 replicas x 2 workers in \
         {elapsed:?}: origin requests {fetched}; L3 waits {waited}, L3 hits {l3_hits}; statuses \
         {:?}",
        answers
            .iter()
            .fold(BTreeMap::<u16, usize>::new(), |mut m, (s, _)| {
                *m.entry(*s).or_insert(0) += 1;
                m
            })
    );
    assert!(answers.iter().all(|(status, _)| *status == 200));
    assert_eq!(fetched, 1, "one origin request for the whole fleet");
}

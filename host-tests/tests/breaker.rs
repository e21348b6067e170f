//! The adaptive circuit breaker across workers: trip, open (stale or 503), half-open probes
//! capped across workers, recovery, and how stale a worker's view of the breaker may get.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::{Host, Reply, Request, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "fragile", "match": {"path_prefix": "/fragile/"},
         "breaker": {"min_requests": 10, "open_base_ms": 1000, "jitter_percent": 0,
                     "half_open_probes": 2, "close_after_successes": 2}},
        {"name": "cached", "match": {"path_prefix": "/cached/"}, "cache": {},
         "breaker": {"min_requests": 5, "open_base_ms": 5000, "jitter_percent": 0}}
    ]
}"#;

/// An origin that fails while `down` is set, and counts requests.
fn origin(host: &mut Host, delay_ms: u64) -> (Rc<Cell<bool>>, Rc<Cell<u32>>) {
    let down = Rc::new(Cell::new(false));
    let calls = Rc::new(Cell::new(0));
    let (d, c) = (Rc::clone(&down), Rc::clone(&calls));
    host.origin(move |_| {
        c.set(c.get() + 1);
        if d.get() {
            Reply::status(503).body("origin down").delay_ms(delay_ms)
        } else {
            Reply::ok("fine")
                .header("cache-control", "max-age=1")
                .delay_ms(delay_ms)
        }
    });
    (down, calls)
}

fn is_breaker_reply(response: &proxy_wasm_host::Response) -> bool {
    response.status == 503 && response.body_text().contains("circuit open")
}

fn trip(host: &mut Host, vms: &[VmId], path: &str, count: usize) {
    for i in 0..count {
        host.request(vms[i % vms.len()], Request::get(path));
    }
    host.advance(Duration::from_millis(25)); // the tick adds the outcomes and trips
}

#[test]
fn failures_seen_by_both_workers_trip_it_and_it_shields_the_origin() {
    let mut host = Host::new();
    let (down, calls) = origin(&mut host, 0);
    let vms = host.start_vms(2, CONFIG);
    down.set(true);
    trip(&mut host, &vms, "/fragile/x", 10);
    assert_eq!(calls.get(), 10);
    assert_eq!(host.metric("edge.breaker.trips").unwrap().value, 1);
    // Each worker sees the trip within its read-cache time (100 ms).
    host.advance(Duration::from_millis(100));
    for vm in &vms {
        let response = host.request(*vm, Request::get("/fragile/x"));
        assert!(is_breaker_reply(&response), "{}", response.body_text());
        assert_eq!(response.header("retry-after").as_deref(), Some("1"));
        assert!(response.body_text().contains(r#""service":"fragile""#));
    }
    assert_eq!(calls.get(), 10, "open: the origin is shielded");
}

#[test]
fn half_open_probes_are_capped_across_workers_and_successes_close_it() {
    let mut host = Host::new();
    let (down, calls) = origin(&mut host, 100);
    let vms = host.start_vms(2, CONFIG);
    down.set(true);
    for i in 0..10 {
        let stream = host.send(vms[i % 2], Request::get("/fragile/y"));
        host.wait(stream);
    }
    host.advance(Duration::from_millis(25));
    host.advance(Duration::from_millis(1000));
    down.set(false);
    let before = calls.get();
    let streams: Vec<_> = (0..6)
        .map(|i| host.send(vms[i % 2], Request::get("/fragile/y")))
        .collect();
    let rejected = streams
        .iter()
        .filter(|s| host.response(**s).is_some_and(|r| is_breaker_reply(&r)))
        .count();
    assert_eq!(
        rejected, 4,
        "2 probes across both workers, the rest rejected"
    );
    host.advance(Duration::from_millis(150));
    assert_eq!(calls.get() - before, 2);
    // Two successful probes closed it.
    assert_eq!(host.request(vms[0], Request::get("/fragile/y")).status, 200);
    assert_eq!(host.request(vms[1], Request::get("/fragile/y")).status, 200);
}

#[test]
fn a_failed_probe_reopens_with_a_longer_backoff() {
    let mut host = Host::new();
    let (down, calls) = origin(&mut host, 0);
    let vms = host.start_vms(1, CONFIG);
    down.set(true);
    trip(&mut host, &vms, "/fragile/z", 10);
    host.advance(Duration::from_millis(1000));
    host.request(vms[0], Request::get("/fragile/z")); // probe fails
    let probes = calls.get();
    host.advance(Duration::from_millis(1500));
    assert!(
        is_breaker_reply(&host.request(vms[0], Request::get("/fragile/z"))),
        "second trip: 2 s open"
    );
    host.advance(Duration::from_millis(600));
    down.set(false);
    assert_eq!(host.request(vms[0], Request::get("/fragile/z")).status, 200);
    assert_eq!(calls.get(), probes + 1);
}

#[test]
fn open_breaker_serves_stored_entries_stale_and_503_otherwise() {
    let mut host = Host::new();
    let (down, calls) = origin(&mut host, 0);
    let vms = host.start_vms(1, CONFIG);
    assert_eq!(
        host.request(vms[0], Request::get("/cached/stored")).status,
        200
    );
    host.advance(Duration::from_secs(2)); // stale now
    down.set(true);
    for i in 0..5 {
        host.request(vms[0], Request::get(&format!("/cached/other{i}")));
    }
    host.advance(Duration::from_millis(25));
    let stale = host.request(vms[0], Request::get("/cached/stored"));
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body_text(), "fine");
    let status = stale.header("cache-status").unwrap();
    assert!(
        status.contains("fwd=stale") && status.contains("detail=circuit-open"),
        "{status}"
    );
    assert!(is_breaker_reply(
        &host.request(vms[0], Request::get("/cached/never"))
    ));
    assert_eq!(calls.get(), 6);
    assert_eq!(host.metric("edge.breaker.served_stale").unwrap().value, 1);
}

#[test]
fn a_worker_sees_another_workers_trip_within_its_read_cache_time() {
    let mut host = Host::new();
    let (down, _) = origin(&mut host, 0);
    let vms = host.start_vms(2, CONFIG);
    assert_eq!(host.request(vms[1], Request::get("/fragile/v")).status, 200); // vm1 reads: closed
    host.advance(Duration::from_millis(25)); // vm1's tick adds its success; its copy is fresh
    down.set(true);
    for _ in 0..10 {
        host.request(vms[0], Request::get("/fragile/v"));
    }
    host.advance(Duration::from_millis(20)); // vm0's tick trips it
    let early = host.request(vms[1], Request::get("/fragile/v"));
    assert!(
        !is_breaker_reply(&early),
        "within 100 ms vm1 may still use its copy"
    );
    host.advance(Duration::from_millis(100));
    assert!(
        is_breaker_reply(&host.request(vms[1], Request::get("/fragile/v"))),
        "after 100 ms it must see the trip"
    );
}

#[test]
fn health_reports_open_breakers_without_a_token() {
    let mut host = Host::new();
    let (down, _) = origin(&mut host, 0);
    let vms = host.start_vms(1, CONFIG);
    let health = |host: &mut Host| host.request(vms[0], Request::get("/api/v1/performance/health"));
    let ok = health(&mut host);
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.body_text(),
        r#"{"reasons":[],"services":{"cached":{"breaker":"closed","hit_rate":null},"fragile":{"breaker":"closed"}},"status":"healthy"}"#
    );
    down.set(true);
    trip(&mut host, &vms, "/fragile/h", 10);
    host.advance(Duration::from_millis(100));
    let degraded = health(&mut host);
    assert_eq!(degraded.status, 200);
    assert!(
        degraded.body_text().contains(r#""status":"degraded""#),
        "{}",
        degraded.body_text()
    );
    assert!(degraded.body_text().contains("breaker open: fragile"));
    trip(&mut host, &vms, "/cached/h", 5);
    host.advance(Duration::from_millis(100));
    let unhealthy = health(&mut host);
    assert_eq!(unhealthy.status, 503);
    assert!(unhealthy.body_text().contains(r#""status":"unhealthy""#));
    assert!(
        host.origin_calls()
            .iter()
            .all(|c| !c.path().contains("health")),
        "answered by the filter"
    );
}

/// Found by the `breaker` fuzz target: a stored half-open success count at `u32::MAX` (shared
/// data may hold any bytes) wrapped to 0 on the next success in the release `.wasm` (and
/// trapped in a debug build), so the breaker stayed half-open and kept capping requests. It
/// saturates now: the success closes it.
#[test]
fn a_stored_success_count_at_its_maximum_closes_instead_of_wrapping() {
    let mut host = Host::new();
    let (_, calls) = origin(&mut host, 100);
    let vms = host.start_vms(1, CONFIG);
    let mut state = edge_filter::policy::breaker::machine::Breaker::default().encode();
    state[1] = 2; // half-open
    state[2..10].copy_from_slice(&0u64.to_le_bytes()); // no probe in flight
    state[10..18].copy_from_slice(&u64::from(u32::MAX).to_le_bytes()); // successes
    let key = edge_filter::policy::breaker::machine::breaker_key("fragile");
    host.shared_set(&key, &state, 0).unwrap();
    host.advance(Duration::from_millis(150)); // past the worker's read cache
    assert_eq!(host.request(vms[0], Request::get("/fragile/p")).status, 200);
    host.advance(Duration::from_millis(150));
    let streams: Vec<_> = (0..3)
        .map(|_| host.send(vms[0], Request::get("/fragile/p")))
        .collect();
    host.advance(Duration::from_millis(150));
    for stream in streams {
        let response = host.response(stream).unwrap();
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
    assert_eq!(calls.get(), 4);
}

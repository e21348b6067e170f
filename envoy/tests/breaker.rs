//! The circuit breaker through real Envoy 1.40 with 2 workers: the origin fails every request
//! (fault injection), the breaker opens within its volume and shields the origin, the origin
//! heals, and after the backoff probes close the breaker again — also when the clients of the
//! half-open probes hung up before the origin answered.
//! `cargo test -p edge-envoy --test breaker -- --nocapture` prints the counts.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use edge_envoy::launch::{
    http_request, origin_requests, set_origin_fault, test_stack, KeepAliveClient,
};

const CONFIG: &str = r#"{
    "services": [
        {"name": "coaching", "match": {"path_prefix": "/api/v1/coaching/"},
         "breaker": {"min_requests": 20, "open_base_ms": 1000, "jitter_percent": 0,
                     "half_open_probes": 2, "close_after_successes": 2}}
    ]
}"#;

fn fault(origin: SocketAddr, error_rate: f64) {
    let fault = format!(r#"{{"endpoint": "coaching", "error_rate": {error_rate}}}"#);
    set_origin_fault(origin, &fault);
}

#[test]
fn breaker_opens_shields_the_origin_and_closes_after_recovery() {
    let stack = test_stack(Some(CONFIG), 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let get = || http_request(stack.listen, "GET", "/api/v1/coaching/3", &[], b"").unwrap();
    fault(origin, 1.0);
    let (mut from_origin, mut from_breaker) = (0, 0);
    for _ in 0..200 {
        let response = get();
        assert_eq!(response.status, 503);
        if response.text().contains("circuit open") {
            from_breaker += 1;
        } else {
            from_origin += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let failing_origin_requests = origin_requests(origin, "coaching");
    fault(origin, 0.0);
    let healed_at = Instant::now();
    let mut closed_after = None;
    while healed_at.elapsed() < Duration::from_secs(10) {
        if get().status == 200 && get().status == 200 {
            closed_after = Some(healed_at.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "breaker through Envoy (2 workers, min_requests 20, open 1 s): while the origin failed, \
         200 requests -> {from_origin} reached the origin (origin counted {failing_origin_requests}), \
         {from_breaker} answered by the open breaker; after the origin healed, closed again after {closed_after:?}"
    );
    assert!(
        from_origin <= 60,
        "the breaker opened within its volume: {from_origin} reached the origin"
    );
    assert!(from_breaker >= 140);
    let closed_after = closed_after.expect("the breaker closed after the origin healed");
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
}

/// Half-open probes whose clients hang up give their permits back: the breaker closes as soon
/// as the origin is healthy again. (Permits of probes that ended without a response used to be
/// lost, and a breaker whose permits were all lost stayed half-open, rejecting everything.)
#[test]
fn breaker_closes_after_its_probes_clients_hung_up() {
    const CONFIG: &str = r#"{
        "services": [
            {"name": "coaching", "match": {"path_prefix": "/api/v1/coaching/"},
             "breaker": {"min_requests": 20, "open_base_ms": 1000, "jitter_percent": 0,
                         "half_open_probes": 3, "close_after_successes": 2}}
        ]
    }"#;
    let stack = test_stack(Some(CONFIG), 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let listen = stack.listen;
    let get = || http_request(listen, "GET", "/api/v1/coaching/3", &[], b"").unwrap();
    fault(origin, 1.0);
    let opened = (0..200).any(|_| get().text().contains("circuit open"));
    assert!(opened, "the breaker opened while every request failed");
    // The origin now also takes 3 s; once the breaker is half-open, three probes go through
    // and their clients give up after 1 s.
    set_origin_fault(
        origin,
        r#"{"endpoint": "coaching", "error_rate": 1.0, "extra_latency_ms": 3000}"#,
    );
    std::thread::sleep(Duration::from_millis(1500));
    let before = origin_requests(origin, "coaching");
    let probes: Vec<_> = (0..3)
        .map(|_| {
            std::thread::spawn(move || {
                let mut client = KeepAliveClient::new(listen, Duration::from_secs(1));
                client.request("GET", "/api/v1/coaching/3", &[], b"")
            })
        })
        .collect();
    for probe in probes {
        let outcome = probe.join().unwrap();
        assert!(
            outcome
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::TimedOut),
            "a probe waits for the slow origin until its client gives up: {:?}",
            outcome.map(|r| (r.status, r.text()))
        );
    }
    let hung_up_at = Instant::now();
    assert_eq!(
        origin_requests(origin, "coaching") - before,
        3,
        "the three requests were probes that reached the origin"
    );
    set_origin_fault(origin, r#"{"endpoint": "coaching"}"#);
    let healed_at = Instant::now();
    let mut closed_after = None;
    let mut rejected = 0;
    while healed_at.elapsed() < Duration::from_secs(10) {
        let first = get();
        if first.status == 200 && get().status == 200 {
            closed_after = Some(healed_at.elapsed());
            break;
        }
        if first.text().contains("circuit open") {
            rejected += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "breaker with 3 probes whose clients hung up after 1 s (origin 3 s): after the origin \
         healed, closed again after {closed_after:?} ({:?} after the probes' clients hung up), \
         {rejected} request(s) rejected as circuit open meanwhile",
        closed_after.map(|c| c + healed_at.duration_since(hung_up_at))
    );
    let closed_after = closed_after.expect("the breaker closed after the origin healed");
    assert!(closed_after < Duration::from_secs(2), "{closed_after:?}");
}

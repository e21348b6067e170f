//! One tenant limited to 100 requests/s with a burst of 20 through real Envoy with 2 workers,
//! while a client sends it 500 requests/s for 5 s: admitted within 1% of 100 × 5 + 20, and a
//! second tenant unaffected. `cargo test -p edge-envoy --test rate_limit -- --nocapture`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_envoy::launch::{http_request, test_stack};

const CONFIG: &str = r#"{
    "services": [
        {"name": "coaching", "match": {"path_prefix": "/api/v1/coaching/"},
         "rate_limit": {"tenant": {"header": "x-location-id"}, "requests_per_second": 100, "burst": 20}}
    ]
}"#;

#[test]
fn one_tenant_at_100_per_second_across_two_workers() {
    let stack = test_stack(Some(CONFIG), 0.0);
    let listen = stack.listen;
    const RATE: u64 = 500;
    const SECONDS: u64 = 5;
    const THREADS: u64 = 10;
    let admitted = Arc::new(AtomicU64::new(0));
    let limited = Arc::new(AtomicU64::new(0));
    let start = Instant::now() + Duration::from_millis(100);
    let senders: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (admitted, limited) = (Arc::clone(&admitted), Arc::clone(&limited));
            std::thread::spawn(move || {
                let mut i = thread;
                while i < RATE * SECONDS {
                    let at = start + Duration::from_micros(i * 1_000_000 / RATE);
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let response = http_request(
                        listen,
                        "GET",
                        "/api/v1/coaching/1",
                        &[("x-location-id", "loc-hot")],
                        b"",
                    )
                    .unwrap();
                    match response.status {
                        200 => admitted.fetch_add(1, Ordering::Relaxed),
                        429 => limited.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected status {other}"),
                    };
                    i += THREADS;
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let elapsed = start.elapsed();
    let admitted = admitted.load(Ordering::Relaxed);
    let limited = limited.load(Ordering::Relaxed);
    let other = http_request(
        listen,
        "GET",
        "/api/v1/coaching/1",
        &[("x-location-id", "loc-calm")],
        b"",
    )
    .unwrap();
    let expected = 100 * SECONDS + 20;
    println!(
        "rate limit through Envoy (2 workers): tenant at 100/s burst 20, {} requests at {RATE}/s over \
         {elapsed:?}: admitted {admitted} (expected {expected}, {:+.2}%), limited {limited}; second tenant {}",
        admitted + limited,
        100.0 * (admitted as f64 - expected as f64) / expected as f64,
        other.status
    );
    assert_eq!(other.status, 200, "another tenant is unaffected");
    let tolerance = expected / 100;
    assert!(
        admitted.abs_diff(expected) <= tolerance,
        "admitted {admitted}, expected {expected} ± {tolerance}"
    );
}

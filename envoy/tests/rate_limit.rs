//! One tenant limited to 100 requests/s with a burst of 20 through real Envoy with 2 workers,
//! while a client sends it 500 requests/s for 5 s: admitted within 1% of 100 × 5 + 20, and a
//! second tenant unaffected. `cargo test -p edge-envoy --test rate_limit -- --nocapture`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edge_envoy::launch::{admin_stats, http_request, test_stack};

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

/// One request with raw header bytes (not UTF-8), read back as a status.
fn raw_status(listen: std::net::SocketAddr, path: &str, header: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(listen).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut request =
        format!("GET {path} HTTP/1.1\r\nhost: {listen}\r\nconnection: close\r\n").into_bytes();
    request.extend_from_slice(header);
    request.extend_from_slice(b"\r\n\r\n");
    stream.write_all(&request).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0)
}

/// Ways around a tenant's limit, through real Envoy: the tenant header twice, bytes that are
/// not UTF-8, another tenant in the same slot (one slot for all), and a limited client asking
/// for a validated response (`Cache-Control: no-cache`) — none of them gets a fresh bucket or
/// the cached entry.
#[test]
fn no_spelling_of_a_tenant_and_no_colliding_tenant_gets_a_fresh_bucket() {
    let config = r#"{
        "services": [
            {"name": "coaching", "match": {"path_prefix": "/api/v1/coaching/"}, "cache": {},
             "rate_limit": {"tenant": {"header": "x-location-id"}, "requests_per_second": 0.2, "burst": 2}}
        ],
        "limits": {"rate_limit_slots": 1}
    }"#;
    let stack = test_stack(Some(config), 0.0);
    let listen = stack.listen;
    let get = |path: &str, headers: &[(&str, &str)]| {
        http_request(listen, "GET", path, headers, b"").unwrap()
    };
    let loc_a = [("x-location-id", "loc-a")];
    assert_eq!(get("/api/v1/coaching/1", &loc_a).status, 200);
    assert_eq!(get("/api/v1/coaching/1", &loc_a).status, 200);
    assert_eq!(
        get("/api/v1/coaching/2", &loc_a).status,
        429,
        "burst of 2 spent"
    );
    // Another tenant in the same (only) slot leaves loc-a's bucket alone.
    assert_eq!(
        get("/api/v1/coaching/3", &[("x-location-id", "loc-b")]).status,
        200
    );
    assert_eq!(
        get("/api/v1/coaching/4", &loc_a).status,
        429,
        "loc-b did not reset loc-a"
    );
    // The header twice: refused, not a new bucket "loc-a, x".
    let twice = get(
        "/api/v1/coaching/5",
        &[("x-location-id", "loc-a"), ("x-location-id", "x")],
    );
    assert_eq!(twice.status, 400, "{}", twice.text());
    // Bytes that are not UTF-8 would all read as U+FFFD, one tenant: refused instead.
    assert_eq!(
        raw_status(listen, "/api/v1/coaching/6", b"x-location-id: \xff"),
        400
    );
    assert_eq!(
        raw_status(listen, "/api/v1/coaching/7", b"x-location-id: \xfe"),
        400
    );
    // Limited: the fresh cached entry answers a plain GET, but not one asking for validation.
    let cached = get("/api/v1/coaching/1", &loc_a);
    assert_eq!(cached.status, 200);
    assert!(cached
        .header("cache-status")
        .unwrap()
        .contains("rate-limited"));
    let validated = get(
        "/api/v1/coaching/1",
        &[("x-location-id", "loc-a"), ("cache-control", "no-cache")],
    );
    assert_eq!(
        validated.status,
        429,
        "{:?}",
        validated.header("cache-status")
    );
    let stats = admin_stats(stack.admin, "edge.ratelimit");
    assert!(
        stats.contains("edge.ratelimit.invalid_tenant: 3"),
        "{stats}"
    );
}

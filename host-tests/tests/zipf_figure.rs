//! Figure: origin requests for a Zipf workload against the theoretical minimum.
//! `cargo test -p proxy-wasm-host --test zipf_figure -- --nocapture` prints it.
//! 10,000 keys, s = 1.0, 60 s at 500 requests/s over 2 workers, 1 s TTL with 5 s
//! stale-while-revalidate. The minimum is one origin request per key and TTL window in which
//! the key is requested.

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::{Host, Reply, Request};

const KEYS: usize = 10_000;
const SECONDS: u64 = 60;
const RATE: u64 = 500;

/// Deterministic xorshift, so the figure is the same on every run.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn zipf_workload_stays_near_the_minimum() {
    let cumulative: Vec<f64> = (1..=KEYS)
        .scan(0.0, |sum, rank| {
            *sum += 1.0 / rank as f64;
            Some(*sum)
        })
        .collect();
    let total = cumulative[KEYS - 1];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let mut host = Host::new();
    host.set_echo_logs(false);
    let calls = Rc::new(Cell::new(0u64));
    let seen = Rc::clone(&calls);
    host.origin(move |_| {
        seen.set(seen.get() + 1);
        Reply::ok("x".repeat(512)).header("cache-control", "max-age=1, stale-while-revalidate=5")
    });
    let config = r#"{"services": [{"name": "z", "match": {"path_prefix": "/z/"}, "cache": {}}],
                     "limits": {"l2_slots": 16384, "lease_slots": 4096}}"#;
    let workers = host.start_vms(2, config);
    let mut windows = HashSet::new();
    let step = Duration::from_micros(1_000_000 / RATE);
    let requests = SECONDS * RATE;
    for i in 0..requests {
        let target = rng.next_f64() * total;
        let key = cumulative.partition_point(|c| *c < target);
        let now_s = i / RATE;
        windows.insert((key, now_s));
        let response = host.request(
            workers[(i % 2) as usize],
            Request::get(&format!("/z/{key}")),
        );
        assert_eq!(response.status, 200);
        host.advance(step);
    }
    host.advance(Duration::from_secs(1));
    let minimum = windows.len() as u64;
    let origin = calls.get();
    println!(
        "Zipf s=1.0, {KEYS} keys, {SECONDS} s at {RATE}/s ({requests} requests, 2 workers), TTL 1 s + SWR 5 s: \
         origin requests {origin}, theoretical minimum {minimum}, ratio {:.2}, origin share of requests {:.1}%",
        origin as f64 / minimum as f64,
        100.0 * origin as f64 / requests as f64
    );
    assert!(
        origin <= minimum * 3 / 2,
        "origin {origin} vs minimum {minimum}"
    );
}

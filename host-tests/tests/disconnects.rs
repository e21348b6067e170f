//! Clients that hang up: whatever a stream held (a probe permit, a coalescing group, a dedup
//! record) is given back, and nothing waits for it forever.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::{Host, Reply, Request};

/// An origin whose failure and latency the test switches.
struct Origin {
    down: Rc<Cell<bool>>,
    delay_ms: Rc<Cell<u64>>,
    calls: Rc<Cell<u32>>,
}

fn origin(host: &mut Host) -> Origin {
    let origin = Origin {
        down: Rc::new(Cell::new(false)),
        delay_ms: Rc::new(Cell::new(0)),
        calls: Rc::new(Cell::new(0)),
    };
    let (down, delay, calls) = (
        Rc::clone(&origin.down),
        Rc::clone(&origin.delay_ms),
        Rc::clone(&origin.calls),
    );
    host.origin(move |_| {
        calls.set(calls.get() + 1);
        let reply = if down.get() {
            Reply::status(503).body("origin down")
        } else {
            Reply::ok("fine").header("cache-control", "max-age=60")
        };
        reply.delay_ms(delay.get())
    });
    origin
}

const BREAKER: &str = r#"{
    "services": [
        {"name": "coaching", "match": {"path_prefix": "/coaching/"},
         "breaker": {"min_requests": 5, "open_base_ms": 1000, "jitter_percent": 0,
                     "half_open_probes": 3, "close_after_successes": 2}}
    ]
}"#;

#[test]
fn probes_whose_clients_hang_up_give_their_permits_back() {
    let mut host = Host::new();
    let origin = origin(&mut host);
    let vm = host.start_vm(BREAKER).unwrap();
    origin.down.set(true);
    for _ in 0..5 {
        host.request(vm, Request::get("/coaching/a"));
    }
    host.advance(Duration::from_millis(25));
    assert_eq!(host.metric("edge.breaker.trips").unwrap().value, 1);
    // Half-open: three probes to a 3 s origin, each client gives up after 1 s.
    host.advance(Duration::from_millis(1100));
    origin.delay_ms.set(3000);
    let probes: Vec<_> = (0..3)
        .map(|_| host.send(vm, Request::get("/coaching/a")))
        .collect();
    host.advance(Duration::from_secs(1));
    for probe in probes {
        assert!(host.is_open(probe), "the probe is still at the origin");
        host.hang_up(probe);
    }
    // The origin recovers: the next requests are probes again, and two successes close it.
    origin.down.set(false);
    origin.delay_ms.set(0);
    host.advance(Duration::from_millis(200));
    for _ in 0..3 {
        let response = host.request(vm, Request::get("/coaching/a"));
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
    assert_eq!(
        host.metric("edge.breaker.rejected").map_or(0, |m| m.value),
        0,
        "no request was refused after the probes hung up"
    );
}

#[test]
fn lost_probe_permits_expire_after_the_probe_timeout() {
    let config = BREAKER.replace(
        r#""close_after_successes": 2"#,
        r#""close_after_successes": 2, "probe_timeout_ms": 2000"#,
    );
    let mut host = Host::new();
    let origin = origin(&mut host);
    let vms = host.start_vms(2, &config);
    origin.down.set(true);
    for _ in 0..5 {
        host.request(vms[0], Request::get("/coaching/a"));
    }
    host.advance(Duration::from_millis(1100));
    // Three probes whose outcome never comes back: a worker's VM is lost with its streams.
    origin.delay_ms.set(60_000);
    for _ in 0..3 {
        host.send(vms[1], Request::get("/coaching/a"));
    }
    origin.delay_ms.set(0);
    origin.down.set(false);
    host.advance(Duration::from_millis(200));
    let refused = host.request(vms[0], Request::get("/coaching/a"));
    assert_eq!(refused.status, 503, "every permit is out");
    host.advance(Duration::from_millis(2000));
    for _ in 0..2 {
        let response = host.request(vms[0], Request::get("/coaching/a"));
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
    let closed = host.request(vms[0], Request::get("/coaching/a"));
    assert_eq!(closed.status, 200);
    assert!(origin.calls.get() >= 10);
}

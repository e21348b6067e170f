//! A live reload (a new configuration: new VMs on the same shared data) keeps each service's
//! breaker with its service, also when a service is inserted before it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::{Host, Reply, Request};

const BEFORE: &str = r#"{"services": [
    {"name": "fragile", "match": {"path_prefix": "/fragile/"},
     "breaker": {"min_requests": 10, "open_base_ms": 60000, "jitter_percent": 0}}
]}"#;

/// The same service, with a new one inserted before it.
const AFTER: &str = r#"{"services": [
    {"name": "fresh", "match": {"path_prefix": "/fresh/"},
     "breaker": {"min_requests": 10, "open_base_ms": 60000, "jitter_percent": 0}},
    {"name": "fragile", "match": {"path_prefix": "/fragile/"},
     "breaker": {"min_requests": 10, "open_base_ms": 60000, "jitter_percent": 0}}
]}"#;

#[test]
fn an_open_breaker_stays_with_its_service_when_one_is_inserted_before_it() {
    let mut host = Host::new();
    let calls = Rc::new(Cell::new(0u32));
    let counted = Rc::clone(&calls);
    host.origin(move |request| {
        counted.set(counted.get() + 1);
        if request.path().starts_with("/fragile/") {
            Reply::status(503).body("down")
        } else {
            Reply::ok("fine")
        }
    });
    let old = host.start_vm(BEFORE).unwrap();
    for _ in 0..12 {
        host.request(old, Request::get("/fragile/x"));
        host.advance(Duration::from_millis(25)); // the tick adds outcomes to the shared window
    }
    host.advance(Duration::from_millis(150));
    let refused = host.request(old, Request::get("/fragile/x"));
    assert_eq!(refused.status, 503);
    let tripped_at = calls.get();

    // The reload: a new VM with the new configuration, on the same shared data.
    let new = host.start_vm(AFTER).unwrap();
    host.advance(Duration::from_millis(150));
    let still_open = host.request(new, Request::get("/fragile/x"));
    assert_eq!(still_open.status, 503);
    assert_eq!(
        calls.get(),
        tripped_at,
        "the open breaker kept fragile from the origin"
    );
    let fresh = host.request(new, Request::get("/fresh/y"));
    assert_eq!(
        fresh.status, 200,
        "the inserted service's breaker is its own, closed"
    );
    assert_eq!(calls.get(), tripped_at + 1);
}

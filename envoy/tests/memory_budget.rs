//! The paused-request byte budget through real Envoy 1.40: a burst of identical misses with
//! large headers coalesces only as far as the budget allows, every request is answered, and
//! the budget is whole again afterwards.

use std::sync::{Arc, Barrier};

use edge_envoy::launch::{http_request, origin_requests, test_stack, wasm_counter, Stack};

const CONFIG: &str = r#"{
    "services": [{"name": "leads", "match": {"path_prefix": "/api/v1/leads/"}, "cache": {}}],
    "limits": {"max_paused_bytes": 65536}
}"#;

fn burst(stack: &Stack, path: &'static str, clients: usize) {
    let listen = stack.listen;
    let barrier = Arc::new(Barrier::new(clients));
    let padding = "v".repeat(8 * 1024);
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (barrier, padding) = (Arc::clone(&barrier), padding.clone());
            std::thread::spawn(move || {
                barrier.wait();
                http_request(listen, "GET", path, &[("x-padding", &padding)], b"").map(|r| r.status)
            })
        })
        .collect();
    for thread in threads {
        assert_eq!(thread.join().unwrap().unwrap(), 200);
    }
}

#[test]
fn paused_requests_stop_at_the_byte_budget() {
    let stack = test_stack(Some(CONFIG), 1.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    burst(&stack, "/api/v1/leads/900", 24);
    let exceeded = wasm_counter(stack.admin, "edge.paused_budget_exceeded");
    assert!(
        exceeded > 0,
        "24 × 16 KiB cannot fit in 64 KiB on 2 workers"
    );
    assert!(
        origin_requests(origin, "leads") <= 2 + exceeded,
        "the others were coalesced"
    );
    // Budget given back: a second burst behaves the same.
    burst(&stack, "/api/v1/leads/901", 24);
    let second = wasm_counter(stack.admin, "edge.paused_budget_exceeded") - exceeded;
    assert!(second > 0 && second < 24, "{second} of 24 over the budget");
}

//! Byte budgets where clients control memory: request headers held by paused streams
//! (`limits.max_paused_bytes`) and encoded entries in L2 (`limits.l2_max_bytes`).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::test_support::counting_origin;
use proxy_wasm_host::{Host, Reply, Request};

/// An origin answering `body` (cacheable) after `delay_ms`; returns its call count.
fn page_origin(host: &mut Host, body: Vec<u8>, delay_ms: u64) -> Rc<Cell<u32>> {
    counting_origin(host, move |_, _| {
        Reply::ok(body.clone())
            .header("cache-control", "max-age=60")
            .delay_ms(delay_ms)
    })
}

#[test]
fn paused_requests_stop_at_the_byte_budget_and_give_it_back() {
    let config = r#"{"services": [{"name": "p", "match": {"path_prefix": "/p/"}, "cache": {}}],
                     "limits": {"max_paused_bytes": 65536}}"#;
    let mut host = Host::new();
    let calls = page_origin(&mut host, b"page".to_vec(), 100);
    let vm = host.start_vm(config).unwrap();
    // Each request carries ~8 KiB of headers: a waiter holds two copies (16 KiB), so the
    // 64 KiB budget holds four of them; the others go to the origin uncoalesced.
    let big = "v".repeat(8 * 1024);
    let burst = |host: &mut Host, path: &str| -> Vec<_> {
        (0..10)
            .map(|_| host.send(vm, Request::get(path).header("x-padding", &big)))
            .collect()
    };
    let streams = burst(&mut host, "/p/a");
    for stream in streams {
        assert_eq!(host.wait(stream).status, 200);
    }
    let over_budget = host.metric("edge.paused_budget_exceeded").unwrap().value;
    assert!(
        over_budget >= 5,
        "{over_budget} requests went past the budget"
    );
    assert_eq!(
        u64::from(calls.get()),
        1 + over_budget,
        "only those reached the origin"
    );
    // Every stream ended: the budget is whole again, the next burst coalesces as before.
    host.advance(Duration::from_millis(10));
    let streams = burst(&mut host, "/p/b");
    for stream in streams {
        assert_eq!(host.wait(stream).status, 200);
    }
    let again = host.metric("edge.paused_budget_exceeded").unwrap().value - over_budget;
    assert_eq!(
        again, over_budget,
        "the same share fits again: nothing leaked"
    );
}

#[test]
fn entries_larger_than_an_l2_slot_share_stay_in_l1() {
    // 1 MiB over 64 slots: 16 KiB per slot.
    let config = r#"{"services": [{"name": "p", "match": {"path_prefix": "/p/"}, "cache": {}}],
                     "limits": {"l2_slots": 64, "l2_max_bytes": 1048576}}"#;
    let mut host = Host::new();
    // Bytes LZ4 cannot shrink (a xorshift stream), 40 KiB.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..40 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let calls = page_origin(&mut host, noise, 0);
    let vms = host.start_vms(2, config);
    assert_eq!(host.request(vms[0], Request::get("/p/big")).status, 200);
    assert_eq!(host.metric("edge.cache.l2.too_large").unwrap().value, 1);
    let hit = host.request(vms[0], Request::get("/p/big"));
    assert!(
        hit.header("cache-status").unwrap().contains("hit"),
        "L1 still has it"
    );
    let other_worker = host.request(vms[1], Request::get("/p/big"));
    assert!(!other_worker.header("cache-status").unwrap().contains("hit"));
    assert_eq!(
        calls.get(),
        2,
        "not in L2: the other worker fetched it again"
    );
    let l2_slots: Vec<String> = host
        .shared_keys()
        .into_iter()
        .filter(|k| k.starts_with(edge_filter::policy::cache::l2::L2_KEY_PREFIX))
        .collect();
    assert!(l2_slots
        .iter()
        .all(|k| host.shared_get(k).map_or(0, |(v, _)| v.len()) <= 16 * 1024));
}

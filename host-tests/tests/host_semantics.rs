//! The host's own behaviour, checked with the probe guest: shared data CAS, queues, ticks,
//! metrics, HTTP calls, upstream failures, body buffering, local replies, traps.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use proxy_wasm_host::{Host, Reply, Request, StartError, VmId};

fn probe(action: &str) -> Request {
    Request::get("/probe").header("x-probe", action)
}

fn probe_host(vms: usize, config: &str) -> (Host, Vec<VmId>) {
    let mut host = Host::probe();
    let ids = host.start_vms(vms, config);
    (host, ids)
}

#[test]
fn shared_data_cas_semantics() {
    let (mut host, vms) = probe_host(1, "");
    let vm = vms[0];
    assert_eq!(host.request(vm, probe("shared-get:k")).status, 404);
    // cas 0 writes unconditionally, also on a missing key.
    assert_eq!(host.request(vm, probe("shared-set:k:one:0")).status, 200);
    let read = host.request(vm, probe("shared-get:k"));
    assert_eq!(read.body_text(), "one");
    let cas1: u32 = read.header("x-cas").unwrap().parse().unwrap();
    // The current cas is accepted, and the write gets a new cas.
    assert_eq!(
        host.request(vm, probe(&format!("shared-set:k:two:{cas1}")))
            .status,
        200
    );
    let cas2: u32 = host.shared_get("k").unwrap().1;
    assert_ne!(cas1, cas2);
    // A stale cas is refused and the value stays.
    assert_eq!(
        host.request(vm, probe(&format!("shared-set:k:three:{cas1}")))
            .status,
        409
    );
    assert_eq!(host.shared_get("k").unwrap().0, b"two");
    // cas 0 overwrites whatever is there.
    assert_eq!(host.request(vm, probe("shared-set:k:four:0")).status, 200);
    assert_eq!(host.shared_get("k").unwrap().0, b"four");
}

#[test]
fn two_vms_racing_on_one_key_one_wins() {
    let (mut host, vms) = probe_host(2, "");
    host.shared_set("counter", b"0", 0).unwrap();
    let cas_a: u32 = host
        .request(vms[0], probe("shared-get:counter"))
        .header("x-cas")
        .unwrap()
        .parse()
        .unwrap();
    let cas_b: u32 = host
        .request(vms[1], probe("shared-get:counter"))
        .header("x-cas")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(cas_a, cas_b, "both VMs read the same version");
    let first = host.request(vms[0], probe(&format!("shared-set:counter:a:{cas_a}")));
    let second = host.request(vms[1], probe(&format!("shared-set:counter:b:{cas_b}")));
    assert_eq!((first.status, second.status), (200, 409));
    assert_eq!(host.shared_get("counter").unwrap().0, b"a");
}

#[test]
fn shared_data_is_scoped_by_vm_id() {
    let mut host = Host::probe();
    host.set_vm_id("other");
    let vm = host.start_vm("").unwrap();
    host.request(vm, probe("shared-set:k:v:0"));
    assert_eq!(host.shared_keys(), vec!["k".to_string()]);
    assert!(host.with_shared_data(|data| data.get("edge", "k").is_none()));
}

#[test]
fn queue_wakes_the_registering_vm() {
    let mut host = Host::probe();
    let owner = host.start_vm("queue=work").unwrap();
    let sender = host.start_vm("").unwrap();
    let reply = host.request(sender, probe("enqueue:edge:work:hello"));
    assert_eq!(
        (reply.status, reply.body_text().as_str()),
        (200, "enqueued 1")
    );
    assert!(host.log_text(owner).contains("probe: dequeued hello"));
    assert!(!host.log_text(sender).contains("dequeued"));
    assert_eq!(host.metric("probe.dequeued").unwrap().value, 1);
    assert_eq!(
        host.request(sender, probe("enqueue:edge:nothing:x")).status,
        404
    );
}

#[test]
fn queue_last_registrant_gets_the_notification() {
    let mut host = Host::probe();
    let first = host.start_vm("queue=work").unwrap();
    let second = host.start_vm("queue=work").unwrap();
    host.request(first, probe("enqueue:edge:work:x"));
    assert!(host.log_text(second).contains("probe: dequeued x"));
    assert!(!host.log_text(first).contains("dequeued"));
}

#[test]
fn ticks_fire_per_vm_at_their_period() {
    let (mut host, vms) = probe_host(2, "tick_ms=100");
    assert_eq!(host.tick_period_ms(vms[0]), 100);
    host.advance(Duration::from_millis(1_050));
    assert_eq!(host.metric("probe.ticks").unwrap().value, 20);
}

#[test]
fn metrics_are_shared_by_name_and_histograms_are_write_only() {
    let (mut host, vms) = probe_host(2, "");
    let reply = host.request(vms[0], probe("metric:7:250"));
    assert_eq!(reply.body_text(), "gauge=7 histogram_unreadable=true");
    host.request(vms[1], probe("metric:9:300"));
    assert_eq!(host.metric("probe.requests").unwrap().value, 2);
    assert_eq!(host.metric("probe.gauge").unwrap().value, 9);
    assert_eq!(
        host.metric("probe.latency").unwrap().samples,
        vec![250, 300]
    );
}

#[test]
fn http_call_is_answered_on_the_calling_context_after_its_delay() {
    let mut host = Host::probe();
    let vm = host.start_vm("").unwrap();
    host.origin(|request| match request.path().as_str() {
        "/called" => Reply::ok("pong").delay_ms(50),
        _ => Reply::ok("origin"),
    });
    let start = host.now_ns();
    let response = host.request(vm, probe("call"));
    assert_eq!(response.status, 200);
    assert_eq!(host.now_ns() - start, 50_000_000);
    let calls = host.origin_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].cluster.as_deref(), Some("origin"));
    assert_eq!(calls[1].cluster, None);
    assert_eq!(calls[1].header("x-call-status").as_deref(), Some("200"));
    assert_eq!(calls[1].header("x-call-body").as_deref(), Some("pong"));
}

#[test]
fn http_call_timeout_reports_a_failed_call() {
    let mut host = Host::probe();
    let vm = host.start_vm("").unwrap();
    host.origin(|_| Reply::ok("late").delay_ms(500));
    let start = host.now_ns();
    let response = host.request(vm, probe("call:100"));
    assert_eq!(
        (response.status, response.body_text().as_str()),
        (502, "call failed")
    );
    assert_eq!(host.now_ns() - start, 100_000_000);
}

#[test]
fn upstream_reset_and_timeout_look_like_envoy() {
    let mut host = Host::probe();
    let vm = host.start_vm("").unwrap();
    host.set_route_timeout(Duration::from_secs(2));
    host.origin(|request| match request.path().as_str() {
        "/reset" => Reply::reset().delay_ms(10),
        "/slow" => Reply::ok("never").delay_ms(5_000),
        _ => Reply::ok("fine").delay_ms(150),
    });
    let start = host.now_ns();
    let ok = host.request(vm, Request::get("/fine"));
    assert_eq!((ok.status, ok.body_text().as_str()), (200, "fine"));
    assert_eq!(host.now_ns() - start, 150_000_000);
    let reset = host.request(vm, Request::get("/reset"));
    assert_eq!(reset.status, 503);
    assert!(reset
        .body_text()
        .contains("reset reason: connection termination"));
    let timeout = host.request(vm, Request::get("/slow"));
    assert_eq!(
        (timeout.status, timeout.body_text().as_str()),
        (504, "upstream request timeout")
    );
    // The filter saw every response, the failures included.
    for response in [ok, reset, timeout] {
        assert_eq!(response.header("x-probe-response").as_deref(), Some("seen"));
    }
}

#[test]
fn buffered_body_in_chunks_reaches_origin_rewritten() {
    let (mut host, vms) = probe_host(1, "");
    let request = Request::new("POST", "/upload")
        .header("x-probe", "upper-body")
        .chunks([b"ab".to_vec(), b"cd".to_vec(), b"ef".to_vec()]);
    host.request(vms[0], request);
    assert_eq!(host.origin_calls()[0].body, b"ABCDEF");
}

#[test]
fn local_reply_skips_the_origin_and_passes_the_filter_response_path() {
    let (mut host, vms) = probe_host(1, "");
    let response = host.request(vms[0], probe("local:418"));
    assert_eq!(response.status, 418);
    assert!(response.local_reply);
    assert_eq!(response.body_text(), "local");
    assert_eq!(response.header("x-local").as_deref(), Some("yes"));
    assert_eq!(response.header("x-probe-response").as_deref(), Some("seen"));
    assert!(host.origin_calls().is_empty());
}

#[test]
fn concurrent_streams_overlap_in_host_time() {
    let (mut host, vms) = probe_host(2, "");
    host.origin(|_| Reply::ok("slow").delay_ms(100));
    let a = host.send(vms[0], Request::get("/a"));
    let b = host.send(vms[1], Request::get("/b"));
    assert!(host.response(a).is_none());
    host.advance(Duration::from_millis(100));
    assert_eq!(host.response(a).unwrap().status, 200);
    assert_eq!(host.response(b).unwrap().status, 200);
    assert_eq!(host.origin_calls().len(), 2);
}

#[test]
fn guest_panic_is_reported_with_its_message_and_log() {
    let (mut host, vms) = probe_host(1, "");
    let trap = host.try_request(vms[0], probe("panic")).unwrap_err();
    assert_eq!(trap.function, "proxy_on_request_headers");
    assert!(trap
        .panic_message()
        .unwrap()
        .contains("probe asked to panic"));
    let text = trap.to_string();
    assert!(
        text.starts_with("guest panicked in proxy_on_request_headers"),
        "{text}"
    );
    assert!(
        text.contains("probe: configured"),
        "the guest's earlier log is included: {text}"
    );
    // The VM is dead, as in Envoy: every later request on it fails too.
    assert!(host.trap(vms[0]).is_some());
    assert!(host.try_request(vms[0], Request::get("/")).is_err());
    // The scenario API fails the test with the same report.
    let failure =
        catch_unwind(AssertUnwindSafe(|| host.request(vms[0], Request::get("/")))).unwrap_err();
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(message.contains("probe asked to panic"), "{message}");
}

#[test]
fn rejected_configuration_keeps_the_log() {
    let mut host = Host::probe();
    match host.start_vm("reject=1") {
        Err(StartError::Rejected { function, .. }) => assert_eq!(function, "proxy_on_configure"),
        Err(other) => panic!("expected a rejection, got {other}"),
        Ok(_) => panic!("expected a rejection"),
    }
    let err = host.start_vm("reject=1").unwrap_err();
    assert!(err
        .log_text()
        .contains("[error] probe: configuration rejected on purpose"));
}

#[test]
fn unknown_import_fails_loudly() {
    let wat = r#"(module
        (import "env" "proxy_not_in_the_abi" (func (param i32)))
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1")))"#;
    let mut host = Host::with_wasm(wat.as_bytes());
    let failure = catch_unwind(AssertUnwindSafe(|| host.start_vm(""))).unwrap_err();
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(message.contains("proxy_not_in_the_abi"), "{message}");
}

#[test]
fn missing_module_fails_loudly() {
    let failure =
        catch_unwind(|| Host::from_file("/nonexistent/filter.wasm").now_ns()).unwrap_err();
    let message = failure.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("cannot read the wasm module /nonexistent/filter.wasm"),
        "{message}"
    );
}

#[test]
fn trap_without_panic_hook_is_reported_as_a_trap() {
    let wat = r#"(module
        (memory (export "memory") 1)
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 1024)
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32) unreachable))"#;
    let mut host = Host::with_wasm(wat.as_bytes());
    match host.start_vm("") {
        Err(StartError::Trap(trap)) => {
            assert_eq!(trap.function, "proxy_on_vm_start");
            assert!(trap
                .to_string()
                .starts_with("guest trapped in proxy_on_vm_start"));
        }
        other => panic!("expected a trap, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn paused_headers_hold_the_body_back_until_continue() {
    // Envoy turns a paused on_request_headers into StopAllIteration: the filter sees no body
    // until it continues the stream.
    let mut host = Host::probe();
    let vm = host.start_vm("").unwrap();
    host.origin(|request| match request.path().as_str() {
        "/called" => Reply::ok("pong").delay_ms(50),
        _ => Reply::ok("origin"),
    });
    let request = Request::new("POST", "/upload")
        .header("x-probe", "call")
        .chunks([b"ab".to_vec(), b"cd".to_vec()]);
    let stream = host.send(vm, request);
    assert!(
        host.metric("probe.body_calls").is_none(),
        "no body callback while paused"
    );
    let response = host.wait(stream);
    assert_eq!(response.status, 200);
    assert_eq!(host.metric("probe.body_calls").unwrap().value, 2);
    assert_eq!(host.origin_calls()[1].body, b"abcd");
}

//! Webhook deduplication: every unique delivery reaches the origin exactly once; duplicates get
//! the first attempt's result.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::test_support::metric;
use proxy_wasm_host::{Host, Reply, Request, Response, UpstreamRequest, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "hooks", "match": {"path_prefix": "/webhooks/"}, "dedup": {"in_flight_timeout_ms": 2000}},
        {"name": "strict", "match": {"path_prefix": "/strict/"}, "dedup": {"in_flight": "conflict", "retry_after_s": 3}},
        {"name": "ids", "match": {"path_prefix": "/ids/"}, "dedup": {"identity": ["webhook-id"]}}
    ]
}"#;

/// Deliveries the origin processed, per id.
type Deliveries = Rc<RefCell<BTreeMap<String, u32>>>;

/// Origin that counts deliveries per id (webhook-id header or body) and answers with `respond`.
fn origin(host: &mut Host, respond: impl Fn(&UpstreamRequest) -> Reply + 'static) -> Deliveries {
    let counts = Rc::new(RefCell::new(BTreeMap::new()));
    let seen = Rc::clone(&counts);
    host.origin(move |request| {
        let id = request
            .header("webhook-id")
            .unwrap_or_else(|| String::from_utf8_lossy(&request.body).into_owned());
        *seen.borrow_mut().entry(id).or_insert(0) += 1;
        respond(request)
    });
    counts
}

fn accepted(request: &UpstreamRequest) -> Reply {
    Reply::status(202)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"received":"{}"}}"#,
            request.header("webhook-id").unwrap_or_default()
        ))
}

fn delivery(path: &str, id: &str, body: &str) -> Request {
    Request::post(path, body.as_bytes().to_vec()).header("webhook-id", id)
}

fn total(counts: &Deliveries) -> u32 {
    counts.borrow().values().sum()
}

fn setup() -> (Host, Vec<VmId>, Deliveries) {
    let mut host = Host::new();
    let counts = origin(&mut host, accepted);
    let vms = host.start_vms(2, CONFIG);
    (host, vms, counts)
}

fn replayed(response: &Response) -> bool {
    response.header("x-edge-dedup").as_deref() == Some("replayed")
}

#[test]
fn sequential_duplicate_is_replayed() {
    let (mut host, vms, counts) = setup();
    let first = host.request(
        vms[0],
        delivery("/webhooks/ghl", "msg_1", r#"{"type":"contact.created"}"#),
    );
    assert_eq!(first.status, 202);
    assert!(!replayed(&first));
    for vm in [vms[0], vms[1], vms[0]] {
        let duplicate = host.request(
            vm,
            delivery("/webhooks/ghl", "msg_1", r#"{"type":"contact.created"}"#),
        );
        assert_eq!(duplicate.status, 202);
        assert_eq!(duplicate.body, first.body);
        assert!(replayed(&duplicate));
        assert_eq!(
            duplicate.header("content-type").as_deref(),
            Some("application/json")
        );
    }
    assert_eq!(counts.borrow().get("msg_1"), Some(&1));
    assert_eq!(host.metric("edge.dedup.replayed").unwrap().value, 3);
}

#[test]
fn concurrent_duplicate_on_another_worker_waits_then_is_replayed() {
    let mut host = Host::new();
    let counts = origin(&mut host, |request| accepted(request).delay_ms(400));
    let vms = host.start_vms(2, CONFIG);
    let first = host.send(vms[0], delivery("/webhooks/ghl", "msg_2", "{}"));
    host.advance(Duration::from_millis(100));
    let duplicate = host.send(vms[1], delivery("/webhooks/ghl", "msg_2", "{}"));
    let same_worker = host.send(vms[0], delivery("/webhooks/ghl", "msg_2", "{}"));
    host.advance(Duration::from_millis(290));
    assert!(
        host.response(duplicate).is_none(),
        "waiting for the first attempt"
    );
    host.advance(Duration::from_millis(40));
    assert_eq!(host.response(first).unwrap().status, 202);
    for waiter in [duplicate, same_worker] {
        let response = host
            .response(waiter)
            .expect("replayed once the first completed");
        assert_eq!(response.status, 202);
        assert!(replayed(&response));
    }
    assert_eq!(counts.borrow().get("msg_2"), Some(&1));
}

#[test]
fn conflict_mode_answers_409_with_retry_after() {
    let mut host = Host::new();
    let counts = origin(&mut host, |request| accepted(request).delay_ms(300));
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.send(vm, delivery("/strict/x", "msg_3", "{}"));
    let duplicate = host.send(vm, delivery("/strict/x", "msg_3", "{}"));
    let response = host.response(duplicate).expect("answered at once");
    assert_eq!(response.status, 409);
    assert_eq!(response.header("retry-after").as_deref(), Some("3"));
    host.advance(Duration::from_millis(300));
    assert_eq!(host.response(first).unwrap().status, 202);
    assert_eq!(counts.borrow().get("msg_3"), Some(&1));
}

#[test]
fn same_id_with_another_body_gets_422_and_the_origin_is_not_called() {
    let (mut host, vms, counts) = setup();
    host.request(
        vms[0],
        delivery("/webhooks/ghl", "msg_4", r#"{"amount":1}"#),
    );
    let forged = host.request(
        vms[1],
        delivery("/webhooks/ghl", "msg_4", r#"{"amount":1000}"#),
    );
    assert_eq!(forged.status, 422);
    assert!(forged.body_text().contains("different body"));
    assert_eq!(total(&counts), 1);
}

#[test]
fn origin_failure_releases_the_record_so_a_retry_goes_through() {
    let mut host = Host::new();
    let attempts = Rc::new(RefCell::new(0));
    let seen = Rc::clone(&attempts);
    let counts = origin(&mut host, move |request| {
        *seen.borrow_mut() += 1;
        match *seen.borrow() {
            1 => Reply::status(503).body("busy"),
            2 => Reply::reset(),
            _ => accepted(request),
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    assert_eq!(
        host.request(vm, delivery("/webhooks/ghl", "msg_5", "{}"))
            .status,
        503
    );
    assert_eq!(
        host.request(vm, delivery("/webhooks/ghl", "msg_5", "{}"))
            .status,
        503,
        "reset"
    );
    assert_eq!(
        host.request(vm, delivery("/webhooks/ghl", "msg_5", "{}"))
            .status,
        202
    );
    assert!(replayed(
        &host.request(vm, delivery("/webhooks/ghl", "msg_5", "{}"))
    ));
    assert_eq!(counts.borrow().get("msg_5"), Some(&3));
    assert_eq!(host.metric("edge.dedup.released").unwrap().value, 2);
}

#[test]
fn an_attempt_that_never_completes_expires() {
    let mut host = Host::new();
    let counts = origin(&mut host, |request| {
        if request.header("x-attempt").as_deref() == Some("1") {
            accepted(request).delay_ms(10_000)
        } else {
            accepted(request)
        }
    });
    let vms = host.start_vms(2, CONFIG);
    let _stuck = host.send(
        vms[0],
        delivery("/webhooks/ghl", "msg_6", "{}").header("x-attempt", "1"),
    );
    host.advance(Duration::from_millis(2_100));
    let retry = host.request(vms[1], delivery("/webhooks/ghl", "msg_6", "{}"));
    assert_eq!(retry.status, 202);
    assert!(!replayed(&retry), "the retry went to the origin");
    assert_eq!(counts.borrow().get("msg_6"), Some(&2));
}

#[test]
fn a_full_table_replaces_and_never_loses_a_unique_delivery() {
    let mut host = Host::new();
    let counts = origin(&mut host, accepted);
    let vm = host
        .start_vm(&CONFIG.replace(
            r#"]
}"#,
            r#"], "limits": {"dedup_slots": 4}}"#,
        ))
        .unwrap();
    for i in 0..50 {
        let response = host.request(vm, delivery("/webhooks/ghl", &format!("u{i}"), "{}"));
        assert_eq!(response.status, 202);
        assert!(!replayed(&response), "delivery u{i} was taken for another");
    }
    assert_eq!(counts.borrow().len(), 50);
    assert!(counts.borrow().values().all(|c| *c == 1));
    assert!(
        host.shared_keys()
            .iter()
            .filter(|k| k.starts_with("edge:dedup:"))
            .count()
            <= 4
    );
    // The latest delivery still has its record.
    assert!(replayed(
        &host.request(vm, delivery("/webhooks/ghl", "u49", "{}"))
    ));
}

#[test]
fn body_identity_survives_chunking() {
    let (mut host, vms, counts) = setup();
    let body = br#"{"event":"appointment.booked","id":77}"#.to_vec();
    let whole = Request::post("/webhooks/ghl", body.clone());
    let chunked = Request::new("POST", "/webhooks/ghl").chunks(body.chunks(7).map(<[u8]>::to_vec));
    assert_eq!(host.request(vms[0], whole).status, 202);
    let duplicate = host.request(vms[1], chunked);
    assert!(replayed(&duplicate));
    assert_eq!(total(&counts), 1);
    assert_eq!(
        host.origin_calls()[0].body,
        body,
        "the origin got the body whole"
    );
}

#[test]
fn no_identity_passes_untouched() {
    let (mut host, vms, counts) = setup();
    host.request(vms[0], Request::post("/ids/x", "same"));
    let second = host.request(vms[0], Request::post("/ids/x", "same"));
    assert!(!replayed(&second));
    assert_eq!(total(&counts), 2);
    assert_eq!(host.origin_calls()[1].body, b"same");
}

#[test]
fn signatures_are_verified_before_accepting() {
    use edge_filter::policy::dedup::signature::{decode_secret, sign};
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let mut host = Host::new();
    let counts = origin(&mut host, accepted);
    let config = format!(
        r#"{{"services": [{{"name": "signed", "match": {{"path_prefix": "/signed/"}},
            "dedup": {{"signature": {{"secret": "{SECRET}", "tolerance_s": 300}}}}}}]}}"#
    );
    let vm = host.start_vm(&config).unwrap();
    assert!(
        !host.log_text(vm).contains("MfKQ9r8"),
        "the secret is never logged"
    );
    let now = (host.now_ns() / 1_000_000_000).to_string();
    let key = decode_secret(SECRET).unwrap();
    let body = r#"{"type":"contact.created"}"#;
    let signed = |id: &str, timestamp: &str, signature: &str| {
        Request::post("/signed/hook", body.as_bytes().to_vec())
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp)
            .header("webhook-signature", signature)
    };
    let good = sign(&key, "msg_s1", &now, body.as_bytes());
    assert_eq!(host.request(vm, signed("msg_s1", &now, &good)).status, 202);
    assert!(replayed(&host.request(vm, signed("msg_s1", &now, &good))));
    let forged = sign(b"another key of sixteen+", "msg_s2", &now, body.as_bytes());
    assert_eq!(
        host.request(vm, signed("msg_s2", &now, &forged)).status,
        401
    );
    let old = "1000000000";
    let stale = sign(&key, "msg_s3", old, body.as_bytes());
    assert_eq!(
        host.request(vm, signed("msg_s3", old, &stale)).status,
        401,
        "outside the tolerance"
    );
    assert_eq!(
        host.request(vm, Request::post("/signed/hook", body)).status,
        401,
        "unsigned"
    );
    assert_eq!(
        host.request(
            vm,
            Request::post("/signed/hook", body).trailer("x-checksum", "1")
        )
        .status,
        401,
        "unsigned, ended by trailers"
    );
    assert_eq!(total(&counts), 1);
    assert_eq!(
        host.metric("edge.dedup.signature_rejected").unwrap().value,
        4
    );
}

fn released(host: &Host) -> u64 {
    metric(host, "edge.dedup.released")
}

#[test]
fn a_sender_that_hangs_up_does_not_send_its_retry_to_the_origin_again() {
    let mut host = Host::new();
    let counts = origin(&mut host, |request| accepted(request).delay_ms(400));
    let vm = host.start_vm(CONFIG).unwrap();
    // The sender gives up after 100 ms; the delivery is at the origin, which processes it.
    let first = host.send(vm, delivery("/strict/x", "msg_h", "{}"));
    host.advance(Duration::from_millis(100));
    host.hang_up(first);
    let retry = host.request(vm, delivery("/strict/x", "msg_h", "{}"));
    assert_eq!(
        retry.status, 409,
        "still in flight: the sender retries later"
    );
    assert_eq!(retry.header("retry-after").as_deref(), Some("3"));
    assert_eq!(counts.borrow().get("msg_h"), Some(&1));
    // Waiting mode: the edge, not the sender, owns the origin call, so its result is recorded
    // although the sender left, and the retry gets it.
    let first = host.send(vm, delivery("/webhooks/x", "msg_w", "{}"));
    host.advance(Duration::from_millis(100));
    host.hang_up(first);
    let retry = host.send(vm, delivery("/webhooks/x", "msg_w", "{}"));
    host.advance(Duration::from_millis(200));
    assert!(host.response(retry).is_none(), "held while in flight");
    let retry = host.wait(retry);
    assert_eq!(retry.status, 202);
    assert!(replayed(&retry), "the first attempt's result");
    assert_eq!(
        counts.borrow().get("msg_w"),
        Some(&1),
        "the origin saw it once"
    );
    // A retry after the first attempt finished is replayed too.
    let late = host.request(vm, delivery("/webhooks/x", "msg_w", "{}"));
    assert!(replayed(&late));
    assert_eq!(counts.borrow().get("msg_w"), Some(&1));
    assert_eq!(released(&host), 0);
}

#[test]
fn an_expired_attempt_that_fails_leaves_the_attempt_that_took_over_alone() {
    let mut host = Host::new();
    let calls = Rc::new(RefCell::new(0));
    let seen = Rc::clone(&calls);
    let counts = origin(&mut host, move |request| {
        *seen.borrow_mut() += 1;
        if *seen.borrow() == 1 {
            Reply::status(503).body("busy").delay_ms(1_200)
        } else {
            accepted(request).delay_ms(500)
        }
    });
    let config = r#"{"services": [{"name": "hooks", "match": {"path_prefix": "/webhooks/"},
        "dedup": {"in_flight_timeout_ms": 1000}}]}"#;
    let vm = host.start_vm(config).unwrap();
    let first = host.send(vm, delivery("/webhooks/ghl", "msg_s", "{}"));
    // The first attempt outlives its in-flight time: a retry on the same worker takes over.
    host.advance(Duration::from_millis(1_100));
    let second = host.send(vm, delivery("/webhooks/ghl", "msg_s", "{}"));
    host.advance(Duration::from_millis(200));
    assert_eq!(host.response(first).unwrap().status, 503);
    // The first attempt's failure must not release the second attempt's record.
    let third = host.send(vm, delivery("/webhooks/ghl", "msg_s", "{}"));
    let third = host.wait(third);
    assert_eq!(host.response(second).unwrap().status, 202);
    assert_eq!(third.status, 202);
    assert!(
        replayed(&third),
        "the third copy got the second attempt's result"
    );
    assert_eq!(counts.borrow().get("msg_s"), Some(&2));
    assert_eq!(
        released(&host),
        1,
        "only the first attempt (its origin call timed out at in_flight_timeout_ms)"
    );
}

#[test]
fn waiters_on_the_same_worker_are_answered_as_soon_as_the_result_is_recorded() {
    let mut host = Host::new();
    let counts = origin(&mut host, |request| accepted(request).delay_ms(410));
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.send(vm, delivery("/webhooks/ghl", "msg_p", "{}"));
    let waiter = host.send(vm, delivery("/webhooks/ghl", "msg_p", "{}"));
    // Ticks come every 20 ms (400, 420); the result is recorded at 410.
    host.advance(Duration::from_millis(410));
    assert_eq!(host.response(first).unwrap().status, 202);
    let response = host
        .response(waiter)
        .expect("answered when the result is recorded, not at the next tick");
    assert!(replayed(&response));
    assert_eq!(counts.borrow().get("msg_p"), Some(&1));
}

#[test]
fn deliveries_ended_by_trailers_are_deduplicated_too() {
    let (mut host, vms, counts) = setup();
    let with_trailer =
        |id: &str, body: &str| delivery("/webhooks/ghl", id, body).trailer("x-checksum", "c1");
    let first = host.request(vms[0], with_trailer("msg_t", r#"{"a":1}"#));
    assert_eq!(first.status, 202);
    assert!(!replayed(&first));
    let duplicate = host.request(vms[1], with_trailer("msg_t", r#"{"a":1}"#));
    assert!(replayed(&duplicate));
    assert_eq!(duplicate.body, first.body);
    let forged = host.request(vms[0], with_trailer("msg_t", r#"{"a":2}"#));
    assert_eq!(forged.status, 422, "the buffered body was read");
    assert_eq!(counts.borrow().get("msg_t"), Some(&1));
    let call = &host.origin_calls()[0];
    assert_eq!(call.body, br#"{"a":1}"#, "the origin got the body whole");
    assert_eq!(call.trailers.get("x-checksum").as_deref(), Some("c1"));
    // Body identity: two bodies are two deliveries, the same body twice is one.
    let body = |b: &str| Request::post("/webhooks/ghl", b.as_bytes().to_vec()).trailer("x-t", "1");
    assert!(!replayed(&host.request(vms[0], body("one"))));
    assert!(!replayed(&host.request(vms[1], body("two"))));
    assert!(replayed(&host.request(vms[1], body("one"))));
    assert_eq!(total(&counts), 3);
}

/// Found by the simulator (soak seed 27): the first attempt's result lost every CAS race when
/// it was written, so its record stayed in flight and, once that expired, a duplicate reached
/// the origin again. The result is now written again on the tick.
#[test]
fn a_result_whose_write_loses_its_races_is_written_later() {
    let mut host = Host::new();
    let counts = origin(&mut host, |request| accepted(request).delay_ms(200));
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.send(vm, delivery("/webhooks/x", "msg_c", "{}"));
    host.advance(Duration::from_millis(190));
    host.fail_next_cas_writes(8);
    host.advance(Duration::from_millis(15));
    assert_eq!(host.response(first).unwrap().status, 202);
    // Past the in-flight time (2 s): the record holds the result, not an expired attempt.
    host.advance(Duration::from_millis(2500));
    let duplicate = host.request(vm, delivery("/webhooks/x", "msg_c", "{}"));
    assert!(replayed(&duplicate), "{}", duplicate.body_text());
    assert_eq!(counts.borrow().get("msg_c"), Some(&1));
}

#[test]
fn a_delivery_id_given_twice_with_different_values_is_refused() {
    let mut host = Host::new();
    let counts = origin(&mut host, accepted);
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.request(vm, delivery("/webhooks/x", "msg_d", "{}"));
    assert_eq!(first.status, 202);
    for (a, b) in [("other", "msg_d"), ("msg_d", "other")] {
        let twice = Request::post("/webhooks/x", b"{}".to_vec())
            .header("webhook-id", a)
            .add_header("webhook-id", b);
        assert_eq!(host.request(vm, twice).status, 400);
    }
    assert_eq!(counts.borrow().get("msg_d"), Some(&1));
    assert_eq!(counts.borrow().get("other"), None);
}

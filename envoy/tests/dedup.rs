//! Webhook deduplication through real Envoy 1.40.
//!
//! - A storm with 2 workers: 2,000 unique deliveries, each sent 1–5 times by 64 senders that
//!   open a connection per request (`Connection: close`), copies of a delivery back to back so
//!   they race; every copy answered 200 and the origin processed each delivery exactly once.
//!   `cargo test -p edge-envoy --test dedup -- --nocapture` prints the figure.
//! - With 1 worker: a sender that hangs up does not send its retry to the origin again; an
//!   attempt that outlived its in-flight time and then failed leaves the attempt that took over
//!   alone; over h2c, deliveries that end with trailers are deduplicated like the others.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edge_envoy::launch::{
    http_request, set_origin_fault, test_stack, test_stack_with_workers, wasm_counter,
    HttpResponse, Stack,
};

/// The tests here measure counts and timings over several processes: one at a time.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    edge_envoy::launch::one_at_a_time()
}

const STORM_CONFIG: &str = r#"{
    "services": [
        {"name": "webhooks", "match": {"path_exact": "/webhooks/ghl", "methods": ["POST"]}, "dedup": {}}
    ],
    "limits": {"dedup_slots": 65536}
}"#;

const UNIQUE: usize = 2000;
const SENDERS: usize = 64;

#[test]
fn webhook_storm_reaches_the_origin_exactly_once_per_delivery() {
    let _serial = serial();
    let stack = test_stack(Some(STORM_CONFIG), 0.05);
    let origin = stack.origin.as_ref().unwrap().addr();
    // Deterministic copies per delivery (1–5), deliveries in shuffled order, the copies of a
    // delivery back to back: concurrent senders pick them up at the same moment.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut order: Vec<usize> = (0..UNIQUE).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let jobs: Vec<usize> = order
        .into_iter()
        .flat_map(|id| std::iter::repeat_n(id, 1 + (next() % 5) as usize))
        .rev()
        .collect();
    let sent = jobs.len();
    let queue = Arc::new(Mutex::new(jobs));
    let outcomes = Arc::new(Mutex::new(BTreeMap::<(u16, bool), usize>::new()));
    let listen = stack.listen;
    let start = Instant::now();
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let queue = Arc::clone(&queue);
            let outcomes = Arc::clone(&outcomes);
            std::thread::spawn(move || loop {
                let Some(id) = queue.lock().unwrap().pop() else {
                    return;
                };
                let body = format!(r#"{{"type":"contact.created","delivery":{id}}}"#);
                let webhook_id = format!("msg_{id}");
                // A fresh connection per request, `Connection: close`, read to the end.
                let response = http_request(
                    listen,
                    "POST",
                    "/webhooks/ghl",
                    &[
                        ("webhook-id", &webhook_id),
                        ("content-type", "application/json"),
                    ],
                    body.as_bytes(),
                )
                .unwrap();
                let replayed = response.header("x-edge-dedup") == Some("replayed");
                *outcomes
                    .lock()
                    .unwrap()
                    .entry((response.status, replayed))
                    .or_insert(0) += 1;
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    let elapsed = start.elapsed();
    let report = http_request(origin, "GET", "/__origin/webhooks", &[], b"").unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report.body).unwrap();
    let deliveries = report["deliveries"].as_object().unwrap();
    let processed: u64 = deliveries.values().map(|v| v.as_u64().unwrap()).sum();
    let lost = (0..UNIQUE)
        .filter(|id| !deliveries.contains_key(&format!("msg_{id}")))
        .count();
    let twice = deliveries
        .values()
        .filter(|v| v.as_u64().unwrap() > 1)
        .count();
    let duplicates_sent = sent - UNIQUE;
    let absorbed = duplicates_sent as f64 - (processed as f64 - (UNIQUE - lost) as f64);
    println!(
        "webhook storm, 2 workers, {SENDERS} senders (a connection per request): {UNIQUE} unique \
         deliveries sent {sent} times in {elapsed:?}; origin processed {processed}; duplicates \
         absorbed {:.1}% ({absorbed} of {duplicates_sent}); deliveries lost {lost}; delivered \
         more than once {twice}; client outcomes (status, replayed) {:?}",
        100.0 * absorbed / duplicates_sent as f64,
        outcomes.lock().unwrap()
    );
    assert_eq!(lost, 0, "every unique delivery reached the origin");
    assert_eq!(twice, 0, "no delivery reached the origin twice");
    assert!(outcomes
        .lock()
        .unwrap()
        .keys()
        .all(|(status, _)| *status == 200));
}

/// One worker; services told apart by authority. The demo origin answers webhooks in 400 ms.
const EDGE_CASES_CONFIG: &str = r#"{
    "services": [
        {"name": "conflict", "match": {"authority": "conflict.test", "path_exact": "/webhooks/ghl"},
         "dedup": {"in_flight": "conflict", "retry_after_s": 2}},
        {"name": "takeover", "match": {"authority": "takeover.test", "path_exact": "/webhooks/ghl"},
         "dedup": {"in_flight_timeout_ms": 1000}},
        {"name": "webhooks", "match": {"path_exact": "/webhooks/ghl"}, "dedup": {}}
    ]
}"#;

/// How many requests with this `webhook-id` reached the origin (its request log).
fn arrivals(origin: SocketAddr, id: &str) -> usize {
    let log = http_request(origin, "GET", "/__origin/requests", &[], b"").unwrap();
    let log: serde_json::Value = serde_json::from_slice(&log.body).unwrap();
    log.as_array()
        .unwrap()
        .iter()
        .filter(|entry| entry["headers"]["webhook-id"] == id)
        .count()
}

fn post(listen: SocketAddr, host: &str, id: &str) -> HttpResponse {
    http_request(
        listen,
        "POST",
        "/webhooks/ghl",
        &[
            ("host", host),
            ("webhook-id", id),
            ("content-type", "application/json"),
        ],
        br#"{"type":"contact.created"}"#,
    )
    .unwrap()
}

fn replayed(response: &HttpResponse) -> bool {
    response.header("x-edge-dedup") == Some("replayed")
}

/// The edge-case stack: 1 worker, webhooks answered in 400 ms.
fn one_worker() -> (Stack, SocketAddr, SocketAddr) {
    let stack = test_stack_with_workers(Some(EDGE_CASES_CONFIG), 1.0, 1);
    let origin = stack.origin.as_ref().unwrap().addr();
    let listen = stack.listen;
    (stack, origin, listen)
}

#[test]
fn a_sender_that_hangs_up_does_not_send_its_retry_to_the_origin_again() {
    let _serial = serial();
    let (_stack, origin, listen) = one_worker();
    // A sender gives up after 100 ms and closes its connection; its delivery is at the origin,
    // which may process it. Its retry must not reach the origin again while the attempt is in
    // flight: 409 with Retry-After (this service's in_flight mode).
    let mut first = TcpStream::connect(listen).unwrap();
    let body = br#"{"type":"contact.created"}"#;
    write!(
        first,
        "POST /webhooks/ghl HTTP/1.1\r\nhost: conflict.test\r\nconnection: close\r\n\
         webhook-id: gone-1\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    first.write_all(body).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    drop(first);
    std::thread::sleep(Duration::from_millis(100));
    let retry = post(listen, "conflict.test", "gone-1");
    assert_eq!(retry.status, 409, "{}", retry.text());
    assert_eq!(retry.header("retry-after"), Some("2"));
    assert_eq!(
        arrivals(origin, "gone-1"),
        1,
        "the retry stayed at the edge"
    );
    // The edge owns the origin call: the first attempt's result is recorded although its
    // sender left, and a later retry is answered with it.
    std::thread::sleep(Duration::from_millis(1500));
    let later = post(listen, "conflict.test", "gone-1");
    assert_eq!(later.status, 200, "{}", later.text());
    assert!(replayed(&later), "the first attempt's result");
    assert_eq!(arrivals(origin, "gone-1"), 1);
}

#[test]
fn an_expired_attempt_that_fails_leaves_the_attempt_that_took_over_alone() {
    let _serial = serial();
    let (stack, origin, listen) = one_worker();
    // An attempt outlives its in-flight time (1 s) and then fails (503 at 1.2 s); a retry
    // goes at 1.1 s on the same worker (the origin answers it in 0.5 s). The first attempt's
    // end must not touch the second attempt's record: a third copy at 1.35 s waits for its
    // result.
    set_origin_fault(
        origin,
        r#"{"endpoint": "webhooks", "error_rate": 1.0, "extra_latency_ms": 800}"#,
    );
    let start = Instant::now();
    let at = |ms: u64| {
        let target = start + Duration::from_millis(ms);
        std::thread::sleep(target.saturating_duration_since(Instant::now()));
    };
    let copy = move || std::thread::spawn(move || post(listen, "takeover.test", "slow-1"));
    let first = copy();
    at(150);
    set_origin_fault(
        origin,
        r#"{"endpoint": "webhooks", "error_rate": 0.0, "extra_latency_ms": 100}"#,
    );
    at(1100);
    let second = copy();
    at(1350);
    let third = copy();
    let (first, second, third) = (
        first.join().unwrap(),
        second.join().unwrap(),
        third.join().unwrap(),
    );
    set_origin_fault(
        origin,
        r#"{"endpoint": "webhooks", "error_rate": 0.0, "extra_latency_ms": 0}"#,
    );
    // The edge's call for the first attempt gives up at the in-flight time: Envoy answers it
    // 504 and the record is released (the origin's later 503 is not a success either).
    assert_eq!(first.status, 504);
    assert_eq!((second.status, replayed(&second)), (200, false));
    assert_eq!(
        (third.status, replayed(&third)),
        (200, true),
        "the third copy got the second attempt's result"
    );
    assert_eq!(arrivals(origin, "slow-1"), 2);
    assert_eq!(
        wasm_counter(stack.admin, "edge.dedup.released"),
        1,
        "only the timed-out first attempt released its record, never the second's"
    );
}

#[test]
fn h2c_deliveries_that_end_with_trailers_are_deduplicated() {
    let _serial = serial();
    let (_stack, origin, listen) = one_worker();
    // HTTP/2 requests that end with trailers: decided on the body Envoy buffered.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let send = |id: Option<&str>, body: &str| {
        runtime.block_on(h2c::post_with_trailer(listen, id, body.as_bytes()))
    };
    let first = send(Some("trailer-1"), r#"{"a":1}"#);
    assert_eq!((first.status, first.replayed), (200, false));
    let duplicate = send(Some("trailer-1"), r#"{"a":1}"#);
    assert_eq!((duplicate.status, duplicate.replayed), (200, true));
    assert_eq!(duplicate.body, first.body);
    let forged = send(Some("trailer-1"), r#"{"a":2}"#);
    assert_eq!(forged.status, 422, "the identity's body was read");
    assert_eq!(arrivals(origin, "trailer-1"), 1);
    // Body identity: two bodies are two deliveries, the same body twice is one.
    assert!(!send(None, "one").replayed);
    assert!(
        !send(None, "two").replayed,
        "the buffered body is the whole body"
    );
    assert!(send(None, "one").replayed);
}

/// A minimal h2c (prior knowledge) client: one POST whose request ends with a trailer.
mod h2c {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use tokio::net::TcpStream;

    pub struct Answer {
        pub status: u16,
        pub replayed: bool,
        pub body: Vec<u8>,
    }

    pub async fn post_with_trailer(listen: SocketAddr, id: Option<&str>, body: &[u8]) -> Answer {
        let tcp = TcpStream::connect(listen).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{listen}/webhooks/ghl"))
            .header("content-type", "application/json");
        if let Some(id) = id {
            request = request.header("webhook-id", id);
        }
        let (response, mut stream) = client
            .send_request(request.body(()).unwrap(), false)
            .unwrap();
        stream
            .send_data(Bytes::copy_from_slice(body), false)
            .unwrap();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", http::HeaderValue::from_static("c1"));
        stream.send_trailers(trailers).unwrap();
        let response = response.await.unwrap();
        let status = response.status().as_u16();
        let replayed = response
            .headers()
            .get("x-edge-dedup")
            .is_some_and(|v| v == "replayed");
        let mut received = response.into_body();
        let mut body = Vec::new();
        while let Some(chunk) = received.data().await {
            let chunk = chunk.unwrap();
            let _ = received.flow_control().release_capacity(chunk.len());
            body.extend_from_slice(&chunk);
        }
        drop(client);
        driver.abort();
        Answer {
            status,
            replayed,
            body,
        }
    }
}

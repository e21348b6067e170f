//! A webhook storm through real Envoy 1.40 with 2 workers: 2,000 unique deliveries, each sent
//! 1–5 times by 32 concurrent senders (so copies race each other), every copy answered 200, and
//! the origin must have processed each delivery exactly once.
//! `cargo test -p edge-envoy --test dedup -- --nocapture` prints the figure.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use edge_envoy::launch::{http_request, test_stack};

const CONFIG: &str = r#"{
    "services": [
        {"name": "webhooks", "match": {"path_exact": "/webhooks/ghl", "methods": ["POST"]}, "dedup": {}}
    ],
    "limits": {"dedup_slots": 65536}
}"#;

const UNIQUE: usize = 2000;
const SENDERS: usize = 32;

#[test]
fn webhook_storm_reaches_the_origin_exactly_once_per_delivery() {
    let stack = test_stack(Some(CONFIG), 0.05);
    let origin = stack.origin.as_ref().unwrap().addr();
    // Deterministic copies per delivery (1–5) and a shuffled send order.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut jobs: Vec<usize> = (0..UNIQUE)
        .flat_map(|id| std::iter::repeat_n(id, 1 + (next() % 5) as usize))
        .collect();
    for i in (1..jobs.len()).rev() {
        jobs.swap(i, (next() % (i as u64 + 1)) as usize);
    }
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
        "webhook storm, 2 workers, {SENDERS} senders: {UNIQUE} unique deliveries sent {sent} times \
         in {elapsed:?}; origin processed {processed}; duplicates absorbed {:.1}% ({absorbed} of \
         {duplicates_sent}); deliveries lost {lost}; delivered more than once {twice}; client \
         outcomes (status, replayed) {:?}",
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

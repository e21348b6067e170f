//! The fleet tier at the unit level: two hosts (two Envoy processes, 2 workers each) whose
//! `fleet_bridge` calls reach one fake webdis + Redis kept by the test (the commands the filter
//! sends: `SET NX PX GET`, the owner-checked scripts by `EVALSHA`/`EVAL`, `PING`), or a bridge
//! scripted per test (L3 lookups and leases, token batches). Real
//! redis-server and webdis are in `envoy/tests/fleet.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm_host::test_support::metric;
use proxy_wasm_host::{Host, Reply, Request, Response, UpstreamRequest, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "hooks", "match": {"path_prefix": "/webhooks/"}, "dedup": {}, "fleet": {}},
        {"name": "closed", "match": {"path_prefix": "/closed/"}, "dedup": {},
         "fleet": {"failure_mode": "fail_closed"}}
    ],
    "fleet_bridge": {"timeout_ms": 50, "probe_interval_ms": 200}
}"#;

/// How the fake bridge behaves.
#[derive(Clone, Copy, PartialEq)]
enum Bridge {
    Up,
    /// webdis without Redis: 503.
    RedisDown,
    /// Answers 200 with something that is not RESP.
    Garbage,
    /// Something that is not Redis answering `+OK` to every command.
    StandIn,
}

#[derive(Default)]
struct Fake {
    redis: HashMap<Vec<u8>, Vec<u8>>,
    bridge: Option<Bridge>,
    commands: Vec<String>,
    deliveries: HashMap<String, u32>,
    /// Scripts Redis knows (by `EVAL` or from before).
    known_scripts: Vec<String>,
    /// Every claim (`SET NX`) made: key and value.
    claims: Vec<(Vec<u8>, Vec<u8>)>,
    /// Redis goes down as the origin processes the next delivery.
    down_during_delivery: bool,
    /// The next bridge call gets no answer (times out), as on a busy machine.
    timeout_next: bool,
}

type Shared = Rc<RefCell<Fake>>;

fn percent_decode(part: &str) -> Vec<u8> {
    let bytes = part.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn bulk(value: Option<&Vec<u8>>) -> Vec<u8> {
    match value {
        None => b"$-1\r\n".to_vec(),
        Some(v) => {
            let mut out = format!("${}\r\n", v.len()).into_bytes();
            out.extend_from_slice(v);
            out.extend_from_slice(b"\r\n");
            out
        }
    }
}

/// Runs one webdis-form command on the fake Redis.
fn redis(fake: &mut Fake, body: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(body).unwrap();
    let text = text.strip_suffix(".raw").expect("raw output asked");
    let parts: Vec<Vec<u8>> = text.split('/').map(percent_decode).collect();
    let name = String::from_utf8_lossy(&parts[0]).into_owned();
    fake.commands.push(name.clone());
    match name.as_str() {
        "PING" => b"+PONG\r\n".to_vec(),
        "SET" => {
            assert_eq!(
                parts[3..],
                [
                    b"NX".to_vec(),
                    b"PX".to_vec(),
                    parts[5].clone(),
                    b"GET".to_vec()
                ]
            );
            fake.claims.push((parts[1].clone(), parts[2].clone()));
            let old = fake.redis.get(&parts[1]).cloned();
            if old.is_none() {
                fake.redis.insert(parts[1].clone(), parts[2].clone());
            }
            bulk(old.as_ref())
        }
        "EVALSHA" | "EVAL" => {
            let script = String::from_utf8_lossy(&parts[1]).into_owned();
            if name == "EVALSHA" && !fake.known_scripts.contains(&script) {
                return b"-NOSCRIPT No matching script. Please use EVAL.\r\n".to_vec();
            }
            if name == "EVAL" {
                fake.known_scripts.push(sha_of(&script));
            }
            let key = &parts[3];
            let owned = fake.redis.get(key) == Some(&parts[4]);
            let release = parts.len() == 5;
            // A completion also writes where there is no record (an attempt made while the
            // tier was unavailable).
            let written = owned || (!release && !fake.redis.contains_key(key));
            if owned && release {
                fake.redis.remove(key);
            } else if written {
                fake.redis.insert(key.clone(), parts[5].clone());
            }
            format!(":{}\r\n", u8::from(written)).into_bytes()
        }
        other => format!("-ERR unknown command '{other}'\r\n").into_bytes(),
    }
}

/// The script id Redis gives a script (the filter sends the same by `EVALSHA`).
fn sha_of(script: &str) -> String {
    edge_filter::policy::fleet::sha1::sha1_hex(script.as_bytes())
}

/// Two hosts sharing one fake bridge and one origin's delivery counts.
fn fleet() -> (Host, Host, Vec<VmId>, Vec<VmId>, Shared) {
    let fake: Shared = Rc::new(RefCell::new(Fake {
        bridge: Some(Bridge::Up),
        ..Fake::default()
    }));
    let mut hosts = Vec::new();
    for _ in 0..2 {
        let mut host = Host::new();
        host.add_cluster("fleet_bridge");
        let shared = Rc::clone(&fake);
        host.origin(move |request: &UpstreamRequest| {
            let mut fake = shared.borrow_mut();
            if request.cluster.as_deref() == Some("fleet_bridge") {
                if std::mem::take(&mut fake.timeout_next) {
                    return Reply::timeout();
                }
                return match fake.bridge.unwrap_or(Bridge::Up) {
                    Bridge::Up => Reply::ok(redis(&mut fake, &request.body)),
                    Bridge::RedisDown => Reply::status(503),
                    Bridge::Garbage => Reply::ok("<html>oops</html>"),
                    Bridge::StandIn => Reply::ok("+OK\r\n"),
                };
            }
            let id = request.header("webhook-id").unwrap_or_default();
            *fake.deliveries.entry(id.clone()).or_insert(0) += 1;
            if std::mem::take(&mut fake.down_during_delivery) {
                fake.bridge = Some(Bridge::RedisDown);
            }
            Reply::status(201).body(format!(r#"{{"received":"{id}"}}"#))
        });
        hosts.push(host);
    }
    let mut b = hosts.pop().unwrap();
    let mut a = hosts.pop().unwrap();
    let vms_a = a.start_vms(2, CONFIG);
    let vms_b = b.start_vms(2, CONFIG);
    (a, b, vms_a, vms_b, fake)
}

fn delivery(path: &str, id: &str) -> Request {
    Request::post(path, br#"{"type":"contact.created"}"#.to_vec()).header("webhook-id", id)
}

fn replayed(response: &Response) -> bool {
    response.header("x-edge-dedup").as_deref() == Some("replayed")
}

fn health(host: &mut Host, vm: VmId) -> serde_json::Value {
    let response = host.request(vm, Request::get("/api/v1/performance/health"));
    serde_json::from_slice(&response.body).unwrap()
}

/// Lets both hosts' ticks run (root calls: completions, probes).
fn settle(a: &mut Host, b: &mut Host, ms: u64) {
    for _ in 0..ms / 10 {
        a.advance(std::time::Duration::from_millis(10));
        b.advance(std::time::Duration::from_millis(10));
    }
}

#[test]
fn a_delivery_through_one_replica_is_replayed_by_the_other() {
    let (mut a, mut b, vms_a, vms_b, fake) = fleet();
    let first = a.request(vms_a[0], delivery("/webhooks/ghl", "msg_1"));
    assert_eq!(first.status, 201);
    settle(&mut a, &mut b, 100);
    for vm in [vms_b[0], vms_b[1]] {
        let duplicate = b.request(vm, delivery("/webhooks/ghl", "msg_1"));
        assert_eq!(duplicate.status, 201);
        assert!(replayed(&duplicate));
        assert_eq!(duplicate.body, first.body);
    }
    assert_eq!(fake.borrow().deliveries.get("msg_1"), Some(&1));
    // The completion went by EVALSHA, then (Redis did not know the script) by EVAL.
    let commands = fake.borrow().commands.clone();
    assert!(commands.contains(&"EVAL".to_string()), "{commands:?}");
    assert_eq!(metric(&b, "edge.fleet.dedup.replayed"), 1);
    assert_eq!(metric(&a, "edge.fleet.failed"), 0);
    // Another body under the same id: 422 on either replica.
    let other = Request::post("/webhooks/ghl", b"{}".to_vec()).header("webhook-id", "msg_1");
    assert_eq!(b.request(vms_b[0], other).status, 422);
}

#[test]
fn a_result_whose_write_meets_an_outage_is_written_when_the_tier_is_back() {
    let (mut a, mut b, vms_a, vms_b, fake) = fleet();
    // Claimed while Redis is up; Redis goes down while the origin processes the delivery, so
    // the completion cannot be written then.
    fake.borrow_mut().down_during_delivery = true;
    let first = a.request(vms_a[0], delivery("/webhooks/ghl", "msg_3"));
    assert_eq!(first.status, 201);
    settle(&mut a, &mut b, 600);
    fake.borrow_mut().bridge = Some(Bridge::Up);
    // A's probe finds the tier back and the kept completion goes out.
    settle(&mut a, &mut b, 600);
    let duplicate = b.request(vms_b[0], delivery("/webhooks/ghl", "msg_3"));
    assert_eq!(
        duplicate.status, 201,
        "replayed, not 409 for an attempt stuck in flight"
    );
    assert!(replayed(&duplicate));
    assert_eq!(fake.borrow().deliveries.get("msg_3"), Some(&1));
}

#[test]
fn deliveries_processed_during_an_outage_are_replayed_by_another_replica_after_it() {
    let (mut a, mut b, vms_a, vms_b, fake) = fleet();
    fake.borrow_mut().bridge = Some(Bridge::RedisDown);
    // fail_open: processed with the local claim alone; the first ones meet the outage on their
    // fleet claim, the last one skips the tier (known down on that worker by then).
    let ids = ["ghost-1", "ghost-2", "ghost-3", "ghost-4"];
    for id in ids {
        assert_eq!(
            a.request(vms_a[0], delivery("/webhooks/ghl", id)).status,
            201
        );
    }
    assert!(metric(&a, "edge.fleet.skipped") >= 4);
    fake.borrow_mut().bridge = Some(Bridge::Up);
    // A's probe finds the tier back and the kept results go out.
    settle(&mut a, &mut b, 600);
    for id in ids {
        let retry = b.request(vms_b[1], delivery("/webhooks/ghl", id));
        assert_eq!(retry.status, 201);
        assert!(replayed(&retry), "{id} replayed after the outage");
        assert_eq!(fake.borrow().deliveries.get(id), Some(&1), "{id}");
    }
}

#[test]
fn an_attempt_in_flight_on_another_replica_gets_409() {
    let (mut a, mut b, vms_a, vms_b, fake) = fleet();
    let first = a.request(vms_a[0], delivery("/webhooks/ghl", "msg_2"));
    assert_eq!(first.status, 201);
    settle(&mut a, &mut b, 100);
    // As if A's attempt were still at the origin: its claim is what the record holds.
    let (key, claim) = fake.borrow().claims[0].clone();
    fake.borrow_mut().redis.insert(key, claim);
    let duplicate = b.request(vms_b[1], delivery("/webhooks/ghl", "msg_2"));
    assert_eq!(duplicate.status, 409);
    assert!(duplicate.header("retry-after").is_some());
    assert_eq!(metric(&b, "edge.fleet.dedup.in_flight"), 1);
    assert_eq!(fake.borrow().deliveries.get("msg_2"), Some(&1));
    // B's local claim was released: once the record completes, B replays it.
    fake.borrow_mut().redis.clear();
    let retry = b.request(vms_b[1], delivery("/webhooks/ghl", "msg_2"));
    assert_eq!(
        retry.status, 201,
        "nothing in the fleet record: B's attempt goes through"
    );
}

#[test]
fn bridge_down_or_garbage_local_tiers_alone_health_degraded_and_back() {
    for fault in [Bridge::RedisDown, Bridge::Garbage] {
        let (mut a, mut b, vms_a, _vms_b, fake) = fleet();
        assert_eq!(health(&mut a, vms_a[0])["status"], "healthy");
        fake.borrow_mut().bridge = Some(fault);
        // fail_open: the delivery goes on with the local tiers; fail_closed: 503 + Retry-After.
        let open = a.request(vms_a[0], delivery("/webhooks/ghl", "down-1"));
        assert_eq!(open.status, 201);
        let closed = a.request(vms_a[0], delivery("/closed/x", "down-2"));
        assert_eq!(closed.status, 503);
        assert!(closed.header("retry-after").is_some());
        assert!(metric(&a, "edge.fleet.failed") >= 1);
        // A duplicate on the same replica is still deduplicated locally.
        let again = a.request(vms_a[1], delivery("/webhooks/ghl", "down-1"));
        assert!(replayed(&again));
        // Both workers see the outage within the probe interval (the idle one by its probe).
        settle(&mut a, &mut b, 1200);
        for vm in &vms_a {
            let h = health(&mut a, *vm);
            assert_eq!(h["status"], "degraded");
            assert!(h["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == "fleet tier unreachable"));
        }
        fake.borrow_mut().bridge = Some(Bridge::Up);
        settle(&mut a, &mut b, 400);
        for vm in &vms_a {
            assert_eq!(health(&mut a, *vm)["status"], "healthy");
        }
        let back = a.request(vms_a[0], delivery("/closed/x", "up-1"));
        assert_eq!(back.status, 201);
    }
}

#[test]
fn a_bridge_answering_ok_to_everything_is_reported_unreachable() {
    let (mut a, mut b, vms_a, _vms_b, fake) = fleet();
    fake.borrow_mut().bridge = Some(Bridge::StandIn);
    let closed = a.request(vms_a[0], delivery("/closed/x", "standin-1"));
    assert_eq!(closed.status, 503);
    let open = a.request(vms_a[0], delivery("/webhooks/ghl", "standin-2"));
    assert_eq!(open.status, 201);
    settle(&mut a, &mut b, 1200);
    for vm in &vms_a {
        let h = health(&mut a, *vm);
        assert_eq!(h["status"], "degraded", "{h}");
    }
    fake.borrow_mut().bridge = Some(Bridge::Up);
    settle(&mut a, &mut b, 400);
    for vm in &vms_a {
        assert_eq!(health(&mut a, *vm)["status"], "healthy");
    }
}

#[test]
fn a_bridge_that_never_answers_costs_one_call_timeout_then_nothing() {
    let (mut a, _b, vms_a, _vms_b, fake) = fleet();
    fake.borrow_mut().bridge = None;
    a.origin(move |request: &UpstreamRequest| {
        if request.cluster.as_deref() == Some("fleet_bridge") {
            return Reply::timeout();
        }
        Reply::status(201)
    });
    let started = a.now_ns();
    let first = a.request(vms_a[0], delivery("/webhooks/ghl", "slow-1"));
    assert_eq!(first.status, 201);
    let waited_ms = (a.now_ns() - started) / 1_000_000;
    assert!(
        waited_ms <= 60,
        "bounded by the call timeout (50 ms): {waited_ms} ms"
    );
    // The worker's probes confirm the outage at once (three failed calls in a row)...
    a.advance(std::time::Duration::from_millis(200));
    // ...and the tier is known down on that worker: the next delivery does not wait for it.
    let calls = metric(&a, "edge.fleet.calls");
    let started = a.now_ns();
    let second = a.request(vms_a[0], delivery("/webhooks/ghl", "slow-2"));
    assert_eq!(second.status, 201);
    assert_eq!((a.now_ns() - started) / 1_000_000, 0, "no wait");
    assert_eq!(metric(&a, "edge.fleet.calls"), calls);
    assert!(metric(&a, "edge.fleet.skipped") >= 2);
}

#[test]
fn one_spontaneous_timeout_does_not_take_a_worker_off_a_healthy_tier() {
    let (mut a, mut b, vms_a, vms_b, fake) = fleet();
    fake.borrow_mut().timeout_next = true;
    let first = a.request(vms_a[0], delivery("/webhooks/ghl", "t-1"));
    assert_eq!(first.status, 201, "fail_open: the local claim alone");
    // Well within the probe interval (200 ms): the worker still uses the tier.
    settle(&mut a, &mut b, 40);
    assert_eq!(health(&mut a, vms_a[0])["status"], "healthy");
    let second = a.request(vms_a[0], delivery("/webhooks/ghl", "t-2"));
    assert_eq!(second.status, 201);
    settle(&mut a, &mut b, 40);
    let duplicate = b.request(vms_b[0], delivery("/webhooks/ghl", "t-2"));
    assert!(
        replayed(&duplicate),
        "t-2 was claimed and completed in the fleet"
    );
    assert_eq!(fake.borrow().deliveries.get("t-2"), Some(&1));
    assert_eq!(
        metric(&a, "edge.fleet.skipped"),
        1,
        "only t-1 skipped the tier"
    );
}

#[test]
fn a_worker_takes_the_tier_back_as_soon_as_another_worker_of_its_envoy_sees_it() {
    let (mut a, mut b, vms_a, vms_b, fake) = fleet();
    fake.borrow_mut().bridge = Some(Bridge::RedisDown);
    // Worker 0 of A sees the outage (three failed claims in a row).
    for i in 0..3 {
        let open = a.request(vms_a[0], delivery("/webhooks/ghl", &format!("down-{i}")));
        assert_eq!(open.status, 201);
    }
    assert_eq!(health(&mut a, vms_a[0])["status"], "degraded");
    fake.borrow_mut().bridge = Some(Bridge::Up);
    settle(&mut a, &mut b, 10);
    // Worker 1 of A sees it answer (its claim succeeds): worker 0 uses it at once, long
    // before its own next probe (200 ms).
    let other = a.request(vms_a[1], delivery("/webhooks/ghl", "up-1"));
    assert_eq!(other.status, 201);
    settle(&mut a, &mut b, 10);
    assert_eq!(health(&mut a, vms_a[0])["status"], "healthy");
    let skipped = metric(&a, "edge.fleet.skipped");
    let after = a.request(vms_a[0], delivery("/webhooks/ghl", "after"));
    assert_eq!(after.status, 201);
    assert_eq!(metric(&a, "edge.fleet.skipped"), skipped, "not skipped");
    settle(&mut a, &mut b, 40);
    let duplicate = b.request(vms_b[0], delivery("/webhooks/ghl", "after"));
    assert!(replayed(&duplicate));
    assert_eq!(fake.borrow().deliveries.get("after"), Some(&1));
}

/// A caching service with the L3 tier, its bridge scripted by `bridge`; the origin answers
/// cacheable pages and counts them.
fn cache_host(bridge: impl Fn(&str) -> Reply + 'static) -> (Host, Vec<VmId>, Rc<RefCell<u32>>) {
    const CACHE_CONFIG: &str = r#"{
        "services": [
            {"name": "pages", "match": {"path_prefix": "/pages/"},
             "cache": {"lease_ms": 1000}, "fleet": {}}
        ],
        "fleet_bridge": {"timeout_ms": 50, "probe_interval_ms": 200}
    }"#;
    let mut host = Host::new();
    host.add_cluster("fleet_bridge");
    let fetched = Rc::new(RefCell::new(0));
    let count = Rc::clone(&fetched);
    host.origin(move |request: &UpstreamRequest| {
        if request.cluster.as_deref() == Some("fleet_bridge") {
            return bridge(std::str::from_utf8(&request.body).unwrap_or_default());
        }
        *count.borrow_mut() += 1;
        Reply::ok("page").header("cache-control", "public, max-age=60")
    });
    let vms = host.start_vms(1, CACHE_CONFIG);
    (host, vms, fetched)
}

#[test]
fn a_miss_waiting_on_another_replicas_lease_goes_to_the_origin_when_the_lease_is_over() {
    // The lease is always held elsewhere and the entry never comes: the request looks again
    // after each pause, and goes to the origin itself once its lease_ms (1 s) is over.
    let (mut host, vms, fetched) = cache_host(|body| {
        if body.starts_with("BLPOP") {
            Reply::ok("*-1\r\n").delay_ms(25)
        } else if body.starts_with("EVALSHA") || body.starts_with("EVAL") {
            Reply::ok("*2\r\n$1\r\n2\r\n$3\r\n900\r\n")
        } else {
            Reply::ok("+OK\r\n")
        }
    });
    let started = host.now_ns();
    let response = host.request(vms[0], Request::get("/pages/1"));
    let waited_ms = (host.now_ns() - started) / 1_000_000;
    assert_eq!(response.status, 200);
    assert_eq!(*fetched.borrow(), 1);
    assert!(
        (1000..=1200).contains(&waited_ms),
        "bounded by the lease: {waited_ms} ms"
    );
    assert!(metric(&host, "edge.fleet.cache.waited") >= 10);
}

#[test]
fn a_lease_taken_by_a_lookup_whose_answer_was_lost_is_released() {
    // Redis runs the lookup (taking the lease for this request) but the answer never comes
    // back in time; afterwards Redis answers normally.
    let lease: Rc<RefCell<Option<(String, String)>>> = Rc::default();
    let held = Rc::clone(&lease);
    let (mut host, vms, fetched) = cache_host(move |body| {
        let text = body.strip_suffix(".raw").unwrap_or(body);
        let parts: Vec<String> = text
            .split('/')
            .map(|p| String::from_utf8_lossy(&percent_decode(p)).into_owned())
            .collect();
        if parts[0] == "PING" {
            return Reply::ok("+PONG\r\n");
        }
        if parts[0].starts_with("EVAL") && parts[2] == "2" {
            // The lookup: no entry, the lease is taken by its owner; the answer is lost.
            *held.borrow_mut() = Some((parts[4].clone(), parts[5].clone()));
            return Reply::timeout();
        }
        if parts[0].starts_with("EVAL") && parts[2] == "1" {
            // An owner-checked release.
            let mut lease = held.borrow_mut();
            let owned = lease.as_ref() == Some(&(parts[3].clone(), parts[4].clone()));
            if owned {
                *lease = None;
            }
            return Reply::ok(format!(":{}\r\n", u8::from(owned)));
        }
        Reply::ok("+OK\r\n")
    });
    let response = host.request(vms[0], Request::get("/pages/9"));
    assert_eq!(response.status, 200);
    assert_eq!(*fetched.borrow(), 1);
    assert!(lease.borrow().is_some(), "the lookup took the lease");
    host.advance(std::time::Duration::from_millis(300));
    assert_eq!(
        *lease.borrow(),
        None,
        "released: other replicas do not wait out lease_ms"
    );
}

#[test]
fn an_l3_bridge_that_never_answers_costs_one_call_timeout() {
    let (mut host, vms, fetched) = cache_host(|_| Reply::timeout());
    let started = host.now_ns();
    let response = host.request(vms[0], Request::get("/pages/2"));
    let waited_ms = (host.now_ns() - started) / 1_000_000;
    assert_eq!(response.status, 200);
    assert_eq!(*fetched.borrow(), 1);
    assert!(
        waited_ms <= 60,
        "bounded by the call timeout (50 ms): {waited_ms} ms"
    );
    // Known down once the worker's probes confirm it (three failed calls in a row): the
    // next miss does not ask.
    host.advance(std::time::Duration::from_millis(200));
    let calls = metric(&host, "edge.fleet.calls");
    let again = host.request(vms[0], Request::get("/pages/3"));
    assert_eq!(again.status, 200);
    assert_eq!(metric(&host, "edge.fleet.calls"), calls);
}

#[test]
fn an_empty_fleet_bucket_refuses_without_redis_calls_until_its_next_token() {
    const RATE_CONFIG: &str = r#"{
        "services": [
            {"name": "api", "match": {"path_prefix": "/api/"},
             "rate_limit": {"tenant": {"header": "x-tenant"}, "requests_per_second": 10,
                            "burst": 100},
             "fleet": {}}
        ]
    }"#;
    let mut host = Host::new();
    host.add_cluster("fleet_bridge");
    let takes = Rc::new(RefCell::new(0));
    let seen = Rc::clone(&takes);
    host.origin(move |request: &UpstreamRequest| {
        if request.cluster.as_deref() == Some("fleet_bridge") {
            if request.body.starts_with(b"EVAL") {
                *seen.borrow_mut() += 1;
                // The fleet's bucket is empty (other replicas spent it): a token in 500 ms.
                return Reply::ok("*2\r\n$1\r\n0\r\n$3\r\n500\r\n");
            }
            return Reply::ok("+PONG\r\n");
        }
        Reply::ok("fine")
    });
    let vms = host.start_vms(1, RATE_CONFIG);
    let ask =
        |host: &mut Host| host.request(vms[0], Request::get("/api/x").header("x-tenant", "acme"));
    // Cold: one request goes ahead of the batch (charged with it).
    assert_eq!(ask(&mut host).status, 200);
    host.advance(std::time::Duration::from_millis(30));
    assert_eq!(*takes.borrow(), 1);
    // The bucket said empty: refused for 500 ms, with no further Redis call. The local bucket
    // (burst 100) would have admitted all of them.
    for _ in 0..20 {
        let refused = ask(&mut host);
        assert_eq!(refused.status, 429);
        assert!(refused.header("retry-after").is_some());
        // The fields say the fleet's bucket, not what the local pre-check had left.
        let state = refused.header("ratelimit").unwrap_or_default();
        assert!(state.contains(";r=0;"), "{state}");
    }
    assert_eq!(*takes.borrow(), 1);
    assert_eq!(metric(&host, "edge.fleet.ratelimit.rejected"), 20);
    // Each admitted request counts once: the one the fleet admitted, not the 20 it refused.
    assert_eq!(metric(&host, "edge.ratelimit.admitted"), 1);
    host.advance(std::time::Duration::from_millis(500));
    assert_eq!(
        ask(&mut host).status,
        200,
        "its next token: one request ahead again"
    );
    host.advance(std::time::Duration::from_millis(30));
    assert_eq!(*takes.borrow(), 2);
}

#[test]
fn a_pause_that_fails_sends_the_waiting_miss_to_the_origin_at_once() {
    // The lease is held elsewhere, and the pause between lookups fails at once: no tight loop
    // of lookups until the lease is over.
    let (mut host, vms, fetched) = cache_host(|body| {
        if body.starts_with("BLPOP") {
            Reply::ok("-ERR blocking commands refused\r\n")
        } else {
            Reply::ok("*2\r\n$1\r\n2\r\n$3\r\n900\r\n")
        }
    });
    let started = host.now_ns();
    let response = host.request(vms[0], Request::get("/pages/9"));
    let waited_ms = (host.now_ns() - started) / 1_000_000;
    assert_eq!(response.status, 200);
    assert_eq!(*fetched.borrow(), 1);
    assert!(waited_ms < 100, "{waited_ms} ms");
    assert!(metric(&host, "edge.fleet.calls") <= 4);
}

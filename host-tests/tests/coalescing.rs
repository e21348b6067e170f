//! The worst moments: a popular key missing or expiring under load, and the origin failing.
//! Coalescing inside and across workers, stale-while-revalidate, stale-if-error, refresh-ahead.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::test_support::{cache_status as status_of, counting_origin as origin, metric};
use proxy_wasm_host::{Host, Reply, Request, Response};

const CONFIG: &str = r#"{
    "services": [
        {"name": "hot", "match": {"path_prefix": "/hot/"}, "cache": {"lease_ms": 5000}},
        {"name": "ahead", "match": {"path_prefix": "/ahead/"},
         "cache": {"refresh_ahead": {"min_hits": 3, "before_expiry_percent": 20}}},
        {"name": "plain", "match": {"path_prefix": "/plain/"}, "cache": {"coalesce": false}}
    ],
    "limits": {"l2_slots": 256, "lease_slots": 64}
}"#;

fn cacheable(n: u32) -> Reply {
    Reply::ok(format!("version {n}"))
        .header("cache-control", "public, max-age=60")
        .header("etag", &format!("\"v{n}\""))
}

#[test]
fn concurrent_misses_on_one_worker_make_one_origin_request() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| cacheable(n).delay_ms(150));
    let vm = host.start_vm(CONFIG).unwrap();
    let streams: Vec<_> = (0..10)
        .map(|_| host.send(vm, Request::get("/hot/a")))
        .collect();
    host.advance(Duration::from_millis(150));
    let responses: Vec<Response> = streams
        .iter()
        .map(|s| host.response(*s).expect("answered"))
        .collect();
    assert_eq!(calls.get(), 1);
    assert!(responses
        .iter()
        .all(|r| r.status == 200 && r.body_text() == "version 1"));
    let collapsed = responses
        .iter()
        .filter(|r| status_of(r).contains("collapsed"))
        .count();
    assert_eq!(
        collapsed,
        9,
        "{:?}",
        responses.iter().map(status_of).collect::<Vec<_>>()
    );
    assert_eq!(metric(&host, "edge.cache.collapsed"), 9);
}

#[test]
fn concurrent_misses_across_four_workers_make_one_origin_request() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| cacheable(n).delay_ms(150));
    let workers = host.start_vms(4, CONFIG);
    let streams: Vec<_> = (0..20)
        .map(|i| host.send(workers[i % 4], Request::get("/hot/b")))
        .collect();
    host.advance(Duration::from_millis(150));
    // Workers other than the leader's find the entry in L2 on their next tick.
    host.advance(Duration::from_millis(25));
    for stream in &streams {
        let response = host.response(*stream).expect("every request answered");
        assert_eq!(response.body_text(), "version 1");
    }
    assert_eq!(calls.get(), 1);
    assert_eq!(metric(&host, "edge.cache.collapsed"), 19);
}

#[test]
fn a_response_that_cannot_be_stored_releases_the_waiters() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| {
        Reply::ok(format!("private {n}"))
            .header("cache-control", "no-store")
            .delay_ms(100)
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let streams: Vec<_> = (0..5)
        .map(|_| host.send(vm, Request::get("/hot/c")))
        .collect();
    host.advance(Duration::from_millis(100));
    assert_eq!(
        calls.get(),
        5,
        "the leader, then every released waiter, went to the origin"
    );
    host.advance(Duration::from_millis(100));
    for stream in streams {
        let response = host.response(stream).expect("never left hanging");
        assert_eq!(response.status, 200);
        assert!(!status_of(&response).contains("collapsed"));
    }
}

#[test]
fn a_dead_leader_on_another_worker_is_replaced_when_its_lease_expires() {
    let mut host = Host::new();
    // The first request hangs for 8 s (longer than the 5 s lease); later ones are quick.
    let calls = origin(&mut host, |_, n| {
        if n == 1 {
            cacheable(n).delay_ms(8_000)
        } else {
            cacheable(n).delay_ms(50)
        }
    });
    let workers = host.start_vms(2, CONFIG);
    let leader = host.send(workers[0], Request::get("/hot/d"));
    let waiters: Vec<_> = (0..3)
        .map(|_| host.send(workers[1], Request::get("/hot/d")))
        .collect();
    host.advance(Duration::from_millis(4_900));
    assert_eq!(calls.get(), 1, "waiting while the lease holds");
    host.advance(Duration::from_millis(200));
    assert_eq!(calls.get(), 2, "a waiter took the lease over");
    host.advance(Duration::from_millis(100));
    for waiter in &waiters {
        assert_eq!(
            host.response(*waiter).expect("answered").body_text(),
            "version 2"
        );
    }
    host.advance(Duration::from_secs(3));
    assert_eq!(host.response(leader).unwrap().body_text(), "version 1");
    assert_eq!(calls.get(), 2);
}

#[test]
fn without_coalescing_every_miss_goes_to_the_origin() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| cacheable(n).delay_ms(100));
    let vm = host.start_vm(CONFIG).unwrap();
    for _ in 0..4 {
        host.send(vm, Request::get("/plain/x"));
    }
    host.advance(Duration::from_millis(100));
    assert_eq!(calls.get(), 4);
}

#[test]
fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let mut host = Host::new();
    let calls = origin(&mut host, |request, n| {
        if request.header("if-none-match").is_some() {
            return Reply::status(304)
                .header("cache-control", "max-age=1, stale-while-revalidate=5")
                .delay_ms(200);
        }
        Reply::ok(format!("version {n}"))
            .header("cache-control", "max-age=1, stale-while-revalidate=5")
            .header("etag", "\"v1\"")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/hot/swr"));
    host.advance(Duration::from_secs(3));
    let start = host.now_ns();
    let stale = host.send(vm, Request::get("/hot/swr"));
    let response = host
        .response(stale)
        .expect("answered without waiting for the origin");
    assert_eq!(host.now_ns(), start);
    assert_eq!(response.body_text(), "version 1");
    assert!(
        status_of(&response).contains("detail=stale-while-revalidate"),
        "{}",
        status_of(&response)
    );
    host.advance(Duration::from_millis(300));
    assert_eq!(calls.get(), 2, "one background refresh");
    let refresh = &host.origin_calls()[1];
    assert_eq!(refresh.cluster.as_deref(), Some("origin"));
    assert_eq!(refresh.header("if-none-match").as_deref(), Some("\"v1\""));
    let fresh = host.request(vm, Request::get("/hot/swr"));
    assert!(
        status_of(&fresh).starts_with("edge; hit; ttl="),
        "{}",
        status_of(&fresh)
    );
    assert!(!status_of(&fresh).contains("stale"));
    assert_eq!(metric(&host, "edge.cache.refresh"), 1);
}

/// A key one worker refreshed in the background is fresh on every worker: another worker that
/// holds the stale copy in its L1 answers with the refreshed one from L2, and does not fetch
/// it a second time.
#[test]
fn a_background_refresh_by_one_worker_is_not_repeated_by_another() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| {
        Reply::ok(format!("version {n}"))
            .header("cache-control", "max-age=1, stale-while-revalidate=5")
    });
    let vms = host.start_vms(2, CONFIG);
    let get = || Request::get("/hot/shared-swr");
    host.request(vms[0], get());
    assert_eq!(host.request(vms[1], get()).body_text(), "version 1");
    assert_eq!(calls.get(), 1, "the second worker found it in L2");
    host.advance(Duration::from_secs(2));
    let stale = host.request(vms[0], get());
    assert!(status_of(&stale).contains("stale"), "{}", status_of(&stale));
    host.advance(Duration::from_millis(300));
    assert_eq!(calls.get(), 2, "one background refresh");
    let other = host.request(vms[1], get());
    assert_eq!(other.body_text(), "version 2");
    assert!(
        !status_of(&other).contains("stale"),
        "{}",
        status_of(&other)
    );
    host.advance(Duration::from_millis(300));
    assert_eq!(calls.get(), 2, "the other worker did not refresh it again");
    assert_eq!(metric(&host, "edge.cache.refresh"), 1);
}

/// A burst of keys going stale queues more refreshes than a tick starts: a refresh that waited
/// in one worker's queue while another worker refreshed the same key is dropped, not sent again.
#[test]
fn a_queued_refresh_of_a_key_another_worker_refreshed_is_dropped() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| {
        Reply::ok(format!("version {n}"))
            .header("cache-control", "max-age=1, stale-while-revalidate=30")
            .delay_ms(5)
    });
    let config = CONFIG.replace(
        r#""limits": {"l2_slots": 256, "lease_slots": 64}"#,
        r#""limits": {"l2_slots": 256, "lease_slots": 64, "refreshes_per_tick": 1}"#,
    );
    let vms = host.start_vms(2, &config);
    let (a, b) = (vms[0], vms[1]);
    for path in ["/hot/queued-1", "/hot/queued-2"] {
        host.request(a, Request::get(path));
        host.request(b, Request::get(path));
    }
    assert_eq!(calls.get(), 2);
    host.advance(Duration::from_secs(2));
    // Worker B queues key 2, then key 1; worker A queues key 1. One refresh starts per tick.
    for (vm, path) in [
        (b, "/hot/queued-2"),
        (b, "/hot/queued-1"),
        (a, "/hot/queued-1"),
    ] {
        let stale = host.request(vm, Request::get(path));
        assert!(status_of(&stale).contains("stale"), "{}", status_of(&stale));
    }
    host.advance(Duration::from_millis(500));
    let refreshed = |path: &str| {
        host.origin_calls()
            .iter()
            .filter(|call| call.path() == path)
            .count()
    };
    assert_eq!(
        refreshed("/hot/queued-1"),
        2,
        "fetched once, refreshed once"
    );
    assert_eq!(refreshed("/hot/queued-2"), 2);
    assert_eq!(metric(&host, "edge.cache.refresh"), 2);
}

/// A stale L1 hit looks in L2 first: a newer copy another worker stored answers it fresh,
/// with no refresh; the same copy (L2 read by its arrival stamp, not decoded) is served stale
/// and refreshed.
#[test]
fn a_stale_hit_takes_the_newer_copy_another_worker_stored_in_l2() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| {
        Reply::ok(format!("version {n}"))
            .header("cache-control", "max-age=1, stale-while-revalidate=30")
            .delay_ms(5)
    });
    let vms = host.start_vms(2, CONFIG);
    let (a, b) = (vms[0], vms[1]);
    host.request(a, Request::get("/hot/newer"));
    assert_eq!(
        host.request(b, Request::get("/hot/newer")).body_text(),
        "version 1"
    );
    host.advance(Duration::from_secs(2));
    // A serves stale and refreshes: L2 gets version 2.
    let stale = host.request(a, Request::get("/hot/newer"));
    assert!(status_of(&stale).contains("stale"), "{}", status_of(&stale));
    host.advance(Duration::from_millis(100));
    assert_eq!(calls.get(), 2);
    // B's L1 still holds version 1, stale: L2's newer copy answers, fresh, with no fetch.
    let fresh = host.request(b, Request::get("/hot/newer"));
    assert_eq!(fresh.body_text(), "version 2");
    assert!(
        !status_of(&fresh).contains("stale"),
        "{}",
        status_of(&fresh)
    );
    host.advance(Duration::from_millis(100));
    assert_eq!(calls.get(), 2);
    // Both stale again, L2 holding the copy B has: B serves it stale and refreshes once.
    host.advance(Duration::from_secs(2));
    let again = host.request(b, Request::get("/hot/newer"));
    assert_eq!(again.body_text(), "version 2");
    assert!(status_of(&again).contains("stale"), "{}", status_of(&again));
    host.advance(Duration::from_millis(100));
    assert_eq!(calls.get(), 3);
    assert_eq!(
        host.request(a, Request::get("/hot/newer")).body_text(),
        "version 3"
    );
}

#[test]
fn stale_while_revalidate_is_not_used_past_its_window_or_with_must_revalidate() {
    let mut host = Host::new();
    let calls = origin(&mut host, |request, n| {
        let cache_control = if request.path().contains("strict") {
            "max-age=1, stale-while-revalidate=5, must-revalidate"
        } else {
            "max-age=1, stale-while-revalidate=5"
        };
        Reply::ok(format!("version {n}")).header("cache-control", cache_control)
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/hot/window"));
    host.request(vm, Request::get("/hot/strict"));
    host.advance(Duration::from_secs(10));
    assert_eq!(
        host.request(vm, Request::get("/hot/window")).body_text(),
        "version 3"
    );
    host.advance(Duration::from_secs(2));
    assert_eq!(
        host.request(vm, Request::get("/hot/strict")).body_text(),
        "version 4"
    );
    assert_eq!(calls.get(), 4);
}

fn stale_if_error_case(failure: Reply) -> (Response, Host) {
    let mut host = Host::new();
    let failing = Rc::new(Cell::new(false));
    let fail = Rc::clone(&failing);
    host.origin(move |_| {
        if fail.get() {
            return failure.clone();
        }
        Reply::ok("good version")
            .header("cache-control", "max-age=1, stale-if-error=60")
            .header("etag", "\"v1\"")
    });
    host.set_route_timeout(Duration::from_secs(2));
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/hot/sie"));
    host.advance(Duration::from_secs(5));
    failing.set(true);
    let response = host.request(vm, Request::get("/hot/sie"));
    (response, host)
}

#[test]
fn stale_if_error_stands_in_for_every_failure_kind() {
    for (name, failure) in [
        ("500", Reply::status(500)),
        ("503", Reply::status(503).body("down")),
        ("reset", Reply::reset()),
        ("timeout", Reply::timeout()),
    ] {
        let (response, host) = stale_if_error_case(failure);
        assert_eq!(response.status, 200, "{name}");
        assert_eq!(response.body_text(), "good version", "{name}");
        let status = status_of(&response);
        assert!(
            status.contains("fwd=stale") && status.contains("detail=stale-if-error"),
            "{name}: {status}"
        );
        assert_eq!(response.header("warning"), None);
        assert_eq!(metric(&host, "edge.cache.stale_if_error"), 1, "{name}");
    }
}

#[test]
fn stale_if_error_is_not_used_with_must_revalidate_or_past_its_window() {
    let mut host = Host::new();
    let failing = Rc::new(Cell::new(false));
    let fail = Rc::clone(&failing);
    host.origin(move |request| {
        if fail.get() {
            return Reply::status(503).body("origin down");
        }
        let cache_control = if request.path().contains("strict") {
            "max-age=1, stale-if-error=60, must-revalidate"
        } else {
            "max-age=1, stale-if-error=10"
        };
        Reply::ok("good")
            .header("cache-control", cache_control)
            .header("etag", "\"v\"")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/hot/strict"));
    host.request(vm, Request::get("/hot/short"));
    host.advance(Duration::from_secs(5));
    failing.set(true);
    let strict = host.request(vm, Request::get("/hot/strict"));
    assert_eq!(
        (strict.status, strict.body_text().as_str()),
        (503, "origin down")
    );
    host.advance(Duration::from_secs(10));
    let late = host.request(vm, Request::get("/hot/short"));
    assert_eq!(late.status, 503, "11 s stale is past a 10 s window");
}

#[test]
fn refresh_ahead_keeps_a_hot_key_fresh_across_expiry() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| {
        Reply::ok(format!("version {n}"))
            .header("cache-control", "public, max-age=10")
            .header("etag", &format!("\"v{n}\""))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/ahead/k"));
    // A hot key: hit every second for 35 s (three lifetimes).
    let mut misses = 0;
    for _ in 0..35 {
        host.advance(Duration::from_secs(1));
        let response = host.request(vm, Request::get("/ahead/k"));
        if !status_of(&response).contains("hit") || status_of(&response).contains("stale") {
            misses += 1;
        }
    }
    assert_eq!(misses, 0, "refreshed before it expired every time");
    assert!(
        calls.get() >= 4,
        "refreshed about once per lifetime: {}",
        calls.get()
    );
    assert!(calls.get() <= 6, "not on every hit: {}", calls.get());
}

const TOKEN: &str = "warm-admin-token-0123456789";

fn warm_host() -> (Host, proxy_wasm_host::VmId, Rc<Cell<u32>>) {
    let mut host = Host::new();
    let calls = origin(&mut host, |request, n| match request.path().as_str() {
        "/hot/private" => Reply::ok("p").header("cache-control", "no-store"),
        "/hot/broken" => Reply::status(503),
        path => Reply::ok(format!("{path} #{n}"))
            .header("cache-control", "public, max-age=60")
            .delay_ms(30),
    });
    let config = CONFIG.replace(
        r#""limits""#,
        &format!(r#""admin": {{"token": "{TOKEN}"}}, "limits""#),
    );
    let vm = host.start_vm(&config).unwrap();
    (host, vm, calls)
}

fn warm(host: &mut Host, vm: proxy_wasm_host::VmId, body: &str, token: &str) -> Response {
    host.request(
        vm,
        Request::post("/api/v1/performance/cache/warm", body.as_bytes().to_vec())
            .header("x-edge-admin-token", token)
            .header("content-type", "application/json"),
    )
}

#[test]
fn warming_fetches_at_bounded_concurrency_and_stores() {
    let (mut host, vm, calls) = warm_host();
    let paths: Vec<String> = (0..20).map(|i| format!("\"/hot/w{i}\"")).collect();
    let body = format!(
        r#"{{"paths": [{}, "/hot/private", "/hot/broken"]}}"#,
        paths.join(",")
    );
    let start = host.now_ns();
    let response = warm(&mut host, vm, &body, TOKEN);
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(
        response.body_text(),
        r#"{"failed":1,"skipped":1,"stored":20}"#
    );
    // 22 fetches of 30 ms, 8 at a time: 3 rounds.
    assert_eq!(host.now_ns() - start, 90_000_000);
    assert_eq!(calls.get(), 22);
    assert!(host
        .origin_calls()
        .iter()
        .all(|c| c.cluster.as_deref() == Some("origin")));
    let hit = host.request(vm, Request::get("/hot/w7"));
    assert!(status_of(&hit).contains("hit"));
    assert_eq!(calls.get(), 22);
}

#[test]
fn bad_warm_requests_fetch_nothing() {
    let (mut host, vm, calls) = warm_host();
    for (body, token, status) in [
        (r#"{"paths": ["/hot/a"]}"#, "wrong-token-wrong-token", 403),
        ("not json", TOKEN, 400),
        (r#"{"paths": ["hot/a"]}"#, TOKEN, 400),
        (r#"{"paths": ["/hot/a", "/elsewhere"]}"#, TOKEN, 400),
        (r#"{"paths": []}"#, TOKEN, 400),
    ] {
        let response = warm(&mut host, vm, body, token);
        assert_eq!(response.status, status, "{body}: {}", response.body_text());
    }
    let many: Vec<String> = (0..101).map(|i| format!("\"/hot/{i}\"")).collect();
    let response = warm(
        &mut host,
        vm,
        &format!(r#"{{"paths": [{}]}}"#, many.join(",")),
        TOKEN,
    );
    assert_eq!(response.status, 400);
    assert_eq!(calls.get(), 0);
}

#[test]
fn local_waiters_stop_waiting_for_a_slow_leader() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| {
        if n == 1 {
            cacheable(n).delay_ms(12_000)
        } else {
            cacheable(n)
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let _leader = host.send(vm, Request::get("/hot/slow"));
    let waiter = host.send(vm, Request::get("/hot/slow"));
    host.advance(Duration::from_millis(9_900));
    assert!(
        host.response(waiter).is_none(),
        "still waiting within twice the lease"
    );
    host.advance(Duration::from_millis(200));
    let response = host
        .response(waiter)
        .expect("released after twice the lease time");
    assert_eq!(response.body_text(), "version 2");
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_waiter_asking_for_revalidation_is_not_served_a_collapsed_copy() {
    let mut host = Host::new();
    let calls = origin(&mut host, |_, n| cacheable(n).delay_ms(100));
    let vm = host.start_vm(CONFIG).unwrap();
    let leader = host.send(vm, Request::get("/hot/nc"));
    let strict = host.send(
        vm,
        Request::get("/hot/nc").header("cache-control", "max-age=0"),
    );
    host.advance(Duration::from_millis(250));
    assert_eq!(host.response(leader).unwrap().body_text(), "version 1");
    let strict = host.response(strict).expect("answered");
    assert!(
        !status_of(&strict).contains("collapsed"),
        "{}",
        status_of(&strict)
    );
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_response_fetched_across_a_purge_is_not_stored() {
    let mut host = Host::new();
    origin(&mut host, |_, n| {
        cacheable(n).header("cache-tag", "product-7").delay_ms(100)
    });
    let config = CONFIG.replace(
        r#""limits""#,
        &format!(r#""admin": {{"token": "{TOKEN}"}}, "limits""#),
    );
    let vm = host.start_vm(&config).unwrap();
    let in_flight = host.send(vm, Request::get("/hot/tagged"));
    let purge = Request::post(
        "/api/v1/performance/cache/purge",
        br#"{"tag": "product-7"}"#.to_vec(),
    )
    .header("x-edge-admin-token", TOKEN)
    .header("content-type", "application/json");
    assert_eq!(host.request(vm, purge).status, 200);
    host.advance(Duration::from_millis(150));
    assert_eq!(host.response(in_flight).unwrap().body_text(), "version 1");
    let next = host.request(vm, Request::get("/hot/tagged"));
    assert_eq!(
        next.body_text(),
        "version 2",
        "the pre-purge response was not kept"
    );
}

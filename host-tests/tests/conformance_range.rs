//! Range requests (RFC 9110 §14) answered by the cache: `206` with `Content-Range` from a
//! stored complete `200`, `416` when unsatisfiable, the whole representation when the range
//! is ignored (several ranges, another unit, garbage, a non-matching `If-Range`, HEAD), on
//! every path an entry answers from (hit, coalesced waiter, revalidation, open breaker).

use std::time::Duration;

use edge_filter::policy::cache::http_date::format_http_date;
use proxy_wasm_host::test_support::{cache_status, counting_origin};
use proxy_wasm_host::{Host, Reply, Request, Response, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "files", "match": {"path_prefix": "/files/"}, "cache": {"lease_ms": 5000}},
        {"name": "guarded", "match": {"path_prefix": "/guarded/"}, "cache": {},
         "breaker": {"min_requests": 5, "open_base_ms": 5000, "jitter_percent": 0}},
        {"name": "uncached", "match": {"path_prefix": "/uncached/"}}
    ],
    "limits": {"l2_slots": 64, "lease_slots": 32, "max_entry_bytes": 65536}
}"#;

/// The host clock's start (Unix seconds).
const START_S: u64 = 1_800_000_000;
/// The origin's `Last-Modified`: well before its `Date`, so a strong validator.
const LAST_MODIFIED_S: u64 = START_S - 1000;

/// A body of `len` bytes: `0123456789` repeated.
fn body_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'0' + (i % 10) as u8).collect()
}

/// The body length a path asks for: `/files/<len>...`.
fn length_in(path: &str) -> usize {
    path.split('/')
        .nth(2)
        .and_then(|segment| {
            let digits: String = segment.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        })
        .unwrap_or(10)
}

/// A 200 of `len` bytes, with `cache_control`.
fn file(len: usize, cache_control: &str) -> Reply {
    Reply::ok(body_of(len))
        .header("content-type", "application/octet-stream")
        .header("cache-control", cache_control)
}

/// An origin answering every path with a cacheable 200 whose body length the path names.
fn setup() -> (Host, VmId, std::rc::Rc<std::cell::Cell<u32>>) {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, _| {
        file(length_in(&request.path()), "public, max-age=60")
            .header("etag", "\"v1\"")
            .header("date", &format_http_date(START_S))
            .header("last-modified", &format_http_date(LAST_MODIFIED_S))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    (host, vm, calls)
}

fn ranged(path: &str, range: &str) -> Request {
    Request::get(path).header("range", range)
}

/// Asserts a `206` with `bytes` of `len` bytes.
fn assert_part(response: &Response, first: usize, last: usize, len: usize) {
    assert_eq!(
        response.status,
        206,
        "{:?}",
        response.header("content-range")
    );
    assert_eq!(
        response.header("content-range").as_deref(),
        Some(format!("bytes {first}-{last}/{len}").as_str())
    );
    assert_eq!(response.body, body_of(len)[first..=last].to_vec());
    assert_eq!(
        response.header("content-length").as_deref(),
        Some((last - first + 1).to_string().as_str())
    );
    assert_eq!(response.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/octet-stream"),
        "a 206 carries the representation's headers"
    );
    assert!(
        cache_status(response).contains("hit"),
        "{}",
        cache_status(response)
    );
}

fn assert_unsatisfiable(response: &Response, len: usize) {
    assert_eq!(response.status, 416);
    assert_eq!(
        response.header("content-range").as_deref(),
        Some(format!("bytes */{len}").as_str())
    );
    assert!(response.body.is_empty());
}

fn assert_whole(response: &Response, len: usize) {
    assert_eq!(response.status, 200);
    assert_eq!(response.body, body_of(len));
    assert_eq!(response.header("content-range"), None);
}

#[test]
fn a_range_hit_is_a_206_with_its_bytes_for_bodies_of_every_size() {
    let (mut host, vm, calls) = setup();
    for len in [10usize, 1, 2, 3000] {
        let path = format!("/files/{len}");
        assert_whole(&host.request(vm, Request::get(&path)), len);
        let last = len - 1;
        assert_part(&host.request(vm, ranged(&path, "bytes=0-0")), 0, 0, len);
        assert_part(&host.request(vm, ranged(&path, "bytes=0-")), 0, last, len);
        assert_part(
            &host.request(vm, ranged(&path, "bytes=-1")),
            last,
            last,
            len,
        );
        assert_part(
            &host.request(vm, ranged(&path, "bytes=-99999")),
            0,
            last,
            len,
        );
        assert_part(
            &host.request(
                vm,
                ranged(&path, &format!("bytes={last}-99999999999999999999999")),
            ),
            last,
            last,
            len,
        );
        if len > 5 {
            assert_part(&host.request(vm, ranged(&path, "bytes=2-4")), 2, 4, len);
            assert_part(
                &host.request(vm, ranged(&path, "bytes=-3")),
                len - 3,
                last,
                len,
            );
            assert_part(&host.request(vm, ranged(&path, "bytes=5-")), 5, last, len);
        }
        assert_unsatisfiable(
            &host.request(vm, ranged(&path, &format!("bytes={len}-"))),
            len,
        );
        assert_unsatisfiable(&host.request(vm, ranged(&path, "bytes=-0")), len);
    }
    assert_eq!(calls.get(), 4, "every range came from the stored entries");
}

#[test]
fn an_empty_body_satisfies_only_a_suffix_range_and_answers_it_whole() {
    let (mut host, vm, calls) = setup();
    assert_whole(&host.request(vm, Request::get("/files/0")), 0);
    assert_unsatisfiable(&host.request(vm, ranged("/files/0", "bytes=0-")), 0);
    assert_unsatisfiable(&host.request(vm, ranged("/files/0", "bytes=0-0")), 0);
    let suffix = host.request(vm, ranged("/files/0", "bytes=-5"));
    assert_whole(&suffix, 0);
    assert_eq!(suffix.header("accept-ranges").as_deref(), Some("bytes"));
    assert_eq!(calls.get(), 1);
}

#[test]
fn a_plain_hit_says_it_accepts_byte_ranges() {
    let (mut host, vm, _) = setup();
    host.request(vm, Request::get("/files/10"));
    let hit = host.request(vm, Request::get("/files/10"));
    assert!(cache_status(&hit).contains("hit"));
    assert_eq!(hit.header("accept-ranges").as_deref(), Some("bytes"));
}

#[test]
fn several_ranges_other_units_and_malformed_ranges_get_the_whole_representation() {
    let (mut host, vm, calls) = setup();
    host.request(vm, Request::get("/files/10"));
    for range in [
        "bytes=0-1,4-5",
        "bytes=0-1, -2",
        "items=0-1",
        "bytes=5-2",
        "bytes=x-y",
        "bytes=",
        "0-4",
    ] {
        let response = host.request(vm, ranged("/files/10", range));
        assert_whole(&response, 10);
        assert!(cache_status(&response).contains("hit"), "{range}");
    }
    let two_lines = Request::get("/files/10")
        .add_header("range", "bytes=0-1")
        .add_header("range", "bytes=4-5");
    assert_whole(&host.request(vm, two_lines), 10);
    assert_eq!(calls.get(), 1);
}

#[test]
fn if_range_needs_the_stored_strong_validator() {
    let (mut host, vm, _) = setup();
    host.request(vm, Request::get("/files/10"));
    let with = |if_range: &str| ranged("/files/10", "bytes=1-2").header("if-range", if_range);
    assert_part(&host.request(vm, with("\"v1\"")), 1, 2, 10);
    assert_part(
        &host.request(vm, with(&format_http_date(LAST_MODIFIED_S))),
        1,
        2,
        10,
    );
    for other in [
        "\"v2\"".to_string(),
        "W/\"v1\"".to_string(),
        format_http_date(LAST_MODIFIED_S + 1),
        "yesterday".to_string(),
    ] {
        assert_whole(&host.request(vm, with(&other)), 10);
    }
}

#[test]
fn a_weak_stored_etag_never_matches_if_range() {
    let mut host = Host::new();
    counting_origin(&mut host, |_, _| {
        file(10, "max-age=60").header("etag", "W/\"v1\"")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/files/10"));
    let response = host.request(
        vm,
        ranged("/files/10", "bytes=1-2").header("if-range", "W/\"v1\""),
    );
    assert_whole(&response, 10);
    assert_part(
        &host.request(vm, ranged("/files/10", "bytes=1-2")),
        1,
        2,
        10,
    );
}

#[test]
fn if_none_match_wins_over_range() {
    let (mut host, vm, _) = setup();
    host.request(vm, Request::get("/files/10"));
    let response = host.request(
        vm,
        ranged("/files/10", "bytes=0-1").header("if-none-match", "\"v1\""),
    );
    assert_eq!(response.status, 304);
    assert!(response.body.is_empty());
    assert_eq!(response.header("content-range"), None);
    let unsatisfiable = host.request(
        vm,
        ranged("/files/10", "bytes=50-").header("if-none-match", "\"v1\""),
    );
    assert_eq!(unsatisfiable.status, 304);
}

#[test]
fn head_ignores_range_and_answers_headers_only() {
    let (mut host, vm, _) = setup();
    host.request(vm, Request::get("/files/10"));
    let head = host.request(
        vm,
        Request::new("HEAD", "/files/10").header("range", "bytes=0-1"),
    );
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-range"), None);
    assert_eq!(head.header("accept-ranges").as_deref(), Some("bytes"));
}

#[test]
fn a_range_from_another_workers_entry_in_l2() {
    let mut host = Host::new();
    counting_origin(&mut host, |request, _| {
        file(length_in(&request.path()), "max-age=60")
    });
    let workers = host.start_vms(2, CONFIG);
    host.request(workers[0], Request::get("/files/3000"));
    let from_l2 = host.request(workers[1], ranged("/files/3000", "bytes=2990-"));
    assert_part(&from_l2, 2990, 2999, 3000);
}

#[test]
fn coalesced_waiters_get_their_own_ranges() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |_, _| file(10, "max-age=60").delay_ms(100));
    let vm = host.start_vm(CONFIG).unwrap();
    let leader = host.send(vm, Request::get("/files/10"));
    let first = host.send(vm, ranged("/files/10", "bytes=0-1"));
    let suffix = host.send(vm, ranged("/files/10", "bytes=-4"));
    let beyond = host.send(vm, ranged("/files/10", "bytes=10-"));
    let whole = host.send(vm, Request::get("/files/10"));
    host.advance(Duration::from_millis(100));
    assert_eq!(calls.get(), 1);
    assert_whole(&host.response(leader).expect("answered"), 10);
    let collapsed = |stream| {
        let response = host.response(stream).expect("answered");
        assert!(cache_status(&response).contains("collapsed"));
        response
    };
    assert_part(&collapsed(first), 0, 1, 10);
    assert_part(&collapsed(suffix), 6, 9, 10);
    assert_unsatisfiable(&collapsed(beyond), 10);
    assert_whole(&collapsed(whole), 10);
}

#[test]
fn a_revalidated_entry_answers_the_range_and_the_origin_is_asked_for_the_whole() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, n| {
        if n > 1 && request.header("if-none-match").as_deref() == Some("\"v1\"") {
            return Reply::status(304).header("cache-control", "max-age=60");
        }
        file(10, "max-age=1").header("etag", "\"v1\"")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/files/10"));
    host.advance(Duration::from_secs(3));
    let response = host.request(
        vm,
        ranged("/files/10", "bytes=3-5").header("if-range", "\"v1\""),
    );
    assert_eq!(calls.get(), 2);
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range").as_deref(),
        Some("bytes 3-5/10")
    );
    assert_eq!(response.body, b"345");
    assert!(cache_status(&response).contains("fwd=stale"));
    let revalidation = host.origin_calls().pop().expect("revalidation");
    assert_eq!(
        revalidation.header("if-none-match").as_deref(),
        Some("\"v1\"")
    );
    assert_eq!(
        revalidation.header("range"),
        None,
        "the stored entry is whole"
    );
    assert_eq!(revalidation.header("if-range"), None);
}

#[test]
fn an_open_breaker_answers_a_range_from_the_stored_entry() {
    let mut host = Host::new();
    let down = std::rc::Rc::new(std::cell::Cell::new(false));
    let is_down = std::rc::Rc::clone(&down);
    host.origin(move |_| {
        if is_down.get() {
            Reply::status(503).body("origin down")
        } else {
            file(10, "max-age=1")
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/guarded/10"));
    host.advance(Duration::from_secs(2));
    down.set(true);
    for i in 0..5 {
        host.request(vm, Request::get(&format!("/guarded/other{i}")));
    }
    host.advance(Duration::from_millis(25));
    let response = host.request(vm, ranged("/guarded/10", "bytes=8-"));
    assert!(
        cache_status(&response).contains("detail=circuit-open"),
        "{}",
        cache_status(&response)
    );
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range").as_deref(),
        Some("bytes 8-9/10")
    );
    assert_eq!(response.body, b"89");
}

/// An origin that answers `/files/<len>` in chunks of `chunk` bytes, with `Content-Length`
/// when `with_length` (else like a chunked HTTP/1.1 response, without it).
fn streaming_origin(
    chunk: usize,
    with_length: bool,
) -> (Host, VmId, std::rc::Rc<std::cell::Cell<u32>>) {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, move |request, _| {
        let len = length_in(&request.path());
        let reply = file(len, "public, max-age=60")
            .header("etag", "\"v1\"")
            .chunked(chunk);
        if with_length {
            reply.header("content-length", &len.to_string())
        } else {
            reply
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    (host, vm, calls)
}

/// Asserts a `206` cut from the origin's response (not a hit).
fn assert_fetched_part(response: &Response, first: usize, last: usize, len: usize) {
    assert_eq!(response.status, 206, "{}", cache_status(response));
    assert_eq!(
        response.header("content-range").as_deref(),
        Some(format!("bytes {first}-{last}/{len}").as_str())
    );
    assert_eq!(response.body, body_of(len)[first..=last].to_vec());
    assert_eq!(
        response.header("content-length").as_deref(),
        Some((last - first + 1).to_string().as_str())
    );
    assert!(
        cache_status(response).contains("fwd=uri-miss; stored"),
        "{}",
        cache_status(response)
    );
}

#[test]
fn a_range_miss_fetches_the_whole_representation_stores_it_and_answers_the_range() {
    for chunk in [1usize, 3, 4096] {
        let (mut host, vm, calls) = streaming_origin(chunk, true);
        for (len, range, (first, last)) in [
            (10usize, "bytes=2-4", (2usize, 4usize)),
            (1, "bytes=0-", (0, 0)),
            (3000, "bytes=-7", (2993, 2999)),
            (20, "bytes=5-1000", (5, 19)),
        ] {
            let path = format!("/files/{len}");
            let miss = host.request(vm, ranged(&path, range).header("if-range", "\"v1\""));
            assert_fetched_part(&miss, first, last, len);
            let asked = host.origin_calls().pop().expect("the origin was asked");
            assert_eq!(asked.header("range"), None, "the whole representation");
            assert_eq!(asked.header("if-range"), None);
            // Stored whole: another range and the whole body are hits.
            assert_part(&host.request(vm, ranged(&path, "bytes=0-0")), 0, 0, len);
            assert_whole(&host.request(vm, Request::get(&path)), len);
        }
        assert_eq!(calls.get(), 4, "chunks of {chunk}");
    }
}

#[test]
fn an_unsatisfiable_range_miss_is_a_416_and_the_whole_is_stored() {
    let (mut host, vm, calls) = streaming_origin(4, true);
    for len in [10usize, 0] {
        let path = format!("/files/{len}");
        let miss = host.request(vm, ranged(&path, &format!("bytes={len}-")));
        assert_unsatisfiable(&miss, len);
        assert_eq!(miss.header("content-type"), None);
        assert_whole(&host.request(vm, Request::get(&path)), len);
    }
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_range_miss_without_a_length_gets_the_whole_200() {
    let (mut host, vm, calls) = streaming_origin(4, false);
    let miss = host.request(vm, ranged("/files/10", "bytes=2-4"));
    assert_whole(&miss, 10);
    assert_eq!(host.origin_calls().pop().unwrap().header("range"), None);
    assert_part(
        &host.request(vm, ranged("/files/10", "bytes=2-4")),
        2,
        4,
        10,
    );
    assert_eq!(calls.get(), 1);
}

#[test]
fn a_non_matching_if_range_on_a_miss_gets_the_whole_200() {
    let (mut host, vm, _) = streaming_origin(4, true);
    let miss = host.request(
        vm,
        ranged("/files/10", "bytes=2-4").header("if-range", "\"v0\""),
    );
    assert_whole(&miss, 10);
}

#[test]
fn several_ranges_on_a_miss_fetch_and_answer_the_whole() {
    let (mut host, vm, calls) = streaming_origin(4, true);
    let miss = host.request(vm, ranged("/files/10", "bytes=0-1,5-6"));
    assert_whole(&miss, 10);
    assert_eq!(host.origin_calls().pop().unwrap().header("range"), None);
    assert_part(
        &host.request(vm, ranged("/files/10", "bytes=5-6")),
        5,
        6,
        10,
    );
    assert_eq!(calls.get(), 1);
}

#[test]
fn ranges_the_cache_does_not_take_pass_to_the_origin_untouched() {
    let mut host = Host::new();
    counting_origin(&mut host, |request, _| {
        match request.header("range").as_deref() {
            Some("bytes=0-1") | Some("items=0-1") => Reply::status(206)
                .header("content-range", "bytes 0-1/10")
                .body("01"),
            _ => file(10, "max-age=60"),
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let uncached = host.request(vm, ranged("/uncached/10", "bytes=0-1"));
    assert_eq!(uncached.status, 206, "a service without a cache");
    assert_eq!(
        host.origin_calls()
            .pop()
            .unwrap()
            .header("range")
            .as_deref(),
        Some("bytes=0-1")
    );
    let other_unit = host.request(vm, ranged("/files/10", "items=0-1"));
    assert_eq!(
        other_unit.status, 206,
        "another unit is the origin's to answer"
    );
    assert_eq!(
        host.origin_calls()
            .pop()
            .unwrap()
            .header("range")
            .as_deref(),
        Some("items=0-1")
    );
    let head = host.request(
        vm,
        Request::new("HEAD", "/files/10").header("range", "bytes=0-1"),
    );
    assert_eq!(
        host.origin_calls()
            .pop()
            .unwrap()
            .header("range")
            .as_deref(),
        Some("bytes=0-1"),
        "HEAD responses are not stored: its Range is left alone ({})",
        head.status
    );
}

#[test]
fn a_range_leader_and_its_waiters_each_get_their_range() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |_, _| {
        file(10, "max-age=60")
            .header("content-length", "10")
            .chunked(3)
            .delay_ms(100)
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let leader = host.send(vm, ranged("/files/10", "bytes=1-3"));
    let waiter = host.send(vm, ranged("/files/10", "bytes=7-"));
    let whole = host.send(vm, Request::get("/files/10"));
    host.advance(Duration::from_millis(100));
    assert_eq!(calls.get(), 1);
    assert_fetched_part(&host.response(leader).expect("answered"), 1, 3, 10);
    assert_part(&host.response(waiter).expect("answered"), 7, 9, 10);
    assert_whole(&host.response(whole).expect("answered"), 10);
}

/// An origin whose first answer is a cacheable `206` holding `bytes 2-6/10` (whatever was
/// asked, like a scripted test server), and the whole `200` after that.
fn partial_origin() -> (Host, VmId, std::rc::Rc<std::cell::Cell<u32>>) {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |_, n| {
        if n == 1 {
            Reply::status(206)
                .header("content-type", "application/octet-stream")
                .header("cache-control", "max-age=60")
                .header("etag", "\"v1\"")
                .header("content-range", "bytes 2-6/10")
                .body(&body_of(10)[2..=6])
        } else {
            file(10, "max-age=60").header("etag", "\"v1\"")
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    (host, vm, calls)
}

#[test]
fn a_206_from_the_origin_is_stored_and_answers_the_ranges_it_holds() {
    let (mut host, vm, calls) = partial_origin();
    let first = host.request(vm, ranged("/files/10", "bytes=2-6"));
    assert_eq!(first.status, 206);
    assert_eq!(first.body, b"23456");
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    let same = host.request(vm, ranged("/files/10", "bytes=2-6"));
    assert_part(&same, 2, 6, 10);
    let inside = host.request(
        vm,
        ranged("/files/10", "bytes=3-4").header("if-range", "\"v1\""),
    );
    assert_part(&inside, 3, 4, 10);
    assert_unsatisfiable(&host.request(vm, ranged("/files/10", "bytes=10-")), 10);
    assert_eq!(
        calls.get(),
        1,
        "every range inside 2-6 came from the partial entry"
    );
    // A range it does not hold goes to the origin; the whole 200 replaces the partial entry.
    let outside = host.request(vm, ranged("/files/10", "bytes=7-"));
    assert_eq!(calls.get(), 2);
    assert_eq!(outside.status, 206);
    assert_eq!(outside.body, b"789");
    assert_whole(&host.request(vm, Request::get("/files/10")), 10);
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_partial_entry_never_answers_a_request_for_the_whole() {
    let (mut host, vm, calls) = partial_origin();
    host.request(vm, ranged("/files/10", "bytes=2-6"));
    let whole = host.request(vm, Request::get("/files/10"));
    assert_eq!(calls.get(), 2);
    assert_whole(&whole, 10);
    assert!(!cache_status(&whole).contains("hit"));
    let head = host.request(vm, Request::new("HEAD", "/files/10"));
    assert_eq!(head.status, 200);
}

#[test]
fn a_206_without_one_byte_range_is_not_stored() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |_, _| {
        Reply::status(206)
            .header("cache-control", "max-age=60")
            .header("content-type", "multipart/byteranges; boundary=x")
            .body("--x--")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, ranged("/files/10", "bytes=0-1,4-5"));
    host.request(vm, ranged("/files/10", "bytes=0-1,4-5"));
    assert_eq!(calls.get(), 2);
}

#[test]
fn waiters_a_partial_entry_does_not_cover_go_to_the_origin() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |_, n| {
        let reply = if n == 1 {
            Reply::status(206)
                .header("cache-control", "max-age=60")
                .header("content-range", "bytes 2-6/10")
                .body(&body_of(10)[2..=6])
        } else {
            file(10, "max-age=60")
        };
        reply.delay_ms(100)
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let leader = host.send(vm, ranged("/files/10", "bytes=2-6"));
    let covered = host.send(vm, ranged("/files/10", "bytes=3-3"));
    let whole = host.send(vm, Request::get("/files/10"));
    host.advance(Duration::from_millis(100));
    host.advance(Duration::from_millis(100));
    assert_eq!(host.response(leader).expect("answered").body, b"23456");
    let covered = host.response(covered).expect("answered");
    assert_eq!((covered.status, covered.body.as_slice()), (206, &b"3"[..]));
    assert!(cache_status(&covered).contains("collapsed"));
    assert_whole(&host.response(whole).expect("answered"), 10);
    assert_eq!(
        calls.get(),
        2,
        "the whole request went to the origin itself"
    );
}

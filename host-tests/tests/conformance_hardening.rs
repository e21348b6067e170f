//! Codings, ranges and Vary variants under what production does to them: clients that hang up
//! at each callback, identical requests at once on fresh connections, repeated and over-long
//! headers, and a clock that jumps past an entry's freshness.

use std::io::Read;
use std::time::Duration;

use proxy_wasm_host::test_support::{cache_status, counting_origin};
use proxy_wasm_host::{Host, Reply, Request, Response, VmId};

const CONFIG: &str = r#"{
    "services": [{"name": "api", "match": {"path_prefix": "/api/"}, "cache": {}}],
    "limits": {"l2_slots": 64, "lease_slots": 32}
}"#;

fn json(len: usize) -> Vec<u8> {
    let row = br#"{"id":3,"coach":"Sam","status":"done","notes":"bring the weekly report"},"#;
    row.iter().cycle().take(len).copied().collect()
}

/// An origin answering 4,000 bytes of JSON after 50 ms, varying on `Accept-Language`
/// for `/api/lang/...`, counting its calls.
fn setup() -> (Host, VmId, std::rc::Rc<std::cell::Cell<u32>>) {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, _| {
        let reply = Reply::ok(json(4000))
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60")
            .header("etag", "\"v1\"")
            .delay_ms(50);
        if request.path().starts_with("/api/lang/") {
            reply.header("vary", "Accept-Language")
        } else {
            reply
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    (host, vm, calls)
}

fn decoded(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match response.header("content-encoding").as_deref() {
        Some("gzip") => {
            flate2::read::GzDecoder::new(&response.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => brotli::BrotliDecompress(&mut &response.body[..], &mut out).unwrap(),
        None => out = response.body.clone(),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// A request, and the bytes of the representation a complete answer to it decodes to.
type Case = (fn() -> Request, std::ops::Range<usize>);

fn gzip(path: &str) -> Request {
    Request::get(path).header("accept-encoding", "gzip")
}

#[test]
fn hang_ups_at_every_callback_leave_codings_ranges_and_variants_whole() {
    // Each request, and the bytes a complete answer to it decodes to.
    let requests: [Case; 4] = [
        (|| gzip("/api/a"), 0..4000),
        (
            || Request::get("/api/b").header("range", "bytes=10-19"),
            10..20,
        ),
        (
            || Request::get("/api/lang/c").header("accept-language", "de"),
            0..4000,
        ),
        (|| gzip("/api/b").header("range", "bytes=0-0"), 0..1),
    ];
    for callbacks in 0..8 {
        let (mut host, vm, _) = setup();
        for (request, bytes) in requests.clone() {
            // A first request hangs up part-way; the next identical one must be answered in full.
            let hung = host.send_hanging_up_after(vm, request(), callbacks);
            host.advance(Duration::from_millis(200));
            let _ = host.response(hung);
            let again = host.request(vm, request());
            assert!(
                matches!(again.status, 200 | 206),
                "after {callbacks}: {}",
                again.status
            );
            assert_eq!(
                decoded(&again),
                json(4000)[bytes].to_vec(),
                "after {callbacks}"
            );
        }
        host.advance(Duration::from_secs(1));
        assert!(
            host.open_streams(vm).is_empty(),
            "after {callbacks} callbacks"
        );
        let hit = host.request(vm, gzip("/api/a"));
        assert_eq!(decoded(&hit), json(4000));
    }
}

#[test]
fn identical_requests_at_once_on_fresh_connections_share_one_fetch() {
    for request in [
        || gzip("/api/same"),
        || Request::get("/api/same").header("range", "bytes=100-199"),
        || Request::get("/api/lang/same").header("accept-language", "fr"),
    ] {
        let (mut host, vm, calls) = setup();
        let streams: Vec<_> = (0..3).map(|_| host.send(vm, request())).collect();
        for stream in streams {
            let response = host.wait(stream);
            match response.status {
                206 => assert_eq!(response.body, json(4000)[100..200].to_vec()),
                200 => assert_eq!(decoded(&response), json(4000)),
                other => panic!("status {other}"),
            }
        }
        assert_eq!(calls.get(), 1, "three at once, one origin fetch");
    }
}

#[test]
fn repeated_and_over_long_headers_are_answered_safely() {
    let (mut host, vm, _) = setup();
    host.request(vm, Request::get("/api/h"));
    let long = format!("gzip;q=0.{}", "9".repeat(8000));
    let cases = [
        Request::get("/api/h").header("accept-encoding", &long),
        Request::get("/api/h")
            .add_header("accept-encoding", "br;q=0")
            .add_header("accept-encoding", "gzip"),
        Request::get("/api/h")
            .add_header("range", "bytes=0-1")
            .add_header("range", "bytes=5-6"),
        Request::get("/api/h").header("range", &format!("bytes={}-", "9".repeat(5000))),
        Request::get("/api/h").header("if-none-match", &"W/\"x\", ".repeat(2000)),
        Request::get("/api/h")
            .header("if-range", &"\"".repeat(3000))
            .header("range", "bytes=1-2"),
    ];
    for request in cases {
        let response = host.request(vm, request);
        assert!(
            matches!(response.status, 200 | 206 | 304 | 416),
            "{}: {}",
            response.status,
            cache_status(&response)
        );
        if response.status == 200 {
            assert_eq!(decoded(&response), json(4000));
        }
    }
    // Several Range lines are one list of several ranges: the whole representation.
    let two = host.request(
        vm,
        Request::get("/api/h")
            .add_header("range", "bytes=0-1")
            .add_header("range", "bytes=5-6"),
    );
    assert_eq!(two.status, 200);
}

#[test]
fn a_clock_that_jumps_past_freshness_refetches_and_encodes_again() {
    let (mut host, vm, calls) = setup();
    host.request(vm, Request::get("/api/t"));
    assert_eq!(decoded(&host.request(vm, gzip("/api/t"))), json(4000));
    // Two minutes at once (every 20 ms tick runs in between): twice the entry's max-age.
    host.advance(Duration::from_secs(120));
    let later = host.request(vm, gzip("/api/t"));
    assert_eq!(decoded(&later), json(4000));
    assert_eq!(calls.get(), 2, "the expired entry is refetched");
    let hit = host.request(vm, gzip("/api/t"));
    assert!(cache_status(&hit).contains("hit"));
    assert_eq!(hit.header("content-encoding").as_deref(), Some("gzip"));
}

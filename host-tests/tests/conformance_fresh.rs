//! HTTP caching conformance, freshness part (issue 14): strict parsing of `Age`, `Expires` and
//! repeated `Cache-Control` lines; storing any status with explicit freshness,
//! `must-understand`, `immutable`; `CDN-Cache-Control` and a configured targeted field;
//! stale windows, 304 updates, conditionals without `Last-Modified`, and a newer response
//! that may not be stored.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm_host::test_support::{cache_status, counting_origin};
use proxy_wasm_host::{Host, Reply, Request, Response, UpstreamRequest, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "api", "match": {"path_prefix": "/"}, "cache": {}}
    ],
    "limits": {"l2_slots": 64, "lease_slots": 32}
}"#;

/// A host whose origin answers with `respond(request, n)` for its `n`-th call; the call count.
fn setup(
    respond: impl Fn(&UpstreamRequest, u32) -> Reply + 'static,
) -> (Host, VmId, Rc<Cell<u32>>) {
    setup_with(CONFIG, respond)
}

fn setup_with(
    config: &str,
    respond: impl Fn(&UpstreamRequest, u32) -> Reply + 'static,
) -> (Host, VmId, Rc<Cell<u32>>) {
    let mut host = Host::new();
    let count = counting_origin(&mut host, respond);
    let vm = host.start_vm(config).unwrap();
    (host, vm, count)
}

fn get(host: &mut Host, vm: VmId, path: &str) -> Response {
    host.request(vm, Request::get(path))
}

fn hit(response: &Response) -> bool {
    cache_status(response).contains("; hit")
}

fn reply(n: u32) -> Reply {
    Reply::ok(format!("n={n}"))
}

// ---- 1. Parsing strictly ----------------------------------------------------------------

#[test]
fn an_invalid_age_makes_the_response_stale() {
    for age in ["old, 0", "abc", "-5", "1.5", ""] {
        let (mut host, vm, calls) = setup(move |_, n| {
            reply(n)
                .header("cache-control", "max-age=3600")
                .header("age", age)
        });
        get(&mut host, vm, "/a");
        let second = get(&mut host, vm, "/a");
        assert!(!hit(&second), "Age {age:?} served as fresh");
        assert_eq!(calls.get(), 2, "Age {age:?}");
    }
}

#[test]
fn age_uses_the_first_field_line_and_its_first_member() {
    let (mut host, vm, calls) = setup(|request, n| {
        let r = reply(n).header("cache-control", "max-age=3600");
        match request.path().as_str() {
            "/old-first" => r.header("age", "7200").header("age", "0"),
            "/young-first" => r.header("age", "10").header("age", "7200"),
            "/old-member-first" => r.header("age", "7200, 0"),
            _ => r.header("age", "10, 7200"),
        }
    });
    for (path, fresh) in [
        ("/old-first", false),
        ("/young-first", true),
        ("/old-member-first", false),
        ("/young-member-first", true),
    ] {
        get(&mut host, vm, path);
        let second = get(&mut host, vm, path);
        assert_eq!(hit(&second), fresh, "{path}: {}", cache_status(&second));
        if fresh {
            assert_eq!(second.header("age").as_deref(), Some("10"), "{path}");
        }
    }
    assert_eq!(calls.get(), 6);
}

#[test]
fn an_invalid_expires_means_already_expired() {
    for expires in ["0", "-1", "Thu, 18 Aug 2050 02:01:18 UTC", "soon"] {
        let (mut host, vm, calls) = setup(move |_, n| reply(n).header("expires", expires));
        get(&mut host, vm, "/e");
        let second = get(&mut host, vm, "/e");
        assert!(!hit(&second), "Expires {expires:?} served as fresh");
        assert_eq!(calls.get(), 2);
    }
}

#[test]
fn cache_control_field_lines_are_combined() {
    let (mut host, vm, calls) = setup(|_, n| {
        reply(n)
            .header("cache-control", "max-age=3600")
            .header("cache-control", "s-maxage=1")
    });
    get(&mut host, vm, "/cc");
    host.advance(Duration::from_secs(2));
    let second = get(&mut host, vm, "/cc");
    assert!(!hit(&second), "s-maxage=1 on its own line gives 1 s");
    assert_eq!(calls.get(), 2);
}

// ---- 2. Any status with explicit freshness; must-understand; immutable ------------------

#[test]
fn any_final_status_with_explicit_freshness_is_stored() {
    for status in [404, 410, 500, 502, 503, 504, 299, 303, 499, 599] {
        for freshness in [
            ("cache-control", "max-age=60"),
            ("cache-control", "s-maxage=60"),
        ] {
            let (mut host, vm, calls) = setup(move |_, n| {
                Reply::status(status)
                    .body(format!("{status} n={n}"))
                    .header(freshness.0, freshness.1)
            });
            let first = get(&mut host, vm, "/s");
            let second = get(&mut host, vm, "/s");
            assert_eq!(second.status, status);
            assert!(
                hit(&second),
                "{status} {freshness:?}: {}",
                cache_status(&second)
            );
            assert_eq!(second.body, first.body);
            assert_eq!(calls.get(), 1, "{status}");
        }
    }
    // Expires counts as explicit freshness too.
    let (mut host, vm, calls) = setup(|_, n| {
        Reply::status(500)
            .body(format!("n={n}"))
            .header("expires", "Thu, 01 Jan 2099 00:00:00 GMT")
    });
    get(&mut host, vm, "/x");
    assert!(hit(&get(&mut host, vm, "/x")));
    assert_eq!(calls.get(), 1);
}

#[test]
fn heuristic_freshness_stays_with_heuristically_cacheable_statuses() {
    let (mut host, vm, calls) = setup(|request, n| {
        let status = if request.path() == "/404" { 404 } else { 500 };
        Reply::status(status)
            .body(format!("n={n}"))
            .header("last-modified", "Thu, 01 Jan 2015 00:00:00 GMT")
    });
    get(&mut host, vm, "/404");
    assert!(
        hit(&get(&mut host, vm, "/404")),
        "404 is heuristically cacheable"
    );
    get(&mut host, vm, "/500");
    assert!(
        !hit(&get(&mut host, vm, "/500")),
        "a 500 needs explicit freshness"
    );
    assert_eq!(calls.get(), 3);
}

#[test]
fn errors_describing_the_request_are_never_stored() {
    // A client provoking one with unkeyed input must not poison the key for everyone.
    for status in [400, 411, 413, 417, 431] {
        let (mut host, vm, calls) = setup(move |_, n| {
            Reply::status(status)
                .body(format!("n={n}"))
                .header("cache-control", "public, max-age=60")
        });
        get(&mut host, vm, "/bad");
        assert!(!hit(&get(&mut host, vm, "/bad")), "{status}");
        assert_eq!(calls.get(), 2);
    }
}

#[test]
fn must_understand_stores_understood_statuses_despite_no_store() {
    let (mut host, vm, calls) = setup(|request, n| {
        let status = match request.path().as_str() {
            "/understood" => 200,
            "/gone" => 410,
            _ => 299,
        };
        Reply::status(status)
            .body(format!("n={n}"))
            .header("cache-control", "no-store, must-understand, max-age=60")
    });
    for (path, stored) in [("/understood", true), ("/gone", true), ("/unknown", false)] {
        get(&mut host, vm, path);
        let second = get(&mut host, vm, path);
        assert_eq!(hit(&second), stored, "{path}: {}", cache_status(&second));
    }
    assert_eq!(calls.get(), 4);
    // Without no-store, an unrecognised status with must-understand is not stored either.
    let (mut host, vm, calls) = setup(|_, n| {
        Reply::status(299)
            .body(format!("n={n}"))
            .header("cache-control", "must-understand, max-age=60")
    });
    get(&mut host, vm, "/u");
    assert!(!hit(&get(&mut host, vm, "/u")));
    assert_eq!(calls.get(), 2);
}

#[test]
fn fresh_immutable_entries_are_not_revalidated_on_reload() {
    let (mut host, vm, calls) = setup(|_, n| {
        reply(n)
            .header("cache-control", "max-age=3600, immutable")
            .header("etag", "\"i\"")
    });
    get(&mut host, vm, "/i");
    // A reload (max-age=0) or min-fresh gets the fresh immutable entry.
    for cc in ["max-age=0", "min-fresh=7200"] {
        let reload = host.request(vm, Request::get("/i").header("cache-control", cc));
        assert!(hit(&reload), "{cc}: {}", cache_status(&reload));
    }
    assert_eq!(calls.get(), 1);
    // A forced reload (no-cache, or Pragma: no-cache) still goes to the origin.
    let forced = host.request(vm, Request::get("/i").header("cache-control", "no-cache"));
    assert!(!hit(&forced));
    let forced = host.request(vm, Request::get("/i").header("pragma", "no-cache"));
    assert!(!hit(&forced));
    assert_eq!(calls.get(), 3);
    // Once stale, immutable changes nothing.
    host.advance(Duration::from_secs(3601));
    assert!(!hit(&get(&mut host, vm, "/i")));
}

// ---- 3. CDN-Cache-Control and the configured targeted field ----------------------------

/// `(path, headers)` the origin sends for that path, with the call number as body.
fn scripted(
    routes: &'static [(&'static str, &'static [(&'static str, &'static str)])],
) -> impl Fn(&UpstreamRequest, u32) -> Reply {
    move |request, n| {
        let path = request.path();
        let headers = routes
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(&[][..], |(_, h)| *h);
        headers
            .iter()
            .fold(reply(n), |r, (name, value)| r.header(name, value))
    }
}

/// Whether the second of two requests (after `pause`) was answered from the cache.
fn reused(host: &mut Host, vm: VmId, path: &str, pause: Duration) -> bool {
    get(host, vm, path);
    host.advance(pause);
    let second = get(host, vm, path);
    hit(&second)
}

#[test]
fn cdn_cache_control_is_obeyed_ahead_of_cache_control() {
    const ROUTES: &[(&str, &[(&str, &str)])] = &[
        ("/max-age", &[("cdn-cache-control", "max-age=3600")]),
        ("/huge", &[("cdn-cache-control", "max-age=99999999999")]),
        ("/ext", &[("cdn-cache-control", "foobar, max-age=3600")]),
        (
            "/over-no-store",
            &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        ),
        (
            "/over-short-cc",
            &[
                ("cache-control", "max-age=1"),
                ("cdn-cache-control", "max-age=3600"),
            ],
        ),
        (
            "/past-expires",
            &[
                ("cdn-cache-control", "max-age=3600"),
                ("expires", "Thu, 01 Jan 1998 00:00:00 GMT"),
            ],
        ),
        (
            "/bad-expires",
            &[("cdn-cache-control", "max-age=3600"), ("expires", "0")],
        ),
        (
            "/short",
            &[
                ("cache-control", "max-age=3600"),
                ("cdn-cache-control", "max-age=1"),
            ],
        ),
        (
            "/zero",
            &[
                ("cdn-cache-control", "max-age=0"),
                ("expires", "Thu, 01 Jan 2099 00:00:00 GMT"),
            ],
        ),
        (
            "/old",
            &[("cdn-cache-control", "max-age=3600"), ("age", "7200")],
        ),
        (
            "/no-store",
            &[
                ("cache-control", "max-age=10000"),
                ("cdn-cache-control", "no-store"),
            ],
        ),
        (
            "/private",
            &[
                ("cdn-cache-control", "private"),
                ("cache-control", "max-age=10000"),
            ],
        ),
        (
            "/no-cache",
            &[
                ("cdn-cache-control", "no-cache"),
                ("cache-control", "max-age=10000"),
            ],
        ),
        (
            "/must-revalidate",
            &[(
                "cdn-cache-control",
                "max-age=1, must-revalidate, stale-while-revalidate=60",
            )],
        ),
        // Invalid fields are ignored whole: Cache-Control decides.
        (
            "/invalid",
            &[
                ("cdn-cache-control", "max-age=10000, &&&&&"),
                ("cache-control", "no-store"),
            ],
        ),
        (
            "/wrong-type",
            &[
                ("cdn-cache-control", "max-age=\"10000\""),
                ("cache-control", "no-store"),
            ],
        ),
        (
            "/space",
            &[
                ("cache-control", "max-age=1"),
                ("cdn-cache-control", "max-age =100"),
            ],
        ),
    ];
    let (mut host, vm, _) = setup(scripted(ROUTES));
    let second = Duration::from_secs(2);
    for (path, expected) in [
        ("/max-age", true),
        ("/huge", true),
        ("/ext", true),
        ("/over-no-store", true),
        ("/over-short-cc", true),
        ("/past-expires", true),
        ("/bad-expires", true),
        ("/short", false),
        ("/zero", false),
        ("/old", false),
        ("/no-store", false),
        ("/private", false),
        ("/no-cache", false),
        ("/must-revalidate", false),
        ("/invalid", false),
        ("/wrong-type", false),
        ("/space", false),
    ] {
        assert_eq!(reused(&mut host, vm, path, second), expected, "{path}");
    }
    // The targeted field still reaches the client (RFC 9213 leaves it to the cache).
    let response = get(&mut host, vm, "/max-age");
    assert_eq!(
        response.header("cdn-cache-control").as_deref(),
        Some("max-age=3600")
    );
}

const TARGETED: &str = r#"{
    "services": [
        {"name": "api", "match": {"path_prefix": "/"},
         "cache": {"targeted_cache_control": "edge-cache-control"}}
    ],
    "limits": {"l2_slots": 64, "lease_slots": 32}
}"#;

#[test]
fn the_configured_targeted_field_comes_before_cdn_cache_control() {
    const ROUTES: &[(&str, &[(&str, &str)])] = &[
        (
            "/edge-long",
            &[
                ("edge-cache-control", "max-age=600"),
                ("cdn-cache-control", "max-age=1"),
                ("cache-control", "no-store"),
            ],
        ),
        (
            "/edge-no-store",
            &[
                ("edge-cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ],
        ),
        (
            "/edge-invalid",
            &[
                ("edge-cache-control", "max-age=-1"),
                ("cdn-cache-control", "max-age=600"),
            ],
        ),
        (
            "/cdn-only",
            &[
                ("cdn-cache-control", "max-age=600"),
                ("cache-control", "private"),
            ],
        ),
    ];
    let (mut host, vm, _) = setup_with(TARGETED, scripted(ROUTES));
    let pause = Duration::from_secs(2);
    for (path, expected) in [
        ("/edge-long", true),
        ("/edge-no-store", false),
        ("/edge-invalid", true),
        ("/cdn-only", true),
    ] {
        assert_eq!(reused(&mut host, vm, path, pause), expected, "{path}");
    }
    // Without the configuration, edge-cache-control is just another header.
    let (mut host, vm, _) = setup(scripted(ROUTES));
    assert!(!reused(&mut host, vm, "/edge-long", pause));
    assert!(reused(&mut host, vm, "/edge-no-store", pause));
}

// ---- 4. Stale windows, 304 updates, If-Modified-Since, newer unstorable responses ------

#[test]
fn stale_while_revalidate_ends_with_its_window() {
    let respond = |_: &UpstreamRequest, n: u32| {
        reply(n).header("cache-control", "max-age=10, stale-while-revalidate=5")
    };
    // Stale by 4 s: within the window, answered at once.
    let (mut host, vm, _) = setup(respond);
    get(&mut host, vm, "/w");
    host.advance(Duration::from_secs(14));
    let within = get(&mut host, vm, "/w");
    assert!(
        cache_status(&within).contains("stale-while-revalidate"),
        "{}",
        cache_status(&within)
    );
    assert_eq!(within.body_text(), "n=1");
    // Stale by 5 s: the window (5 s after it became stale) is over.
    let (mut host, vm, calls) = setup(respond);
    get(&mut host, vm, "/w");
    host.advance(Duration::from_secs(15));
    let past = get(&mut host, vm, "/w");
    assert!(
        !cache_status(&past).contains("stale-while-revalidate"),
        "{}",
        cache_status(&past)
    );
    assert_eq!(past.body_text(), "n=2");
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_304_never_updates_framing_or_encoding_fields() {
    let (mut host, vm, _) = setup(|request, n| {
        if request.header("if-none-match").is_some() {
            Reply::status(304)
                .header("cache-control", "max-age=60")
                .header("etag", "\"x\"")
                .header("content-length", "999")
                .header("content-encoding", "gzip")
                .header("content-range", "bytes 0-0/1")
                .header("transfer-encoding", "chunked")
                .header("content-type", "text/html")
                .header("x-new", "1")
        } else {
            Reply::ok(format!("hello {n}"))
                .header("cache-control", "max-age=1")
                .header("etag", "\"x\"")
                .header("content-type", "text/plain")
        }
    });
    get(&mut host, vm, "/u");
    host.advance(Duration::from_secs(2));
    let revalidated = get(&mut host, vm, "/u");
    assert!(
        cache_status(&revalidated).contains("fwd-status=304"),
        "{}",
        cache_status(&revalidated)
    );
    let later = get(&mut host, vm, "/u");
    assert!(hit(&later));
    for response in [&revalidated, &later] {
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text(), "hello 1");
        assert!(
            response.header("content-length").is_none_or(|l| l == "7"),
            "{:?}",
            response.header("content-length")
        );
        assert_eq!(response.header("content-encoding"), None);
        assert_eq!(response.header("content-range"), None);
        assert_eq!(response.header("transfer-encoding"), None);
        // Everything else is updated.
        assert_eq!(
            response.header("content-type").as_deref(),
            Some("text/html")
        );
        assert_eq!(response.header("x-new").as_deref(), Some("1"));
    }
}

#[test]
fn if_modified_since_uses_date_when_the_entry_has_no_last_modified() {
    use edge_filter::policy::cache::http_date::format_http_date;
    let (mut host, vm, calls) = setup(|request, n| {
        let r = reply(n).header("cache-control", "max-age=600");
        if request.path() == "/dated" {
            // The host's clock starts at 1_800_000_000 s; this Date is 100 s before.
            r.header("date", &format_http_date(1_800_000_000 - 100))
        } else {
            r
        }
    });
    get(&mut host, vm, "/dated");
    let ims = |host: &mut Host, path: &str, since: &str| {
        host.request(vm, Request::get(path).header("if-modified-since", since))
    };
    let date = 1_800_000_000 - 100;
    for since in [date, date + 50] {
        let response = ims(&mut host, "/dated", &format_http_date(since));
        assert_eq!(response.status, 304);
        assert!(hit(&response), "{}", cache_status(&response));
    }
    let older = ims(&mut host, "/dated", &format_http_date(date - 1));
    assert_eq!(older.status, 200);
    assert!(hit(&older));
    // No Date either: the time the response was received.
    get(&mut host, vm, "/undated");
    let received = host.now_ns() / 1_000_000_000;
    host.advance(Duration::from_secs(5));
    assert_eq!(
        ims(&mut host, "/undated", &format_http_date(received)).status,
        304
    );
    assert_eq!(
        ims(&mut host, "/undated", &format_http_date(received - 1)).status,
        200
    );
    assert_eq!(calls.get(), 2);
}

/// The origin answers `/r` with a fresh entry first (`a: 1`), then with `later` for every
/// call after the first.
fn changing_origin(
    later: &'static [(&'static str, &'static str)],
) -> impl Fn(&UpstreamRequest, u32) -> Reply {
    move |_, n| {
        if n == 1 {
            return Reply::ok("old")
                .header("cache-control", "max-age=600, stale-if-error=600")
                .header("etag", "\"old\"")
                .header("a", "1");
        }
        later
            .iter()
            .fold(Reply::ok(format!("new {n}")), |r, (name, value)| {
                r.header(name, value)
            })
    }
}

#[test]
fn a_newer_unstorable_response_takes_the_old_entry_out_of_use_on_every_worker() {
    const LATER: &[(&str, &str)] = &[("cache-control", "no-store"), ("a", "2")];
    let mut host = Host::new();
    let calls = counting_origin(&mut host, changing_origin(LATER));
    let workers = host.start_vms(2, CONFIG);
    let (a, b) = (workers[0], workers[1]);
    get(&mut host, a, "/r");
    assert!(
        hit(&get(&mut host, b, "/r")),
        "worker b copies the entry from L2"
    );
    // A forced reload on worker a gets a response that may not be stored.
    let reload = host.request(a, Request::get("/r").header("cache-control", "no-cache"));
    assert_eq!(reload.header("a").as_deref(), Some("2"));
    // Neither worker answers from the older entry any more: worker a at once, worker b once it
    // has re-read the purge generations (`generation_refresh_ms`, 250 ms by default).
    host.advance(Duration::from_millis(300));
    for vm in [a, b] {
        let next = get(&mut host, vm, "/r");
        assert!(!hit(&next), "{}", cache_status(&next));
        assert_eq!(next.header("a").as_deref(), Some("2"));
    }
    assert_eq!(calls.get(), 4);
}

#[test]
fn a_newer_uncacheable_response_leaves_nothing_for_stale_if_error() {
    for later in [
        &[("cache-control", "private, max-age=60")][..],
        &[("cache-control", "no-store, max-age=0")][..],
        &[][..], // no freshness at all
    ] {
        let mut host = Host::new();
        let calls = counting_origin(&mut host, move |request, n| match n {
            3 => Reply::status(503).body("down"),
            _ => changing_origin(later)(request, n),
        });
        let vm = host.start_vm(CONFIG).unwrap();
        get(&mut host, vm, "/r");
        host.request(vm, Request::get("/r").header("cache-control", "max-age=0"));
        let failed = get(&mut host, vm, "/r");
        assert_eq!(failed.status, 503, "{later:?}: the old entry stood in");
        assert_eq!(calls.get(), 3);
    }
}

#[test]
fn an_origin_error_keeps_the_stored_entry() {
    // A 5xx without freshness says nothing about the representation: the entry stays.
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, n| match n {
        1 => changing_origin(&[])(request, n),
        _ => Reply::status(500).body("oops"),
    });
    let vm = host.start_vm(CONFIG).unwrap();
    get(&mut host, vm, "/r");
    let reload = host.request(vm, Request::get("/r").header("cache-control", "no-cache"));
    assert_eq!(
        reload.status, 200,
        "stale-if-error covers a forced reload's failure"
    );
    let next = get(&mut host, vm, "/r");
    assert!(hit(&next));
    assert_eq!(next.body_text(), "old");
    assert_eq!(calls.get(), 2);
}

// ---- 5. A POST response reused for GET ------------------------------------------------

#[test]
fn a_post_response_naming_its_own_url_is_reused_for_get() {
    let (mut host, vm, calls) = setup(|request, n| {
        let r = Reply::ok(format!("{} n={n}", request.method()));
        match request.path().as_str() {
            "/absolute" => r
                .header("cache-control", "max-age=600")
                .header("content-location", "http://edge.test/absolute"),
            "/relative?q=1" => r
                .header("expires", "Thu, 01 Jan 2099 00:00:00 GMT")
                .header("content-location", "/relative?q=1"),
            "/elsewhere" => r
                .header("cache-control", "max-age=600")
                .header("content-location", "/other"),
            "/no-freshness" => r.header("content-location", "/no-freshness"),
            "/no-store" => r
                .header("cache-control", "max-age=600, no-store")
                .header("content-location", "/no-store"),
            _ => r,
        }
    });
    for (path, reused) in [
        ("/absolute", true),
        ("/relative?q=1", true),
        ("/elsewhere", false),
        ("/no-freshness", false),
        ("/no-store", false),
    ] {
        let post = host.request(vm, Request::post(path, "12345"));
        assert_eq!(post.status, 200);
        let get = get(&mut host, vm, path);
        assert_eq!(hit(&get), reused, "{path}: {}", cache_status(&get));
        if reused {
            assert_eq!(get.body, post.body, "{path}");
            assert!(get.body_text().starts_with("POST"));
        }
    }
    assert_eq!(calls.get(), 5 + 3);
}

#[test]
fn a_post_with_unkeyed_headers_is_not_reused() {
    let (mut host, vm, calls) = setup(|_, n| {
        Reply::ok(format!("n={n}"))
            .header("cache-control", "max-age=600")
            .header("content-location", "/p")
    });
    host.request(
        vm,
        Request::post("/p", "x").header("x-forwarded-host", "evil.example"),
    );
    assert!(!hit(&get(&mut host, vm, "/p")));
    assert_eq!(calls.get(), 2);
}

#[test]
fn a_background_refresh_that_may_not_be_stored_ends_stale_answers() {
    let (mut host, vm, calls) = setup(|_, n| match n {
        1 => Reply::ok("old").header("cache-control", "max-age=1, stale-while-revalidate=600"),
        _ => Reply::ok(format!("new {n}")).header("cache-control", "no-store"),
    });
    get(&mut host, vm, "/bg");
    host.advance(Duration::from_secs(2));
    let stale = get(&mut host, vm, "/bg");
    assert!(cache_status(&stale).contains("stale-while-revalidate"));
    assert_eq!(stale.body_text(), "old");
    // The refresh runs from the next tick and is answered `no-store`.
    host.advance(Duration::from_millis(200));
    assert_eq!(calls.get(), 2, "refreshed in the background");
    let next = get(&mut host, vm, "/bg");
    assert!(!hit(&next), "{}", cache_status(&next));
    assert_eq!(next.body_text(), "new 3");
}

/// Ages count milliseconds: a `max-age=1` response stored late in a second stays fresh for a
/// whole second (a seconds clock made it stale at the next second, so hot one-second keys were
/// fetched about twice as often), and one that took 150 ms across a second boundary is not
/// born a second old.
#[test]
fn a_one_second_lifetime_lasts_a_second_wherever_it_starts() {
    let (mut host, vm, calls) = setup(|_, n| {
        Reply::ok(format!("version {n}"))
            .header("cache-control", "max-age=1")
            .delay_ms(150)
    });
    // Ask at x.900: the answer arrives at (x+1).050.
    let into_second = (host.now_ns() / 1_000_000) % 1000;
    host.advance(Duration::from_millis((1900 - into_second) % 1000));
    let stream = host.send(vm, Request::get("/late"));
    host.advance(Duration::from_millis(150));
    assert_eq!(
        host.response(stream).expect("answered").body_text(),
        "version 1"
    );
    // At (x+1).800: 0.15 s in flight + 0.75 s stored = 0.9 s old, still fresh.
    host.advance(Duration::from_millis(750));
    let hit = get(&mut host, vm, "/late");
    assert_eq!(hit.body_text(), "version 1");
    assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    assert_eq!(hit.header("age").as_deref(), Some("0"));
    assert_eq!(calls.get(), 1);
    // At (x+1).950, 1.05 s old: stale.
    host.advance(Duration::from_millis(150));
    let stream = host.send(vm, Request::get("/late"));
    host.advance(Duration::from_millis(150));
    assert_eq!(
        host.response(stream).expect("answered").body_text(),
        "version 2"
    );
    assert_eq!(calls.get(), 2);
}

// ---- Age and the origin's response delay ---------------------------------------------------

/// RFC 9111 §4.2.3 counts the time the origin took to answer toward the age (the default);
/// `age_includes_response_delay: false` counts from the answer's arrival, as Varnish does.
#[test]
fn the_origins_response_delay_counts_toward_age_unless_configured_otherwise() {
    let no_delay = CONFIG.replace(
        r#""cache": {}"#,
        r#""cache": {"age_includes_response_delay": false}"#,
    );
    for (config, counts) in [(CONFIG.to_string(), true), (no_delay, false)] {
        let (mut host, vm, calls) = setup_with(&config, |_, n| {
            reply(n).header("cache-control", "max-age=2").delay_ms(600)
        });
        assert_eq!(get(&mut host, vm, "/slow").body_text(), "n=1");
        host.advance(Duration::from_millis(500));
        let early = get(&mut host, vm, "/slow");
        assert!(hit(&early), "counts {counts}: {}", cache_status(&early));
        // 0.6 s of delay + 0.5 s resident: a second old when counted, else not yet.
        assert_eq!(
            early.header("age").as_deref(),
            Some(if counts { "1" } else { "0" })
        );
        host.advance(Duration::from_millis(1000));
        // 0.6 + 1.5 s: stale when counted (max-age=2), still fresh at 1.5 s when not.
        let later = get(&mut host, vm, "/slow");
        assert_eq!(
            hit(&later),
            !counts,
            "counts {counts}: {}",
            cache_status(&later)
        );
        assert_eq!(calls.get(), if counts { 2 } else { 1 });
    }
}

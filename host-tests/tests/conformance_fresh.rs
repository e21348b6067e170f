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

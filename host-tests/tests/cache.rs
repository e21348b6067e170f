//! Edge caching in the wasmtime host: tiers, RFC 9111 rules, keys, tenants, purge, security.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use edge_filter::policy::cache::l2::{slot_key, slot_of};
use proxy_wasm_host::test_support::{cache_status, counted, counting_origin, metric};
use proxy_wasm_host::{Host, Reply, Request, Response, UpstreamRequest, VmId};

const TOKEN: &str = "test-admin-token-0123456789";

const CONFIG: &str = r#"{
    "services": [
        {"name": "leads", "match": {"path_prefix": "/api/v1/leads/"},
         "cache": {"tenant": {"header": "x-location-id"}, "key": {"headers": ["accept-language"]}, "debug": true}},
        {"name": "props", "match": {"path_prefix": "/api/v1/properties"}, "cache": {"default_ttl_s": 30}},
        {"name": "webhooks", "match": {"path_prefix": "/webhooks/"}}
    ],
    "admin": {"token": "test-admin-token-0123456789"},
    "limits": {"l2_slots": 64, "lease_slots": 32, "max_entry_bytes": 65536, "l1_max_bytes": 1048576}
}"#;

/// An origin that answers `/api/...` with a cacheable JSON body naming the request count, and
/// whatever `respond` says for particular paths.
fn origin(
    host: &mut Host,
    respond: impl Fn(&UpstreamRequest, u32) -> Option<Reply> + 'static,
) -> Rc<Cell<u32>> {
    counting_origin(host, move |request, n| {
        respond(request, n).unwrap_or_else(|| {
            Reply::ok(format!(r#"{{"path":"{}","n":{n}}}"#, request.path()))
                .header("content-type", "application/json")
                .header("cache-control", "public, max-age=60")
                .header("etag", &format!("\"v{n}\""))
        })
    })
}

fn setup() -> (Host, VmId, Rc<Cell<u32>>) {
    let mut host = Host::new();
    let count = origin(&mut host, |_, _| None);
    let vm = host.start_vm(CONFIG).unwrap();
    (host, vm, count)
}

fn get(path: &str) -> Request {
    Request::get(path)
}

#[test]
fn miss_then_hit_calls_the_origin_once() {
    let (mut host, vm, origin_calls) = setup();
    let first = host.request(vm, get("/api/v1/leads/7"));
    assert_eq!(first.status, 200);
    assert!(
        cache_status(&first).starts_with("edge; fwd=uri-miss; stored"),
        "{}",
        cache_status(&first)
    );
    host.advance(Duration::from_secs(5));
    let second = host.request(vm, get("/api/v1/leads/7"));
    assert_eq!(second.status, 200);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("age").as_deref(), Some("5"));
    assert!(
        cache_status(&second).starts_with("edge; hit; ttl=55"),
        "{}",
        cache_status(&second)
    );
    assert_eq!(
        second.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(origin_calls.get(), 1);
    assert_eq!(counted(&mut host, "edge.cache.l1.hit"), 1);
    assert_eq!(metric(&host, "edge.cache.miss"), 1);
}

#[test]
fn worker_b_hits_l2_then_its_own_l1_without_touching_shared_data() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |_, _| None);
    let workers = host.start_vms(2, CONFIG);
    host.request(workers[0], get("/api/v1/leads/1"));
    let from_l2 = host.request(workers[1], get("/api/v1/leads/1"));
    assert!(cache_status(&from_l2).contains("hit"));
    assert_eq!(counted(&mut host, "edge.cache.l2.hit"), 1);
    let reads_before = host.shared_data_reads();
    let from_l1 = host.request(workers[1], get("/api/v1/leads/1"));
    assert!(cache_status(&from_l1).contains("hit"));
    assert_eq!(
        host.shared_data_reads(),
        reads_before,
        "an L1 hit reads no shared data"
    );
    assert_eq!(counted(&mut host, "edge.cache.l1.hit"), 1);
    assert_eq!(origin_calls.get(), 1);
    assert_eq!(from_l1.body, from_l2.body);
}

#[test]
fn l2_key_space_is_bounded_by_the_slot_count() {
    let (mut host, vm, _) = setup();
    for i in 0..(100 * 64) {
        host.request(vm, get(&format!("/api/v1/leads/{i}")));
    }
    let keys = host.shared_keys();
    // L2 slots + lease slots + monitoring slots (64 by default) + the generations, worker-id
    // and configuration-status keys.
    assert!(
        keys.len() <= 64 + 32 + 64 + 3,
        "{} shared-data keys for 64 + 32 + 64 slots",
        keys.len()
    );
    let known = [
        "edge:l2:",
        "edge:lease:",
        "edge:mon:",
        "edge:gen",
        "edge:workers",
    ];
    assert!(
        keys.iter().all(|k| known.iter().any(|p| k.starts_with(p))),
        "{keys:?}"
    );
}

#[test]
fn corrupt_l2_entry_is_a_counted_miss() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |_, _| None);
    let workers = host.start_vms(2, CONFIG);
    host.request(workers[0], get("/api/v1/leads/9"));
    // The slot the key lives in: find it by the stored entry.
    let slot = (0..64)
        .map(slot_key)
        .find(|k| host.shared_get(k).is_some())
        .unwrap();
    let (mut bytes, cas) = host.shared_get(&slot).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 7);
    host.shared_set(&slot, &bytes, cas).unwrap();
    let response = host.request(workers[1], get("/api/v1/leads/9"));
    assert_eq!(response.status, 200);
    assert_eq!(origin_calls.get(), 2);
    assert_eq!(metric(&host, "edge.cache.l2.corrupt"), 1);
    host.shared_set(&slot, &[99, 1, 2, 3], 0).unwrap();
    let response = host.request(VmId(1), get("/api/v1/leads/9"));
    assert_eq!(response.status, 200, "an unknown version is a miss too");
}

#[test]
fn slot_collision_never_serves_another_key() {
    let (mut host, vm, origin_calls) = setup();
    // Two URLs whose keys share a slot.
    let key = |i: u32| format!("v1\nleads\n-\nhttp://edge.test/api/v1/leads/{i}\naccept-language=");
    let first = slot_of(&key(0), 64);
    let other = (1..10_000)
        .find(|i| slot_of(&key(*i), 64) == first)
        .unwrap();
    let a = host.request(vm, get("/api/v1/leads/0"));
    let b = host.request(vm, get(&format!("/api/v1/leads/{other}")));
    assert_ne!(a.body, b.body);
    assert_eq!(origin_calls.get(), 2);
}

#[test]
fn responses_that_must_not_be_shared_are_not_stored() {
    let cases: [(&str, &str); 4] = [
        ("/api/v1/leads/no-store", "no-store"),
        ("/api/v1/leads/private", "private, max-age=60"),
        ("/api/v1/leads/cookie", "public, max-age=60"),
        ("/api/v1/leads/vary-star", "public, max-age=60"),
    ];
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, n| {
        let path = request.path();
        let reply = Reply::ok(format!("n={n}"));
        Some(match path.as_str() {
            "/api/v1/leads/no-store" => reply.header("cache-control", "no-store"),
            "/api/v1/leads/private" => reply.header("cache-control", "private, max-age=60"),
            "/api/v1/leads/cookie" => reply
                .header("cache-control", "public, max-age=60")
                .header("set-cookie", "session=abc"),
            "/api/v1/leads/vary-star" => reply
                .header("cache-control", "public, max-age=60")
                .header("vary", "*"),
            _ => return None,
        })
    });
    let vm = host.start_vm(CONFIG).unwrap();
    for (path, _) in cases {
        let first = host.request(vm, get(path));
        let second = host.request(vm, get(path));
        assert_ne!(first.body, second.body, "{path} was served from the cache");
        assert!(!cache_status(&second).contains("hit"), "{path}");
        if path.ends_with("cookie") {
            assert_eq!(
                first.header("set-cookie").as_deref(),
                Some("session=abc"),
                "the client still gets its cookie"
            );
        }
    }
    assert_eq!(origin_calls.get(), 8);
}

#[test]
fn authorization_responses_are_shared_only_when_public() {
    let mut host = Host::new();
    origin(&mut host, |request, n| {
        let cache_control = if request.path().ends_with("public") {
            "public, max-age=60"
        } else {
            "max-age=60"
        };
        Some(
            Reply::ok(format!(
                "for {} #{n}",
                request.header("authorization").unwrap_or_default()
            ))
            .header("cache-control", cache_control),
        )
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let private = host.request(
        vm,
        get("/api/v1/leads/me").header("authorization", "Bearer alice"),
    );
    let anonymous = host.request(vm, get("/api/v1/leads/me"));
    assert_ne!(
        private.body, anonymous.body,
        "alice's response must not be shared"
    );
    assert!(!anonymous.body_text().contains("alice"));
    host.request(
        vm,
        get("/api/v1/leads/public").header("authorization", "Bearer alice"),
    );
    let shared = host.request(vm, get("/api/v1/leads/public"));
    assert!(cache_status(&shared).contains("hit"));
}

#[test]
fn vary_keys_variants_and_tenants_namespace() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, n| {
        Some(
            Reply::ok(format!(
                "{} #{n}",
                request.header("x-device").unwrap_or_default()
            ))
            .header("cache-control", "max-age=60")
            .header("vary", "X-Device"),
        )
    });
    let vm = host.start_vm(CONFIG).unwrap();
    // (`Accept-Encoding` would not do here: the cache negotiates codings itself, see
    // tests/encoding.rs.)
    let mobile = || get("/api/v1/leads/1").header("x-device", "mobile");
    host.request(vm, mobile());
    assert!(cache_status(&host.request(vm, mobile())).contains("hit"));
    let identity = host.request(vm, get("/api/v1/leads/1"));
    assert!(
        cache_status(&identity).contains("fwd=vary-miss"),
        "{}",
        cache_status(&identity)
    );
    assert_eq!(identity.body_text(), " #2");
    // Keyed header and tenant: separate entries.
    host.request(vm, get("/api/v1/leads/1").header("accept-language", "de"));
    host.request(vm, get("/api/v1/leads/1").header("x-location-id", "loc-7"));
    assert_eq!(origin_calls.get(), 4);
    let tenant_hit = host.request(vm, get("/api/v1/leads/1").header("x-location-id", "loc-7"));
    assert!(cache_status(&tenant_hit).contains("hit"));
    assert!(cache_status(&tenant_hit)
        .contains("key=\"v2|leads|loc-7|http://edge.test/api/v1/leads/1|accept-language=\""));
}

#[test]
fn stale_entry_is_revalidated_and_a_304_refreshes_it() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, _| {
        (request.header("if-none-match").as_deref() == Some("\"v1\"")).then(|| {
            Reply::status(304)
                .header("cache-control", "public, max-age=60")
                .header("etag", "\"v1\"")
        })
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.request(vm, get("/api/v1/leads/3"));
    host.advance(Duration::from_secs(61));
    let revalidated = host.request(vm, get("/api/v1/leads/3"));
    assert_eq!(revalidated.status, 200);
    assert_eq!(revalidated.body, first.body);
    assert_eq!(
        cache_status(&revalidated).split("; key").next().unwrap(),
        "edge; fwd=stale; fwd-status=304; stored; ttl=60"
    );
    let calls = host.origin_calls();
    assert_eq!(
        calls[1].cluster.as_deref(),
        Some("origin"),
        "revalidated by the filter's own call"
    );
    assert_eq!(calls[1].header("if-none-match").as_deref(), Some("\"v1\""));
    assert_eq!(calls[1].header("x-edge-service").as_deref(), Some("leads"));
    host.advance(Duration::from_secs(30));
    let hit = host.request(vm, get("/api/v1/leads/3"));
    assert!(
        cache_status(&hit).starts_with("edge; hit; ttl=30"),
        "{}",
        cache_status(&hit)
    );
    assert_eq!(origin_calls.get(), 2);
    assert_eq!(metric(&host, "edge.cache.revalidated"), 1);
}

#[test]
fn stale_entry_replaced_by_a_new_200() {
    let (mut host, vm, origin_calls) = setup();
    host.request(vm, get("/api/v1/leads/4"));
    host.advance(Duration::from_secs(61));
    let fresh = host.request(vm, get("/api/v1/leads/4"));
    assert!(fresh.body_text().contains("\"n\":2"));
    assert!(cache_status(&fresh).starts_with("edge; fwd=stale; fwd-status=200; stored"));
    assert!(cache_status(&host.request(vm, get("/api/v1/leads/4"))).contains("hit"));
    assert_eq!(origin_calls.get(), 2);
}

#[test]
fn client_conditionals_and_no_cache() {
    let (mut host, vm, origin_calls) = setup();
    host.request(vm, get("/api/v1/leads/5"));
    let not_modified = host.request(vm, get("/api/v1/leads/5").header("if-none-match", "\"v1\""));
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag").as_deref(), Some("\"v1\""));
    let changed = host.request(vm, get("/api/v1/leads/5").header("if-none-match", "\"v0\""));
    assert_eq!(changed.status, 200);
    assert_eq!(origin_calls.get(), 1);
    // no-cache makes the cache ask the origin (which answers a new version: v2).
    let revalidated = host.request(
        vm,
        get("/api/v1/leads/5").header("cache-control", "no-cache"),
    );
    assert!(cache_status(&revalidated).contains("fwd=stale"));
    assert_eq!(origin_calls.get(), 2);
    // no-store on the request bypasses the cache entirely.
    host.request(
        vm,
        get("/api/v1/leads/5").header("cache-control", "no-store"),
    );
    assert_eq!(origin_calls.get(), 3);
}

#[test]
fn head_is_answered_from_a_stored_get() {
    let (mut host, vm, origin_calls) = setup();
    host.request(vm, get("/api/v1/leads/6"));
    let head = host.request(vm, Request::new("HEAD", "/api/v1/leads/6"));
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(cache_status(&head).contains("hit"));
    assert_eq!(origin_calls.get(), 1);
}

#[test]
fn default_ttl_applies_without_explicit_freshness() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |_, n| Some(Reply::ok(format!("#{n}"))));
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, get("/api/v1/properties?city=austin"));
    host.advance(Duration::from_secs(29));
    assert!(
        cache_status(&host.request(vm, get("/api/v1/properties?city=austin&utm_source=x")))
            .contains("hit")
    );
    host.advance(Duration::from_secs(2));
    host.request(vm, get("/api/v1/properties?city=austin"));
    assert_eq!(origin_calls.get(), 2);
}

#[test]
fn unsafe_request_invalidates_its_url_and_location() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, _| {
        (request.method() == "POST")
            .then(|| Reply::status(201).header("location", "/api/v1/leads/other"))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, get("/api/v1/leads/8"));
    host.request(vm, get("/api/v1/leads/other"));
    host.request(vm, Request::post("/api/v1/leads/8", "{}"));
    assert_eq!(origin_calls.get(), 3);
    assert!(!cache_status(&host.request(vm, get("/api/v1/leads/8"))).contains("hit"));
    assert!(!cache_status(&host.request(vm, get("/api/v1/leads/other"))).contains("hit"));
    assert_eq!(origin_calls.get(), 5);
    assert_eq!(metric(&host, "edge.cache.invalidation"), 2);
}

#[test]
fn failed_unsafe_request_invalidates_nothing() {
    let mut host = Host::new();
    origin(&mut host, |request, _| {
        (request.method() == "DELETE").then(|| Reply::status(500))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, get("/api/v1/leads/8"));
    host.request(vm, Request::new("DELETE", "/api/v1/leads/8"));
    assert!(cache_status(&host.request(vm, get("/api/v1/leads/8"))).contains("hit"));
}

fn purge(host: &mut Host, vm: VmId, body: &str, token: Option<&str>) -> Response {
    let mut request = Request::post("/api/v1/performance/cache/purge", body.as_bytes().to_vec())
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("x-edge-admin-token", token);
    }
    host.request(vm, request)
}

#[test]
fn purge_needs_the_token_and_never_logs_it() {
    let (mut host, vm, origin_calls) = setup();
    host.request(vm, get("/api/v1/leads/1"));
    for token in [None, Some("wrong-token-wrong-token")] {
        // No token: 401; a wrong one: 403.
        let expected = if token.is_some() { 403 } else { 401 };
        let refused = purge(&mut host, vm, r#"{"service": "leads"}"#, token);
        assert_eq!(refused.status, expected);
        let mut request = Request::new("PURGE", "/api/v1/leads/1");
        if let Some(token) = token {
            request = request.header("x-edge-admin-token", token);
        }
        let purge_url = host.request(vm, request);
        assert_eq!(purge_url.status, expected);
    }
    assert!(cache_status(&host.request(vm, get("/api/v1/leads/1"))).contains("hit"));
    assert_eq!(origin_calls.get(), 1);
    let accepted = purge(&mut host, vm, r#"{"service": "leads"}"#, Some(TOKEN));
    assert_eq!(accepted.status, 200, "{}", accepted.body_text());
    assert!(!host.log_text(vm).contains(TOKEN));
    assert!(
        host.origin_calls()
            .iter()
            .all(|c| !c.path().contains("purge")),
        "purges never reach the origin"
    );
}

#[test]
fn purge_by_each_dimension() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, n| {
        Some(
            Reply::ok(format!("#{n}"))
                .header("cache-control", "max-age=600")
                .header(
                    "cache-tag",
                    if request.path().contains("tagged") {
                        "product-7 catalog"
                    } else {
                        "other"
                    },
                ),
        )
    });
    let workers = host.start_vms(2, CONFIG);
    let (a, b) = (workers[0], workers[1]);
    let fill = |host: &mut Host| {
        for path in [
            "/api/v1/leads/tagged",
            "/api/v1/leads/plain",
            "/api/v1/properties?city=x",
        ] {
            host.request(a, get(path));
            host.request(a, get(path).header("x-location-id", "loc-1"));
        }
    };
    let cached = |host: &mut Host, path: &str, tenant: Option<&str>| {
        let mut request = get(path);
        if let Some(tenant) = tenant {
            request = request.header("x-location-id", tenant);
        }
        cache_status(&host.request(b, request)).contains("hit")
    };
    fill(&mut host);
    assert!(cached(&mut host, "/api/v1/leads/tagged", None));

    // tag: only tagged entries go, on every worker (after the generation refresh tick).
    assert_eq!(
        purge(&mut host, a, r#"{"tag": "product-7"}"#, Some(TOKEN)).status,
        200
    );
    host.advance(Duration::from_millis(300));
    assert!(!cached(&mut host, "/api/v1/leads/tagged", None));
    assert!(cached(&mut host, "/api/v1/leads/plain", None));

    // tenant: that tenant's entries only.
    assert_eq!(
        purge(&mut host, a, r#"{"tenant": "loc-1"}"#, Some(TOKEN)).status,
        200
    );
    host.advance(Duration::from_millis(300));
    assert!(!cached(&mut host, "/api/v1/leads/plain", Some("loc-1")));
    assert!(cached(&mut host, "/api/v1/leads/plain", None));

    // url: every tenant and variant of one URL.
    let purged = purge(
        &mut host,
        a,
        r#"{"url": "http://edge.test/api/v1/properties?city=x"}"#,
        Some(TOKEN),
    );
    assert_eq!(
        purged.body_text(),
        r#"{"purged":{"url":"http://edge.test/api/v1/properties?city=x"}}"#
    );
    host.advance(Duration::from_millis(300));
    assert!(!cached(&mut host, "/api/v1/properties?city=x", None));

    // service: everything of the service.
    fill(&mut host);
    assert_eq!(
        purge(&mut host, a, r#"{"service": "leads"}"#, Some(TOKEN)).status,
        200
    );
    host.advance(Duration::from_millis(300));
    assert!(!cached(&mut host, "/api/v1/leads/plain", None));
    assert!(cached(&mut host, "/api/v1/properties?city=x", None));

    // PURGE <url>
    let response = host.request(
        b,
        Request::new("PURGE", "/api/v1/properties?city=x")
            .header("authorization", &format!("Bearer {TOKEN}")),
    );
    assert_eq!(response.status, 200);
    assert!(
        !cached(&mut host, "/api/v1/properties?city=x", None),
        "the purging worker sees it at once"
    );
    assert!(origin_calls.get() > 10);
    assert!(host.shared_keys().len() <= 64 + 32 + 64 + 3);
}

#[test]
fn bad_purge_requests_get_400_and_purge_nothing() {
    let (mut host, vm, _) = setup();
    host.request(vm, get("/api/v1/leads/1"));
    for body in [
        "not json",
        "{}",
        r#"{"tag": "a", "tenant": "b"}"#,
        r#"{"service": "nope"}"#,
        r#"{"url": "/relative"}"#,
    ] {
        let response = purge(&mut host, vm, body, Some(TOKEN));
        assert_eq!(response.status, 400, "{body}: {}", response.body_text());
        assert!(response.body_text().starts_with(r#"{"error":"#));
    }
    assert!(cache_status(&host.request(vm, get("/api/v1/leads/1"))).contains("hit"));
    assert_eq!(metric(&host, "edge.cache.purge"), 0);
}

#[test]
fn oversized_responses_pass_uncached() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, _| {
        let big = vec![b'x'; 70_000];
        Some(match request.path().as_str() {
            "/api/v1/leads/big" => Reply::ok(big)
                .header("cache-control", "max-age=60")
                .header("content-length", "70000"),
            _ => Reply::ok(big)
                .header("cache-control", "max-age=60")
                .chunked(8192),
        })
    });
    let vm = host.start_vm(CONFIG).unwrap();
    for path in ["/api/v1/leads/big", "/api/v1/leads/big-chunked"] {
        let first = host.request(vm, get(path));
        assert_eq!(first.body.len(), 70_000, "the client gets the whole body");
        host.request(vm, get(path));
    }
    assert_eq!(origin_calls.get(), 4);
    assert_eq!(metric(&host, "edge.cache.too_large"), 4);
}

#[test]
fn chunked_bodies_are_stored_whole() {
    let mut host = Host::new();
    origin(&mut host, |_, _| {
        Some(
            Reply::ok(vec![b'y'; 20_000])
                .header("cache-control", "max-age=60")
                .chunked(3000),
        )
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.request(vm, get("/api/v1/leads/c"));
    let second = host.request(vm, get("/api/v1/leads/c"));
    assert!(cache_status(&second).contains("hit"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.body.len(), 20_000);
}

#[test]
fn unkeyed_headers_cannot_poison_the_cache() {
    let mut host = Host::new();
    origin(&mut host, |request, _| {
        let host_name = request
            .header("x-forwarded-host")
            .unwrap_or_else(|| "edge.test".into());
        let scheme = request
            .header("x-forwarded-scheme")
            .unwrap_or_else(|| "http".into());
        let original = request.header("x-original-url").unwrap_or_default();
        Some(
            Reply::ok(format!(
                "<script src=\"{scheme}://{host_name}/app.js\"></script>{original}"
            ))
            .header("cache-control", "public, max-age=60"),
        )
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let attack = get("/api/v1/leads/home")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-scheme", "nothttps")
        .header("x-original-url", "/admin");
    let attacker_view = host.request(vm, attack);
    assert!(
        !attacker_view.body_text().contains("evil"),
        "the origin never saw the unkeyed header"
    );
    let victim = host.request(vm, get("/api/v1/leads/home"));
    assert_eq!(
        victim.body_text(),
        "<script src=\"http://edge.test/app.js\"></script>"
    );
    let upstream = &host.origin_calls()[0];
    assert_eq!(upstream.header("x-forwarded-host"), None);
    assert_eq!(upstream.header("x-original-url"), None);
}

#[test]
fn path_confusion_never_stores_a_private_response_under_a_public_key() {
    let mut host = Host::new();
    // Like a framework that ignores suffixes and matrix parameters: every /account... path
    // serves the private profile; the origin marks it private only on the canonical path.
    let origin_calls = origin(&mut host, |request, n| {
        request
            .path()
            .starts_with("/api/v1/leads/account")
            .then(|| {
                Reply::ok(format!("secret profile #{n}")).header("cache-control", "max-age=60")
            })
    });
    let vm = host.start_vm(CONFIG).unwrap();
    for path in [
        "/api/v1/leads/account;profile.css",
        "/api/v1/leads/account%3Bprofile.css",
        "/api/v1/leads/account%2Fprofile.css",
        "/api/v1/leads/x/../account",
        "/api/v1/leads/./account",
        "/api/v1/leads/account%2e%2e",
    ] {
        host.request(vm, get(path).header("authorization", "Bearer victim"));
        let attacker = host.request(vm, get(path));
        assert!(
            !cache_status(&attacker).contains("hit"),
            "{path} served a stored response"
        );
    }
    // Authorization without public: never shared, whatever the extension looks like.
    host.request(
        vm,
        get("/api/v1/leads/account/profile.css").header("authorization", "Bearer victim"),
    );
    let attacker = host.request(vm, get("/api/v1/leads/account/profile.css"));
    assert!(!cache_status(&attacker).contains("hit"));
    assert_eq!(origin_calls.get(), 14);
    assert_eq!(metric(&host, "edge.cache.bypass"), 12);
}

#[test]
fn malformed_client_input_never_creates_a_stored_error_page() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, _| {
        request.header("x-junk").map(|_| {
            Reply::status(400)
                .body("bad request")
                .header("cache-control", "max-age=60")
        })
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let junk = "j".repeat(16_000);
    let attack = host.request(vm, get("/api/v1/leads/page").header("x-junk", &junk));
    assert_eq!(attack.status, 400);
    let victim = host.request(vm, get("/api/v1/leads/page"));
    assert_eq!(victim.status, 200, "a 400 is never stored");
    let long_key = host.request(
        vm,
        get("/api/v1/leads/page").header("accept-language", &junk),
    );
    assert!(!cache_status(&long_key).contains("stored"));
    assert_eq!(origin_calls.get(), 3);
}

#[test]
fn uncached_services_and_methods_pass_untouched() {
    let (mut host, vm, origin_calls) = setup();
    let hook = host.request(vm, Request::post("/webhooks/ghl", "{}"));
    assert_eq!(hook.header("cache-status"), None);
    host.request(vm, get("/elsewhere"));
    host.request(vm, get("/elsewhere"));
    assert_eq!(origin_calls.get(), 3);
}

#[test]
fn l1_respects_its_byte_bound_and_counts_evictions() {
    let mut host = Host::new();
    origin(&mut host, |_, n| {
        Some(Reply::ok(vec![b'a' + (n % 26) as u8; 60_000]).header("cache-control", "max-age=600"))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    for i in 0..40 {
        host.request(vm, get(&format!("/api/v1/leads/{i}")));
    }
    let bytes = metric(&host, "edge.cache.l1.bytes");
    assert!(bytes <= 1_048_576, "L1 holds {bytes} bytes");
    assert!(metric(&host, "edge.cache.l1.eviction") >= 20);
    // Evicted from L1, still in L2 (if its slot was not reused): served without the origin.
    let entries = metric(&host, "edge.cache.l1.entries");
    assert!(entries < 40 && entries > 0);
}

#[test]
fn a_replaced_vm_takes_its_l1_back_from_the_gauges() {
    let mut host = Host::new();
    origin(&mut host, |_, _| None);
    let old = host.start_vm(CONFIG).unwrap();
    for i in 0..5 {
        host.request(old, get(&format!("/api/v1/leads/{i}")));
    }
    assert_eq!(metric(&host, "edge.cache.l1.entries"), 5);
    assert!(metric(&host, "edge.cache.l1.bytes") > 0);
    // A configuration update: a new VM, the old one torn down.
    let new = host.start_vm(CONFIG).unwrap();
    host.stop_vm(old).unwrap();
    assert_eq!(metric(&host, "edge.cache.l1.entries"), 0);
    assert_eq!(metric(&host, "edge.cache.l1.bytes"), 0);
    host.request(new, get("/api/v1/leads/0"));
    assert_eq!(metric(&host, "edge.cache.l1.entries"), 1);
}

#[test]
fn fuel_per_hit_is_reported() {
    let mut host = Host::new();
    origin(&mut host, |_, _| None);
    let workers = host.start_vms(2, CONFIG);
    host.request(workers[0], get("/api/v1/leads/42"));
    let before = host.fuel_used(workers[1]);
    host.request(workers[1], get("/api/v1/leads/42"));
    let l2_hit = host.fuel_used(workers[1]) - before;
    let before = host.fuel_used(workers[1]);
    host.request(workers[1], get("/api/v1/leads/42"));
    let l1_hit = host.fuel_used(workers[1]) - before;
    let before = host.fuel_used(workers[1]);
    host.request(workers[1], get("/elsewhere"));
    let pass_through = host.fuel_used(workers[1]) - before;
    println!(
        "fuel per request: L1 hit {l1_hit}, L2 hit {l2_hit}, uncached pass-through {pass_through}"
    );
    assert!(l1_hit < l2_hit, "an L1 hit does less work than an L2 hit");
}

/// Hit counters are summed in the VM: Envoy sees them at the next tick, or when a
/// configuration update retires the VM — never lost, never a host call per hit.
#[test]
fn hit_counters_reach_envoy_on_the_tick_and_when_the_vm_retires() {
    let (mut host, vm, _) = setup();
    for _ in 0..3 {
        host.request(vm, get("/api/v1/leads/1"));
    }
    assert_eq!(metric(&host, "edge.cache.l1.hit"), 0, "not before the tick");
    assert_eq!(
        metric(&host, "edge.cache.miss"),
        1,
        "other counters at once"
    );
    host.advance(Duration::from_millis(20));
    assert_eq!(metric(&host, "edge.cache.l1.hit"), 2);
    host.request(vm, get("/api/v1/leads/1"));
    host.stop_vm(vm).unwrap();
    assert_eq!(metric(&host, "edge.cache.l1.hit"), 3);
}

#[test]
fn per_tier_counters_add_up() {
    let mut host = Host::new();
    origin(&mut host, |_, _| None);
    let workers = host.start_vms(2, CONFIG);
    host.request(workers[0], get("/api/v1/leads/1")); // L1 miss, L2 miss, store
    host.request(workers[1], get("/api/v1/leads/1")); // L1 miss, L2 hit
    host.request(workers[1], get("/api/v1/leads/1")); // L1 hit
    assert_eq!(metric(&host, "edge.cache.l1.miss"), 2);
    assert_eq!(metric(&host, "edge.cache.l2.miss"), 1);
    assert_eq!(counted(&mut host, "edge.cache.l2.hit"), 1);
    assert_eq!(counted(&mut host, "edge.cache.l1.hit"), 1);
    assert_eq!(
        metric(&host, "edge.cache.l1.store"),
        2,
        "stored once, promoted once"
    );
    assert_eq!(metric(&host, "edge.cache.l2.store"), 1);
    // Fill every slot twice over: later keys replace earlier ones' entries.
    for i in 0..128 {
        host.request(workers[0], get(&format!("/api/v1/leads/x{i}")));
    }
    assert!(metric(&host, "edge.cache.l2.eviction") > 0);
    let raw = metric(&host, "edge.cache.l2.stored_bytes_raw");
    assert!(raw > 0 && metric(&host, "edge.cache.l2.stored_bytes_compressed") <= raw);
}

/// A service keyed on `city` and `page` only, and one whose tenant is a path segment.
const KEYS_CONFIG: &str = r#"{
    "services": [
        {"name": "properties", "match": {"path_exact": "/api/v1/properties"},
         "cache": {"key": {"query": "allow", "query_allow": ["city", "page"]}}},
        {"name": "accounts", "match": {"path_prefix": "/api/v1/"},
         "cache": {"tenant": {"path_segment": 3}}}
    ],
    "admin": {"token": "test-admin-token-0123456789"}
}"#;

/// The first `city` parameter as a form decoder reads it (`%XX` decoded, `+` a space).
fn form_city(path: &str) -> String {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let decode = |text: &str| {
        let bytes = text.replace('+', " ").into_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'%', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (byte, _) => {
                    out.push(byte);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter_map(|piece| piece.split_once('='))
        .find(|(name, _)| decode(name) == "city")
        .map(|(_, value)| decode(value))
        .unwrap_or_default()
}

#[test]
fn encoded_query_names_cannot_poison_an_allow_listed_key() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, _| {
        Some(
            Reply::ok(format!("listings in {}", form_city(&request.path())))
                .header("cache-control", "public, max-age=60"),
        )
    });
    let vm = host.start_vm(KEYS_CONFIG).unwrap();
    let attack = host.request(vm, get("/api/v1/properties?%63ity=PWNED&city=zz1"));
    assert_eq!(attack.body_text(), "listings in PWNED");
    let victim = host.request(vm, get("/api/v1/properties?city=zz1"));
    assert_eq!(
        victim.body_text(),
        "listings in zz1",
        "{}",
        cache_status(&victim)
    );
    // What every origin reads alike shares the entry: `%63ity=zz1` is `city=zz1`.
    let same = host.request(vm, get("/api/v1/properties?%63ity=zz%31&x=1"));
    assert!(
        cache_status(&same).contains("hit"),
        "{}",
        cache_status(&same)
    );
    // What origins may read differently bypasses: `;` separators, another case, array syntax.
    for ambiguous in [
        "/api/v1/properties?x=1;city=PWNED&city=zz1",
        "/api/v1/properties?CITY=PWNED&city=zz1",
        "/api/v1/properties?city%5B%5D=PWNED&city=zz1",
    ] {
        let response = host.request(vm, get(ambiguous));
        assert!(
            !cache_status(&response).contains("hit") && !cache_status(&response).contains("stored"),
            "{ambiguous}: {}",
            cache_status(&response)
        );
    }
    // The origin got each query as the client sent it.
    assert_eq!(
        host.origin_calls()[0].path(),
        "/api/v1/properties?%63ity=PWNED&city=zz1"
    );
    assert_eq!(origin_calls.get(), 5);
    assert_eq!(metric(&host, "edge.cache.bypass"), 3);
}

#[test]
fn invalid_or_repeated_tenant_ids_bypass_the_cache() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, _| {
        Some(
            Reply::ok(format!(
                "private data of {:?}",
                request.header("x-location-id").unwrap_or_default()
            ))
            .header("cache-control", "max-age=60"),
        )
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let long_a = format!("{}-a", "x".repeat(130));
    let long_b = format!("{}-b", "x".repeat(130));
    let with_tenant = |tenant: &str| get("/api/v1/leads/7").header("x-location-id", tenant);
    let first = host.request(vm, with_tenant(&long_a));
    assert!(first.body_text().contains("-a"));
    // Neither another long id nor a request without a tenant gets tenant A's entry.
    let other = host.request(vm, with_tenant(&long_b));
    assert!(other.body_text().contains("-b"), "{}", other.body_text());
    let anonymous = host.request(vm, get("/api/v1/leads/7"));
    assert_eq!(anonymous.body_text(), "private data of \"\"");
    // A control character, an empty id or the header sent twice: no namespace either.
    let mut twice = get("/api/v1/leads/9").header("x-location-id", "loc-1");
    twice.headers.add("x-location-id", "loc-2");
    for request in [
        with_tenant("loc\u{1}1"),
        with_tenant(""),
        twice.clone(),
        twice,
    ] {
        let response = host.request(vm, request);
        assert!(
            !cache_status(&response).contains("hit") && !cache_status(&response).contains("stored"),
            "{}",
            cache_status(&response)
        );
    }
    assert!(!cache_status(&host.request(vm, get("/api/v1/leads/9"))).contains("hit"));
    assert_eq!(origin_calls.get(), 8);
    assert_eq!(metric(&host, "edge.cache.bypass"), 6);
}

#[test]
fn forwarding_and_method_override_headers_never_reach_the_origin() {
    let mut host = Host::new();
    let names = [
        "forwarded",
        "x-forwarded-prefix",
        "x-http-method",
        "x-method-override",
        "x-http-method-override",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-scheme",
    ];
    origin(&mut host, move |request, _| {
        let seen: Vec<String> = names
            .iter()
            .filter_map(|name| request.header(name).map(|v| format!("{name}={v}")))
            .collect();
        Some(Reply::ok(format!("seen: {}", seen.join(" "))).header("cache-control", "max-age=60"))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let mut attack = get("/api/v1/leads/home");
    for name in names {
        attack = attack.header(name, "evil");
    }
    attack = attack.header("forwarded", "host=evil.example;proto=http");
    assert_eq!(host.request(vm, attack).body_text(), "seen: ");
    let victim = host.request(vm, get("/api/v1/leads/home"));
    assert!(cache_status(&victim).contains("hit"));
    assert_eq!(victim.body_text(), "seen: ");
    let upstream = &host.origin_calls()[0];
    for name in names {
        assert_eq!(upstream.header(name), None, "{name} reached the origin");
    }
}

#[test]
fn empty_path_segments_cannot_move_a_request_out_of_its_tenant() {
    // An origin that merges slashes reads `/api/v1//acme/x` as acme's `/api/v1/acme/x`; the
    // key would read segment 3 as empty (no tenant), so a purge of acme would miss it.
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |request, n| {
        Some(
            Reply::ok(format!("{} #{n}", request.path().replace("//", "/")))
                .header("cache-control", "max-age=600"),
        )
    });
    let vm = host.start_vm(KEYS_CONFIG).unwrap();
    for _ in 0..2 {
        host.request(vm, get("/api/v1/acme/x"));
        host.request(vm, get("/api/v1//acme/x"));
    }
    assert_eq!(
        origin_calls.get(),
        3,
        "the canonical path is cached, `//` is not"
    );
    assert_eq!(
        purge(&mut host, vm, r#"{"tenant": "acme"}"#, Some(TOKEN)).status,
        200
    );
    host.advance(Duration::from_millis(300));
    for path in ["/api/v1/acme/x", "/api/v1//acme/x"] {
        let response = host.request(vm, get(path));
        assert!(
            !cache_status(&response).contains("hit"),
            "{path} was served after its tenant was purged"
        );
    }
}

/// Found by the `key` fuzz target: `:authority: edge.test/api` with `/v1/x` had the key URL of
/// `edge.test` with `/api/v1/x`. (Envoy answers such a `Host` with 400 itself; the filter does
/// not rely on that.)
#[test]
fn an_authority_holding_a_path_cannot_store_for_another_path() {
    let mut host = Host::new();
    let origin_calls = origin(&mut host, |_, _| None);
    let vm = host
        .start_vm(r#"{"default_service": {"name": "default", "cache": {"default_ttl_s": 30}}}"#)
        .unwrap();
    let attack = host.request(vm, get("/v1/x").authority("edge.test/api"));
    assert_eq!(attack.status, 200);
    assert!(
        !cache_status(&attack).contains("stored"),
        "{}",
        cache_status(&attack)
    );
    let victim = host.request(vm, get("/api/v1/x").authority("edge.test"));
    assert!(
        String::from_utf8_lossy(&victim.body).contains(r#""path":"/api/v1/x""#),
        "{}",
        String::from_utf8_lossy(&victim.body)
    );
    assert_eq!(origin_calls.get(), 2);
    assert!(metric(&host, "edge.cache.bypass") >= 1);
}

/// `x_location_id` and `x_forwarded_host` are the tenant and a forwarding header to a
/// CGI-style origin: the first makes the request bypass the cache (never the shared
/// namespace), the second is removed like its dashed spelling.
#[test]
fn underscore_spellings_neither_pick_a_namespace_nor_reach_the_origin() {
    let mut host = Host::new();
    origin(&mut host, |request, _| {
        let seen = request
            .headers
            .pairs()
            .iter()
            .filter(|(n, _)| n.contains('_'))
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        Some(Reply::ok(format!("seen: {seen}")).header("cache-control", "max-age=60"))
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let attack = get("/api/v1/leads/u").header("x_location_id", "victim");
    let first = host.request(vm, attack);
    assert!(
        !cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );
    let anonymous = host.request(vm, get("/api/v1/leads/u"));
    assert!(
        !cache_status(&anonymous).contains("hit"),
        "nothing was shared"
    );
    let poisoned = get("/api/v1/leads/p").header("x_forwarded_host", "evil.example");
    assert_eq!(host.request(vm, poisoned).body_text(), "seen: ");
}

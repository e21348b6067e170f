//! Several `Vary` variants per URL (RFC 9111 §4.1): each variant is stored under its own key
//! (the URL's key plus the normalised selecting header values), so clients that alternate
//! between variants all hit after their first miss; a bounded number per URL; purges reach
//! every variant; tenants stay apart; coalesced requests never get another variant.

use std::time::Duration;

use proxy_wasm_host::test_support::{cache_status, counted, counting_origin};
use proxy_wasm_host::{Host, Reply, Request, Response, UpstreamRequest, VmId};

const TOKEN: &str = "test-admin-token-0123456789";

const CONFIG: &str = r#"{
    "services": [
        {"name": "pages", "match": {"path_prefix": "/pages/"},
         "cache": {"tenant": {"header": "x-location-id"}}}
    ],
    "admin": {"token": "test-admin-token-0123456789"},
    "limits": {"l2_slots": 256, "lease_slots": 32}
}"#;

/// The same service with at most two variants per URL.
const BOUNDED: &str = r#"{
    "services": [
        {"name": "pages", "match": {"path_prefix": "/pages/"}, "cache": {"max_variants": 2}}
    ],
    "limits": {"l2_slots": 256, "lease_slots": 32}
}"#;

/// What the origin saw of a selecting header (`-` when absent).
fn seen(request: &UpstreamRequest, name: &str) -> String {
    request.header(name).unwrap_or_else(|| "-".to_string())
}

/// A cacheable answer naming the request's `Accept-Language` and `X-Device` and the call count,
/// varying on both (and on `Accept-Encoding`, which the cache negotiates itself).
fn varying(request: &UpstreamRequest, n: u32) -> Reply {
    Reply::ok(format!(
        "{}|{} #{n}",
        seen(request, "accept-language"),
        seen(request, "x-device")
    ))
    .header("content-type", "text/plain")
    .header("cache-control", "public, max-age=600")
    .header("etag", &format!("\"v{n}\""))
    .header("cache-tag", "catalog")
    .header("vary", "Accept-Language, X-Device, Accept-Encoding")
}

fn setup(config: &str) -> (Host, VmId, std::rc::Rc<std::cell::Cell<u32>>) {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, varying);
    let vm = host.start_vm(config).unwrap();
    (host, vm, calls)
}

fn lang(path: &str, language: &str) -> Request {
    Request::get(path).header("accept-language", language)
}

fn is_hit(response: &Response) -> bool {
    cache_status(response).contains("; hit")
}

fn purge(host: &mut Host, vm: VmId, body: &str) -> Response {
    let request = Request::post("/api/v1/performance/cache/purge", body.as_bytes().to_vec())
        .header("content-type", "application/json")
        .header("x-edge-admin-token", TOKEN);
    host.request(vm, request)
}

#[test]
fn two_variants_alternating_all_hit_after_their_first_miss() {
    let (mut host, vm, calls) = setup(CONFIG);
    let en = host.request(vm, lang("/pages/a", "en"));
    assert!(cache_status(&en).contains("fwd=uri-miss; stored"));
    let de = host.request(vm, lang("/pages/a", "de"));
    assert!(
        cache_status(&de).contains("fwd=vary-miss; stored"),
        "{}",
        cache_status(&de)
    );
    for _ in 0..3 {
        let en = host.request(vm, lang("/pages/a", "en"));
        assert!(is_hit(&en), "{}", cache_status(&en));
        assert_eq!(en.body_text(), "en|- #1");
        let de = host.request(vm, lang("/pages/a", "de"));
        assert!(is_hit(&de), "{}", cache_status(&de));
        assert_eq!(de.body_text(), "de|- #2");
    }
    assert_eq!(calls.get(), 2);
    assert_eq!(counted(&mut host, "edge.cache.l1.hit"), 6);
}

#[test]
fn three_variants_alternating_and_absent_is_not_empty() {
    let (mut host, vm, calls) = setup(CONFIG);
    let variants = [
        Request::get("/pages/b"),
        Request::get("/pages/b").header("x-device", ""),
        Request::get("/pages/b").header("x-device", "mobile"),
    ];
    for request in &variants {
        assert!(!is_hit(&host.request(vm, request.clone())));
    }
    assert_eq!(
        calls.get(),
        3,
        "absent, empty and a value are three variants"
    );
    for round in 0..3 {
        for (index, request) in variants.iter().enumerate() {
            let response = host.request(vm, request.clone());
            assert!(
                is_hit(&response),
                "round {round}, variant {index}: {}",
                cache_status(&response)
            );
            assert!(
                response.body_text().ends_with(&format!("#{}", index + 1)),
                "variant {index}: {}",
                response.body_text()
            );
        }
    }
    assert_eq!(calls.get(), 3);
}

#[test]
fn normalised_spellings_share_a_variant() {
    let (mut host, vm, calls) = setup(CONFIG);
    host.request(vm, lang("/pages/c", "en-US, de;q=0.5"));
    for request in [
        lang("/pages/c", "en-US,de;q=0.5"),
        lang("/pages/c", "  EN-us ,\tDE;Q=0.5 "),
        Request::get("/pages/c")
            .add_header("accept-language", "en-us")
            .add_header("accept-language", "de;q=0.5"),
    ] {
        let response = host.request(vm, request);
        assert!(is_hit(&response), "{}", cache_status(&response));
        assert_eq!(response.body_text(), "en-US, de;q=0.5|- #1");
    }
    assert_eq!(calls.get(), 1);
    // X-Device is not a field whose values are case-insensitive: its case selects.
    host.request(vm, Request::get("/pages/c").header("x-device", "Mobile"));
    let other = host.request(vm, Request::get("/pages/c").header("x-device", "mobile"));
    assert!(!is_hit(&other), "{}", cache_status(&other));
    let spaced = host.request(vm, Request::get("/pages/c").header("x-device", " Mobile "));
    assert!(is_hit(&spaced), "{}", cache_status(&spaced));
    assert_eq!(spaced.body_text(), "-|Mobile #2");
    assert_eq!(calls.get(), 3);
}

#[test]
fn the_bound_drops_the_least_recently_stored_variant() {
    let (mut host, vm, calls) = setup(BOUNDED);
    for language in ["en", "de", "fr"] {
        host.request(vm, lang("/pages/d", language));
    }
    assert_eq!(calls.get(), 3);
    for language in ["fr", "de"] {
        let response = host.request(vm, lang("/pages/d", language));
        assert!(is_hit(&response), "{language}: {}", cache_status(&response));
    }
    let en = host.request(vm, lang("/pages/d", "en"));
    assert!(
        cache_status(&en).contains("fwd=vary-miss"),
        "the oldest variant went: {}",
        cache_status(&en)
    );
    assert_eq!(en.body_text(), "en|- #4");
    assert_eq!(calls.get(), 4);
    // Storing `en` again dropped `de`, the oldest then.
    assert!(is_hit(&host.request(vm, lang("/pages/d", "fr"))));
    assert!(is_hit(&host.request(vm, lang("/pages/d", "en"))));
    assert!(!is_hit(&host.request(vm, lang("/pages/d", "de"))));
    assert_eq!(calls.get(), 5);
}

#[test]
fn max_variants_is_validated() {
    let mut host = Host::new();
    for bad in ["0", "65"] {
        let config = BOUNDED.replace("\"max_variants\": 2", &format!("\"max_variants\": {bad}"));
        let refused = host.start_vm(&config);
        assert!(refused.is_err(), "max_variants {bad} accepted");
    }
    assert!(host.start_vm(&BOUNDED.replace(": 2}", ": 64}")).is_ok());
}

#[test]
fn purges_reach_every_variant() {
    let (mut host, vm, calls) = setup(CONFIG);
    let fill = |host: &mut Host| {
        for language in ["en", "de", "fr"] {
            host.request(vm, lang("/pages/e", language));
            assert!(is_hit(&host.request(vm, lang("/pages/e", language))));
        }
    };
    let all_miss = |host: &mut Host| {
        for language in ["en", "de", "fr"] {
            let response = host.request(vm, lang("/pages/e", language));
            assert!(
                !is_hit(&response),
                "{language}: {}",
                cache_status(&response)
            );
        }
    };
    fill(&mut host);
    assert_eq!(calls.get(), 3);
    for body in [
        r#"{"url": "http://edge.test/pages/e"}"#,
        r#"{"tag": "catalog"}"#,
        r#"{"service": "pages"}"#,
    ] {
        assert_eq!(purge(&mut host, vm, body).status, 200, "{body}");
        all_miss(&mut host);
        for language in ["en", "de", "fr"] {
            assert!(is_hit(&host.request(vm, lang("/pages/e", language))));
        }
    }
    assert_eq!(calls.get(), 12);
    // A tenant purge reaches that tenant's variants only.
    let tenant = |language: &str| lang("/pages/e", language).header("x-location-id", "loc-1");
    for language in ["en", "de"] {
        host.request(vm, tenant(language));
        assert!(is_hit(&host.request(vm, tenant(language))));
    }
    assert_eq!(purge(&mut host, vm, r#"{"tenant": "loc-1"}"#).status, 200);
    for language in ["en", "de"] {
        assert!(!is_hit(&host.request(vm, tenant(language))));
        assert!(is_hit(&host.request(vm, lang("/pages/e", language))));
    }
}

#[test]
fn a_response_without_vary_replaces_the_variants_and_vice_versa() {
    let mut host = Host::new();
    // Calls 3 and 4 answer without Vary; the others vary on Accept-Language.
    let calls = counting_origin(&mut host, |request, n| {
        let reply = Reply::ok(format!("{} #{n}", seen(request, "accept-language")))
            .header("cache-control", "max-age=600");
        if n == 3 || n == 4 {
            reply
        } else {
            reply.header("vary", "accept-language")
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let no_cache = |language: &str| lang("/pages/f", language).header("cache-control", "no-cache");
    host.request(vm, lang("/pages/f", "en"));
    host.request(vm, lang("/pages/f", "de"));
    assert_eq!(
        host.request(vm, lang("/pages/f", "en")).body_text(),
        "en #1"
    );
    assert_eq!(
        host.request(vm, lang("/pages/f", "de")).body_text(),
        "de #2"
    );
    assert_eq!(calls.get(), 2);

    // The origin stops varying: one entry answers every language.
    assert_eq!(host.request(vm, no_cache("de")).body_text(), "de #3");
    for request in [
        lang("/pages/f", "en"),
        lang("/pages/f", "de"),
        lang("/pages/f", "fr"),
        Request::get("/pages/f"),
    ] {
        let response = host.request(vm, request);
        assert!(is_hit(&response), "{}", cache_status(&response));
        assert_eq!(response.body_text(), "de #3");
    }
    assert_eq!(calls.get(), 3);

    // And varies again: variants, one per language.
    assert_eq!(host.request(vm, no_cache("en")).body_text(), "en #4");
    assert_eq!(host.request(vm, no_cache("en")).body_text(), "en #5");
    let en = host.request(vm, lang("/pages/f", "en"));
    assert!(is_hit(&en), "{}", cache_status(&en));
    assert_eq!(en.body_text(), "en #5");
    let fr = host.request(vm, lang("/pages/f", "fr"));
    assert!(
        cache_status(&fr).contains("fwd=vary-miss"),
        "{}",
        cache_status(&fr)
    );
    assert_eq!(fr.body_text(), "fr #6");
    assert_eq!(
        host.request(vm, lang("/pages/f", "en")).body_text(),
        "en #5"
    );
    assert_eq!(
        host.request(vm, lang("/pages/f", "fr")).body_text(),
        "fr #6"
    );
    assert_eq!(calls.get(), 6);
}

#[test]
fn tenants_keep_their_own_variants() {
    let (mut host, vm, calls) = setup(CONFIG);
    let request =
        |tenant: &str, language: &str| lang("/pages/g", language).header("x-location-id", tenant);
    let mut expected = Vec::new();
    for tenant in ["loc-1", "loc-2"] {
        for language in ["en", "de"] {
            let first = host.request(vm, request(tenant, language));
            assert!(
                !is_hit(&first),
                "{tenant} {language}: {}",
                cache_status(&first)
            );
            expected.push((tenant, language, first.body_text()));
        }
    }
    assert_eq!(calls.get(), 4);
    for _ in 0..2 {
        for (tenant, language, body) in &expected {
            let response = host.request(vm, request(tenant, language));
            assert!(is_hit(&response), "{tenant} {language}");
            assert_eq!(&response.body_text(), body);
        }
    }
    assert_eq!(calls.get(), 4);
}

#[test]
fn other_workers_find_every_variant_in_l2() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, varying);
    let workers = host.start_vms(2, CONFIG);
    host.request(workers[0], lang("/pages/h", "en"));
    host.request(workers[0], lang("/pages/h", "de"));
    for _ in 0..2 {
        for (language, body) in [("en", "en|- #1"), ("de", "de|- #2")] {
            let response = host.request(workers[1], lang("/pages/h", language));
            assert!(is_hit(&response), "{language}: {}", cache_status(&response));
            assert_eq!(response.body_text(), body);
        }
    }
    assert_eq!(calls.get(), 2);
    assert_eq!(counted(&mut host, "edge.cache.l2.hit"), 2);
    assert_eq!(counted(&mut host, "edge.cache.l1.hit"), 2);
}

#[test]
fn coalesced_requests_get_their_own_variant() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, n| varying(request, n).delay_ms(100));
    let vm = host.start_vm(CONFIG).unwrap();
    let streams: Vec<_> = ["en", "de", "en", "de"]
        .iter()
        .map(|language| (language, host.send(vm, lang("/pages/i", language))))
        .collect();
    host.advance(Duration::from_millis(400));
    for (language, stream) in streams {
        let response = host.response(stream).expect("answered");
        assert!(
            response.body_text().starts_with(&format!("{language}|")),
            "{language} got {}",
            response.body_text()
        );
    }
    assert!(calls.get() <= 3, "{} origin calls", calls.get());
}

#[test]
fn waiters_on_another_worker_find_their_variant_in_l2() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, n| varying(request, n).delay_ms(150));
    let workers = host.start_vms(2, CONFIG);
    let leader = host.send(workers[0], lang("/pages/j", "en"));
    host.advance(Duration::from_millis(10));
    let en: Vec<_> = (0..3)
        .map(|_| host.send(workers[1], lang("/pages/j", "en")))
        .collect();
    let de = host.send(workers[1], lang("/pages/j", "de"));
    host.advance(Duration::from_millis(500));
    assert_eq!(
        host.response(leader).expect("leader").body_text(),
        "en|- #1"
    );
    for stream in en {
        let response = host.response(stream).expect("answered");
        assert_eq!(response.body_text(), "en|- #1");
        assert!(
            cache_status(&response).contains("collapsed"),
            "{}",
            cache_status(&response)
        );
    }
    let de = host.response(de).expect("answered");
    assert!(de.body_text().starts_with("de|- #"), "{}", de.body_text());
    assert_eq!(calls.get(), 2);
}

/// Fuel of an L1 hit of a response without `Vary` (the URL's key alone, as before variants)
/// and of a variant (index, then variant key), printed for the record.
#[test]
fn fuel_per_variant_hit_is_reported() {
    let mut host = Host::new();
    counting_origin(&mut host, |request, n| {
        let reply = Reply::ok(format!("#{n}")).header("cache-control", "max-age=600");
        if request.path().contains("varying") {
            reply.header("vary", "accept-language")
        } else {
            reply
        }
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let mut fuel = Vec::new();
    for path in ["/pages/plain", "/pages/varying"] {
        host.request(vm, lang(path, "de"));
        host.request(vm, lang(path, "en"));
        let before = host.fuel_used(vm);
        for _ in 0..50 {
            assert!(is_hit(&host.request(vm, lang(path, "en"))));
        }
        fuel.push((host.fuel_used(vm) - before) / 50);
    }
    println!(
        "fuel per L1 hit: without Vary {}, a variant {} (ratio {:.3})",
        fuel[0],
        fuel[1],
        fuel[1] as f64 / fuel[0] as f64
    );
}

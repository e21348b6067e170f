//! Content codings made by the cache: one stored identity body, `br` and `gzip` bodies made at
//! store time, each hit in the coding the client prefers, with `Vary: Accept-Encoding` and a
//! weak validator per coding; conditionals across them; no key per `Accept-Encoding` value.

use std::io::Read;

use proxy_wasm_host::test_support::{cache_status, counted, counting_origin, metric};
use proxy_wasm_host::{Host, Reply, Request, Response, VmId};

const CONFIG: &str = r#"{
    "services": [
        {"name": "api", "match": {"path_prefix": "/api/"}, "cache": {}},
        {"name": "keyed", "match": {"path_prefix": "/keyed/"},
         "cache": {"key": {"headers": ["accept-encoding"]}}}
    ],
    "limits": {"l2_slots": 64, "lease_slots": 32}
}"#;

/// A JSON body of `len` bytes, compressible like an API list.
fn json(len: usize) -> Vec<u8> {
    let row = br#"{"id":17,"coach":"Dana","status":"scheduled","notes":"bring the report"},"#;
    row.iter().cycle().take(len).copied().collect()
}

/// An origin answering every path with a cacheable JSON body of 4,000 bytes (or what the path
/// asks for), counting its calls, and recording the `Accept-Encoding` it was sent.
fn setup(
    content_type: &'static str,
    len: usize,
) -> (Host, VmId, std::rc::Rc<std::cell::Cell<u32>>) {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, move |request, _| {
        assert_eq!(
            request.header("accept-encoding"),
            None,
            "the origin is asked for identity"
        );
        Reply::ok(json(len))
            .header("content-type", content_type)
            .header("cache-control", "max-age=60")
            .header("etag", "\"v1\"")
            .header("vary", "Accept-Encoding")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    (host, vm, calls)
}

fn get(path: &str, accept_encoding: Option<&str>) -> Request {
    let request = Request::get(path);
    match accept_encoding {
        Some(value) => request.header("accept-encoding", value),
        None => request,
    }
}

fn decoded(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    match response.header("content-encoding").as_deref() {
        Some("gzip") => {
            flate2::read::GzDecoder::new(&response.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => {
            brotli::BrotliDecompress(&mut &response.body[..], &mut out).unwrap();
        }
        None => out = response.body.clone(),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

fn varies_by_accept_encoding(response: &Response) -> bool {
    response
        .header("vary")
        .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding"))
}

#[test]
fn gzip_br_and_identity_clients_share_one_entry() {
    let (mut host, vm, calls) = setup("application/json", 4000);
    let first = host.request(vm, get("/api/list", Some("gzip, deflate, br")));
    assert_eq!(first.status, 200);
    assert!(
        cache_status(&first).contains("stored"),
        "{}",
        cache_status(&first)
    );

    let br = host.request(vm, get("/api/list", Some("gzip, deflate, br")));
    assert!(cache_status(&br).contains("hit"), "{}", cache_status(&br));
    assert_eq!(br.header("content-encoding").as_deref(), Some("br"));
    assert_eq!(br.header("etag").as_deref(), Some("W/\"v1-br\""));
    assert!(varies_by_accept_encoding(&br));
    assert_eq!(decoded(&br), json(4000));
    assert!(br.body.len() < 4000 / 3, "br body {} bytes", br.body.len());

    let gzip = host.request(vm, get("/api/list", Some("GZIP;q=1.0, br;q=0")));
    assert_eq!(gzip.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(gzip.header("etag").as_deref(), Some("W/\"v1-gzip\""));
    assert_eq!(decoded(&gzip), json(4000));
    assert_ne!(
        gzip.header("content-length").as_deref(),
        Some("4000"),
        "the identity length must not describe an encoded body"
    );

    let identity = host.request(vm, get("/api/list", None));
    assert_eq!(identity.header("content-encoding"), None);
    assert_eq!(
        identity.header("etag").as_deref(),
        Some("\"v1\""),
        "strong validator kept"
    );
    assert_eq!(identity.body, json(4000));
    assert!(varies_by_accept_encoding(&identity));
    let refused = host.request(vm, get("/api/list", Some("br;q=0, gzip;q=0")));
    assert_eq!(refused.header("content-encoding"), None);

    assert_eq!(calls.get(), 1, "one origin fetch for every coding");
    assert_eq!(counted(&mut host, "edge.cache.l1.hit"), 4);
}

#[test]
fn accept_encoding_spellings_never_make_new_keys() {
    let (mut host, vm, calls) = setup("application/json", 4000);
    for value in [
        "gzip",
        "gzip, br",
        "br, gzip",
        "BR",
        "gzip;q=0.5, br;q=0.7",
        "identity",
        "*",
        "x-gzip",
        "compress, deflate",
        "gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip,gzip",
    ] {
        let response = host.request(vm, get("/api/one", Some(value)));
        assert_eq!(response.status, 200, "{value}");
        assert_eq!(decoded(&response), json(4000), "{value}");
    }
    assert_eq!(calls.get(), 1);
}

#[test]
fn conditionals_match_the_validator_of_the_coding_served() {
    let (mut host, vm, calls) = setup("application/json", 4000);
    host.request(vm, get("/api/c", None));
    for (accept, tag, status) in [
        (Some("gzip"), "W/\"v1-gzip\"", 304),
        (Some("br"), "W/\"v1-br\"", 304),
        (Some("br"), "\"x\", W/\"v1-br\"", 304),
        (Some("gzip"), "*", 304),
        (None, "\"v1\"", 304),
        (None, "W/\"v1\"", 304),
        // Another coding's validator (or the identity one) names another representation.
        (Some("gzip"), "\"v1\"", 200),
        (Some("br"), "W/\"v1-gzip\"", 200),
        (None, "W/\"v1-gzip\"", 200),
        (Some("gzip"), "W/\"v2-gzip\"", 200),
    ] {
        let response = host.request(vm, get("/api/c", accept).header("if-none-match", tag));
        assert_eq!(response.status, status, "{accept:?} {tag}");
        assert!(varies_by_accept_encoding(&response), "{accept:?} {tag}");
        if status == 304 {
            assert!(response.body.is_empty());
            assert_eq!(response.header("content-encoding"), None);
        } else {
            assert_eq!(decoded(&response), json(4000));
        }
    }
    assert_eq!(calls.get(), 1);
}

#[test]
fn misses_never_make_the_cache_compress() {
    // Cache-busting misses of large compressible bodies cost no more than those of a body the
    // cache never encodes: codings are made on hits, by clients that take them.
    let fuel_per_miss = |content_type: &'static str| {
        let (mut host, vm, _) = setup(content_type, 100_000);
        let before = host.fuel_used(vm);
        for i in 0..10 {
            let response = host.request(vm, get(&format!("/api/bust?n={i}"), Some("gzip, br")));
            assert_eq!(response.header("content-encoding"), None);
        }
        (host.fuel_used(vm) - before) / 10
    };
    let (json_fuel, png_fuel) = (
        fuel_per_miss("application/json"),
        fuel_per_miss("image/png"),
    );
    assert!(
        json_fuel < png_fuel * 2,
        "a compressible miss costs {json_fuel} fuel, an incompressible one {png_fuel}"
    );
}

#[test]
fn a_dated_if_range_never_mixes_codings() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |_, _| {
        Reply::ok(json(4000))
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60")
            .header("last-modified", "Tue, 01 Dec 2026 10:00:00 GMT")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, get("/api/lm", None));
    let gzip = host.request(vm, get("/api/lm", Some("gzip")));
    assert_eq!(gzip.header("content-encoding").as_deref(), Some("gzip"));
    // A client resuming that gzip download with a date: the whole gzip body, never identity
    // bytes it would glue onto gzip ones.
    let resumed = host.request(
        vm,
        get("/api/lm", Some("gzip"))
            .header("range", "bytes=50-")
            .header("if-range", "Tue, 01 Dec 2026 10:00:00 GMT"),
    );
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(decoded(&resumed), json(4000));
    assert_eq!(calls.get(), 1);
}

#[test]
fn small_or_binary_bodies_are_not_encoded() {
    for (content_type, len) in [("application/json", 100), ("image/png", 4000)] {
        let (mut host, vm, _) = setup(content_type, len);
        host.request(vm, get("/api/x", Some("gzip, br")));
        let hit = host.request(vm, get("/api/x", Some("gzip, br")));
        assert!(cache_status(&hit).contains("hit"));
        assert_eq!(hit.header("content-encoding"), None, "{content_type} {len}");
        assert_eq!(hit.header("etag").as_deref(), Some("\"v1\""));
        assert_eq!(hit.body, json(len));
    }
}

#[test]
fn an_origin_encoded_body_is_served_as_the_origin_sent_it() {
    let mut host = Host::new();
    let gzipped = {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&json(4000)).unwrap();
        encoder.finish().unwrap()
    };
    let body = gzipped.clone();
    let calls = counting_origin(&mut host, move |_, _| {
        Reply::ok(body.clone())
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .header("cache-control", "max-age=60")
            .header("vary", "accept-encoding")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, get("/api/pre", Some("gzip")));
    let hit = host.request(vm, get("/api/pre", Some("gzip")));
    assert_eq!(hit.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(hit.body, gzipped);
    assert_eq!(calls.get(), 1);
}

#[test]
fn an_operator_who_keys_on_accept_encoding_keeps_the_origins_negotiation() {
    let mut host = Host::new();
    let calls = counting_origin(&mut host, |request, _| {
        let coding = request.header("accept-encoding").unwrap_or_default();
        Reply::ok(json(4000))
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60")
            .header("x-asked", &coding)
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let first = host.request(vm, get("/keyed/a", Some("gzip")));
    assert_eq!(first.header("x-asked").as_deref(), Some("gzip"));
    host.request(vm, get("/keyed/a", Some("br")));
    assert_eq!(calls.get(), 2, "one entry per keyed Accept-Encoding value");
}

#[test]
fn an_entry_too_large_for_l2_with_its_codings_keeps_its_identity_body_there() {
    // 1 MiB over 64 slots: 16 KiB a slot. Hex digits: LZ4 keeps ~10 KB, gzip and br ~5 KB each.
    const SMALL_L2: &str = r#"{
        "services": [{"name": "api", "match": {"path_prefix": "/api/"}, "cache": {}}],
        "limits": {"l2_slots": 64, "lease_slots": 32, "l2_max_bytes": 1048576}
    }"#;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let body: Vec<u8> = (0..10_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b"0123456789abcdef"[(seed % 16) as usize]
        })
        .collect();
    let mut host = Host::new();
    let served = body.clone();
    let calls = counting_origin(&mut host, move |_, _| {
        Reply::ok(served.clone())
            .header("content-type", "text/plain")
            .header("cache-control", "max-age=60")
            .header("etag", "\"hex\"")
    });
    let vms = host.start_vms(2, SMALL_L2);
    host.request(vms[0], get("/api/hex", Some("gzip")));
    let other = host.request(vms[1], get("/api/hex", Some("gzip")));
    assert!(
        cache_status(&other).contains("hit"),
        "{}",
        cache_status(&other)
    );
    assert_eq!(other.header("content-encoding").as_deref(), Some("gzip"));
    assert_eq!(decoded(&other), body);
    assert_eq!(calls.get(), 1);
    assert_eq!(metric(&host, "edge.cache.l2.too_large"), 0);
}

#[test]
fn a_range_is_cut_from_the_identity_body_whatever_the_client_accepts() {
    let (mut host, vm, calls) = setup("application/json", 4000);
    host.request(vm, get("/api/r", None));
    let ranged = host.request(
        vm,
        get("/api/r", Some("gzip, br")).header("range", "bytes=10-19"),
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.header("content-encoding"), None);
    assert_eq!(
        ranged.header("content-range").as_deref(),
        Some("bytes 10-19/4000")
    );
    assert_eq!(ranged.body, json(4000)[10..20].to_vec());
    assert!(varies_by_accept_encoding(&ranged));
    assert_eq!(calls.get(), 1);
}

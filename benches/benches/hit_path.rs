//! The policy work of one L1 hit, step by step: the cache key, the stored entry's decoding
//! (an L2 hit), the freshness decision and the `Cache-Status` value. The fuel figure
//! (`cargo test -p proxy-wasm-host --test monitoring hit_path_cost -- --nocapture`) measures
//! the same steps inside the .wasm; these say which step a change moved, natively.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edge_filter::policy::cache::entry::Entry;
use edge_filter::policy::cache::exchange::{evaluate_hit, request_facts, CacheStatus};
use edge_filter::policy::cache::generations::Generations;
use edge_filter::policy::cache::key::{cache_key, KeyInput};
use edge_filter::policy::{Config, RequestAttributes};

const NOW_S: u64 = 1_780_000_000;

/// A request's headers as the filter reads them (borrowed from the host's buffer).
const REQUEST_HEADERS: [(&str, &str); 8] = [
    (":method", "GET"),
    (":path", "/api/v1/leads/42?full=1&utm_source=mail"),
    (":authority", "edge.example.com"),
    (":scheme", "http"),
    ("user-agent", "wrk"),
    ("accept", "application/json"),
    ("accept-encoding", "gzip, br"),
    ("x-location-id", "loc-7"),
];

fn hit_path(c: &mut Criterion) {
    let registry = Config::parse_registry(include_bytes!("../../envoy/plugin-config.json"))
        .unwrap_or_else(|err| panic!("{err}"));
    let headers = REQUEST_HEADERS;
    let path = "/api/v1/leads/42?full=1&utm_source=mail";
    let service = registry.match_request(&RequestAttributes {
        authority: "edge.example.com",
        path,
        method: "GET",
    });
    let section = service
        .cache
        .as_ref()
        .unwrap_or_else(|| panic!("the example's leads service caches"));
    let input = KeyInput {
        service: &service.name,
        scheme: "http",
        authority: "edge.example.com",
        path,
        headers: &headers,
        non_utf8: &[],
    };
    c.bench_function("hit/cache key", |b| {
        b.iter(|| cache_key(black_box(section), black_box(&input)))
    });

    let key = cache_key(section, &input).unwrap_or_else(|err| panic!("{err}"));
    let entry = Entry {
        key: key.primary.clone(),
        status: 200,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("cache-control".into(), "public, max-age=60".into()),
            ("etag".into(), "\"lead-42-v3\"".into()),
            ("date".into(), "Wed, 02 Dec 2026 08:00:00 GMT".into()),
        ],
        body: br#"{"id":42,"name":"lead"}"#.repeat(300),
        request_time: NOW_S - 5,
        response_time: NOW_S - 5,
        freshness_lifetime: 60,
        etag: Some("\"lead-42-v3\"".into()),
        ..Entry::default()
    };
    let stored = entry.encode();
    c.bench_function("hit/entry decode (L2, 7 KB body)", |b| {
        b.iter(|| Entry::decode(black_box(&stored)))
    });

    let facts = request_facts("GET", &headers);
    let generations = Generations::default();
    c.bench_function("hit/freshness decision", |b| {
        b.iter(|| {
            evaluate_hit(
                black_box(&entry),
                black_box(&headers),
                black_box(&facts),
                &generations,
                NOW_S,
            )
        })
    });

    let status = CacheStatus {
        hit: true,
        ttl: Some(55),
        ..CacheStatus::default()
    };
    c.bench_function("hit/Cache-Status render", |b| {
        b.iter(|| black_box(&status).render(black_box("edge")))
    });
}

criterion_group!(benches, hit_path);
criterion_main!(benches);

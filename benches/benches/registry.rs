//! Config parsing (once per VM start) and route matching (once per request).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use edge_benches::config_with_services;
use edge_filter::policy::{Config, RequestAttributes};

fn parsing(c: &mut Criterion) {
    let example = include_str!("../../envoy/plugin-config.json");
    let large = config_with_services(256);
    c.bench_function("config/parse example (4 services)", |b| {
        b.iter(|| Config::parse_registry(black_box(example.as_bytes())))
    });
    c.bench_function("config/parse 256 services", |b| {
        b.iter(|| Config::parse_registry(black_box(large.as_bytes())))
    });
}

fn matching(c: &mut Criterion) {
    let example = Config::parse_registry(include_bytes!("../../envoy/plugin-config.json"))
        .unwrap_or_else(|err| panic!("{err}"));
    let large = Config::parse_registry(config_with_services(256).as_bytes())
        .unwrap_or_else(|err| panic!("{err}"));
    let request = |path| RequestAttributes {
        authority: "edge.example.com",
        path,
        method: "GET",
    };
    let cases = [
        ("match/example first service", &example, "/webhooks/ghl"),
        (
            "match/example third service",
            &example,
            "/api/v1/leads/42?full=1",
        ),
        ("match/example default", &example, "/static/app.js"),
        ("match/256 services last", &large, "/api/v1/s255/item"),
        ("match/256 services default", &large, "/nothing"),
    ];
    for (name, registry, path) in cases {
        c.bench_function(name, |b| {
            b.iter(|| {
                black_box(registry.match_request(black_box(&request(path))))
                    .name
                    .len()
            })
        });
    }
}

criterion_group!(benches, parsing, matching);
criterion_main!(benches);

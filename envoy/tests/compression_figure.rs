//! Figure: how much LZ4 saves on the demo origin's JSON bodies as the cache stores them, and
//! how small the br and gzip bodies the cache makes for clients are.
//! `cargo test -p edge-envoy --test compression_figure -- --nocapture` prints the table.

use std::net::SocketAddr;

use edge_envoy::launch::http_request;
use edge_envoy::origin::{OriginConfig, OriginHandle};
use edge_filter::policy::cache::encoding::{encode_all, Coding};
use edge_filter::policy::cache::entry::Entry;

fn entry(body: Vec<u8>) -> Entry {
    Entry {
        key: "k".into(),
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body,
        freshness_lifetime: 60,
        ..Default::default()
    }
}

#[test]
fn lz4_saves_most_of_the_demo_json() {
    let origin = OriginHandle::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        OriginConfig {
            latency_scale: 0.0,
            ..OriginConfig::default()
        },
    )
    .unwrap();
    let mut paths: Vec<String> = Vec::new();
    for i in 0..20 {
        paths.push(format!("/api/v1/leads/{i}"));
        paths.push(format!("/api/v1/coaching/{i}"));
    }
    for city in ["austin", "boise", "denver", "miami", "seattle"] {
        paths.push(format!("/api/v1/properties?city={city}"));
    }
    println!(
        "{:<12} {:>6} {:>10} {:>10} {:>8} {:>8} {:>8}",
        "endpoint", "bodies", "raw B", "stored B", "stored/raw", "br/raw", "gzip/raw"
    );
    let (mut all_raw, mut all_stored) = (0usize, 0usize);
    let (mut all_br, mut all_gzip) = (0usize, 0usize);
    for endpoint in ["leads", "coaching", "properties"] {
        let (mut raw, mut stored, mut count) = (0usize, 0usize, 0);
        let (mut br, mut gzip) = (0usize, 0usize);
        for path in paths.iter().filter(|p| p.contains(endpoint)) {
            let body = http_request(origin.addr(), "GET", path, &[], b"")
                .unwrap()
                .body;
            let coded = encode_all(&entry(Vec::new()).headers, &body);
            let size = |c: Coding| {
                coded
                    .iter()
                    .find(|(k, _)| *k == c)
                    .map_or(body.len(), |(_, b)| b.len())
            };
            br += size(Coding::Br);
            gzip += size(Coding::Gzip);
            let encoded = entry(body).encode();
            let (stored_len, raw_len) = Entry::stored_body_len(&encoded).unwrap();
            raw += raw_len;
            stored += stored_len;
            count += 1;
        }
        println!(
            "{endpoint:<12} {count:>6} {raw:>10} {stored:>10} {:>8.1}% {:>7.1}% {:>7.1}%",
            100.0 * stored as f64 / raw as f64,
            100.0 * br as f64 / raw as f64,
            100.0 * gzip as f64 / raw as f64
        );
        all_raw += raw;
        all_stored += stored;
        all_br += br;
        all_gzip += gzip;
    }
    let ratio = all_stored as f64 / all_raw as f64;
    println!(
        "{:<12} {:>6} {all_raw:>10} {all_stored:>10} {:>8.1}% {:>7.1}% {:>7.1}%",
        "all",
        paths.len(),
        100.0 * ratio,
        100.0 * all_br as f64 / all_raw as f64,
        100.0 * all_gzip as f64 / all_raw as f64
    );
    assert!(
        all_br < all_gzip && all_gzip < all_raw / 2,
        "br {all_br}, gzip {all_gzip}"
    );
    assert!(
        ratio < 0.5,
        "LZ4 should at least halve JSON bodies, stored/raw = {ratio:.2}"
    );
}

//! The explainer (edge-explain, natively) and the real filter (.wasm in the wasmtime host)
//! decide alike: for a table of requests and origin responses on the shipped demo
//! configuration (with `debug` on, so `Cache-Status` carries the key), the same key, the same
//! decision (answered here with a status, or forwarded) and the same `Cache-Status` — also for
//! the same request sent again some seconds later.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::time::Duration;

use edge_explain::{parse_header_lines, trace, OriginResponse, TraceRequest};
use proxy_wasm_host::test_support::counting_origin;
use proxy_wasm_host::{Host, Reply, Request};

/// The demo configuration with `debug` on for every caching service.
fn config() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../envoy/plugin-config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for service in config["services"].as_array_mut().unwrap() {
        if let Some(cache) = service.get_mut("cache") {
            cache["debug"] = serde_json::Value::Bool(true);
        }
    }
    config.to_string()
}

struct Row {
    method: &'static str,
    path: &'static str,
    headers: &'static str,
    status: u16,
    response: &'static str,
    again_after_s: Option<u64>,
}

const fn row(method: &'static str, path: &'static str, headers: &'static str) -> Row {
    Row {
        method,
        path,
        headers,
        status: 200,
        response: "cache-control: public, max-age=60",
        again_after_s: Some(5),
    }
}

const TABLE: &[Row] = &[
    row("GET", "/api/v1/leads/7?b=2&a=1", "x-location-id: loc-1"),
    row("GET", "/api/v1/leads/7", ""),
    row("GET", "/api/v1/leads/%2e%2e/x", "x-location-id: loc-1"),
    row(
        "GET",
        "/api/v1/leads/8",
        "x-location-id: a\nx_location_id: b",
    ),
    row("GET", "/api/v1/coaching/a/../b", "x-location-id: loc-1"),
    row(
        "GET",
        "/api/v1/coaching/6",
        "x-location-id: a\nx-location-id: b",
    ),
    row(
        "GET",
        "/api/v1/coaching/1",
        "x-location-id: loc-2\ncache-control: no-store",
    ),
    Row {
        response: "cache-control: max-age=10, stale-while-revalidate=30",
        again_after_s: Some(15),
        ..row("GET", "/api/v1/coaching/2", "x-location-id: loc-2")
    },
    Row {
        response: "cache-control: max-age=10",
        again_after_s: Some(3),
        ..row(
            "GET",
            "/api/v1/coaching/3",
            "x-location-id: loc-3\naccept-language: de",
        )
    },
    Row {
        response: "cache-control: max-age=10",
        again_after_s: Some(15),
        ..row("GET", "/api/v1/coaching/4", "x-location-id: loc-3")
    },
    Row {
        response: "cache-control: max-age=10, must-revalidate, stale-while-revalidate=60",
        again_after_s: Some(12),
        ..row("GET", "/api/v1/coaching/5", "x-location-id: loc-3")
    },
    Row {
        response: "cache-control: s-maxage=5, max-age=60",
        again_after_s: Some(6),
        ..row("GET", "/api/v1/leads/9", "x-location-id: loc-4")
    },
    row(
        "GET",
        "/api/v1/properties?utm_source=x&page=2&city=rome",
        "",
    ),
    Row {
        response: "cache-control: max-age=60\nset-cookie: s=1",
        ..row("GET", "/api/v1/properties?city=x", "")
    },
    Row {
        response: "cache-control: no-store",
        ..row("GET", "/api/v1/properties?city=y", "")
    },
    Row {
        response: "content-type: text/plain",
        ..row("GET", "/api/v1/properties?city=z", "")
    },
    Row {
        status: 404,
        response: "content-type: text/plain",
        ..row("GET", "/api/v1/properties?city=q", "")
    },
    row(
        "GET",
        "/api/v1/properties?city=a",
        "authorization: Bearer t",
    ),
    Row {
        response: "cache-control: max-age=60\nvary: *",
        ..row("GET", "/api/v1/properties?city=b", "")
    },
    row("GET", "/other/page", ""),
    row("POST", "/webhooks/ghl", "webhook-id: msg_1"),
    row("DELETE", "/api/v1/leads/7", "x-location-id: loc-1"),
];

#[test]
fn explainer_and_filter_decide_alike() {
    let config = config();
    let mut checked = 0;
    for row in TABLE {
        let what = format!("{} {} [{}]", row.method, row.path, row.headers);
        let explained = trace(
            &config,
            &TraceRequest {
                method: row.method.into(),
                url: format!("http://edge.test{}", row.path),
                headers: row.headers.into(),
                body: "{}".into(),
                response: Some(OriginResponse {
                    status: row.status,
                    headers: row.response.into(),
                    body_bytes: Some(2),
                }),
                now: None,
                again_after_s: row.again_after_s,
            },
        );
        assert_eq!(explained.config_error, None);

        let mut host = Host::new();
        let (status, response) = (row.status, row.response);
        let origin = counting_origin(&mut host, move |_, _| {
            let mut reply = Reply::status(status).body("{}");
            for (name, value) in parse_header_lines(response) {
                reply = reply.header(&name, &value);
            }
            reply
        });
        let vm = host.start_vm(&config).unwrap();
        let request = || {
            let mut request = Request::new(row.method, row.path);
            for (name, value) in parse_header_lines(row.headers) {
                request = request.add_header(&name, &value);
            }
            if row.method == "POST" {
                request = request.body("{}");
            }
            request
        };
        let answered = host.request(vm, request());

        // The decision: answered here with a status, or forwarded to the origin.
        match explained.local_reply {
            Some(local) => {
                assert_eq!(answered.status, local, "{what}");
                assert_eq!(origin.get(), 0, "{what}: answered here");
            }
            None => {
                assert_eq!(answered.status, row.status, "{what}");
                assert_eq!(origin.get(), 1, "{what}: forwarded");
            }
        }
        // The same Cache-Status, and through it the same key.
        assert_eq!(
            answered.header("cache-status"),
            explained.cache_status,
            "{what}: {:#?}",
            explained.steps
        );
        if let (Some(key), Some(status)) = (&explained.key, &explained.cache_status) {
            let shown = key.primary.replace('\n', "|");
            assert!(
                status.ends_with(&format!("key=\"{shown}\"")),
                "{what}: {status}"
            );
        }
        if let Some(again) = &explained.cache_status_again {
            host.advance(Duration::from_secs(row.again_after_s.unwrap()));
            let second = host.request(vm, request());
            assert_eq!(
                second.header("cache-status").as_ref(),
                Some(again),
                "{what}, again"
            );
        }
        eprintln!(
            "{what}: reply {:?}, Cache-Status {:?}, again {:?}",
            explained.local_reply, explained.cache_status, explained.cache_status_again
        );
        checked += 1;
    }
    assert_eq!(checked, TABLE.len());
}

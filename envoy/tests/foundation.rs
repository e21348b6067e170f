//! The foundation scenarios against real Envoy 1.40 (the same two run in the wasmtime host in
//! `host-tests/tests/filter_foundation.rs`): a request passes through and the origin sees
//! `x-edge-service`; an invalid configuration is refused with the field path in the log.

use std::net::SocketAddr;

use edge_envoy::launch::{http_request, test_options, test_stack, test_stack_with, Stack};

/// The origin's record of the last request it served, as JSON.
fn last_origin_request(origin: SocketAddr) -> serde_json::Value {
    let response = http_request(origin, "GET", "/__origin/requests", &[], b"").unwrap();
    let log: Vec<serde_json::Value> = serde_json::from_slice(&response.body).unwrap();
    log.last().cloned().expect("the origin served a request")
}

#[test]
fn request_passes_through_envoy_and_origin_sees_the_service() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let cases = [
        ("GET", "/api/v1/leads/42", "leads", 200),
        ("GET", "/api/v1/properties?city=austin", "properties", 200),
        ("POST", "/webhooks/ghl", "webhooks", 200),
        ("GET", "/health", "default", 200),
    ];
    for (method, path, service, status) in cases {
        let response = http_request(
            stack.listen,
            method,
            path,
            &[("x-edge-service", "spoofed")],
            b"{}",
        )
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        assert_eq!(
            response.status,
            status,
            "{method} {path}: {}",
            response.text()
        );
        let seen = last_origin_request(origin);
        assert_eq!(seen["path"], path);
        assert_eq!(
            seen["headers"]["x-edge-service"], service,
            "{method} {path}"
        );
    }
    let log = stack.envoy.log();
    assert!(
        log.contains("configured 4 service(s), default service \"default\""),
        "the filter logged its configuration:\n{log}"
    );
}

#[test]
fn invalid_configuration_is_refused_by_envoy_with_the_field_path() {
    let bad = r#"{"services": [
        {"name": "a", "match": {"path_prefix": "/a"}},
        {"name": "b", "match": {"path_prefix": "/b"}},
        {"name": "c", "match": {"path_prefix": "c/"}}
    ]}"#;
    let err = match Stack::start_with_plugin_config(&test_options(0.0), bad) {
        Ok(stack) => panic!(
            "Envoy accepted an invalid plugin configuration:\n{}",
            stack.envoy.log()
        ),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("Envoy exited"),
        "Envoy refused to start: {err}"
    );
    assert!(
        err.contains("configuration rejected: services[2].match.path_prefix: must start with '/'"),
        "the log names the field: {err}"
    );
}

#[test]
fn responses_leave_compressed_when_the_client_asks() {
    let stack = test_stack(None, 0.0);
    let path = "/api/v1/properties?city=austin";
    let plain = http_request(stack.listen, "GET", path, &[], b"").unwrap();
    let gzip = http_request(
        stack.listen,
        "GET",
        path,
        &[("accept-encoding", "gzip")],
        b"",
    )
    .unwrap();
    let brotli =
        http_request(stack.listen, "GET", path, &[("accept-encoding", "br")], b"").unwrap();
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(gzip.header("content-encoding"), Some("gzip"));
    assert_eq!(brotli.header("content-encoding"), Some("br"));
    assert!(
        gzip.body.len() < plain.body.len() / 2,
        "{} vs {}",
        gzip.body.len(),
        plain.body.len()
    );
}

/// `--bypass PREFIX`: requests under the prefix skip the filter (Envoy disables it on their
/// route), so the origin sees the client's own `x-edge-service`; everything else still goes
/// through the filter, which overwrites it.
#[test]
fn bypassed_prefixes_skip_the_filter() {
    let stack = test_stack_with(None, 0.0, |options| {
        options.bypass = vec!["/api/v1/properties".to_string()];
    });
    let origin = stack.origin.as_ref().unwrap().addr();
    for (path, seen_service) in [
        ("/api/v1/properties?city=austin", "from-client"),
        ("/api/v1/leads/42", "leads"),
        ("/health", "default"),
    ] {
        http_request(
            stack.listen,
            "GET",
            path,
            &[("x-edge-service", "from-client")],
            b"",
        )
        .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let seen = last_origin_request(origin);
        assert_eq!(seen["path"], path);
        assert_eq!(seen["headers"]["x-edge-service"], seen_service, "{path}");
    }
}

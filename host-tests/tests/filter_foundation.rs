//! The edge filter with no features enabled: it names the matched service on the upstream
//! request and otherwise leaves traffic untouched; a bad configuration is refused.
//! The same two scenarios run against real Envoy in `envoy/tests/foundation.rs`.

use proxy_wasm_host::{Host, Reply, Request, StartError};

const CONFIG: &str = r#"{
    "services": [
        {"name": "leads", "match": {"path_prefix": "/api/v1/leads/", "methods": ["GET", "HEAD"]}},
        {"name": "webhooks", "match": {"path_exact": "/webhooks/ghl"}},
        {"name": "admin", "match": {"authority": "admin.example.com"}}
    ],
    "default_service": {"name": "passthrough"}
}"#;

#[test]
fn request_passes_through_and_origin_sees_the_service() {
    let mut host = Host::new();
    host.origin(|_| {
        Reply::ok(r#"{"id": 7}"#)
            .header("content-type", "application/json")
            .header("cache-control", "max-age=60")
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let response = host.request(
        vm,
        Request::get("/api/v1/leads/7?full=1").header("x-custom", "kept"),
    );

    assert_eq!(response.status, 200);
    assert_eq!(response.body_text(), r#"{"id": 7}"#);
    assert_eq!(
        response.header("cache-control").as_deref(),
        Some("max-age=60")
    );
    assert!(!response.local_reply);
    let calls = host.origin_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].header("x-edge-service").as_deref(), Some("leads"));
    assert_eq!(calls[0].path(), "/api/v1/leads/7?full=1");
    assert_eq!(calls[0].header("x-custom").as_deref(), Some("kept"));
}

#[test]
fn services_match_in_order_with_default_for_the_rest() {
    let mut host = Host::new();
    let vm = host.start_vm(CONFIG).unwrap();
    let cases = [
        (Request::get("/api/v1/leads/1"), "leads"),
        (Request::new("DELETE", "/api/v1/leads/1"), "passthrough"),
        (Request::post("/webhooks/ghl", "{}"), "webhooks"),
        (Request::get("/webhooks/ghl/extra"), "passthrough"),
        (
            Request::get("/anything").authority("ADMIN.example.com:10000"),
            "admin",
        ),
        (Request::get("/"), "passthrough"),
    ];
    for (index, (request, expected)) in cases.into_iter().enumerate() {
        host.request(vm, request);
        let seen = host.origin_calls()[index].header("x-edge-service");
        assert_eq!(seen.as_deref(), Some(expected), "request #{index}");
    }
}

#[test]
fn client_cannot_spoof_the_service_header() {
    let mut host = Host::new();
    let vm = host.start_vm(CONFIG).unwrap();
    host.request(vm, Request::get("/").header("x-edge-service", "leads"));
    assert_eq!(
        host.origin_calls()[0].header("x-edge-service").as_deref(),
        Some("passthrough")
    );
}

#[test]
fn bodies_and_errors_pass_untouched() {
    let mut host = Host::new();
    host.origin(|request| {
        Reply::status(502)
            .header("x-origin", "yes")
            .body(request.body.clone())
            .chunked(3)
    });
    let vm = host.start_vm(CONFIG).unwrap();
    let body: Vec<Vec<u8>> = vec![b"{\"event\":".to_vec(), b"\"created\"}".to_vec()];
    let response = host.request(
        vm,
        Request::new("POST", "/webhooks/ghl")
            .chunks(body)
            .trailer("x-sum", "1"),
    );
    assert_eq!(response.status, 502);
    assert_eq!(response.body_text(), "{\"event\":\"created\"}");
    assert_eq!(response.header("x-origin").as_deref(), Some("yes"));
    assert_eq!(
        host.origin_calls()[0].trailers.get("x-sum").as_deref(),
        Some("1")
    );
}

#[test]
fn an_empty_object_passes_everything_as_default() {
    let mut host = Host::new();
    let vm = host.start_vm("{}").unwrap();
    assert_eq!(host.request(vm, Request::get("/x")).status, 200);
    assert_eq!(
        host.origin_calls()[0].header("x-edge-service").as_deref(),
        Some("default")
    );
    assert!(host
        .log_text(vm)
        .contains("configured 0 service(s), default service \"default\""));
}

#[test]
fn invalid_configuration_is_refused_with_the_field_path() {
    let mut host = Host::new();
    let bad = r#"{"services": [
        {"name": "a", "match": {"path_prefix": "/a"}},
        {"name": "b", "match": {"path_prefix": "/b"}},
        {"name": "c", "match": {"path_prefix": "c/"}}
    ]}"#;
    let err = host.start_vm(bad).unwrap_err();
    match &err {
        StartError::Rejected { function, .. } => assert_eq!(function, "proxy_on_configure"),
        StartError::Trap(trap) => panic!("the filter trapped: {trap}"),
    }
    let errors: Vec<_> = err.log().iter().filter(|l| l.level == "error").collect();
    assert_eq!(errors.len(), 1, "one error line: {}", err.log_text());
    assert_eq!(
        errors[0].message,
        "configuration rejected: services[2].match.path_prefix: must start with '/'"
    );
}

#[test]
fn an_empty_configuration_is_refused() {
    let mut host = Host::new();
    for empty in ["", "  \n", "\u{feff}"] {
        let err = host.start_vm(empty).unwrap_err();
        assert!(
            err.log_text()
                .contains("configuration rejected: config: empty (write {} for all defaults)"),
            "{}",
            err.log_text()
        );
    }
}

#[test]
fn garbage_configuration_is_refused_not_a_crash() {
    let mut host = Host::new();
    for bad in ["{", "\u{0}\u{1}", "{\"services\": 5}", "[1,2]"] {
        match host.start_vm(bad) {
            Err(StartError::Rejected { log, .. }) => {
                assert!(log
                    .iter()
                    .any(|l| l.message.starts_with("configuration rejected: ")))
            }
            Err(StartError::Trap(trap)) => panic!("config {bad:?} trapped the filter: {trap}"),
            Ok(_) => panic!("config {bad:?} was accepted"),
        }
    }
}

#[test]
fn workers_share_one_configuration_independently() {
    let mut host = Host::new();
    let vms = host.start_vms(2, CONFIG);
    host.request(vms[0], Request::get("/api/v1/leads/1"));
    host.request(vms[1], Request::get("/api/v1/leads/2"));
    let services: Vec<_> = host
        .origin_calls()
        .iter()
        .map(|c| c.header("x-edge-service").unwrap_or_default())
        .collect();
    assert_eq!(services, ["leads", "leads"]);
    // No feature is on: the filter writes only what monitoring needs (its 64 worker slots, the
    // worker-id, generations and configuration-status keys).
    let keys = host.shared_keys();
    assert!(keys.len() <= 64 + 3, "{keys:?}");
    assert!(keys
        .iter()
        .all(|k| k.starts_with("edge:mon:") || ["edge:workers", "edge:gen"].contains(&k.as_str())));
}

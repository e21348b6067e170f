//! Freshness conformance through real Envoy 1.40 (2 workers): repeated `Cache-Control` and
//! `Age` field lines as Envoy hands them to the filter, and `CDN-Cache-Control` obeyed ahead of
//! `Cache-Control`.

use std::time::Duration;

use edge_envoy::launch::{
    cache_status, http_request, test_stack_before, TestOrigin, TestOriginSpec,
};

const CONFIG: &str = r#"{
    "services": [{"name": "f", "match": {"path_prefix": "/f/"}, "cache": {}}]
}"#;

fn lines(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn repeated_lines_and_cdn_cache_control() {
    let headers_for = vec![
        (
            "/f/lines".to_string(),
            lines(&[
                ("cache-control", "max-age=3600"),
                ("cache-control", "s-maxage=1"),
            ]),
        ),
        (
            "/f/age".to_string(),
            lines(&[
                ("cache-control", "max-age=3600"),
                ("age", "7200"),
                ("age", "0"),
            ]),
        ),
        (
            "/f/bad-age".to_string(),
            lines(&[("cache-control", "max-age=3600"), ("age", "old, 0")]),
        ),
        (
            "/f/cdn".to_string(),
            lines(&[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=600"),
            ]),
        ),
        (
            "/f/cdn-short".to_string(),
            lines(&[
                ("cache-control", "max-age=3600"),
                ("cdn-cache-control", "max-age=1"),
            ]),
        ),
    ];
    let origin = TestOrigin::start(TestOriginSpec {
        get_delay: Duration::from_millis(10),
        headers_for,
        ..TestOriginSpec::default()
    })
    .unwrap();
    let stack = test_stack_before(&origin, CONFIG, 2);
    let get = |path: &str| {
        http_request(stack.listen, "GET", path, &[], b"")
            .unwrap_or_else(|err| panic!("GET {path}: {err}"))
    };
    let paths = ["/f/lines", "/f/age", "/f/bad-age", "/f/cdn", "/f/cdn-short"];
    for path in paths {
        let first = get(path);
        assert_eq!(first.status, 200, "{path}");
    }
    // Fresh for more than 2 s: only the CDN-Cache-Control response stored despite no-store.
    let cdn = get("/f/cdn");
    assert!(cache_status(&cdn).contains("hit"), "{}", cache_status(&cdn));
    assert_eq!(cdn.header("cdn-cache-control"), Some("max-age=600"));
    for path in ["/f/age", "/f/bad-age"] {
        let again = get(path);
        assert!(
            !cache_status(&again).contains("hit"),
            "{path}: {}",
            cache_status(&again)
        );
    }
    std::thread::sleep(Duration::from_millis(2100));
    for path in ["/f/lines", "/f/cdn-short"] {
        let again = get(path);
        assert!(
            !cache_status(&again).contains("hit"),
            "{path}: {}",
            cache_status(&again)
        );
        assert_eq!(origin.requests_for("GET", path), 2, "{path}");
    }
    assert_eq!(origin.requests_for("GET", "/f/cdn"), 1);
    assert_eq!(origin.requests_for("GET", "/f/age"), 2);
    assert_eq!(origin.requests_for("GET", "/f/bad-age"), 2);
}

//! Several `Vary` variants per URL through real Envoy 1.40 with 2 workers: clients alternating
//! between two languages all hit after each variant's first miss (on either worker: L2 holds
//! the URL's index and both variants), and a spelling that means the same shares a variant.

use std::time::Duration;

use edge_envoy::launch::{
    cache_status, http_request, test_stack_before, HttpResponse, TestOrigin, TestOriginSpec,
};

const CONFIG: &str = r#"{
    "services": [{"name": "pages", "match": {"path_prefix": "/pages/"}, "cache": {}}]
}"#;

#[test]
fn alternating_variants_all_hit_after_their_first_miss() {
    let origin = TestOrigin::start(TestOriginSpec {
        get_delay: Duration::from_millis(0),
        cache_control: "max-age=60".into(),
        vary: Some("accept-language".into()),
        ..TestOriginSpec::default()
    })
    .unwrap();
    let stack = test_stack_before(&origin, CONFIG, 2);
    let get = |language: &str| -> HttpResponse {
        http_request(
            stack.listen,
            "GET",
            "/pages/home",
            &[("accept-language", language)],
            b"",
        )
        .unwrap_or_else(|err| panic!("GET {language}: {err}"))
    };
    let en = get("en-US, de;q=0.5");
    let de = get("de");
    assert!(
        cache_status(&en).contains("stored"),
        "{}",
        cache_status(&en)
    );
    assert!(
        cache_status(&de).contains("fwd=vary-miss; stored"),
        "{}",
        cache_status(&de)
    );
    // New connections land on either worker.
    for round in 0..6 {
        for (language, first) in [
            ("en-US, de;q=0.5", &en),
            ("de", &de),
            ("EN-us,de;Q=0.5", &en),
        ] {
            let hit = get(language);
            assert!(
                cache_status(&hit).contains("hit"),
                "round {round}, {language}: {}",
                cache_status(&hit)
            );
            assert_eq!(hit.body, first.body, "round {round}, {language}");
        }
    }
    assert_eq!(origin.requests_for("GET", "/pages/home"), 2);
}

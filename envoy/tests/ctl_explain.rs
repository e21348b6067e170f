//! `edge-ctl explain`: the explainer's trace in a terminal, from the same code as the page
//! (offline: no edge runs).

use std::path::Path;
use std::process::Command;

fn ctl(config: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_edge-ctl"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[test]
fn explain_prints_the_trace_of_a_request() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-config.json");
    let (code, out) = ctl(
        &shipped,
        &[
            "explain",
            "http://edge.test/api/v1/leads/7?b=2&a=1",
            "--header",
            "x-location-id:loc-1",
            "--status",
            "200",
            "--response-header",
            "cache-control: max-age=60",
            "--response-header",
            "content-length: 20",
            "--again",
            "5",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("service leads: forwarded to the origin"),
        "{out}"
    );
    assert!(
        out.contains("services[2].rate_limit.tenant.header"),
        "{out}"
    );
    assert!(
        out.contains("http://edge.test/api/v1/leads/7?a=1&b=2"),
        "{out}"
    );
    assert!(
        out.contains("Cache-Status: edge; fwd=uri-miss; stored"),
        "{out}"
    );
    assert!(out.contains("again later: edge; hit; ttl=55"), "{out}");

    // Without a Content-Length the response is stored once its body has streamed, but the
    // filter's Cache-Status cannot announce it.
    let (code, out) = ctl(
        &shipped,
        &[
            "explain",
            "/api/v1/properties?city=x",
            "--status",
            "200",
            "--response-header",
            "cache-control: max-age=5",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no Content-Length"), "{out}");
    assert!(out.contains("Cache-Status: edge; fwd=uri-miss\n"), "{out}");

    let (code, out) = ctl(
        &shipped,
        &["explain", "/webhooks/ghl", "--method", "POST", "--json"],
    );
    assert_eq!(code, 0, "{out}");
    let trace: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(trace["service"], "webhooks");
    assert!(trace["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["stage"] == "dedup"));

    let bad = std::env::temp_dir().join(format!("ctl-explain-{}.json", std::process::id()));
    std::fs::write(
        &bad,
        r#"{"services":[{"name":"a","match":{"path_prefix":"/"},"cache":{"max_ttl_s":0}}]}"#,
    )
    .unwrap();
    let (code, out) = ctl(&bad, &["explain", "/"]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("services[0].cache.max_ttl_s"), "{out}");
}

#[test]
fn explain_refuses_malformed_arguments_and_decides_signed_deliveries() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-config.json");
    for args in [
        &["explain", "/t/x", "--header", "x-tenant"][..],
        &["explain", "/t/x", "--header", ":x"],
        &["explain", "/t/x", "--status", "1000"],
        &["explain", "/t/x", "--status", "99"],
        &["explain", "/t/x", "--method", "G E T"],
        &[
            "explain",
            "/t/x",
            "--status",
            "200",
            "--response-header",
            "cache-control max-age=60",
        ],
    ] {
        let (code, out) = ctl(&shipped, args);
        assert_eq!(code, 2, "{args:?}: {out}");
    }
    // --again without a response: the trace says it cannot evaluate it.
    let (code, out) = ctl(
        &shipped,
        &["explain", "/api/v1/properties?city=x", "--again", "5"],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no origin response"), "{out}");
    // A fragment is dropped (clients never send it), not traced as an ambiguous path.
    let (code, out) = ctl(&shipped, &["explain", "/api/v1/properties?city=f#frag"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("#frag is dropped"), "{out}");
    assert!(!out.contains("ambiguous-path"), "{out}");

    // A service with a signing secret: no signature headers, 401 naming the field.
    let signed =
        std::env::temp_dir().join(format!("ctl-explain-signed-{}.json", std::process::id()));
    std::fs::write(
        &signed,
        r#"{"services":[{"name":"hooks","match":{"path_prefix":"/hooks/"},
            "dedup":{"signature":{"secret":"whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1"}}}]}"#,
    )
    .unwrap();
    let (code, out) = ctl(
        &signed,
        &[
            "explain",
            "http://127.0.0.1:18082/hooks/a",
            "--method",
            "POST",
            "--header",
            "webhook-id:msg_2",
            "--body",
            r#"{"a":1}"#,
        ],
    );
    let _ = std::fs::remove_file(&signed);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("service hooks: answered here with 401"),
        "{out}"
    );
    assert!(out.contains("services[0].dedup.signature"), "{out}");
}

//! The explainer page served by the filter itself (`<prefix>/explain`, its `.wasm`, the
//! running configuration at `<prefix>/explain/config`): behind the same access check as the
//! other read endpoints (the dashboard's login page without access), gzip only, the running
//! configuration with its secrets redacted, and never a request to the origin.
//! Needs the filter built after `filter/explain/build-page.sh` (test.sh does both).

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::Read;
use std::path::PathBuf;

use edge_filter::policy::config_redact::{REDACTED_SECRET, REDACTED_TOKEN};
use edge_filter::policy::Config;
use proxy_wasm_host::{Host, Reply, Request, Response, VmId};

const TOKEN: &str = "explain-token-0123456789";
const SECRET: &str = "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1";
const PREFIX: &str = "/api/v1/performance";

fn config() -> String {
    format!(
        r#"{{
    "services": [
        {{"name": "running-only-leads", "match": {{"path_prefix": "/api/v1/leads/"}},
         "cache": {{"tenant": {{"header": "x-location-id"}}}}}},
        {{"name": "hooks", "match": {{"path_exact": "/hooks", "methods": ["POST"]}},
         "dedup": {{"signature": {{"secret": "{SECRET}"}}}}}}
    ],
    "admin": {{"token": "{TOKEN}", "allow_addresses": ["10.9.0.0/16"]}}
}}"#
    )
}

fn setup() -> (Host, VmId) {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("from the origin"));
    let vm = host.start_vm(&config()).unwrap();
    (host, vm)
}

fn get(endpoint: &str) -> Request {
    Request::get(&format!("{PREFIX}{endpoint}")).header("accept-encoding", "gzip, deflate, br")
}

fn with_token(request: Request) -> Request {
    request.header("authorization", &format!("Bearer {TOKEN}"))
}

fn gunzip(response: &Response) -> Vec<u8> {
    assert_eq!(
        response.header("content-encoding").as_deref(),
        Some("gzip"),
        "{response:?}"
    );
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(response.body.as_slice())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn page_dir() -> PathBuf {
    std::env::var_os("EDGE_EXPLAIN_PAGE_DIR").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/explain-page"
            ))
        },
        PathBuf::from,
    )
}

fn error_of(response: &Response) -> String {
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    let body: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
    body["error"].as_str().unwrap().to_string()
}

#[test]
fn the_page_needs_access_and_comes_gzip_with_the_glue_inline() {
    let (mut host, vm) = setup();
    // No token: the login page (as for the dashboard), with the page's own headers, no data.
    for (request, status) in [
        (get("/explain"), 401),
        (
            get("/explain").header("x-edge-admin-token", "wrong-token-wrong-token"),
            403,
        ),
    ] {
        let login = host.request(vm, request);
        assert_eq!(login.status, status);
        assert_eq!(
            login.header("content-type").as_deref(),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(login.header("content-encoding"), None);
        assert_eq!(login.header("x-frame-options").as_deref(), Some("DENY"));
        let csp = login.header("content-security-policy").unwrap();
        assert!(csp.contains("'wasm-unsafe-eval'"), "{csp}");
        let form = login.body_text();
        assert!(form.contains("Authorization: 'Bearer '"), "{form}");
        for data in ["wasm_bindgen", "running-only-leads", "check_config"] {
            assert!(!form.contains(data), "no page data: {data}");
        }
    }

    let page = host.request(vm, with_token(get("/explain")));
    assert_eq!(page.status, 200, "{}", page.body_text());
    for (name, value) in [
        ("content-type", "text/html; charset=utf-8"),
        ("vary", "accept-encoding"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(page.header(name).as_deref(), Some(value), "{name}");
    }
    let csp = page.header("content-security-policy").unwrap();
    for directive in [
        "script-src 'unsafe-inline' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    let html = String::from_utf8(gunzip(&page)).unwrap();
    assert!(html.contains(r#"<script id="glue" data-served="edge">"#));
    assert!(html.contains("let wasm_bindgen"), "the glue is inline");
    assert!(html.contains("check_config") && html.contains("Why was this (not) cached?"));
    assert!(
        !html.contains("src=\"edge_explain.js\""),
        "nothing loaded without the token"
    );

    // The .wasm, byte for byte what build-page.sh made.
    let wasm = host.request(vm, with_token(get("/explain/edge_explain_bg.wasm")));
    assert_eq!(wasm.status, 200);
    assert_eq!(
        wasm.header("content-type").as_deref(),
        Some("application/wasm")
    );
    assert_eq!(wasm.header("cache-control").as_deref(), Some("no-store"));
    let bytes = gunzip(&wasm);
    assert!(bytes.starts_with(b"\0asm"));
    let built = std::fs::read(page_dir().join("edge_explain_bg.wasm")).unwrap();
    assert!(bytes == built, "the .wasm build-page.sh wrote");
    let no_token = host.request(vm, get("/explain/edge_explain_bg.wasm"));
    assert_eq!(no_token.status, 401);
    assert!(error_of(&no_token).contains("token"));

    // Only gzip: a client that does not take it gets 406 and why.
    for accept in [None, Some("identity"), Some("br"), Some("gzip;q=0")] {
        for endpoint in ["/explain", "/explain/edge_explain_bg.wasm"] {
            let mut request = with_token(Request::get(&format!("{PREFIX}{endpoint}")));
            if let Some(accept) = accept {
                request = request.header("accept-encoding", accept);
            }
            let refused = host.request(vm, request);
            assert_eq!(refused.status, 406, "{endpoint} {accept:?}");
            assert!(error_of(&refused).contains("Accept-Encoding: gzip"));
        }
    }
    // From an allowed address (with a local Host) no token is needed, as for /metrics.
    host.set_property(vm, "source.address", b"10.9.3.4:50000");
    let local = host.request(vm, get("/explain").authority("127.0.0.1:10000"));
    assert_eq!(local.status, 200);
    assert!(!gunzip(&local).is_empty());
    assert!(host.origin_calls().is_empty());
}

#[test]
fn the_running_configuration_comes_with_its_secrets_redacted() {
    let (mut host, vm) = setup();
    let refused = host.request(vm, get("/explain/config"));
    assert_eq!(refused.status, 401);
    assert!(!refused.body_text().contains("running-only-leads"));
    let response = host.request(vm, with_token(get("/explain/config")));
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        response.header("cache-control").as_deref(),
        Some("no-store")
    );
    assert_eq!(
        response.header("x-edge-redacted").as_deref(),
        Some("admin.token, services[1].dedup.signature.secret")
    );
    let text = response.body_text();
    assert!(
        !text.contains(TOKEN) && !text.contains(&SECRET[6..]),
        "{text}"
    );
    let running: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(running["admin"]["token"], REDACTED_TOKEN);
    assert_eq!(
        running["services"][1]["dedup"]["signature"]["secret"],
        REDACTED_SECRET
    );
    assert_eq!(running["services"][0]["name"], "running-only-leads");
    assert_eq!(running["admin"]["allow_addresses"][0], "10.9.0.0/16");
    // It validates as it is: the explainer (and `edge-ctl explain --config`) take it.
    let parsed = Config::parse(text.as_bytes()).unwrap();
    assert_eq!(parsed.services.len(), 2);
    // It needs no coding (small JSON).
    let plain = host.request(
        vm,
        with_token(Request::get(&format!("{PREFIX}/explain/config"))),
    );
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("content-encoding"), None);
    assert!(host.origin_calls().is_empty());
}

/// Methods, foreign origins, query strings and path variants: as for the other read endpoints,
/// and nothing under `<prefix>/explain` ever reaches the origin.
#[test]
fn tricks_behave_as_on_the_other_read_endpoints() {
    let (mut host, vm) = setup();
    let status = |host: &mut Host, request: Request| host.request(vm, request).status;
    for endpoint in [
        "/explain",
        "/explain/config",
        "/explain/edge_explain_bg.wasm",
    ] {
        let path = format!("{PREFIX}{endpoint}");
        // HEAD: the headers of GET, no body.
        let head = host.request(vm, with_token(get(endpoint).header(":method", "HEAD")));
        assert_eq!(head.status, 200, "{endpoint}");
        assert!(head.body.is_empty(), "{endpoint}");
        // Other methods: 405 with the token, the refusal without (as /metrics).
        for method in ["POST", "PUT", "DELETE"] {
            let request = |path: &str| {
                Request::new(method, path)
                    .header("accept-encoding", "gzip")
                    .header("content-type", "application/json")
            };
            let metrics = format!("{PREFIX}/metrics");
            assert_eq!(
                status(&mut host, with_token(request(&path))),
                status(&mut host, with_token(request(&metrics))),
                "{method} {endpoint}"
            );
            assert_eq!(status(&mut host, with_token(request(&path))), 405);
            assert_eq!(
                status(&mut host, request(&path)),
                401,
                "{method} {endpoint}"
            );
        }
        // A page of another site, even with the token: 403 (as /metrics).
        for (name, value) in [
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ] {
            let foreign = host.request(vm, with_token(get(endpoint)).header(name, value));
            assert_eq!(foreign.status, 403, "{endpoint} {name}");
            assert!(!foreign.body_text().contains("running-only-leads"));
            assert!(foreign.header("content-encoding").is_none());
        }
        // A rebound Host from an allowed address: 403.
        host.set_property(vm, "source.address", b"10.9.3.4:50000");
        assert_eq!(
            status(&mut host, get(endpoint).authority("evil.example:10000")),
            403
        );
        host.set_property(vm, "source.address", b"192.0.2.1:50000");
        // A query string changes nothing.
        let queried = host.request(vm, with_token(get(&format!("{endpoint}?x=1&y=%2e%2e"))));
        assert_eq!(queried.status, 200, "{endpoint}?");
    }
    // Path tricks under /explain/: refused without the token, 404 with it; never the origin.
    for trick in [
        "/explain/../metrics",
        "/explain/%2e%2e/metrics",
        "/explain/..%2fmetrics",
        "/explain//config",
        "/explain/config/",
        "/explain/edge_explain.js",
        "/explain/index.html",
        "/explain/demo-config.json",
    ] {
        assert_eq!(status(&mut host, get(trick)), 401, "{trick}");
        let found = host.request(vm, with_token(get(trick)));
        assert_eq!(found.status, 404, "{trick}");
        assert_eq!(error_of(&found), "no such explainer resource");
    }
    assert!(
        host.origin_calls().is_empty(),
        "nothing under {PREFIX}/explain reaches the origin"
    );
    // Names that only look like an endpoint are still under the prefix: the edge's, answered
    // 404 (401 without the token), never forwarded with the token to an origin that may
    // answer them. A path that only starts like the prefix is not under it.
    for near in [
        "//explain",
        "/%65xplain",
        "/explainer",
        "/EXPLAIN",
        "/explain%2Fconfig",
        "",
        "/",
    ] {
        assert_eq!(status(&mut host, get(near)), 401, "{near:?}");
        let found = host.request(vm, with_token(get(near)));
        assert_eq!((found.status, found.local_reply), (404, true), "{near:?}");
        assert_eq!(error_of(&found), "no such management endpoint");
    }
    let post = get("/health").header(":method", "POST");
    let posted = host.request(
        vm,
        with_token(post.header("content-type", "application/json")),
    );
    assert_eq!(posted.status, 405);
    assert!(host.origin_calls().is_empty());
    let beside = host.request(
        vm,
        with_token(Request::get(&format!("{PREFIX}x/explain"))).header("x-edge-admin-token", TOKEN),
    );
    assert!(!beside.local_reply);
    let calls = host.origin_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].headers.get("x-edge-admin-token"),
        None,
        "the token stays at the edge"
    );
}

/// `/explain/config` redacts a configuration once: the page asks for it on every load, and a
/// large configuration takes a worker long to redact.
#[test]
fn the_running_configuration_is_redacted_once() {
    let services: Vec<String> = (0..200)
        .map(|i| {
            format!(
                r#"{{"name": "hooks-{i}", "match": {{"path_exact": "/hooks/{i}", "methods": ["POST"]}},
                    "dedup": {{"signature": {{"secret": "{SECRET}"}}}}}}"#
            )
        })
        .collect();
    let config = format!(
        r#"{{"services": [{}], "admin": {{"token": "{TOKEN}"}}}}"#,
        services.join(",")
    );
    let mut host = Host::new();
    let vm = host.start_vm(&config).unwrap();
    let mut fuel = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..3 {
        let before = host.fuel_used(vm);
        let response = host.request(vm, with_token(get("/explain/config")));
        assert_eq!(response.status, 200);
        fuel.push(host.fuel_used(vm) - before);
        bodies.push(response.body);
    }
    assert!(bodies.iter().all(|b| b == &bodies[0]));
    assert!(!String::from_utf8_lossy(&bodies[0]).contains(&SECRET[6..]));
    assert!(
        fuel[1] * 4 < fuel[0] && fuel[2] * 4 < fuel[0],
        "the first answer redacts, the next ones reuse it: {fuel:?}"
    );
}

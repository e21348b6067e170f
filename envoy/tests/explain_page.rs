//! The explainer page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `envoy/setup.sh`) loads the page `filter/explain/build-page.sh` built (test.sh builds it)
//! from a local file server, with the demo configuration and a request pasted in through the
//! page's link fragment; the test reads the decisions the page shows, prints how long a trace
//! takes in the browser and the page's weight, and saves a screenshot to
//! `target/test-artifacts/explain-page.png`.
//!
//! And the page served by the running edge (Envoy with the filter built after the page, as
//! test.sh builds them): opened without the token it shows the token form; with the token typed
//! in (over the DevTools protocol) it loads with the configuration the edge runs — a service
//! the demo file does not have, its secrets redacted — and traces a request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use edge_envoy::launch::{chromium_run, http_request, test_stack, Browser};

fn page_dir() -> PathBuf {
    let dir = std::env::var_os("EDGE_EXPLAIN_PAGE").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/explain-page"),
        PathBuf::from,
    );
    assert!(
        dir.join("edge_explain_bg.wasm").exists(),
        "{} has no page: filter/explain/build-page.sh builds it (test.sh does)",
        dir.display()
    );
    dir
}

/// A static file server for `dir` on a free 127.0.0.1 port (a thread per connection; it
/// lives as long as the test process).
fn serve(dir: PathBuf) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let dir = dir.clone();
            std::thread::spawn(move || answer(stream, &dir));
        }
    });
    addr
}

fn answer(mut stream: TcpStream, dir: &Path) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let name = if path == "/" {
        "index.html"
    } else {
        path.trim_start_matches('/')
    };
    let (status, body, kind) = match (name.contains(".."), std::fs::read(dir.join(name))) {
        (false, Ok(body)) => {
            let kind = match name.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("wasm") => "application/wasm",
                Some("json") => "application/json",
                _ => "application/octet-stream",
            };
            ("200 OK", body, kind)
        }
        _ => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

/// Percent-encodes a fragment parameter value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Text (tags removed) of the element carrying `anchor` (an attribute snippet).
fn text_of(dom: &str, anchor: &str) -> String {
    let Some(start) = dom.find(anchor) else {
        return String::new();
    };
    let tag_at = dom[..start].rfind('<').unwrap() + 1;
    let tag: String = dom[tag_at..]
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let open = start + dom[start..].find('>').unwrap() + 1;
    let close = open + dom[open..].find(&format!("</{tag}>")).unwrap();
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[open..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .trim()
        .to_string()
}

fn gzip_len(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap().len()
}

#[test]
fn the_page_traces_a_request_with_the_demo_configuration() {
    let dir = page_dir();
    let addr = serve(dir.clone());
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-config.json"))
            .unwrap();
    let fragment = [
        ("config", demo.as_str()),
        ("method", "GET"),
        (
            "url",
            "http://edge.test/api/v1/leads/7?utm_source=x&b=2&a=1",
        ),
        (
            "headers",
            "x-location-id: loc-1\nx-forwarded-host: evil.test",
        ),
        ("status", "200"),
        (
            "response",
            "cache-control: public, max-age=60\ncontent-type: application/json",
        ),
        ("again", "5"),
        ("cache_status", "edge; hit; ttl=55"),
        // Not a field the link fills: ignored.
        ("demo-button", "from-the-link"),
    ]
    .iter()
    .map(|(name, value)| format!("{name}={}", encode(value)))
    .collect::<Vec<_>>()
    .join("&");
    let url = format!("http://{addr}/#{fragment}");

    let dom = chromium_run_sized(&url, 10_000, "--dump-dom");
    assert!(
        dom.contains(r#"data-ready="true""#),
        "the page loaded its wasm: {dom}"
    );
    assert!(
        dom.contains(r#"data-valid="true""#),
        "the demo configuration is valid"
    );
    assert_eq!(
        text_of(&dom, r#"data-field="service""#),
        "service leads: forwarded to the origin"
    );
    assert_eq!(
        text_of(&dom, r#"data-field="cache-status""#),
        "Cache-Status: edge; fwd=uri-miss; stored"
    );
    assert_eq!(
        text_of(&dom, r#"data-field="cache-status-again""#),
        "again later: edge; hit; ttl=55"
    );
    for (stage, shown) in [
        ("service", "services[2].match"),
        ("rate_limit", "tenant loc-1"),
        ("breaker", "edge:breaker:leads"),
        ("cache_key", "http://edge.test/api/v1/leads/7?a=1&b=2"),
        ("cache_key", "x-forwarded-host"),
        ("freshness", "60 s from max-age"),
        ("stale", "stale-while-revalidate window: none"),
    ] {
        let rows: Vec<&str> = dom
            .split(&format!(r#"<tr data-stage="{stage}">"#))
            .skip(1)
            .collect();
        assert!(
            rows.iter().any(|row| {
                let row = row.split("</tr>").next().unwrap().replace("&amp;", "&");
                row.contains(shown)
            }),
            "{stage}: {shown} shown"
        );
    }
    assert!(
        dom.contains("ttl=55: fresh for 55 more seconds"),
        "Cache-Status explained"
    );
    assert!(
        dom.contains(r#"data-service="webhooks""#),
        "services summarised"
    );
    assert!(
        !dom.contains("from-the-link"),
        "the link sets only the page's fields"
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    assert!(
        !html.contains("XMLHttpRequest") && !html.contains("clock"),
        "no test hook fetching URLs from the link"
    );

    // Malformed fields are refused, naming the line, and nothing is traced; a URL's fragment is
    // dropped (clients never send it) and the trace says so.
    let demo_link = |pairs: &[(&str, &str)]| {
        let mut all = vec![("config", demo.as_str())];
        all.extend_from_slice(pairs);
        let fragment = all
            .iter()
            .map(|(name, value)| format!("{name}={}", encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        chromium_run_sized(&format!("http://{addr}/#{fragment}"), 10_000, "--dump-dom")
    };
    for (pairs, shown) in [
        (
            &[("url", "/api/v1/leads/7"), ("headers", "x-location-id ab")][..],
            r#"request header line 1: "x-location-id ab""#,
        ),
        (
            &[
                ("url", "/api/v1/leads/7"),
                ("status", "200"),
                ("response", "cache-control max-age=60"),
            ],
            "response header line 1",
        ),
        (
            &[("url", "/api/v1/leads/7"), ("again", "abc")],
            "again after: ",
        ),
    ] {
        let dom = demo_link(pairs);
        let error = text_of(&dom, r#"data-field="input-error""#);
        assert!(
            error.starts_with("not traced: ") && error.contains(shown),
            "{pairs:?}: {error}"
        );
        assert!(!dom.contains("<tr data-stage="), "nothing traced");
    }
    let dom = demo_link(&[("url", "/api/v1/properties?city=f#frag")]);
    assert!(
        dom.contains(r#"<tr data-stage="request">"#),
        "fragment noted"
    );
    assert!(!dom.contains("ambiguous-path"), "not traced as a bypass");

    // A configuration the filter refuses: its message and field path, as the filter logs them.
    let refused =
        r#"{"services":[{"name":"a","match":{"path_prefix":"/"},"cache":{"max_ttl_s":0}}]}"#;
    let bad = chromium_run_sized(
        &format!("http://{addr}/#config={}&url=%2F", encode(refused)),
        10_000,
        "--dump-dom",
    );
    assert!(bad.contains(r#"data-valid="false""#), "refused");
    assert!(
        bad.contains(r#"data-error-path="services[0].cache.max_ttl_s""#),
        "the field path is shown"
    );

    // How long a trace takes: in real time (virtual time stands the page's clocks still).
    let mut browser = Browser::start((1280, 1100));
    browser.navigate(&url);
    let timed = browser.wait_for(
        "the page to time its trace",
        "document.body && document.body.dataset.ready === 'true' && document.getElementById('timing').dataset.traceMs",
        Duration::from_secs(60),
    );
    drop(browser);
    let trace_ms: f64 = timed.as_str().unwrap_or_default().parse().unwrap();
    assert!(trace_ms > 0.0, "the trace was timed");
    let weight: Vec<(String, usize, usize)> =
        ["index.html", "edge_explain.js", "edge_explain_bg.wasm"]
            .iter()
            .map(|name| {
                let bytes = std::fs::read(dir.join(name)).unwrap();
                (name.to_string(), bytes.len(), gzip_len(&bytes))
            })
            .collect();
    let (raw, gz) = weight
        .iter()
        .fold((0, 0), |(r, g), (_, raw, gz)| (r + raw, g + gz));
    for (name, raw, gz) in &weight {
        println!("page weight: {name}: {raw} bytes, {gz} gzip");
    }
    println!("page weight: total {raw} bytes, {gz} bytes gzip");
    println!(
        "one trace in headless Chromium: {:.0} µs (mean of 200)",
        trace_ms * 1000.0
    );

    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("explain-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium_run_sized(&url, 10_000, &format!("--screenshot={}", shot.display()));
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot saved ({size} bytes)");
    println!("explain page screenshot: {}", shot.display());
}

fn chromium_run_sized(url: &str, budget_ms: u64, mode: &str) -> String {
    chromium_run(url, budget_ms, mode, (1280, 1100))
}

const TOKEN: &str = "explain-served-token-0123456789";
/// In the running configuration, not in the demo file the static page loads.
const RUNNING_ONLY: &str = "probe-running-only";

/// The demo configuration plus a caching service of its own, a webhook signing secret, and
/// access by token only (no allowed addresses: loopback needs the token too).
fn running_config() -> String {
    let demo =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("plugin-config.json"))
            .unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&demo).unwrap();
    assert!(!demo.contains(RUNNING_ONLY));
    let services = config["services"].as_array_mut().unwrap();
    services.insert(
        0,
        serde_json::json!({
            "name": RUNNING_ONLY,
            "match": {"path_prefix": "/api/v1/probe/"},
            "cache": {"tenant": {"header": "x-location-id"}}
        }),
    );
    services[1]["dedup"]["signature"] =
        serde_json::json!({"secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1"});
    config["admin"] = serde_json::json!({ "token": TOKEN });
    serde_json::to_string_pretty(&config).unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn origin_total(origin: SocketAddr) -> u64 {
    let stats = http_request(origin, "GET", "/__origin/stats", &[], b"").unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    stats["total"].as_u64().unwrap()
}

#[test]
fn the_running_edge_serves_the_page_with_its_configuration_behind_the_token() {
    let stack = test_stack(Some(&running_config()), 0.0);
    let (listen, origin) = (stack.listen, stack.origin.as_ref().unwrap().addr());
    let prefix = "/api/v1/performance";
    let bearer = format!("Bearer {TOKEN}");
    let gzip = [
        ("accept-encoding", "gzip"),
        ("authorization", bearer.as_str()),
    ];

    // Through Envoy: the login page without the token, the page gzip with it (not encoded
    // again by Envoy's compressors), 406 for a client that takes no gzip.
    let login = http_request(listen, "GET", &format!("{prefix}/explain"), &[], b"").unwrap();
    assert_eq!(login.status, 401);
    assert!(login.text().contains("admin token") && !login.text().contains(RUNNING_ONLY));
    let page = http_request(listen, "GET", &format!("{prefix}/explain"), &gzip, b"").unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(page.header("content-encoding"), Some("gzip"));
    let html = String::from_utf8(gunzip(&page.body)).unwrap();
    assert!(html.contains(r#"data-served="edge""#));
    let wasm = http_request(
        listen,
        "GET",
        &format!("{prefix}/explain/edge_explain_bg.wasm"),
        &gzip,
        b"",
    )
    .unwrap();
    assert_eq!(wasm.status, 200);
    assert!(gunzip(&wasm.body).starts_with(b"\0asm"));
    let identity = http_request(
        listen,
        "GET",
        &format!("{prefix}/explain"),
        &[("authorization", bearer.as_str())],
        b"",
    )
    .unwrap();
    assert_eq!(identity.status, 406, "{}", identity.text());

    // The browser: the token form, the token typed in, the page with the running configuration.
    let mut browser = Browser::start((1280, 1100));
    browser.navigate(&format!("http://{listen}{prefix}/explain"));
    browser.wait_for(
        "the token form",
        "document.getElementById('t') !== null",
        Duration::from_secs(30),
    );
    let shown = browser.eval("document.body.innerText");
    assert!(
        !shown.as_str().unwrap().contains(RUNNING_ONLY),
        "no data before the token"
    );
    browser.eval("document.getElementById('t').focus()");
    browser.type_text(TOKEN);
    browser.press_enter();
    browser.wait_for(
        "the page to load its .wasm and the running configuration",
        "document.body && document.body.dataset.ready === 'true'",
        Duration::from_secs(60),
    );
    let source = browser.eval("document.getElementById('config-source').dataset.source");
    assert_eq!(source, "running");
    let note = browser.eval("document.getElementById('config-source').textContent");
    let note = note.as_str().unwrap();
    assert!(note.contains("token redacted"), "{note}");
    assert!(
        note.contains("services[1].dedup.signature.secret"),
        "{note}"
    );
    let config = browser.eval("document.getElementById('config').value");
    let config = config.as_str().unwrap();
    assert!(
        config.contains(RUNNING_ONLY),
        "the running configuration is preloaded"
    );
    assert!(!config.contains(TOKEN) && config.contains("redacted-admin-token"));
    assert_eq!(
        browser.eval("document.getElementById('config-result').dataset.valid"),
        "true",
        "the redacted configuration validates"
    );
    assert_eq!(
        browser.eval(&format!(
            "document.querySelector('[data-service=\"{RUNNING_ONLY}\"]') !== null"
        )),
        true
    );

    // Trace a request to the running-only service.
    browser.eval(
        r#"(() => {
          const set = (id, v) => { document.getElementById(id).value = v; };
          set('url', 'http://edge.test/api/v1/probe/7?utm_source=x&b=2&a=1');
          set('headers', 'x-location-id: loc-9');
          set('status', '200');
          set('response', 'cache-control: public, max-age=60\ncontent-type: application/json');
          set('again', '5');
          document.getElementById('trace-button').click();
        })()"#,
    );
    let summary = browser.wait_for(
        "the trace",
        "document.querySelector('[data-field=\"service\"]')?.textContent",
        Duration::from_secs(30),
    );
    assert_eq!(
        summary,
        format!("service {RUNNING_ONLY}: forwarded to the origin")
    );
    let text = |browser: &mut Browser, field: &str| {
        browser.eval(&format!(
            "document.querySelector('[data-field=\"{field}\"]').textContent"
        ))
    };
    assert_eq!(
        text(&mut browser, "cache-status"),
        "Cache-Status: edge; fwd=uri-miss; stored"
    );
    assert_eq!(
        text(&mut browser, "cache-status-again"),
        "again later: edge; hit; ttl=55"
    );
    let rows = browser.eval(
        "[...document.querySelectorAll('#trace tbody tr')].map(tr => tr.dataset.stage + ' | ' + tr.textContent)",
    );
    let rows: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for (stage, shown) in [
        ("service", "services[0].match"),
        ("cache_key", "http://edge.test/api/v1/probe/7?a=1&b=2"),
        ("cache_key", "loc-9"),
        ("freshness", "60 s from max-age"),
    ] {
        assert!(
            rows.iter()
                .any(|row| row.starts_with(&format!("{stage} |")) && row.contains(shown)),
            "{stage}: {shown} shown in {rows:#?}"
        );
    }
    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("explain-page-served.png");
    let size = browser.screenshot(&shot);
    assert!(size > 10_000, "screenshot saved ({size} bytes)");
    println!("served explain page screenshot: {}", shot.display());
    // A signed delivery under the redacted secret: what the trace can decide, and what not.
    let mut delivery = |headers: &str| {
        browser.eval(&format!(
            r#"(() => {{
              const set = (id, v) => {{ document.getElementById(id).value = v; }};
              set('method', 'POST');
              set('url', 'http://edge.test/webhooks/ghl');
              set('headers', {headers:?});
              set('body', '{{"a":1}}');
              set('status', '');
              set('again', '');
              document.getElementById('trace-button').click();
              return document.querySelector('[data-field="service"]').textContent;
            }})()"#
        ))
    };
    assert_eq!(
        delivery("webhook-id: msg_2"),
        "service webhooks: answered here with 401"
    );
    let signed =
        delivery("webhook-id: msg_2\nwebhook-timestamp: 1700000000\nwebhook-signature: v1,AAAA");
    assert!(
        signed.as_str().unwrap().starts_with(
            "service webhooks: answered here with 401 unless the webhook signature verifies"
        ),
        "{signed}"
    );

    drop(browser);
    assert_eq!(origin_total(origin), 0, "nothing reached the origin");
}

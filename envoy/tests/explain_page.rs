//! The explainer page in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `envoy/setup.sh`) loads the page `filter/explain/build-page.sh` built (test.sh builds it)
//! from a local file server, with the demo configuration and a request pasted in through the
//! page's link fragment; the test reads the decisions the page shows, prints how long a trace
//! takes in the browser and the page's weight, and saves a screenshot to
//! `target/test-artifacts/explain-page.png`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use edge_envoy::launch::chromium_run;

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
    if path == "/clock" {
        // Wall-clock milliseconds: the page times its traces with it (virtual time stands
        // the page's own clocks still).
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            * 1000.0;
        let body = format!("{ms:.3}");
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncache-control: no-store\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body.as_bytes());
        return;
    }
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

fn attribute(dom: &str, name: &str) -> String {
    let at = dom
        .find(&format!("{name}=\""))
        .map(|at| at + name.len() + 2);
    at.and_then(|at| dom[at..].split('"').next())
        .unwrap_or_default()
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
        ("clock", "/clock"),
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

    let trace_ms: f64 = attribute(&dom, "data-trace-ms").parse().unwrap();
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

//! The demo origin over real HTTP: every endpoint, ETag/304, stats, the request log, fault
//! injection (503 and connection resets), and the `demo-origin` binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_envoy::origin::{
    parse_cache_control_flag, parse_fault_flag, Fault, OriginConfig, OriginHandle,
};
use serde_json::{json, Value};

/// A parsed HTTP/1.1 response; header names lower-case.
#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Sends one request with `Connection: close` and returns every byte the server sent
/// before closing (empty when it closed, or reset, without answering).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed: {e}"),
        }
    }
    raw
}

fn parse(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        assert_eq!(body.len(), len, "body length vs content-length");
    } else if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("chunk size line");
        let size_text = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    parse(&exchange(addr, method, path, headers, body))
}

fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

fn post_json(addr: SocketAddr, path: &str, v: &Value) -> Resp {
    let body = serde_json::to_vec(v).expect("json");
    request(
        addr,
        "POST",
        path,
        &[("content-type", "application/json")],
        &body,
    )
}

fn start() -> OriginHandle {
    start_with(OriginConfig {
        latency_scale: 0.0,
        ..OriginConfig::default()
    })
}

fn start_with(config: OriginConfig) -> OriginHandle {
    OriginHandle::start(SocketAddr::from(([127, 0, 0, 1], 0)), config).expect("origin starts")
}

fn assert_common(r: &Resp, endpoint: &str) {
    assert_eq!(r.header("x-origin-endpoint"), Some(endpoint), "{r:?}");
    assert!(r.header("date").is_some(), "no Date header: {r:?}");
}

#[test]
fn health_answers_ok() {
    let origin = start();
    assert!(origin.addr().ip().is_loopback());
    assert_ne!(origin.addr().port(), 0);
    let r = get(origin.addr(), "/health");
    assert_eq!(r.status, 200);
    assert_common(&r, "health");
    assert_eq!(r.json(), json!({ "status": "ok" }));
}

#[test]
fn leads_are_cacheable_deterministic_and_honour_if_none_match() {
    let origin = start();
    let a = get(origin.addr(), "/api/v1/leads/42");
    assert_eq!(a.status, 200);
    assert_common(&a, "leads");
    assert_eq!(a.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    assert!((2_000..=8_000).contains(&a.body.len()), "{}", a.body.len());
    let v = a.json();
    assert_eq!(v["id"], "42");
    assert!(v["full_name"].is_string());
    assert!(v["contact"]["email"].is_string());
    assert!(!v["history"].as_array().expect("history").is_empty());
    assert!(v["scores"]["overall"].is_u64());
    let etag = a.header("etag").expect("etag").to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2);

    let b = get(origin.addr(), "/api/v1/leads/42");
    assert_eq!(b.body, a.body);
    assert_eq!(b.header("etag"), Some(etag.as_str()));
    let other = get(origin.addr(), "/api/v1/leads/43");
    assert_ne!(other.header("etag"), Some(etag.as_str()));

    let nm = request(
        origin.addr(),
        "GET",
        "/api/v1/leads/42",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!(nm.status, 304);
    assert_common(&nm, "leads");
    assert!(nm.body.is_empty());
    assert_eq!(nm.header("etag"), Some(etag.as_str()));
    assert_eq!(nm.header("cache-control"), Some("public, max-age=60"));

    let stale = request(
        origin.addr(),
        "GET",
        "/api/v1/leads/42",
        &[("if-none-match", "\"0000\"")],
        b"",
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, a.body);
}

#[test]
fn cache_control_override_applies_to_200_and_304_of_its_endpoint_only() {
    let origin = start_with(OriginConfig {
        latency_scale: 0.0,
        cache_control: vec![
            parse_cache_control_flag("leads:max-age=1, stale-while-revalidate=5").expect("flag"),
        ],
        ..OriginConfig::default()
    });
    let swr = Some("max-age=1, stale-while-revalidate=5");
    let a = get(origin.addr(), "/api/v1/leads/7");
    assert_eq!(a.status, 200);
    assert_eq!(a.header("cache-control"), swr);
    let etag = a.header("etag").expect("etag").to_string();
    let nm = request(
        origin.addr(),
        "GET",
        "/api/v1/leads/7",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!(nm.status, 304);
    assert_eq!(nm.header("cache-control"), swr);
    let other = get(origin.addr(), "/api/v1/coaching/7");
    assert_eq!(other.header("cache-control"), Some("public, max-age=30"));
}

#[test]
fn coaching_tips() {
    let origin = start();
    let r = get(origin.addr(), "/api/v1/coaching/lead-7");
    assert_eq!(r.status, 200);
    assert_common(&r, "coaching");
    assert_eq!(r.header("cache-control"), Some("public, max-age=30"));
    assert!(r.header("etag").is_some());
    assert!((1_000..=5_000).contains(&r.body.len()), "{}", r.body.len());
    let v = r.json();
    assert_eq!(v["lead_id"], "lead-7");
    assert!(!v["tips"].as_array().expect("tips").is_empty());
    let etag = r.header("etag").unwrap_or_default().to_string();
    let nm = request(
        origin.addr(),
        "GET",
        "/api/v1/coaching/lead-7",
        &[("if-none-match", &etag)],
        b"",
    );
    assert_eq!(nm.status, 304);
}

#[test]
fn properties_by_city_and_missing_city() {
    let origin = start();
    let r = get(origin.addr(), "/api/v1/properties?city=Austin");
    assert_eq!(r.status, 200);
    assert_common(&r, "properties");
    assert_eq!(r.header("cache-control"), Some("public, max-age=120"));
    assert!(r.header("etag").is_some());
    assert!(
        (10_000..=20_000).contains(&r.body.len()),
        "{}",
        r.body.len()
    );
    let v = r.json();
    assert_eq!(v["city"], "Austin");
    let listings = v["listings"].as_array().expect("listings");
    assert_eq!(v["count"], listings.len());
    assert!(listings.iter().all(|l| l["address"]["city"] == "Austin"));

    let again = get(origin.addr(), "/api/v1/properties?city=Austin");
    assert_eq!(again.body, r.body);
    let other = get(origin.addr(), "/api/v1/properties?city=Denver");
    assert_ne!(other.body, r.body);

    for path in [
        "/api/v1/properties",
        "/api/v1/properties?city=",
        "/api/v1/properties?town=x",
    ] {
        let bad = get(origin.addr(), path);
        assert_eq!(bad.status, 400, "{path}");
        assert_common(&bad, "properties");
        assert!(bad.json()["error"].as_str().unwrap_or("").contains("city"));
    }
}

#[test]
fn webhooks_acknowledge_body_and_id() {
    let origin = start();
    let payload = br#"{"type":"ContactCreate","contactId":"abc"}"#;
    let r = request(
        origin.addr(),
        "POST",
        "/webhooks/ghl",
        &[
            ("content-type", "application/json"),
            ("webhook-id", "wh_123"),
        ],
        payload,
    );
    assert_eq!(r.status, 200);
    assert_common(&r, "webhooks");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(
        r.json(),
        json!({ "received": true, "id": "wh_123", "bytes": payload.len() })
    );

    let r = request(
        origin.addr(),
        "POST",
        "/webhooks/ghl",
        &[("idempotency-key", "key-9")],
        b"x",
    );
    assert_eq!(
        r.json(),
        json!({ "received": true, "id": "key-9", "bytes": 1 })
    );
    let r = request(origin.addr(), "POST", "/webhooks/ghl", &[], b"");
    assert_eq!(
        r.json(),
        json!({ "received": true, "id": null, "bytes": 0 })
    );

    // Only POST is routed.
    assert_eq!(get(origin.addr(), "/webhooks/ghl").status, 405);
}

#[test]
fn stats_count_each_endpoint_and_reset_clears() {
    let origin = start();
    let addr = origin.addr();
    get(addr, "/health");
    get(addr, "/health");
    get(addr, "/api/v1/leads/1");
    get(addr, "/api/v1/coaching/1");
    get(addr, "/api/v1/properties?city=Boise");
    get(addr, "/api/v1/properties"); // 400, still counted
    request(addr, "POST", "/webhooks/ghl", &[], b"{}");
    get(addr, "/__origin/faults"); // control requests are not counted
    get(addr, "/nowhere"); // nor unknown paths
    assert_eq!(get(addr, "/nowhere").status, 404);

    let s = get(addr, "/__origin/stats");
    assert_eq!(s.status, 200);
    assert_eq!(
        s.json(),
        json!({
            "total": 7,
            "requests": { "webhooks": 1, "coaching": 1, "leads": 1, "properties": 2, "health": 2 }
        })
    );

    let r = request(addr, "POST", "/__origin/reset", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(get(addr, "/__origin/stats").json()["total"], 0);
    assert_eq!(get(addr, "/__origin/requests").json(), json!([]));
}

#[test]
fn request_log_shows_headers_that_reached_the_origin() {
    let origin = start();
    let addr = origin.addr();
    request(
        addr,
        "GET",
        "/api/v1/leads/77?view=full",
        &[
            ("X-Edge-Service", "leads"),
            ("accept", "application/json"),
            ("accept", "text/plain"),
        ],
        b"",
    );
    get(addr, "/health");
    let log = get(addr, "/__origin/requests").json();
    let entries = log.as_array().expect("array");
    assert_eq!(entries.len(), 2);
    let first = &entries[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/api/v1/leads/77?view=full");
    assert_eq!(first["endpoint"], "leads");
    assert_eq!(first["headers"]["x-edge-service"], "leads");
    assert_eq!(first["headers"]["accept"], "application/json, text/plain");
    assert_eq!(first["headers"]["connection"], "close");
    assert_eq!(entries[1]["endpoint"], "health");
    assert_eq!(entries[1]["path"], "/health");
}

#[test]
fn injected_errors_via_control_endpoint() {
    let origin = start();
    let addr = origin.addr();
    let r = post_json(
        addr,
        "/__origin/faults",
        &json!({ "endpoint": "leads", "error_rate": 1.0, "extra_latency_ms": 0, "reset_rate": 0 }),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["faults"]["leads"]["error_rate"], 1.0);

    for _ in 0..3 {
        let e = get(addr, "/api/v1/leads/5");
        assert_eq!(e.status, 503);
        assert_common(&e, "leads");
        assert_eq!(e.header("cache-control"), Some("no-store"));
        assert!(e.json()["error"].is_string());
    }
    assert_eq!(get(addr, "/api/v1/coaching/5").status, 200);

    let faults = get(addr, "/__origin/faults").json();
    assert_eq!(faults["latency_scale"], 0.0);
    assert_eq!(
        faults["faults"]["leads"],
        json!({ "error_rate": 1.0, "extra_latency_ms": 0, "reset_rate": 0.0 })
    );
    assert_eq!(faults["faults"]["coaching"]["error_rate"], 0.0);

    // Half: every second request fails.
    post_json(
        addr,
        "/__origin/faults",
        &json!({ "endpoint": "health", "error_rate": 0.5 }),
    );
    let statuses: Vec<u16> = (0..4).map(|_| get(addr, "/health").status).collect();
    assert_eq!(statuses, vec![200, 503, 200, 503]);

    // Bad settings are refused and change nothing.
    for bad in [
        json!({ "endpoint": "nope", "error_rate": 1 }),
        json!({ "endpoint": "leads", "error_rate": 2 }),
        json!({ "endpoint": "leads", "reset_rate": -1 }),
        json!({ "endpoint": "leads", "extra_latency_ms": -3 }),
        json!({ "endpoint": "leads", "colour": "red" }),
        json!({ "error_rate": 1 }),
    ] {
        let r = post_json(addr, "/__origin/faults", &bad);
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    let r = request(addr, "POST", "/__origin/faults", &[], b"not json");
    assert_eq!(r.status, 400);
    assert_eq!(
        get(addr, "/__origin/faults").json()["faults"]["leads"]["error_rate"],
        1.0
    );

    // "*" clears all; stats counted the injected errors too.
    post_json(addr, "/__origin/faults", &json!({ "endpoint": "*" }));
    assert_eq!(get(addr, "/api/v1/leads/5").status, 200);
    let stats = get(addr, "/__origin/stats").json();
    assert_eq!(stats["requests"]["leads"], 4);
    assert_eq!(stats["requests"]["health"], 4);
}

#[test]
fn reset_rate_one_closes_without_answer() {
    let origin = start_with(OriginConfig {
        latency_scale: 0.0,
        faults: vec![parse_fault_flag("properties:reset_rate=1").expect("flag")],
        ..OriginConfig::default()
    });
    let addr = origin.addr();
    for _ in 0..3 {
        let raw = exchange(addr, "GET", "/api/v1/properties?city=Tampa", &[], b"");
        assert!(
            raw.is_empty(),
            "expected no answer, got {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    // Other endpoints are unaffected, and the resets were counted.
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(
        get(addr, "/__origin/stats").json()["requests"]["properties"],
        3
    );
    // After a reset of the origin the endpoint answers again.
    request(addr, "POST", "/__origin/reset", &[], b"");
    assert_eq!(get(addr, "/api/v1/properties?city=Tampa").status, 200);
}

#[test]
fn latency_scale_and_extra_latency_delay_answers() {
    let origin = start_with(OriginConfig {
        latency_scale: 0.5,
        faults: vec![(
            "coaching".into(),
            Fault {
                extra_latency_ms: 120,
                ..Fault::default()
            },
        )],
        ..OriginConfig::default()
    });
    let t = Instant::now();
    assert_eq!(get(origin.addr(), "/api/v1/leads/1").status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(75),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(get(origin.addr(), "/api/v1/coaching/1").status, 200);
    // 45 ms × 0.5 + 120 ms unscaled.
    assert!(
        t.elapsed() >= Duration::from_millis(142),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    assert_eq!(get(origin.addr(), "/health").status, 200);
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn invalid_config_is_refused_and_drop_stops_the_server() {
    let bad = OriginHandle::start(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        OriginConfig {
            latency_scale: -1.0,
            ..OriginConfig::default()
        },
    );
    assert_eq!(
        bad.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::InvalidInput)
    );

    let origin = start();
    let addr = origin.addr();
    assert_eq!(get(addr, "/health").status, 200);
    drop(origin);
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
}

#[test]
fn binary_announces_serves_and_stops_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-origin"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--latency-scale",
            "0",
            "--fault",
            "leads:error_rate=1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo-origin");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read announcement");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("demo-origin listening on http://")
        .unwrap_or_else(|| panic!("unexpected announcement {line:?}"))
        .parse()
        .expect("address");
    assert_eq!(get(addr, "/health").status, 200);
    assert_eq!(get(addr, "/api/v1/leads/1").status, 503);

    // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "demo-origin ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn binary_help_and_bad_flags() {
    let help = Command::new(env!("CARGO_BIN_EXE_demo-origin"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("usage: demo-origin"));

    for args in [
        &["--fault", "leads:error_rate=7"][..],
        &["--latency-scale"],
        &["--nope"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_demo-origin"))
            .args(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(!out.stderr.is_empty());
    }
}

#[test]
fn starts_and_stops_inside_an_async_context() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let origin = start();
        let addr = origin.addr();
        let r = tokio::task::spawn_blocking(move || get(addr, "/health").status)
            .await
            .expect("join");
        assert_eq!(r, 200);
        drop(origin);
    });
}

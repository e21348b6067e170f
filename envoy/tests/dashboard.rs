//! The dashboard in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `envoy/setup.sh`) loads the page from the running demo (shipped configuration, 2 workers)
//! while traffic flows, and the test reads the figures it shows: a non-zero hit rate first,
//! then, after origin faults, the coaching breaker shown open with its alert, and figures that
//! changed. A screenshot is saved to `target/test-artifacts/dashboard.png`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use edge_envoy::launch::{chromium_run, http_request, set_origin_fault, test_stack};

/// Text (tags removed) of the first element after `anchor` (an attribute snippet), from
/// `from` on.
fn text_after(dom: &str, from: usize, anchor: &str) -> Option<String> {
    let start = from + dom.get(from..)?.find(anchor)?;
    let tag_at = dom.get(..start)?.rfind('<')? + 1;
    let tag: String = dom
        .get(tag_at..)?
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect();
    let open = start + dom.get(start..)?.find('>')? + 1;
    let close = open + dom.get(open..)?.find(&format!("</{tag}>"))?;
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom.get(open..close)?.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    Some(text.trim().to_string())
}

/// A cell of a service's row (`data-field`).
fn cell(dom: &str, service: &str, field: &str) -> String {
    let row = dom
        .find(&format!(r#"data-service="{service}""#))
        .unwrap_or_else(|| panic!("no row for {service}"));
    text_after(dom, row, &format!(r#"data-field="{field}""#)).unwrap_or_default()
}

fn percent(text: &str) -> f64 {
    text.trim_end_matches('%').parse().unwrap_or(0.0)
}

fn polls(dom: &str) -> u64 {
    let at = dom.find("data-polls=\"").unwrap() + "data-polls=\"".len();
    dom[at..].split('"').next().unwrap().parse().unwrap()
}

#[test]
fn dashboard_shows_live_figures_and_an_open_breaker() {
    let stack = test_stack(None, 0.0);
    let listen = stack.listen;
    let origin = stack.origin.as_ref().unwrap().addr();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let tenant = format!("loc-{}", i % 3);
                let headers = [("x-location-id", tenant.as_str())];
                for path in [
                    format!("/api/v1/leads/{}", i % 10),
                    format!("/api/v1/coaching/{}", i % 5),
                ] {
                    let _ = http_request(listen, "GET", &path, &headers, b"");
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(2_500));
    let url = format!("http://{listen}/api/v1/performance/dashboard");
    let first = chromium_run_sized(&url, 5_000, "--dump-dom");
    assert!(polls(&first) >= 1, "the page polled the metrics endpoint");
    let total = text_after(&first, 0, r#"id="hit-rate-total""#).unwrap();
    assert!(percent(&total) > 50.0, "hit rate shown: {total}");
    assert!(percent(&cell(&first, "leads", "hit_rate")) > 50.0);
    assert_eq!(cell(&first, "coaching", "breaker"), "closed");
    assert_eq!(cell(&first, "properties", "breaker"), "—");

    // The coaching origin fails; new keys miss, fail and trip its breaker.
    set_origin_fault(origin, r#"{"endpoint": "coaching", "error_rate": 1.0}"#);
    for i in 0..60 {
        let _ = http_request(
            listen,
            "GET",
            &format!("/api/v1/coaching/fault-{i}"),
            &[],
            b"",
        );
    }
    // The tick adds the failures and trips it; it stays open 5 s (the shipped open_base_ms).
    std::thread::sleep(Duration::from_millis(300));
    let second = chromium_run_sized(&url, 5_000, "--dump-dom");
    assert_eq!(
        cell(&second, "coaching", "breaker"),
        "open",
        "the breaker is shown open"
    );
    assert!(
        second.contains(r#"data-kind="breaker_open" data-subject="coaching""#),
        "an alert says so"
    );
    let figures = |dom: &str| {
        (
            text_after(dom, 0, r#"id="rps-total""#)
                .unwrap_or_default()
                .to_string(),
            cell(dom, "leads", "requests_per_s").to_string(),
            cell(dom, "coaching", "hit_rate").to_string(),
        )
    };
    assert_ne!(figures(&first), figures(&second), "live figures change");

    let artefacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-artifacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let shot = artefacts.join("dashboard.png");
    let _ = std::fs::remove_file(&shot);
    chromium_run_sized(&url, 5_000, &format!("--screenshot={}", shot.display()));
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "screenshot saved ({size} bytes)");
    println!("dashboard screenshot: {}", shot.display());
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
}

fn chromium_run_sized(url: &str, budget_ms: u64, mode: &str) -> String {
    chromium_run(url, budget_ms, mode, (1280, 1500))
}

//! `edge-ctl` against real Envoy 1.40: each action run as the binary, its exit code and its
//! `--json` output checked against what the edge and the origin saw.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use edge_envoy::launch::{
    admin_stats, cache_status, default_plugin_config, http_request, origin_requests,
    test_stack_with, workspace_root, Stack,
};

const SHIPPED: &str = include_str!("../plugin-config.json");
const TOKEN: &str = "demo-admin-token-change-me";

fn scratch(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target/edge-runs")
        .join(format!("ctl-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `edge-ctl` against `stack` (if any) with `args`: exit code, stdout, stderr.
fn ctl(stack: Option<&Stack>, config: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-ctl"));
    command.arg("--config").arg(config);
    if let Some(stack) = stack {
        command
            .args(["--edge", &stack.listen.to_string()])
            .args(["--admin", &stack.admin.to_string()]);
    }
    let output = command
        .args(args)
        .env_remove("EDGE_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"))
}

fn get(stack: &Stack, path: &str, tenant: &str) -> edge_envoy::launch::HttpResponse {
    http_request(stack.listen, "GET", path, &[("x-location-id", tenant)], b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

#[test]
fn validate_offline_and_live_with_exit_codes() {
    let shipped = default_plugin_config();
    let (code, out, _) = ctl(None, &shipped, &["validate"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("valid (4 services)"), "{out}");

    let bad = scratch("validate").join("bad.json");
    std::fs::write(
        &bad,
        r#"{"services": [{"name": "a", "match": {"path_prefix": "a/"}}]}"#,
    )
    .unwrap();
    let (code, out, _) = ctl(None, &bad, &["validate", "--json"]);
    assert_eq!(code, 1, "{out}");
    let verdict = json(&out);
    assert_eq!(verdict["config"]["valid"], false);
    assert_eq!(
        verdict["config"]["error"],
        "services[0].match.path_prefix: must start with '/'"
    );

    // Nothing listens there: exit code 3.
    let (code, _, err) = ctl(
        None,
        &shipped,
        &[
            "validate",
            "--live",
            "--edge",
            "127.0.0.1:1",
            "--admin",
            "127.0.0.1:1",
        ],
    );
    assert_eq!(code, 3, "{err}");

    let stack = test_stack_with(None, 0.0, |_| {});
    for _ in 0..30 {
        assert_eq!(get(&stack, "/api/v1/leads/1", "loc-1").status, 200);
    }
    std::thread::sleep(Duration::from_millis(1200)); // every worker has published
    let (code, out, err) = ctl(Some(&stack), &shipped, &["validate", "--live", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let live = json(&out)["live"].clone();
    let leads_hit_rate = live
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["subject"] == "leads" && c["check"] == "hit rate")
        .unwrap()
        .clone();
    assert_eq!(leads_hit_rate["passed"], true, "{live}");
    // Coaching misses every time: under the 90% target.
    for n in 0..10 {
        get(&stack, &format!("/api/v1/coaching/{n}"), "loc-1");
    }
    std::thread::sleep(Duration::from_millis(1200));
    let (code, out, _) = ctl(Some(&stack), &shipped, &["validate", "--live"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|line| line.starts_with("| coaching ")
            && line.contains("| FAIL ")
            && line.contains("hit rate 0.0% vs target 90%")),
        "{out}"
    );
}

#[test]
fn warm_cache_from_a_paths_file_and_from_the_hottest_keys() {
    let shipped = default_plugin_config();
    let stack = test_stack_with(None, 0.0, |_| {});
    let origin = stack.origin.as_ref().unwrap().addr();
    let paths = scratch("warm").join("paths.txt");
    std::fs::write(
        &paths,
        "# hot leads\n/api/v1/leads/1\n/api/v1/leads/2\n\napi/v1/no-slash\n/api/v1/leads/3\n",
    )
    .unwrap();
    let (code, out, err) = ctl(
        Some(&stack),
        &shipped,
        &[
            "warm-cache",
            "--paths",
            paths.to_str().unwrap(),
            "--header",
            "x-location-id:loc-9",
            "--json",
        ],
    );
    // The bad line fails alone; its batch neighbours are warmed.
    assert_eq!(code, 1, "{out}{err}");
    let summary = json(&out);
    assert_eq!(summary["stored"], 3, "{summary}");
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["refused_paths"].as_array().unwrap().len(), 1);
    assert_eq!(origin_requests(origin, "leads"), 3);
    assert!(cache_status(&get(&stack, "/api/v1/leads/2", "loc-9")).contains("hit"));
    assert_eq!(origin_requests(origin, "leads"), 3);

    // Hot keys: coaching/1 most, then /2, then /3 once; purged, then the two hottest warmed.
    for (n, times) in [(1, 6), (2, 4), (3, 1)] {
        for _ in 0..times {
            get(&stack, &format!("/api/v1/coaching/{n}"), "loc-2");
        }
    }
    assert_eq!(origin_requests(origin, "coaching"), 3);
    let purged = http_request(
        stack.listen,
        "POST",
        "/api/v1/performance/cache/purge",
        &[
            ("x-edge-admin-token", TOKEN),
            ("content-type", "application/json"),
        ],
        br#"{"service": "coaching"}"#,
    )
    .unwrap();
    assert_eq!(purged.status, 200);
    std::thread::sleep(Duration::from_millis(400)); // > generation_refresh_ms
    let (code, out, err) = ctl(Some(&stack), &shipped, &["warm-cache", "--hot", "2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("warmed 2 paths: 2 stored, 0 skipped"), "{out}");
    assert_eq!(origin_requests(origin, "coaching"), 5);
    for n in [1, 2] {
        let hit = get(&stack, &format!("/api/v1/coaching/{n}"), "loc-2");
        assert!(cache_status(&hit).contains("hit"), "{}", cache_status(&hit));
    }
    assert_eq!(origin_requests(origin, "coaching"), 5);
    // Without the token (and from no allowed address) the hot keys are not shown.
    let refused = http_request(
        stack.listen,
        "GET",
        "/api/v1/performance/cache/hot",
        &[("host", "edge.example")],
        b"",
    )
    .unwrap();
    assert!(matches!(refused.status, 401 | 403), "{}", refused.status);
}

#[test]
fn benchmark_then_report() {
    let shipped = default_plugin_config();
    let stack = test_stack_with(None, 0.05, |_| {});
    let origin = stack.origin.as_ref().unwrap().addr();
    let state = scratch("bench");
    let (code, out, err) = ctl(
        Some(&stack),
        &shipped,
        &[
            "benchmark",
            "--iterations",
            "20",
            "--concurrency",
            "4",
            "--json",
            "--upstream",
            &format!("http://{origin}"),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let result = json(&out);
    let rows = result["rows"].as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["service"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "webhooks (first deliveries)",
            "webhooks (retries/duplicates)",
            "coaching",
            "leads",
            "properties"
        ]
    );
    for row in rows {
        assert_eq!(row["edge_errors"], 0, "{row}");
        assert_eq!(row["baseline_errors"], 0, "{row}");
    }
    // Repeated keys hit; each webhook delivery reached the origin once per distinct id.
    assert!(rows[3]["hit_rate"].as_f64().unwrap() > 0.0, "{}", rows[3]);
    let deliveries = http_request(origin, "GET", "/__origin/webhooks", &[], b"").unwrap();
    assert_eq!(deliveries.status, 200);

    let report_file = state.join("report.json");
    let (code, out, err) = ctl(
        Some(&stack),
        &shipped,
        &[
            "report",
            "--output",
            report_file.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(out.contains("health"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_file).unwrap()).unwrap();
    assert_eq!(
        report["last_benchmark"]["rows"].as_array().unwrap().len(),
        5
    );
    assert!(report["metrics"]["services"].is_array());
    assert!(report["cache_stats"]["tiers"]["l1"].is_object());
    assert!(report["health"]["status"].is_string());
    assert_eq!(report["validation"]["config"]["valid"], true);
    assert!(
        report["envoy_counters"]["wasmcustom.edge.cache.l1.hit"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[test]
fn optimize_proposes_with_evidence_and_applies_without_a_restart() {
    let file = scratch("optimize").join("plugin-config.json");
    let mut config: serde_json::Value = serde_json::from_str(SHIPPED).unwrap();
    config["limits"]["l1_max_entries"] = serde_json::json!(5);
    std::fs::write(&file, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let stack = test_stack_with(None, 0.0, |options| {
        options.plugin_config = file.clone();
        options.static_config = false;
        options.workers = 1;
    });
    for n in 0..40 {
        get(&stack, &format!("/api/v1/leads/{n}"), "loc-1");
    }
    let (code, out, err) = ctl(Some(&stack), &file, &["optimize", "--json"]);
    assert_eq!(code, 1, "proposals not applied: {out}{err}");
    let proposed = json(&out);
    let l1 = proposed["proposals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == "limits.l1_max_entries")
        .unwrap_or_else(|| panic!("{proposed}"))
        .clone();
    assert_eq!(l1["from"], 5);
    assert_eq!(l1["to"], 10);
    assert!(
        l1["evidence"]
            .as_str()
            .unwrap()
            .contains("L1 evicted 35 entries for 40 stored"),
        "{l1}"
    );
    assert!(
        proposed["diff"]
            .as_str()
            .unwrap()
            .contains("-     \"l1_max_entries\": 5,"),
        "{proposed}"
    );

    let pid = stack.envoy.pid();
    let (code, out, err) = ctl(Some(&stack), &file, &["optimize", "--apply"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied: written to"), "{out}");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(written["limits"]["l1_max_entries"], 10);
    assert_eq!(stack.envoy.pid(), pid);
    let stats = admin_stats(
        stack.admin,
        "extension_config_discovery.http_filter.edge.update_success",
    );
    assert!(stats.contains("update_success: 2"), "{stats}");
    // No traffic since the apply: the same evidence is no evidence, nothing proposed again.
    let (code, out, err) = ctl(Some(&stack), &file, &["optimize", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json(&out)["proposals"], serde_json::json!([]), "{out}");
}

/// A server on 127.0.0.1 answering every connection with `answer` (then holding it open).
fn fake_server(answer: &'static [u8], trickle: bool) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer);
                if trickle {
                    for byte in answer {
                        if stream.write_all(&[*byte]).is_err() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(500));
                    }
                } else {
                    let _ = stream.write_all(answer);
                }
                std::thread::sleep(Duration::from_secs(120));
            });
        }
    });
    addr
}

#[test]
fn exit_codes_are_as_documented_and_json_errors_are_json() {
    let dir = scratch("exits");
    let config = dir.join("plugin-config.json");
    std::fs::write(&config, SHIPPED).unwrap();
    let run = |args: &[&str]| ctl(None, &config, args);
    // Bad arguments: 2, with a JSON error object under --json.
    for args in [
        &["--json", "benchmark", "--iterations", "0"][..],
        &["--json", "benchmark", "--zipf", "NaN"],
        &["--json", "benchmark", "--concurrency", "0"],
        &["--json", "warm-cache", "--hot", "0"],
        &[
            "--json",
            "warm-cache",
            "--paths",
            "/dev/null",
            "--header",
            "noval",
        ],
        &["--json", "benchmark", "--upstream", "notaurl"],
        &["--json", "benchmark", "--upstream", "https://127.0.0.1:1"],
        &["--json", "--edge", "nowhere", "validate", "--live"],
        &["--json", "benchmark", "--no-such-flag"],
    ] {
        let (code, stdout, stderr) = run(args);
        assert_eq!(code, 2, "{args:?}: {stdout} {stderr}");
        assert!(json(&stdout)["error"].is_string(), "{args:?}: {stdout}");
    }
    // Unreachable or not an edge: 3.
    let refused = ["--edge", "127.0.0.1:1", "--admin", "127.0.0.1:1"];
    let (code, stdout, _) = run(&[&refused[..], &["--json", "validate", "--live"]].concat());
    assert_eq!(code, 3, "{stdout}");
    assert!(json(&stdout)["error"].is_string());
    let garbage =
        fake_server(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", false).to_string();
    let (code, stdout, stderr) = run(&["--edge", &garbage, "--admin", &garbage, "optimize"]);
    assert_eq!(code, 3, "{stdout} {stderr}");
    let (code, _, stderr) = run(&["--edge", &garbage, "--admin", &garbage, "report"]);
    assert_eq!(code, 3, "{stderr}");
    // JSON of the wrong shape: not the edge either.
    let wrong = fake_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\": true}",
        false,
    )
    .to_string();
    let (code, _, stderr) = run(&["--edge", &wrong, "--admin", &wrong, "validate", "--live"]);
    assert_eq!(code, 3, "{stderr}");
    let (code, _, stderr) = run(&[
        &refused[..],
        &[
            "benchmark",
            "--upstream",
            "http://127.0.0.1:1",
            "--iterations",
            "5",
        ],
    ]
    .concat());
    assert_eq!(code, 3, "{stderr}");
    // A trickling edge: the exchange's deadline ends it.
    let trickle = fake_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{\"status\": \"healthy\"",
        true,
    )
    .to_string();
    let started = std::time::Instant::now();
    let (code, _, stderr) = run(&[
        "--edge", &trickle, "--admin", &trickle, "validate", "--live",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
    // A huge answer: refused at the cap, not read whole.
    let huge = fake_server(
        b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n",
        false,
    );
    // (The body never comes: the cap is checked on the declared length too.)
    let (code, _, stderr) = run(&[
        "--edge",
        &huge.to_string(),
        "--admin",
        &huge.to_string(),
        "report",
    ]);
    assert_eq!(code, 3, "{stderr}");

    // A configuration that is not UTF-8 is invalid (1), not a file error.
    let latin1 = dir.join("latin1.json");
    std::fs::write(&latin1, b"{\"services\": [], \"x\": \"caf\xe9\"}").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_edge-ctl"))
        .arg("--config")
        .arg(&latin1)
        .args(["--json", "validate"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("not UTF-8"));
    // The report never overwrites the watched configuration.
    let (code, stdout, _) = run(&[
        &refused[..],
        &["--json", "report", "--output", config.to_str().unwrap()],
    ]
    .concat());
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), SHIPPED);
}

#[test]
fn ctrl_c_stops_a_benchmark_on_its_own_stack() {
    use std::io::{BufRead, BufReader};
    let dir = scratch("interrupt");
    let config = dir.join("plugin-config.json");
    std::fs::write(&config, SHIPPED).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_edge-ctl"));
    // Started the way a script's background job is: SIGINT inherited as ignored.
    // SAFETY: signal() is async-signal-safe; only the child being set up is touched.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            Ok(())
        });
    }
    let mut child = command
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&dir)
        .args(["benchmark", "--iterations", "100000"])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.contains("starting the demo origin"), "{line}");
    // Let the stack come up and the run begin.
    std::thread::sleep(Duration::from_secs(8));
    // SAFETY: signalling our own child process by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("edge-ctl did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130));
    assert!(!dir.join("last-benchmark.json").exists());
}

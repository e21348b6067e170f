//! Each action run against the edge: figures gathered, the pure parts asked, the output and
//! exit code made.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::benchmark::{self, Plan};
use super::config_file::{write_validated, ConfigFile};
use super::diff::line_diff;
use super::edge::{parse_address, Edge};
use super::exit::{verdict, CtlError, CHECK_FAILED, OK};
use super::optimize::{self, Figures};
use super::report::{self, Report};
use super::style::Style;
use super::validate::{self, Validation};
use super::warm::{self, Target};
use super::workload::Shape;
use crate::launch::{LaunchOptions, Stack, Upstream};

/// What every action knows.
pub struct Ctx {
    pub edge: Edge,
    pub config_path: PathBuf,
    pub style: Style,
    pub state_dir: PathBuf,
}

/// What an action ends with: its exit code, the human text and the JSON document.
pub struct Outcome {
    pub code: u8,
    pub human: String,
    pub json: Value,
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn config(ctx: &Ctx) -> Result<ConfigFile, CtlError> {
    ConfigFile::read(&ctx.config_path)
}

pub fn validate(ctx: &Ctx, live: bool) -> Result<Outcome, CtlError> {
    let file = config(ctx)?;
    let verdict_on_file = validate::offline(&file);
    let checks = if live {
        let metrics = ctx.edge.metrics()?;
        let health = ctx.edge.health()?;
        Some(validate::live_checks(
            &metrics,
            &health,
            file.hit_rate_target(),
        ))
    } else {
        None
    };
    let passed = validate::passed(Some(&verdict_on_file), checks.as_deref());
    let validation = Validation {
        config: Some(verdict_on_file),
        live: checks,
        passed,
    };
    Ok(Outcome {
        code: verdict(passed),
        human: validate::render(&validation, ctx.style),
        json: to_json(&validation),
    })
}

pub struct BenchArgs {
    pub shape: Shape,
    pub concurrency: usize,
    pub upstream: Option<String>,
}

pub fn benchmark(ctx: &Ctx, args: &BenchArgs) -> Result<Outcome, CtlError> {
    let file = config(ctx)?;
    let targets: Vec<(String, u64)> = file
        .json()
        .and_then(|v| v["services"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            Some((
                s["name"].as_str()?.to_string(),
                s["latency_target_ms"].as_u64()?,
            ))
        })
        .collect();
    // Without --upstream: the demo origin and an edge of our own, on free ports.
    let (stack, origin, edge) = match &args.upstream {
        Some(url) => (
            None,
            parse_address(url).map_err(|err| CtlError::Usage(format!("--upstream {err}")))?,
            ctx.edge.listen,
        ),
        None => {
            let port = || {
                crate::launch::free_port().map_err(|e| CtlError::Io(format!("no free port: {e}")))
            };
            let options = LaunchOptions {
                upstream: Upstream::Demo,
                plugin_config: ctx.config_path.clone(),
                listen: port()?,
                admin: port()?,
                static_config: true,
                log_level: "warning".into(),
                ..LaunchOptions::default()
            };
            eprintln!("edge-ctl: starting the demo origin and an edge for the benchmark…");
            let stack = Stack::start(&options)
                .map_err(|e| CtlError::Io(format!("cannot start the benchmark stack: {e}")))?;
            stop_on_signal(stack.envoy.pid());
            let origin = stack
                .origin
                .as_ref()
                .map(|o| o.addr())
                .ok_or_else(|| CtlError::Io("the benchmark stack has no origin".into()))?;
            let edge = stack.listen;
            (Some(stack), origin, edge)
        }
    };
    let plan = Plan {
        shape: args.shape,
        concurrency: args.concurrency,
        origin,
        edge,
        targets,
        hit_rate_target: file.hit_rate_target(),
    };
    let result = benchmark::run(&plan);
    drop(stack);
    // A baseline made of failed connections is no baseline: nothing is kept.
    if result.rows.iter().all(|r| r.baseline_errors >= r.requests) {
        return Err(CtlError::Unreachable(format!(
            "the origin {origin} answered none of the baseline requests; nothing kept"
        )));
    }
    let json = to_json(&result);
    std::fs::create_dir_all(&ctx.state_dir)
        .and_then(|()| {
            std::fs::write(
                ctx.state_dir.join("last-benchmark.json"),
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            )
        })
        .map_err(|e| {
            CtlError::Io(format!(
                "cannot keep the benchmark in {}: {e}",
                ctx.state_dir.display()
            ))
        })?;
    let failed = result.rows.iter().any(|r| r.edge_errors > r.requests / 10);
    Ok(Outcome {
        code: verdict(!failed),
        human: benchmark::render(&result, ctx.style),
        json,
    })
}

/// Ctrl-C or SIGTERM during a benchmark on its own stack: Envoy is stopped and edge-ctl exits
/// 130 at once (handled, so it works even where the signal was inherited as ignored, e.g. a
/// job started in the background of a script).
fn stop_on_signal(envoy_pid: u32) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let signalled = runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut interrupt), Ok(mut terminate)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return false;
            };
            tokio::select! {
                _ = interrupt.recv() => true,
                _ = terminate.recv() => true,
            }
        });
        if signalled {
            eprintln!("\nedge-ctl: interrupted; stopping the benchmark's Envoy");
            if let Ok(pid) = i32::try_from(envoy_pid) {
                // SAFETY: signalling our own child process by its pid.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            std::process::exit(130);
        }
    });
}

pub fn warm_cache(
    ctx: &Ctx,
    paths: Option<&PathBuf>,
    hot: Option<usize>,
    headers: &[String],
) -> Result<Outcome, CtlError> {
    let mut extra = BTreeMap::new();
    for header in headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| CtlError::Usage(format!("--header {header:?} is not NAME:VALUE")))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(CtlError::Usage(format!(
                "--header {header:?}: {name:?} is not a header name"
            )));
        }
        extra.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let targets: Vec<Target> = match (paths, hot) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CtlError::Io(format!("cannot read {}: {e}", path.display())))?;
            warm::parse_paths(&text, &extra)
        }
        (None, Some(n)) => {
            let targets = hot_targets(ctx, n)?;
            if targets.is_empty() {
                // After a reload each worker's table starts empty: nothing to warm is a failure
                // a CI job should see, not success.
                return Ok(Outcome {
                    code: CHECK_FAILED,
                    human: "the edge has seen no cacheable keys yet (each reload starts the hot-keys tables anew): nothing warmed\n".to_string(),
                    json: json!({"stored": 0, "skipped": 0, "failed": 0, "error": "no hot keys seen yet"}),
                });
            }
            targets
        }
        (None, None) => Vec::new(),
    };
    let summary = warm::warm(&ctx.edge, &targets)?;
    Ok(Outcome {
        code: verdict(summary.failed == 0),
        human: warm::render(&summary, ctx.style),
        json: to_json(&summary),
    })
}

/// Times `/cache/hot` is asked: each answer is one worker's table (new connections spread
/// over the workers); the answers are merged, a key counted by the most of them.
const HOT_ASKS: usize = 8;

/// The `n` hottest keys the edge has seen (`GET <prefix>/cache/hot?limit=n`).
fn hot_targets(ctx: &Ctx, n: usize) -> Result<Vec<Target>, CtlError> {
    let mut merged: BTreeMap<Target, u64> = BTreeMap::new();
    for _ in 0..HOT_ASKS {
        let hot = ctx.edge.management(&format!("/cache/hot?limit={n}"))?;
        for key in hot["keys"].as_array().into_iter().flatten() {
            let Some(path) = key["path"].as_str() else {
                continue;
            };
            let headers = key["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            let target = Target {
                path: path.to_string(),
                headers,
            };
            let count = key["count"].as_u64().unwrap_or(0);
            let kept = merged.entry(target).or_default();
            *kept = (*kept).max(count);
        }
    }
    let mut ranked: Vec<(Target, u64)> = merged.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(ranked.into_iter().take(n).map(|(t, _)| t).collect())
}

/// The ECDS counter that says Envoy took a new filter configuration.
const ECDS_SUCCESS: &str = "extension_config_discovery.http_filter.edge.update_success";
const ECDS_REJECTED: &str = "extension_config_discovery.http_filter.edge.update_rejected";

/// In the state directory: the evidence counters when `optimize --apply` last wrote.
const OPTIMIZE_BASELINE: &str = "optimize-baseline.json";

pub fn optimize(ctx: &Ctx, apply: bool) -> Result<Outcome, CtlError> {
    let file = config(ctx)?;
    let current = file
        .json()
        .ok_or_else(|| CtlError::Io(format!("{} is not JSON", file.path.display())))?;
    let mut figures = Figures {
        metrics: ctx.edge.metrics()?,
        cache_stats: ctx.edge.management("/cache/stats")?,
        stats: ctx.edge.envoy_stats("^wasmcustom\\.edge\\.")?,
    };
    // Evidence counts from the last --apply on: what the previous change was made for is not
    // evidence for the next one.
    // The record holds for the same Envoy only (its admin address and start time).
    let baseline_file = ctx.state_dir.join(OPTIMIZE_BASELINE);
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let uptime = ctx
        .edge
        .envoy_stats("^server\\.uptime$")?
        .get("server.uptime")
        .copied()
        .unwrap_or(0);
    let envoy = json!({
        "admin": ctx.edge.admin.to_string(),
        "started_s": now_s.saturating_sub(uptime),
    });
    let mut recorded = optimize::baseline(&figures);
    recorded["envoy"] = envoy.clone();
    if let Some(baseline) = std::fs::read_to_string(&baseline_file)
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok())
    {
        let same_envoy = baseline["envoy"]["admin"] == envoy["admin"]
            && baseline["envoy"]["started_s"]
                .as_u64()
                .is_some_and(|then| then.abs_diff(now_s.saturating_sub(uptime)) <= 5);
        if same_envoy {
            optimize::since(&mut figures, &baseline);
        }
    }
    let target = file.hit_rate_target();
    let proposals = optimize::propose(&current, &figures, target);
    let mut advice = optimize::advice(&figures, target, &proposals);
    advice.extend(optimize::restart_advice(&current, &figures));
    let proposed = optimize::apply(&current, &proposals);
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    let diff = line_diff(&pretty(&current), &pretty(&proposed));
    let mut human = String::new();
    if proposals.is_empty() {
        human.push_str(&ctx.style.good("no configuration change proposed\n"));
    }
    for (n, p) in proposals.iter().enumerate() {
        human.push_str(&format!(
            "{}. {} {}: {} -> {}\n   evidence: {}\n",
            n + 1,
            ctx.style.bold(p.rule),
            p.field,
            p.from,
            p.to,
            p.evidence
        ));
    }
    for a in &advice {
        human.push_str(&format!("advice: {a}\n"));
    }
    if !diff.is_empty() {
        human.push_str(&format!(
            "\n--- {} (current)\n+++ proposed\n",
            file.path.display()
        ));
        for line in diff.lines() {
            human.push_str(&match line.chars().next() {
                Some('+') => ctx.style.good(line),
                Some('-') => ctx.style.bad(line),
                _ => line.to_string(),
            });
            human.push('\n');
        }
    }
    let mut applied = Value::Null;
    let code = if proposals.is_empty() {
        OK
    } else if apply {
        let before = ctx
            .edge
            .envoy_stats("extension_config_discovery\\.http_filter\\.edge\\.")
            .unwrap_or_default();
        let written = Instant::now();
        write_validated(&file.path, &proposed)?;
        let _ = std::fs::create_dir_all(&ctx.state_dir);
        let _ = std::fs::write(&baseline_file, recorded.to_string());
        let (outcome, code) = wait_for_ecds(ctx, &before, written);
        human.push_str(&format!("\n{outcome}\n"));
        applied = json!(outcome);
        code
    } else {
        human.push_str("\nrun with --apply to write it (a running edge-launch applies it live)\n");
        CHECK_FAILED
    };
    let json = json!({
        "proposals": to_json(&proposals),
        "advice": advice,
        "diff": diff,
        "applied": applied,
    });
    Ok(Outcome { code, human, json })
}

/// Waits (up to 20 s) for Envoy to count the update as a success or a rejection.
fn wait_for_ecds(ctx: &Ctx, before: &BTreeMap<String, u64>, written: Instant) -> (String, u8) {
    let count = |stats: &BTreeMap<String, u64>, name: &str| stats.get(name).copied().unwrap_or(0);
    while written.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
        let Ok(now) = ctx
            .edge
            .envoy_stats("extension_config_discovery\\.http_filter\\.edge\\.")
        else {
            continue;
        };
        if count(&now, ECDS_SUCCESS) > count(before, ECDS_SUCCESS) {
            return (
                format!(
                    "applied: written to {} and taken by Envoy without a restart after {} ms",
                    ctx.config_path.display(),
                    written.elapsed().as_millis()
                ),
                OK,
            );
        }
        if count(&now, ECDS_REJECTED) > count(before, ECDS_REJECTED) {
            return (
                "written, but Envoy REJECTED it (see /health)".to_string(),
                CHECK_FAILED,
            );
        }
    }
    (
        format!(
            "written to {}, but Envoy reported no configuration update within 20 s: is edge-launch running with live reload on this file?",
            ctx.config_path.display()
        ),
        CHECK_FAILED,
    )
}

pub fn report(ctx: &Ctx, output: Option<&PathBuf>) -> Result<Outcome, CtlError> {
    if let Some(path) = output {
        let same = |a: &Path, b: &Path| {
            std::fs::canonicalize(a)
                .ok()
                .zip(std::fs::canonicalize(b).ok())
                .is_some_and(|(a, b)| a == b)
        };
        if same(path, &ctx.config_path) {
            return Err(CtlError::Usage(format!(
                "--output {} is the plugin configuration (--config): not overwritten",
                path.display()
            )));
        }
    }
    let file = config(ctx)?;
    let health = ctx.edge.health()?;
    let metrics = ctx.edge.metrics()?;
    let cache_stats = ctx.edge.management("/cache/stats")?;
    let envoy_counters = ctx
        .edge
        .envoy_stats("^(wasmcustom\\.edge\\.|extension_config_discovery\\.)")?;
    let checks = validate::live_checks(&metrics, &health, file.hit_rate_target());
    let config_verdict = validate::offline(&file);
    let passed = validate::passed(Some(&config_verdict), Some(&checks));
    let last_benchmark = std::fs::read_to_string(ctx.state_dir.join("last-benchmark.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(Value::Null);
    let report = Report {
        generated_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        edge: ctx.edge.listen.to_string(),
        admin: ctx.edge.admin.to_string(),
        health,
        metrics,
        cache_stats,
        envoy_counters: to_json(&envoy_counters),
        validation: Validation {
            config: Some(config_verdict),
            live: Some(checks),
            passed,
        },
        last_benchmark,
    };
    let json = to_json(&report);
    let mut human = report::summary(&report, ctx.style);
    if let Some(path) = output {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n",
        )
        .map_err(|e| CtlError::Io(format!("cannot write {}: {e}", path.display())))?;
        human.push_str(&format!("report written to {}\n", path.display()));
    }
    Ok(Outcome {
        code: verdict(passed),
        human,
        json,
    })
}

/// What `edge-ctl explain` is asked about.
pub struct ExplainArgs<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [String],
    pub body: &'a str,
    pub status: Option<u16>,
    pub response_headers: &'a [String],
    pub again: Option<u64>,
}

/// The explainer's trace of a request under the configuration file (offline).
pub fn explain(ctx: &Ctx, args: &ExplainArgs<'_>) -> Result<Outcome, CtlError> {
    // Bad arguments are refused (exit 2) rather than dropped, which would trace another request.
    if !edge_explain::is_token(args.method.trim()) {
        return Err(CtlError::Usage(format!(
            "--method {:?} is not an HTTP method",
            args.method
        )));
    }
    for (flag, lines) in [
        ("--header", args.headers),
        ("--response-header", args.response_headers),
    ] {
        for line in lines {
            match edge_explain::header_line(line) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    return Err(CtlError::Usage(format!(
                        "{flag} {line:?} is not NAME:VALUE"
                    )))
                }
                Err(err) => return Err(CtlError::Usage(format!("{flag}: {err}"))),
            }
        }
    }
    if let Some(status) = args.status.filter(|s| !(100..=599).contains(s)) {
        return Err(CtlError::Usage(format!(
            "--status {status} is not an HTTP status (100 to 599)"
        )));
    }
    let file = config(ctx)?;
    let request = edge_explain::TraceRequest {
        method: args.method.to_string(),
        url: args.url.to_string(),
        headers: args.headers.join("\n"),
        body: args.body.to_string(),
        response: args.status.map(|status| edge_explain::OriginResponse {
            status,
            headers: args.response_headers.join("\n"),
            body_bytes: None,
        }),
        now: None,
        again_after_s: args.again,
    };
    let trace = edge_explain::trace(&file.text, &request);
    if let Some(err) = &trace.input_error {
        return Err(CtlError::Usage(err.clone()));
    }
    let mut human = String::new();
    match &trace.config_error {
        Some(err) => human.push_str(&format!(
            "{}: {err}\n",
            ctx.style.bad("invalid configuration")
        )),
        None => {
            let decision = &trace.headline;
            let service = trace.service.clone().unwrap_or_default();
            human.push_str(&ctx.style.bold(&format!("service {service}: {decision}")));
            human.push('\n');
            let rows: Vec<Vec<String>> = trace
                .steps
                .iter()
                // A key shows its newlines as `|`, which would end a Markdown cell.
                .map(|s| {
                    let decision = s.decision.replace('|', "\\|");
                    vec![s.stage.clone(), decision, s.field.clone()]
                })
                .collect();
            human.push_str(&super::style::table(&["stage", "decision", "field"], &rows));
            let status = trace.cache_status.as_deref().unwrap_or("(none)");
            human.push_str(&format!("Cache-Status: {status}\n"));
            if let Some(again) = &trace.cache_status_again {
                human.push_str(&format!("again later: {again}\n"));
            }
        }
    }
    Ok(Outcome {
        code: verdict(trace.config_error.is_none()),
        human,
        json: to_json(&trace),
    })
}

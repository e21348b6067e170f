//! `edge-ctl report`: metrics, cache stats, health, validation results and the last benchmark
//! in one JSON document, plus a short human summary.

use serde::Serialize;
use serde_json::Value;

use super::style::Style;
use super::validate::Validation;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_unix_s: u64,
    pub edge: String,
    pub admin: String,
    pub health: Value,
    pub metrics: Value,
    pub cache_stats: Value,
    /// Envoy's counters for the filter and its configuration updates (ECDS).
    pub envoy_counters: Value,
    pub validation: Validation,
    /// The last `edge-ctl benchmark` (null if none was run).
    pub last_benchmark: Value,
}

pub fn summary(report: &Report, style: Style) -> String {
    let status = report.health["status"].as_str().unwrap_or("unknown");
    let status = match status {
        "healthy" => style.good(status),
        "degraded" => style.warn(status),
        _ => style.bad(status),
    };
    let totals = &report.metrics["totals"];
    let pct = |v: &Value| {
        v.as_f64()
            .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0))
    };
    let mut out = format!(
        "edge {} — health {status}\nlast minute: {} requests ({} req/s), hit rate {}\n",
        report.edge,
        totals["requests"],
        totals["requests_per_s"]
            .as_f64()
            .map_or("-".into(), |r| format!("{r:.1}")),
        pct(&totals["hit_rate"]),
    );
    for reason in report.health["reasons"].as_array().into_iter().flatten() {
        out.push_str(&format!("  - {}\n", reason.as_str().unwrap_or_default()));
    }
    out.push_str(&format!(
        "validation: {}\n",
        if report.validation.passed {
            style.good("passed")
        } else {
            style.bad("FAILED")
        }
    ));
    out.push_str(&match report.last_benchmark["rows"].as_array() {
        Some(rows) => format!(
            "last benchmark: {} rows, hit rate {}\n",
            rows.len(),
            pct(&report.last_benchmark["hit_rate"])
        ),
        None => "last benchmark: none (run edge-ctl benchmark)\n".to_string(),
    });
    out
}

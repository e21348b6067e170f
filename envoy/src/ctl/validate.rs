//! `edge-ctl validate`: a configuration file checked offline with the filter's own validation
//! code (same messages, same field paths); with `--live`, the running edge's last minute
//! against each service's `latency_target_ms` (edge p95) and the hit-rate target, and its health.

use serde::Serialize;
use serde_json::Value;

use super::config_file::ConfigFile;
use super::style::{table, Style};

/// The offline verdict on a configuration file.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigVerdict {
    pub file: String,
    pub valid: bool,
    pub services: usize,
    /// `field: reason`, as Envoy's log would say it.
    pub error: Option<String>,
}

/// One live check: `passed` is `None` when there is no data to judge (no traffic).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub subject: String,
    pub check: String,
    pub passed: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Validation {
    pub config: Option<ConfigVerdict>,
    pub live: Option<Vec<Check>>,
    pub passed: bool,
}

pub fn offline(file: &ConfigFile) -> ConfigVerdict {
    let verdict = file.validate();
    ConfigVerdict {
        file: file.path.display().to_string(),
        valid: verdict.is_ok(),
        services: verdict.as_ref().map_or(0, |n| *n),
        error: verdict.err(),
    }
}

/// The live checks from `/metrics` and `/health` (pure: figures in, verdicts out).
pub fn live_checks(metrics: &Value, health: &Value, hit_rate_target: f64) -> Vec<Check> {
    let mut checks = Vec::new();
    let status = health["status"].as_str().unwrap_or("unknown");
    let reasons: Vec<&str> = health["reasons"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    checks.push(Check {
        subject: "edge".into(),
        check: "health".into(),
        passed: Some(status == "healthy"),
        detail: if reasons.is_empty() {
            status.to_string()
        } else {
            format!("{status}: {}", reasons.join("; "))
        },
    });
    for service in metrics["services"].as_array().into_iter().flatten() {
        let name = service["name"].as_str().unwrap_or("?").to_string();
        if let Some(target) = service["latency_target_ms"].as_f64() {
            let edge = &service["latency_ms"]["edge"];
            let (passed, detail) = match edge["p95"].as_f64() {
                Some(p95) if edge["count"].as_u64().unwrap_or(0) > 0 => (
                    Some(p95 <= target),
                    format!(
                        "edge p95 {p95:.1} ms vs target {target:.0} ms ({} requests)",
                        edge["count"]
                    ),
                ),
                _ => (None, "no traffic in the last minute".to_string()),
            };
            checks.push(Check {
                subject: name.clone(),
                check: "latency p95".into(),
                passed,
                detail,
            });
        }
        if service["caches"].as_bool() == Some(true) {
            let (passed, detail) = match service["hit_rate"].as_f64() {
                Some(rate) => (
                    Some(rate >= hit_rate_target),
                    format!(
                        "hit rate {:.1}% vs target {:.0}%",
                        rate * 100.0,
                        hit_rate_target * 100.0
                    ),
                ),
                None => (None, "no cache lookups in the last minute".to_string()),
            };
            checks.push(Check {
                subject: name,
                check: "hit rate".into(),
                passed,
                detail,
            });
        }
    }
    checks
}

/// Passed when the configuration (if checked) is valid and no live check failed.
pub fn passed(config: Option<&ConfigVerdict>, live: Option<&[Check]>) -> bool {
    config.is_none_or(|c| c.valid)
        && live.is_none_or(|checks| checks.iter().all(|c| c.passed != Some(false)))
}

pub fn render(validation: &Validation, style: Style) -> String {
    let mut out = String::new();
    if let Some(config) = &validation.config {
        if config.valid {
            out.push_str(&format!(
                "{} {}: valid ({} services)\n",
                style.verdict(true),
                config.file,
                config.services
            ));
        } else {
            out.push_str(&format!(
                "{} {}: configuration rejected: {}\n",
                style.verdict(false),
                config.file,
                config.error.as_deref().unwrap_or("?")
            ));
        }
    }
    if let Some(checks) = &validation.live {
        let rows: Vec<Vec<String>> = checks
            .iter()
            .map(|c| {
                vec![
                    c.subject.clone(),
                    c.check.clone(),
                    match c.passed {
                        Some(p) => style.verdict(p),
                        None => style.warn("n/a"),
                    },
                    c.detail.clone(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(&["service", "check", "result", "why"], &rows));
    }
    out.push_str(&format!(
        "\n{}\n",
        if validation.passed {
            style.good("validation passed")
        } else {
            style.bad("validation FAILED")
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn targets_decide_and_missing_data_is_not_a_failure() {
        let metrics = json!({"services": [
            {"name": "leads", "caches": true, "hit_rate": 0.97, "latency_target_ms": 150,
             "latency_ms": {"edge": {"p95": 12.0, "count": 100}}},
            {"name": "coaching", "caches": true, "hit_rate": 0.5, "latency_target_ms": 45,
             "latency_ms": {"edge": {"p95": 80.0, "count": 100}}},
            {"name": "webhooks", "caches": false, "hit_rate": null, "latency_target_ms": 400,
             "latency_ms": {"edge": {"p95": null, "count": 0}}}
        ]});
        let health =
            json!({"status": "degraded", "reasons": ["hit rate 50% under target 90%: coaching"]});
        let checks = live_checks(&metrics, &health, 0.9);
        let verdicts: Vec<(&str, &str, Option<bool>)> = checks
            .iter()
            .map(|c| (c.subject.as_str(), c.check.as_str(), c.passed))
            .collect();
        assert_eq!(
            verdicts,
            vec![
                ("edge", "health", Some(false)),
                ("leads", "latency p95", Some(true)),
                ("leads", "hit rate", Some(true)),
                ("coaching", "latency p95", Some(false)),
                ("coaching", "hit rate", Some(false)),
                ("webhooks", "latency p95", None),
            ]
        );
        assert_eq!(
            checks[3].detail,
            "edge p95 80.0 ms vs target 45 ms (100 requests)"
        );
        assert!(!passed(None, Some(&checks)));
        assert!(passed(None, Some(&checks[5..])));
    }
}

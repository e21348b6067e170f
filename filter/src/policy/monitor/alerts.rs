//! The operator's alerts, each with advice: a caching service under its hit-rate target, a
//! service slower than twice its latency target, an open breaker, a tenant rate-limited on more
//! than a set share of its traffic.

use serde::Serialize;

use super::outcome::{hit_rate, lookups, OutcomeCounts};
use super::top_tenants::TenantCounts;

/// Fewer cache lookups (hit rate) or requests (a tenant's rate-limited share) than this in the
/// window raise no alert: too little to judge.
pub const MIN_REQUESTS_FOR_ALERT: u64 = 20;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// `warning` or `critical`.
    pub severity: &'static str,
    pub kind: &'static str,
    /// The service or tenant concerned.
    pub subject: String,
    pub message: String,
    pub advice: String,
}

/// What the alerts need to know of one service.
#[derive(Debug, Clone, Default)]
pub struct ServiceView<'a> {
    pub name: &'a str,
    pub caches: bool,
    pub outcomes: OutcomeCounts,
    pub edge_p95_us: Option<u64>,
    pub latency_target_ms: Option<u64>,
    /// `closed`, `open` or `half-open`; `None` without a breaker.
    pub breaker: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// 0..=1.
    pub hit_rate_target: f64,
    /// 0..=100.
    pub rate_limited_percent: f64,
}

pub fn alerts(
    services: &[ServiceView<'_>],
    tenants: &[(String, TenantCounts)],
    thresholds: Thresholds,
) -> Vec<Alert> {
    let mut alerts = Vec::new();
    for service in services {
        if service.breaker == Some("open") {
            alerts.push(Alert {
                severity: "critical",
                kind: "breaker_open",
                subject: service.name.to_string(),
                message: format!("circuit breaker open for {}", service.name),
                advice: format!(
                    "the origin of {} is failing or slow; check it — cached entries are served \
                     stale meanwhile",
                    service.name
                ),
            });
        }
        if service.caches && lookups(&service.outcomes) >= MIN_REQUESTS_FOR_ALERT {
            if let Some(rate) = hit_rate(&service.outcomes) {
                if rate < thresholds.hit_rate_target {
                    alerts.push(Alert {
                        severity: "warning",
                        kind: "hit_rate",
                        subject: service.name.to_string(),
                        message: format!(
                            "hit rate {:.0}% for {} (target {:.0}%)",
                            rate * 100.0,
                            service.name,
                            thresholds.hit_rate_target * 100.0
                        ),
                        advice: format!("raise TTL / warm keys for service {}", service.name),
                    });
                }
            }
        }
        if let (Some(target), Some(p95)) = (service.latency_target_ms, service.edge_p95_us) {
            if p95 > target.saturating_mul(2000) {
                alerts.push(Alert {
                    severity: "warning",
                    kind: "latency",
                    subject: service.name.to_string(),
                    message: format!(
                        "p95 latency {:.0} ms for {} is over twice its {target} ms target",
                        p95 as f64 / 1000.0,
                        service.name
                    ),
                    advice: format!(
                        "cache more of {} (longer TTL, stale-while-revalidate) or look at its \
                         origin",
                        service.name
                    ),
                });
            }
        }
    }
    for (tenant, counts) in tenants {
        if counts.requests < MIN_REQUESTS_FOR_ALERT {
            continue;
        }
        let percent = counts.rejected as f64 * 100.0 / counts.requests as f64;
        if percent > thresholds.rate_limited_percent {
            alerts.push(Alert {
                severity: "warning",
                kind: "rate_limited",
                subject: tenant.clone(),
                message: format!("tenant {tenant}: {percent:.0}% of its requests rate-limited"),
                advice: format!("raise tenant {tenant}'s limit or ask it to slow down"),
            });
        }
    }
    alerts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::monitor::outcome::Outcome;

    const THRESHOLDS: Thresholds = Thresholds {
        hit_rate_target: 0.9,
        rate_limited_percent: 5.0,
    };

    fn view(name: &str, hits: u64, misses: u64) -> ServiceView<'_> {
        let mut outcomes = [0; Outcome::COUNT];
        outcomes[Outcome::HitL1.index()] = hits;
        outcomes[Outcome::Miss.index()] = misses;
        ServiceView {
            name,
            caches: true,
            outcomes,
            ..ServiceView::default()
        }
    }

    #[test]
    fn each_rule_fires_only_past_its_threshold() {
        let mut slow = view("coaching", 95, 5);
        slow.latency_target_ms = Some(45);
        slow.edge_p95_us = Some(91_000);
        let mut open = view("leads", 95, 5);
        open.breaker = Some("open");
        let services = [view("properties", 80, 20), slow, open, view("tiny", 1, 9)];
        let tenants = vec![
            (
                "loc-9".to_string(),
                TenantCounts {
                    requests: 100,
                    rejected: 6,
                },
            ),
            (
                "loc-1".to_string(),
                TenantCounts {
                    requests: 100,
                    rejected: 5,
                },
            ),
        ];
        let fired: Vec<(&str, String)> = alerts(&services, &tenants, THRESHOLDS)
            .into_iter()
            .map(|a| (a.kind, a.subject))
            .collect();
        assert_eq!(
            fired,
            vec![
                ("hit_rate", "properties".to_string()),
                ("latency", "coaching".to_string()),
                ("breaker_open", "leads".to_string()),
                ("rate_limited", "loc-9".to_string()),
            ]
        );
        let advice = &alerts(&services, &tenants, THRESHOLDS)[0].advice;
        assert_eq!(advice, "raise TTL / warm keys for service properties");
    }

    #[test]
    fn exactly_twice_the_target_is_not_an_alert() {
        let mut service = view("coaching", 100, 0);
        service.latency_target_ms = Some(45);
        service.edge_p95_us = Some(90_000);
        assert!(alerts(&[service], &[], THRESHOLDS).is_empty());
    }
}

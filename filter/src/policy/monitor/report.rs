//! The JSON bodies of `GET <prefix>/metrics` and `GET <prefix>/cache/stats`, built from the
//! process-wide aggregate, the configured services and Envoy's process-wide counters.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::alerts::{alerts, ServiceView, Thresholds};
use super::latency::LatencyHistogram;
use super::outcome::{hit_rate, lookups, Outcome, OutcomeCounts};
use super::snapshot::{outcomes_by_label, Aggregate, ServiceAggregate};
use super::window::{Summary, WINDOW_MS};

/// Top tenants listed in reports.
pub const REPORTED_TENANTS: usize = 10;

/// What a report needs to know of one configured service.
#[derive(Debug, Clone, Default)]
pub struct ServiceInfo {
    pub name: String,
    pub caches: bool,
    pub latency_target_ms: Option<u64>,
    /// `closed`, `open` or `half-open`; `None` without a breaker.
    pub breaker: Option<&'static str>,
    pub rate_limits: bool,
    pub dedups: bool,
}

/// Freshness of the process-wide figures.
#[derive(Debug, Clone, Copy)]
pub struct Freshness {
    pub publish_interval_ms: u64,
    pub now_ms: u64,
}

fn ms(micros: Option<u64>) -> Value {
    micros.map_or(Value::Null, |us| json!((us as f64 / 10.0).round() / 100.0))
}

fn percentiles(histogram: &LatencyHistogram) -> Value {
    json!({
        "p50": ms(histogram.quantile(0.50)),
        "p95": ms(histogram.quantile(0.95)),
        "p99": ms(histogram.quantile(0.99)),
        "count": histogram.count(),
    })
}

fn ratio(part: u64, whole: u64) -> Value {
    if whole == 0 {
        Value::Null
    } else {
        json!((part as f64 / whole as f64 * 10_000.0).round() / 10_000.0)
    }
}

fn per_second(count: u64, span_ms: u64) -> f64 {
    if span_ms == 0 {
        return 0.0;
    }
    (count as f64 * 1000.0 / span_ms as f64 * 100.0).round() / 100.0
}

fn count(outcomes: &OutcomeCounts, outcome: Outcome) -> u64 {
    outcomes.get(outcome.index()).copied().unwrap_or(0)
}

fn rounded(rate: Option<f64>) -> Value {
    rate.map_or(Value::Null, |r| json!((r * 10_000.0).round() / 10_000.0))
}

fn freshness(aggregate: &Aggregate, freshness: Freshness) -> Value {
    json!({
        "workers_reporting": aggregate.workers,
        "oldest_snapshot_age_ms": aggregate.oldest_age_ms,
        "publish_interval_ms": freshness.publish_interval_ms,
        "generated_ms": freshness.now_ms,
    })
}

/// One service across workers; empty when no worker reported it.
fn service_of(aggregate: &Aggregate, name: &str) -> ServiceAggregate {
    aggregate.services.get(name).cloned().unwrap_or_default()
}

/// Share of cache lookups answered by each tier.
fn tier_shares(outcomes: &OutcomeCounts) -> Value {
    let looked_up = lookups(outcomes);
    json!({
        "l1": ratio(count(outcomes, Outcome::HitL1), looked_up),
        "l2": ratio(count(outcomes, Outcome::HitL2), looked_up),
    })
}

/// `GET <prefix>/metrics`.
pub fn metrics_report(
    aggregate: &Aggregate,
    services: &[ServiceInfo],
    counters: &BTreeMap<String, u64>,
    thresholds: Thresholds,
    fresh: Freshness,
) -> Value {
    let mut rows = Vec::with_capacity(services.len());
    let mut views = Vec::with_capacity(services.len());
    let mut total = Summary::default();
    for info in services {
        let summary = service_of(aggregate, &info.name).summary;
        total.merge(&summary);
        let outcomes = &summary.outcomes;
        rows.push(json!({
            "name": info.name,
            "requests": summary.requests(),
            "requests_per_s": per_second(summary.requests(), summary.span_ms),
            "outcomes": outcomes_by_label(outcomes),
            "caches": info.caches,
            "hit_rate": rounded(hit_rate(outcomes)),
            "hit_rate_by_tier": tier_shares(outcomes),
            "latency_ms": { "edge": percentiles(&summary.edge), "origin": percentiles(&summary.origin) },
            "latency_target_ms": info.latency_target_ms,
            "breaker": info.breaker,
            "rate_limited": info.rate_limits.then(|| count(outcomes, Outcome::RateLimited)),
            "dedup_replayed": info.dedups.then(|| count(outcomes, Outcome::DedupReplay)),
        }));
        views.push(ServiceView {
            name: &info.name,
            caches: info.caches,
            outcomes: *outcomes,
            edge_p95_us: summary.edge.quantile(0.95),
            latency_target_ms: info.latency_target_ms,
            breaker: info.breaker,
        });
    }
    let mut tenants: Vec<_> = aggregate
        .tenants
        .iter()
        .map(|(name, counts)| (name.clone(), counts.clone()))
        .collect();
    tenants.sort_by(|a, b| b.1.requests.cmp(&a.1.requests).then(a.0.cmp(&b.0)));
    let alerts = alerts(&views, &tenants, thresholds);
    let tenant_rows: Vec<Value> = tenants
        .iter()
        .take(REPORTED_TENANTS)
        .map(|(name, counts)| {
            json!({
                "tenant": name,
                "requests": counts.requests,
                "rate_limited": counts.rejected,
                "rate_limited_ratio": ratio(counts.rejected, counts.requests),
            })
        })
        .collect();
    let mut by_rejections: Vec<&(String, _)> =
        tenants.iter().filter(|(_, c)| c.rejected > 0).collect();
    by_rejections.sort_by(|a, b| b.1.rejected.cmp(&a.1.rejected).then(a.0.cmp(&b.0)));
    let rejected_rows: Vec<Value> = by_rejections
        .iter()
        .take(REPORTED_TENANTS)
        .map(|(name, counts)| json!({ "tenant": name, "rate_limited": counts.rejected, "requests": counts.requests }))
        .collect();
    json!({
        "window_s": WINDOW_MS / 1000,
        "freshness": freshness(aggregate, fresh),
        "totals": {
            "requests": total.requests(),
            "requests_per_s": per_second(total.requests(), total.span_ms),
            "hit_rate": rounded(hit_rate(&total.outcomes)),
            "outcomes": outcomes_by_label(&total.outcomes),
        },
        "services": rows,
        "top_tenants": { "by_requests": tenant_rows, "by_rate_limited": rejected_rows },
        "counters": counters,
        "alerts": alerts,
    })
}

/// Process-wide cache figures read from Envoy counters and gauges.
#[derive(Debug, Clone, Copy, Default)]
pub struct TierFigures {
    pub hits: u64,
    pub misses: u64,
    pub stores: u64,
    pub evictions: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// `GET <prefix>/cache/stats`.
pub fn cache_report(
    aggregate: &Aggregate,
    services: &[ServiceInfo],
    (l1, l2): (TierFigures, TierFigures),
    (l2_slots, raw_bytes, compressed_bytes): (u64, u64, u64),
    fresh: Freshness,
) -> Value {
    let tier = |t: TierFigures| {
        json!({
            "hits": t.hits,
            "misses": t.misses,
            "hit_rate": ratio(t.hits, t.hits.saturating_add(t.misses)),
            "stores": t.stores,
            "evictions": t.evictions,
            "entries": t.entries,
            "bytes": t.bytes,
        })
    };
    let mut l2_value = tier(l2);
    if let Some(object) = l2_value.as_object_mut() {
        object.insert("slots".into(), json!(l2_slots));
        object.insert("occupancy".into(), ratio(l2.entries, l2_slots));
        object.insert("stored_bytes_raw".into(), json!(raw_bytes));
        object.insert("stored_bytes_compressed".into(), json!(compressed_bytes));
        object.insert(
            "compression_ratio".into(),
            ratio(compressed_bytes, raw_bytes),
        );
    }
    let rows: Vec<Value> = services
        .iter()
        .filter(|s| s.caches)
        .map(|info| {
            let service = service_of(aggregate, &info.name);
            let outcomes = &service.summary.outcomes;
            let mut tenants: Vec<(&String, &u64)> = service.l1_tenants.iter().collect();
            tenants.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let tenants: Vec<Value> = tenants
                .into_iter()
                .take(REPORTED_TENANTS)
                .map(|(tenant, entries)| json!({ "tenant": tenant, "l1_entries": entries }))
                .collect();
            json!({
                "name": info.name,
                "l1_entries": service.l1_entries,
                "l1_bytes": service.l1_bytes,
                "hit_rate": rounded(hit_rate(outcomes)),
                "hit_rate_by_tier": tier_shares(outcomes),
                "lookups": lookups(outcomes),
                "top_tenants": tenants,
            })
        })
        .collect();
    json!({
        "window_s": WINDOW_MS / 1000,
        "freshness": freshness(aggregate, fresh),
        "tiers": { "l1": tier(l1), "l2": l2_value },
        "services": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::monitor::snapshot::{service_snapshot, WorkerSnapshot, SNAPSHOT_VERSION};
    use crate::policy::monitor::top_tenants::TenantCounts;
    use crate::policy::monitor::window::Window;

    const THRESHOLDS: Thresholds = Thresholds {
        hit_rate_target: 0.9,
        rate_limited_percent: 5.0,
    };

    fn aggregate() -> Aggregate {
        let mut window = Window::default();
        let now = 100_000;
        for _ in 0..30 {
            window.record(now, Outcome::HitL1, 80, None);
        }
        for _ in 0..10 {
            window.record(now, Outcome::Miss, 150_000, Some(149_000));
        }
        let mut service = service_snapshot("leads", &window.summary(now + 2_000));
        service.l1_entries = 10;
        service.l1_tenants = vec![("loc-1".into(), 7), ("loc-2".into(), 3)];
        let mut aggregate = Aggregate::default();
        aggregate.add(
            &WorkerSnapshot {
                v: SNAPSHOT_VERSION,
                owner: 1,
                published_ms: now + 2_000,
                services: vec![service],
                tenants: vec![(
                    "loc-1".into(),
                    TenantCounts {
                        requests: 40,
                        rejected: 4,
                    },
                )],
            },
            now + 2_500,
            crate::policy::monitor::snapshot::STALE_AFTER_MS,
        );
        aggregate
    }

    fn services() -> Vec<ServiceInfo> {
        vec![
            ServiceInfo {
                name: "leads".into(),
                caches: true,
                latency_target_ms: Some(50),
                breaker: Some("closed"),
                rate_limits: true,
                ..ServiceInfo::default()
            },
            ServiceInfo {
                name: "webhooks".into(),
                dedups: true,
                ..ServiceInfo::default()
            },
        ]
    }

    #[test]
    fn metrics_report_has_rates_percentiles_tenants_and_alerts() {
        let fresh = Freshness {
            publish_interval_ms: 1000,
            now_ms: 102_500,
        };
        let report = metrics_report(
            &aggregate(),
            &services(),
            &BTreeMap::new(),
            THRESHOLDS,
            fresh,
        );
        let leads = &report["services"][0];
        assert_eq!(leads["requests"], 40);
        assert_eq!(leads["requests_per_s"], 20.0);
        assert_eq!(leads["hit_rate"], 0.75);
        assert_eq!(leads["hit_rate_by_tier"]["l1"], 0.75);
        assert_eq!(leads["outcomes"]["miss"], 10);
        let p95 = leads["latency_ms"]["origin"]["p95"].as_f64().unwrap();
        assert!((p95 / 149.0 - 1.0).abs() <= 0.12, "{p95}");
        assert_eq!(leads["latency_ms"]["edge"]["count"], 40);
        assert_eq!(report["services"][1]["requests"], 0);
        assert_eq!(report["services"][1]["hit_rate"], Value::Null);
        assert_eq!(report["freshness"]["workers_reporting"], 1);
        assert_eq!(report["freshness"]["oldest_snapshot_age_ms"], 500);
        assert_eq!(report["top_tenants"]["by_requests"][0]["tenant"], "loc-1");
        assert_eq!(
            report["top_tenants"]["by_rate_limited"][0]["rate_limited"],
            4
        );
        let kinds: Vec<&str> = report["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["hit_rate", "latency", "rate_limited"]);
    }

    #[test]
    fn cache_report_has_tiers_compression_and_tenants() {
        let l1 = TierFigures {
            hits: 30,
            misses: 10,
            entries: 10,
            ..TierFigures::default()
        };
        let l2 = TierFigures {
            hits: 0,
            misses: 10,
            entries: 16,
            ..TierFigures::default()
        };
        let fresh = Freshness {
            publish_interval_ms: 1000,
            now_ms: 102_500,
        };
        let report = cache_report(&aggregate(), &services(), (l1, l2), (64, 1000, 430), fresh);
        assert_eq!(report["tiers"]["l1"]["hit_rate"], 0.75);
        assert_eq!(report["tiers"]["l2"]["occupancy"], 0.25);
        assert_eq!(report["tiers"]["l2"]["compression_ratio"], 0.43);
        assert_eq!(report["services"].as_array().unwrap().len(), 1);
        assert_eq!(report["services"][0]["top_tenants"][0]["tenant"], "loc-1");
        assert_eq!(report["services"][0]["l1_entries"], 10);
    }
}

//! `edge-ctl optimize`: the live figures (`/metrics`, `/cache/stats`, Envoy's counters) turned
//! into configuration changes, each with its evidence. Pure: figures and configuration in,
//! proposals out; `edge-ctl` prints the diff and, with `--apply`, writes the watched file.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

/// What the rules look at.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    /// `GET <prefix>/metrics`.
    pub metrics: Value,
    /// `GET <prefix>/cache/stats`.
    pub cache_stats: Value,
    /// Envoy's counters and gauges (`wasmcustom.` prefix included).
    pub stats: BTreeMap<String, u64>,
}

/// One proposed change: the field (as the filter's error messages name fields), old and new
/// value, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Proposal {
    pub rule: &'static str,
    pub field: String,
    pub from: Value,
    pub to: Value,
    pub evidence: String,
    /// Path segments into the configuration (keys, or indices as numbers).
    #[serde(skip)]
    pub path: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

fn key(k: &str) -> Segment {
    Segment::Key(k.to_string())
}

/// Share of rate-limited requests that makes a tenant's limit worth an override.
pub const RATE_LIMITED_SHARE: f64 = 0.05;
/// Share of misses that were expired entries (revalidations) from which serving stale while
/// revalidating pays: each of them would have been a hit.
pub const EXPIRED_MISS_SHARE: f64 = 0.25;
/// The stale-while-revalidate window proposed.
pub const PROPOSED_SWR_S: u64 = 30;

/// The process-wide counters the rules read as evidence. Envoy keeps them across reloads, so
/// each run counts only what happened since the last `--apply` (see [`since`]).
const EVIDENCE_COUNTERS: [&str; 7] = [
    "edge.cache.miss",
    "edge.cache.revalidated",
    "edge.cache.not_modified",
    "edge.cache.l1.eviction",
    "edge.cache.l1.store",
    "edge.cache.l2.eviction",
    "edge.cache.l2.store",
];

/// What `--apply` records so that the next run needs fresh evidence: the evidence counters
/// and the breaker trips as they were.
pub fn baseline(figures: &Figures) -> Value {
    let stats: serde_json::Map<String, Value> = EVIDENCE_COUNTERS
        .iter()
        .map(|name| (name.to_string(), json!(stat(figures, name))))
        .collect();
    json!({
        "stats": stats,
        "breaker_trips": figures.metrics["counters"]["edge.breaker.trips"].as_u64().unwrap_or(0),
    })
}

/// The figures reduced to what happened since `baseline` (from [`baseline`]): counters minus
/// their recorded values (a counter below its record — Envoy restarted — counts from zero).
/// The per-worker windows of `/metrics` need no such care: a reload starts them anew.
pub fn since(figures: &mut Figures, baseline: &Value) {
    for name in EVIDENCE_COUNTERS {
        let Some(then) = baseline["stats"][name].as_u64() else {
            continue;
        };
        if let Some(now) = figures.stats.get_mut(&format!("wasmcustom.{name}")) {
            if *now >= then {
                *now -= then;
            }
        }
    }
    if let Some(then) = baseline["breaker_trips"].as_u64() {
        let trips = &mut figures.metrics["counters"]["edge.breaker.trips"];
        if let Some(now) = trips.as_u64().filter(|now| *now >= then) {
            *trips = json!(now - then);
        }
    }
}

fn stat(figures: &Figures, name: &str) -> u64 {
    figures
        .stats
        .get(&format!("wasmcustom.{name}"))
        .copied()
        .unwrap_or(0)
}

fn field_name(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(k) if out.is_empty() => out.push_str(k),
            Segment::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn get<'a>(config: &'a Value, path: &[Segment]) -> &'a Value {
    path.iter().fold(config, |value, segment| match segment {
        Segment::Key(k) => &value[k.as_str()],
        Segment::Index(i) => &value[*i],
    })
}

/// Sets `path` in `config`, creating objects on the way.
pub fn set(config: &mut Value, path: &[Segment], to: Value) {
    let mut value = config;
    for segment in path {
        value = match segment {
            Segment::Key(k) => {
                if !value.is_object() {
                    *value = json!({});
                }
                match value.as_object_mut() {
                    Some(map) => map.entry(k.clone()).or_insert(Value::Null),
                    None => return,
                }
            }
            Segment::Index(i) => match value.get_mut(*i) {
                Some(v) => v,
                None => return,
            },
        };
    }
    *value = to;
}

fn proposal(
    rule: &'static str,
    config: &Value,
    path: Vec<Segment>,
    to: Value,
    evidence: String,
) -> Proposal {
    Proposal {
        rule,
        field: field_name(&path),
        from: get(config, &path).clone(),
        to,
        evidence,
        path,
    }
}

fn service_metrics<'a>(figures: &'a Figures, name: &str) -> Option<&'a Value> {
    figures.metrics["services"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)
}

/// Every rule over the figures.
pub fn propose(config: &Value, figures: &Figures, hit_rate_target: f64) -> Vec<Proposal> {
    let mut out = Vec::new();
    let services = config["services"].as_array().cloned().unwrap_or_default();
    // 1. Misses just after expiry: revalidations are entries that expired while still wanted.
    let misses = stat(figures, "edge.cache.miss");
    let revalidations =
        stat(figures, "edge.cache.revalidated") + stat(figures, "edge.cache.not_modified");
    for (i, service) in services.iter().enumerate() {
        let name = service["name"].as_str().unwrap_or("?");
        if !service["cache"].is_object() || !service["cache"]["stale_while_revalidate_s"].is_null()
        {
            continue;
        }
        let Some(rate) = service_metrics(figures, name).and_then(|m| m["hit_rate"].as_f64()) else {
            continue;
        };
        let fetches = misses + revalidations;
        let expired_share = revalidations as f64 / fetches.max(1) as f64;
        if rate < hit_rate_target && misses > 0 && expired_share >= EXPIRED_MISS_SHARE {
            out.push(proposal(
                "stale_while_revalidate",
                config,
                vec![key("services"), Segment::Index(i), key("cache"), key("stale_while_revalidate_s")],
                json!(PROPOSED_SWR_S),
                format!(
                    "{name}: hit rate {:.1}% under the {:.0}% target, and {revalidations} of {fetches} origin fetches ({:.0}%) were revalidations of expired entries: serve them stale for {PROPOSED_SWR_S} s while one background request refreshes",
                    rate * 100.0,
                    hit_rate_target * 100.0,
                    expired_share * 100.0
                ),
            ));
        }
    }
    // 2. L1 evicting entries that are still wanted.
    let (evictions, stores) = (
        stat(figures, "edge.cache.l1.eviction"),
        stat(figures, "edge.cache.l1.store"),
    );
    let current = config["limits"]["l1_max_entries"]
        .as_u64()
        .unwrap_or(10_000);
    let max_bytes = config["limits"]["l1_max_bytes"]
        .as_u64()
        .unwrap_or(64 << 20);
    let workers = figures.metrics["freshness"]["workers_reporting"]
        .as_u64()
        .unwrap_or(1)
        .max(1);
    let entries = stat(figures, "edge.cache.l1.entries");
    let bytes = stat(figures, "edge.cache.l1.bytes");
    // Evictions matter when L1 is full (others replace expired or purged entries).
    let full = entries * 10 >= current * workers * 9 || bytes * 10 >= max_bytes * workers * 9;
    if full && evictions >= 10 && evictions * 100 >= stores {
        out.push(proposal(
            "l1_size",
            config,
            vec![key("limits"), key("l1_max_entries")],
            json!((current * 2).min(1_000_000)),
            format!(
                "L1 evicted {evictions} entries for {stores} stored ({:.0}%), and is full: {entries} entries across {workers} workers at a limit of {current} per worker",
                evictions as f64 * 100.0 / stores.max(1) as f64
            ),
        ));
    }
    // 3. L2 slots overwritten by other keys: advice only (see [`restart_advice`]).
    // 4. A breaker that keeps opening: a longer window and a later trip.
    let trips = figures.metrics["counters"]["edge.breaker.trips"]
        .as_u64()
        .unwrap_or(0);
    for (i, service) in services.iter().enumerate() {
        let name = service["name"].as_str().unwrap_or("?");
        if !service["breaker"].is_object() {
            continue;
        }
        let rejected = service_metrics(figures, name)
            .and_then(|m| m["outcomes"]["breaker_open"].as_u64())
            .unwrap_or(0);
        if trips >= 2 && rejected > 0 {
            let window = service["breaker"]["window_s"].as_u64().unwrap_or(10);
            let min_requests = service["breaker"]["min_requests"].as_u64().unwrap_or(20);
            let evidence = format!(
                "{name}: breakers tripped {trips} times and {rejected} requests were refused while open in the last minute: judge over a longer window with more requests"
            );
            let breaker = vec![key("services"), Segment::Index(i), key("breaker")];
            let mut window_path = breaker.clone();
            window_path.push(key("window_s"));
            out.push(proposal(
                "breaker_flapping",
                config,
                window_path,
                json!((window * 3).min(300)),
                evidence.clone(),
            ));
            let mut min_path = breaker;
            min_path.push(key("min_requests"));
            out.push(proposal(
                "breaker_flapping",
                config,
                min_path,
                json!(min_requests * 2),
                evidence,
            ));
        }
    }
    // 5. A tenant rate-limited above 5%: an override doubling its limit.
    let limited: Vec<&Value> = figures.metrics["top_tenants"]["by_requests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["rate_limited_ratio"].as_f64().unwrap_or(0.0) > RATE_LIMITED_SHARE)
        .collect();
    for (i, service) in services.iter().enumerate() {
        let name = service["name"].as_str().unwrap_or("?");
        let limit = &service["rate_limit"];
        if !limit.is_object() {
            continue;
        }
        let service_limited = service_metrics(figures, name)
            .and_then(|m| m["rate_limited"].as_u64())
            .unwrap_or(0);
        if service_limited == 0 {
            continue;
        }
        for tenant in &limited {
            let Some(id) = tenant["tenant"].as_str() else {
                continue;
            };
            if !limit["overrides"][id].is_null() {
                continue;
            }
            let rps = limit["requests_per_second"].as_f64().unwrap_or(1.0);
            let burst = limit["burst"].as_u64().unwrap_or(1);
            out.push(proposal(
                "rate_limit_override",
                config,
                vec![
                    key("services"),
                    Segment::Index(i),
                    key("rate_limit"),
                    key("overrides"),
                    key(id),
                ],
                json!({"requests_per_second": rps * 2.0, "burst": burst * 2}),
                format!(
                    "tenant {id}: {} of its {} requests ({:.1}%) were rate-limited (over {:.0}%)",
                    tenant["rate_limited"],
                    tenant["requests"],
                    tenant["rate_limited_ratio"].as_f64().unwrap_or(0.0) * 100.0,
                    RATE_LIMITED_SHARE * 100.0
                ),
            ));
        }
    }
    out
}

/// Advice without a configuration change: caching services under the target with no
/// expiry evidence (cold keys: warm them).
pub fn advice(figures: &Figures, hit_rate_target: f64, proposals: &[Proposal]) -> Vec<String> {
    let mut out = Vec::new();
    for service in figures.metrics["services"].as_array().into_iter().flatten() {
        let name = service["name"].as_str().unwrap_or("?");
        let Some(rate) = service["hit_rate"].as_f64() else {
            continue;
        };
        let covered = proposals.iter().any(|p| {
            p.rule == "stale_while_revalidate" && p.evidence.starts_with(&format!("{name}:"))
        });
        if rate < hit_rate_target && !covered {
            out.push(format!(
                "{name}: hit rate {:.1}% under the {:.0}% target with misses on keys not seen before: warm the hottest keys (edge-ctl warm-cache --hot 100) or raise their TTL at the origin",
                rate * 100.0,
                hit_rate_target * 100.0
            ));
        }
    }
    out
}

/// Changes that need a restart, never proposed as a live change: a slot count lays shared
/// data out anew, so a live reload would drop the table (the launcher refuses it).
pub fn restart_advice(config: &Value, figures: &Figures) -> Vec<String> {
    let (l2_evictions, l2_stores) = (
        stat(figures, "edge.cache.l2.eviction"),
        stat(figures, "edge.cache.l2.store"),
    );
    let mut out = Vec::new();
    if l2_evictions >= 10 && l2_evictions * 20 >= l2_stores {
        let current = config["limits"]["l2_slots"].as_u64().unwrap_or(65_536);
        out.push(format!(
            "L2 replaced {l2_evictions} entries by other keys for {l2_stores} stored: raise limits.l2_slots ({current} -> {}) at the next restart of edge-launch (a slot count cannot change live: the reload would drop L2)",
            (current * 2).min(1_048_576)
        ));
    }
    out
}

/// The configuration with every proposal applied.
pub fn apply(config: &Value, proposals: &[Proposal]) -> Value {
    let mut new = config.clone();
    for p in proposals {
        set(&mut new, &p.path, p.to.clone());
    }
    new
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Value {
        json!({"services": [
            {"name": "leads", "match": {"path_prefix": "/l/"}, "cache": {},
             "rate_limit": {"tenant": {"header": "t"}, "requests_per_second": 10, "burst": 20},
             "breaker": {}},
            {"name": "hooks", "match": {"path_prefix": "/h/"}}
        ], "limits": {"l1_max_entries": 100}})
    }

    fn stats(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs
            .iter()
            .map(|(k, v)| (format!("wasmcustom.{k}"), *v))
            .collect()
    }

    #[test]
    fn each_rule_needs_its_evidence() {
        let quiet = Figures {
            metrics: json!({"services": [{"name": "leads", "hit_rate": 0.97, "rate_limited": 0,
                                          "outcomes": {"breaker_open": 0}}]}),
            ..Figures::default()
        };
        assert!(propose(&config(), &quiet, 0.9).is_empty());

        let busy = Figures {
            metrics: json!({
                "services": [{"name": "leads", "hit_rate": 0.6, "rate_limited": 40,
                              "outcomes": {"breaker_open": 12}}],
                "counters": {"edge.breaker.trips": 3},
                "top_tenants": {"by_requests": [
                    {"tenant": "loc-1", "requests": 400, "rate_limited": 40, "rate_limited_ratio": 0.1},
                    {"tenant": "loc-2", "requests": 400, "rate_limited": 1, "rate_limited_ratio": 0.0025}]}}),
            stats: stats(&[
                ("edge.cache.miss", 100),
                ("edge.cache.revalidated", 30),
                ("edge.cache.not_modified", 40),
                ("edge.cache.l1.eviction", 50),
                ("edge.cache.l1.store", 400),
                ("edge.cache.l1.entries", 95),
            ]),
            ..Figures::default()
        };
        let proposals = propose(&config(), &busy, 0.9);
        let fields: Vec<&str> = proposals.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "services[0].cache.stale_while_revalidate_s",
                "limits.l1_max_entries",
                "services[0].breaker.window_s",
                "services[0].breaker.min_requests",
                "services[0].rate_limit.overrides.loc-1",
            ]
        );
        assert_eq!(proposals[1].from, json!(100));
        assert_eq!(proposals[1].to, json!(200));
        assert!(
            proposals[0]
                .evidence
                .contains("70 of 170 origin fetches (41%)"),
            "{}",
            proposals[0].evidence
        );
        let new = apply(&config(), &proposals);
        assert_eq!(
            new["services"][0]["rate_limit"]["overrides"]["loc-1"]["burst"],
            40
        );
        assert_eq!(new["services"][0]["cache"]["stale_while_revalidate_s"], 30);
        assert_eq!(new["services"][0]["breaker"]["window_s"], 30);
        // The result is a configuration the filter accepts.
        edge_filter::policy::Config::parse(new.to_string().as_bytes()).unwrap();
    }

    #[test]
    fn after_an_apply_only_fresh_evidence_counts() {
        let figures = Figures {
            metrics: json!({"services": [{"name": "leads", "hit_rate": 0.97}],
                            "counters": {"edge.breaker.trips": 3},
                            "freshness": {"workers_reporting": 1}}),
            stats: stats(&[
                ("edge.cache.l1.eviction", 50),
                ("edge.cache.l1.store", 400),
                ("edge.cache.l1.entries", 95),
            ]),
            ..Figures::default()
        };
        let proposals = propose(&config(), &figures, 0.9);
        assert_eq!(proposals.len(), 1);
        assert_eq!(proposals[0].field, "limits.l1_max_entries");
        // Applied; the next run sees the same process-wide counters: nothing new, no proposal.
        let recorded = baseline(&figures);
        let applied = apply(&config(), &proposals);
        let mut again = figures.clone();
        since(&mut again, &recorded);
        assert!(propose(&applied, &again, 0.9).is_empty());
        assert_eq!(again.metrics["counters"]["edge.breaker.trips"], 0);
        // New evictions after the apply are evidence again.
        let mut later = figures.clone();
        later
            .stats
            .insert("wasmcustom.edge.cache.l1.eviction".into(), 150);
        later
            .stats
            .insert("wasmcustom.edge.cache.l1.store".into(), 500);
        later
            .stats
            .insert("wasmcustom.edge.cache.l1.entries".into(), 195);
        since(&mut later, &recorded);
        let proposals = propose(&applied, &later, 0.9);
        assert_eq!(proposals.len(), 1, "{proposals:?}");
        assert_eq!(proposals[0].to, json!(400));
    }

    #[test]
    fn a_slot_count_is_never_proposed_as_a_live_change() {
        let evicting = Figures {
            stats: stats(&[("edge.cache.l2.eviction", 50), ("edge.cache.l2.store", 100)]),
            ..Figures::default()
        };
        let proposals = propose(&config(), &evicting, 0.9);
        assert!(
            proposals.iter().all(|p| !p.field.contains("_slots")),
            "{:?}",
            proposals.iter().map(|p| &p.field).collect::<Vec<_>>()
        );
        let advice = restart_advice(&config(), &evicting);
        assert_eq!(advice.len(), 1);
        assert!(
            advice[0].contains("(65536 -> 131072) at the next restart"),
            "{advice:?}"
        );
    }
}

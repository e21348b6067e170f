//! The worker's monitoring: last-minute windows per service and the top-tenant table, fed by
//! every finished request; published to one shared-data slot per worker so that any worker can
//! answer the JSON endpoints for the whole process.

use std::collections::{BTreeMap, HashMap};

use super::breaker::{self, Breakers};
use super::env::Env;
use super::host::{now_nanos, HostStore};
use super::metrics::{Stat, BREAKER_CLOSED, BREAKER_HALF_OPEN, BREAKER_OPEN, STATS};
use super::reply::Reply;
use crate::policy::cache::l1::L1Cache;
use crate::policy::monitor::alerts::Thresholds;
use crate::policy::monitor::outcome::Outcome;
use crate::policy::monitor::report::{
    cache_report, metrics_report, Freshness, ServiceInfo, TierFigures, REPORTED_TENANTS,
};
use crate::policy::monitor::snapshot::{
    may_take, service_snapshot, slot_key, stale_after_ms, Aggregate, WorkerSnapshot,
    PUBLISHED_TENANTS, SNAPSHOT_VERSION,
};
use crate::policy::monitor::top_tenants::TopTenants;
use crate::policy::monitor::window::{Summary, Window};
use crate::policy::shared_store::SharedStore;
use crate::policy::Registry;

/// Prefix of the per-worker snapshot slots.
pub const MONITOR_KEY_PREFIX: &str = "edge:mon:";

#[derive(Debug)]
pub struct Monitor {
    pub enabled: bool,
    windows: Vec<Window>,
    tenants: TopTenants,
    /// The shared-data slot this worker publishes to, once it has taken one.
    slot: Option<u64>,
    pub last_publish_ms: u64,
    /// Whether this VM has served a request: VMs that never do (Envoy's main-thread VM) do
    /// not publish, so `workers_reporting` counts workers with traffic.
    seen_traffic: bool,
    /// The last L1 census, per service name, and when it was taken.
    census: HashMap<String, L1Census>,
    census_at_ms: u64,
    /// Answers sent at once since the last one timed, and that one's edge latency (µs).
    at_once_untimed: u32,
    at_once_last_us: Option<u64>,
}

/// An answer sent from the request-headers callback takes microseconds; timing every one
/// would cost a clock read (a host call) per hit, so 1 in this many is timed and the others
/// are recorded with the last timed one's latency (the histogram's count stays exact).
const AT_ONCE_SAMPLE_EVERY: u32 = 16;

/// A timed answer sent at once that took longer than this (a stalled worker, a clock that
/// jumped) is recorded for itself only, not repeated for the untimed ones after it.
const AT_ONCE_CARRIED_AT_MOST_US: u64 = 1_000;

impl Monitor {
    pub fn new(registry: &Registry) -> Self {
        let settings = &registry.settings().monitoring;
        Self {
            enabled: settings.enabled,
            windows: vec![Window::default(); registry.service_count() + 1],
            tenants: TopTenants::new(usize::try_from(settings.top_tenants).unwrap_or(64)),
            slot: None,
            last_publish_ms: 0,
            seen_traffic: false,
            census: HashMap::new(),
            census_at_ms: 0,
            at_once_untimed: 0,
            at_once_last_us: None,
        }
    }

    /// When a finished request is logged and its edge latency (both µs). An answer sent at
    /// once is timed only 1 in [`AT_ONCE_SAMPLE_EVERY`]; the others take the last timed one's
    /// latency and read no clock.
    pub fn logged_at(&mut self, started_us: u64, answered_at_once: bool) -> (u64, u64) {
        if answered_at_once && self.at_once_untimed + 1 < AT_ONCE_SAMPLE_EVERY {
            if let Some(edge_us) = self.at_once_last_us {
                self.at_once_untimed += 1;
                return (started_us.saturating_add(edge_us), edge_us);
            }
        }
        let now_us = now_nanos() / 1000;
        let edge_us = now_us.saturating_sub(started_us);
        if answered_at_once {
            // An outlier stands for itself only: the next one is timed too.
            self.at_once_last_us = (edge_us <= AT_ONCE_CARRIED_AT_MOST_US).then_some(edge_us);
            self.at_once_untimed = 0;
        }
        (now_us, edge_us)
    }

    pub fn record(
        &mut self,
        service_index: usize,
        outcome: Outcome,
        (edge_us, origin_us): (u64, Option<u64>),
        tenant: Option<&str>,
        now_ms: u64,
    ) {
        self.seen_traffic = true;
        if let Some(window) = self.windows.get_mut(service_index) {
            window.record(now_ms, outcome, edge_us, origin_us);
        }
        if let Some(tenant) = tenant {
            self.tenants
                .record(tenant, outcome == Outcome::RateLimited, now_ms);
        }
    }

    /// This worker's last minute of one service.
    pub fn summary(&self, service_index: usize, now_ms: u64) -> Summary {
        self.windows
            .get(service_index)
            .map(|w| w.summary(now_ms))
            .unwrap_or_default()
    }
}

/// Every service in registry order, the default service last.
fn services(registry: &Registry) -> impl Iterator<Item = &crate::policy::Service> {
    (0..=registry.service_count()).filter_map(|index| registry.service_at(index))
}

/// Breaker state name of a service as the worker sees it (at most the read-cache time old);
/// `None` without a breaker.
pub fn breaker_state(
    env: &Env,
    breakers: &mut Breakers,
    service_index: usize,
    now_ms: u64,
) -> Option<&'static str> {
    let has_breaker = env
        .registry
        .service_at(service_index)
        .is_some_and(|s| s.breaker.is_some());
    has_breaker.then(|| breaker::phase_name(env, breakers, service_index, now_ms))
}

/// How often the tick re-counts L1 per service and tenant (a walk over every L1 entry);
/// `/cache/stats` re-counts on the answering worker at once.
const CENSUS_EVERY_MS: u64 = 10_000;

/// One service's share of this worker's L1.
#[derive(Debug, Clone, Default)]
struct L1Census {
    entries: u64,
    bytes: u64,
    /// Tenants holding the most entries: (tenant, entries).
    tenants: Vec<(String, u64)>,
}

/// Counts L1 entries and bytes per service, and the tenants holding the most of each.
fn l1_census(l1: &L1Cache) -> HashMap<String, L1Census> {
    let mut counts: HashMap<&str, (u64, u64, HashMap<&str, u64>)> = HashMap::new();
    for (key, tenant, size) in l1.census() {
        // Keys are `v2\n<service>\n<tenant>\n...`.
        let service = key.split('\n').nth(1).unwrap_or_default();
        let row = counts.entry(service).or_default();
        row.0 += 1;
        row.1 += size as u64;
        if let Some(tenant) = tenant {
            *row.2.entry(tenant).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .map(|(service, (entries, bytes, tenants))| {
            let mut tenants: Vec<(String, u64)> = tenants
                .into_iter()
                .map(|(t, n)| (t.to_string(), n))
                .collect();
            tenants.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            tenants.truncate(REPORTED_TENANTS);
            let census = L1Census {
                entries,
                bytes,
                tenants,
            };
            (service.to_string(), census)
        })
        .collect()
}

/// Writes this worker's snapshot to its slot (taking a free or abandoned slot first), and
/// updates the breaker-state gauges. Called from the tick every `publish_interval_ms`, and
/// before answering a JSON endpoint; `fresh_census` re-counts L1 now rather than every
/// [`CENSUS_EVERY_MS`].
pub fn publish(
    (env, breakers): (&Env, &mut Breakers),
    monitor: &mut Monitor,
    l1: &L1Cache,
    now_ms: u64,
    fresh_census: bool,
) {
    monitor.last_publish_ms = now_ms;
    let registry = &env.registry;
    for service in services(registry) {
        if let Some(state) = breaker_state(env, breakers, service.index, now_ms) {
            let value = match state {
                "open" => BREAKER_OPEN,
                "half-open" => BREAKER_HALF_OPEN,
                _ => BREAKER_CLOSED,
            };
            env.metrics.set_breaker_state(service.index, value);
        }
    }
    if !monitor.enabled || !monitor.seen_traffic {
        return;
    }
    let census_due = now_ms.saturating_sub(monitor.census_at_ms) >= CENSUS_EVERY_MS;
    if fresh_census || census_due || monitor.census.is_empty() {
        monitor.census = l1_census(l1);
        monitor.census_at_ms = now_ms;
    }
    let snapshot = WorkerSnapshot {
        v: SNAPSHOT_VERSION,
        owner: env.owner,
        published_ms: now_ms,
        services: services(registry)
            .map(|service| {
                let summary = monitor.summary(service.index, now_ms);
                let mut row = service_snapshot(&service.name, &summary);
                if let Some(census) = monitor.census.get(&service.name) {
                    row.l1_entries = census.entries;
                    row.l1_bytes = census.bytes;
                    row.l1_tenants = census.tenants.clone();
                }
                row
            })
            .collect(),
        tenants: {
            monitor.tenants.decay(now_ms);
            monitor.tenants.top_and_most_limited(PUBLISHED_TENANTS)
        },
    };
    let encoded = snapshot.encode();
    let slots = registry.settings().monitoring.worker_slots;
    let stale_after = stale_after_ms(registry.settings().monitoring.publish_interval_ms);
    // The slot held so far, then every other one from a place that depends on the owner (so
    // workers starting together do not all race for slot 0).
    let start = env.owner % slots.max(1);
    let candidates = monitor
        .slot
        .into_iter()
        .chain((0..slots).map(|i| (start + i) % slots));
    for slot in candidates {
        let key = slot_key(slot);
        let Some((current, cas)) = HostStore.get(&key) else {
            continue;
        };
        if !may_take(Some(&current), env.owner, now_ms, stale_after) {
            if monitor.slot == Some(slot) {
                monitor.slot = None;
            }
            continue;
        }
        if HostStore.set(&key, &encoded, cas).is_ok() {
            monitor.slot = Some(slot);
            return;
        }
    }
}

/// Every fresh worker snapshot added up.
pub fn aggregate(registry: &Registry, now_ms: u64) -> Aggregate {
    let mut aggregate = Aggregate::default();
    let stale_after = stale_after_ms(registry.settings().monitoring.publish_interval_ms);
    for slot in 0..registry.settings().monitoring.worker_slots {
        if let Some(snapshot) = HostStore
            .get(&slot_key(slot))
            .and_then(|(bytes, _)| WorkerSnapshot::decode(&bytes))
        {
            aggregate.add(&snapshot, now_ms, stale_after);
        }
    }
    aggregate
}

fn service_infos(env: &Env, breakers: &mut Breakers, now_ms: u64) -> Vec<ServiceInfo> {
    services(&env.registry)
        .map(|service| ServiceInfo {
            name: service.name.clone(),
            caches: service.cache.is_some(),
            latency_target_ms: service.latency_target_ms,
            breaker: breaker_state(env, breakers, service.index, now_ms),
            rate_limits: service.rate_limit.is_some(),
            dedups: service.dedup.is_some(),
        })
        .collect()
}

fn freshness(env: &Env, now_ms: u64) -> Freshness {
    Freshness {
        publish_interval_ms: env.registry.settings().monitoring.publish_interval_ms,
        now_ms,
    }
}

/// `GET <prefix>/metrics`.
pub fn metrics(
    (env, breakers): (&Env, &mut Breakers),
    monitor: &mut Monitor,
    l1: &L1Cache,
    now_ms: u64,
) -> Reply {
    publish((env, breakers), monitor, l1, now_ms, false);
    let registry = &env.registry;
    let aggregate = aggregate(registry, now_ms);
    let infos = service_infos(env, breakers, now_ms);
    let counters: BTreeMap<String, u64> = ALL_STATS
        .iter()
        .map(|stat| (stat_name(*stat).to_string(), env.metrics.read(*stat)))
        .collect();
    let settings = &registry.settings().monitoring;
    let thresholds = Thresholds {
        hit_rate_target: settings.hit_rate_target,
        rate_limited_percent: settings.rate_limited_alert_percent,
    };
    let report = metrics_report(
        &aggregate,
        &infos,
        &counters,
        thresholds,
        freshness(env, now_ms),
    );
    (200, report.to_string())
}

/// `GET <prefix>/cache/stats`.
pub fn cache_stats(
    (env, breakers): (&Env, &mut Breakers),
    monitor: &mut Monitor,
    l1: &L1Cache,
    now_ms: u64,
) -> Reply {
    publish((env, breakers), monitor, l1, now_ms, true);
    let registry = &env.registry;
    let aggregate = aggregate(registry, now_ms);
    let infos = service_infos(env, breakers, now_ms);
    let m = &env.metrics;
    let l1 = TierFigures {
        hits: m.read(Stat::L1Hit),
        misses: m.read(Stat::L1Miss),
        stores: m.read(Stat::StoreL1),
        evictions: m.read(Stat::L1Eviction),
        entries: m.read(Stat::L1Entries),
        bytes: m.read(Stat::L1Bytes),
    };
    let l2 = TierFigures {
        hits: m.read(Stat::L2Hit),
        misses: m.read(Stat::L2Miss),
        stores: m.read(Stat::StoreL2),
        evictions: m.read(Stat::L2Eviction),
        entries: m.read(Stat::L2Entries),
        bytes: m.read(Stat::L2Bytes),
    };
    let compression = (
        registry.limits().l2_slots,
        m.read(Stat::StoredBytesRaw),
        m.read(Stat::StoredBytesCompressed),
    );
    let report = cache_report(
        &aggregate,
        &infos,
        (l1, l2),
        compression,
        freshness(env, now_ms),
    );
    (200, report.to_string())
}

/// The process-wide counters the metrics endpoint lists.
const ALL_STATS: [Stat; 12] = [
    Stat::DedupForwarded,
    Stat::DedupReplayed,
    Stat::DedupConflict,
    Stat::DedupMismatch,
    Stat::RateAdmitted,
    Stat::RateRejected,
    Stat::BreakerTrip,
    Stat::BreakerRejected,
    Stat::CasConflicts,
    Stat::CasExhausted,
    Stat::ConfigLoaded,
    Stat::ConfigRejected,
];

fn stat_name(stat: Stat) -> &'static str {
    STATS.get(stat as usize).map_or("", |(name, _)| name)
}

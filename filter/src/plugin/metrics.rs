//! Envoy stats the filter keeps. Counters and gauges are shared by name across workers, so a
//! gauge moved by deltas (`add`) holds the process-wide total, and a counter read back with
//! `get_metric` is the process-wide count.
//!
//! Labels are part of the name (`edge.requests.service.<s>.outcome.<o>`); the shipped
//! `envoy.yaml` turns them into Prometheus labels with `stats_tags`. Label values are only
//! service names and fixed words, never tenants or URLs.
//!
//! The counters every answer moves (the per-service outcome and the L1/L2 hit counts) are
//! summed in the VM and handed to Envoy on the root tick (`flush_deferred`), at most a tick
//! late: a host call per answer costs more than the rest of a hit's bookkeeping.

use std::cell::RefCell;

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::policy::monitor::outcome::Outcome;
use crate::policy::{stat_label, Registry};

macro_rules! stats {
    ($($variant:ident => $name:literal, $kind:ident;)*) => {
        /// Process-wide stats without labels (or with a fixed `tier` in the name).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Stat {
            $($variant),*
        }

        /// Name and kind of each [`Stat`], in declaration order.
        pub const STATS: &[(&str, MetricType)] = &[$(($name, MetricType::$kind)),*];
    };
}

stats! {
    DedupSignatureRejected => "edge.dedup.signature_rejected", Counter;
    BreakerTrip => "edge.breaker.trips", Counter;
    BreakerRejected => "edge.breaker.rejected", Counter;
    BreakerStaleServed => "edge.breaker.served_stale", Counter;
    RateAdmitted => "edge.ratelimit.admitted", Counter;
    RateRejected => "edge.ratelimit.rejected", Counter;
    RateShadowRejected => "edge.ratelimit.shadow_rejected", Counter;
    RateContention => "edge.ratelimit.contention_exhausted", Counter;
    RateDegraded => "edge.ratelimit.served_from_cache", Counter;
    RateSlotFull => "edge.ratelimit.slot_full", Counter;
    RateInvalidTenant => "edge.ratelimit.invalid_tenant", Counter;
    DedupForwarded => "edge.dedup.forwarded", Counter;
    DedupReplayed => "edge.dedup.replayed", Counter;
    DedupWaited => "edge.dedup.waited", Counter;
    DedupConflict => "edge.dedup.conflict", Counter;
    DedupMismatch => "edge.dedup.mismatch", Counter;
    DedupReleased => "edge.dedup.released", Counter;
    Collapsed => "edge.cache.collapsed", Counter;
    StaleServed => "edge.cache.stale_while_revalidate", Counter;
    StaleIfError => "edge.cache.stale_if_error", Counter;
    Refresh => "edge.cache.refresh", Counter;
    L1Hit => "edge.cache.l1.hit", Counter;
    L2Hit => "edge.cache.l2.hit", Counter;
    Miss => "edge.cache.miss", Counter;
    Revalidated => "edge.cache.revalidated", Counter;
    NotModified => "edge.cache.not_modified", Counter;
    Bypass => "edge.cache.bypass", Counter;
    StoreL1 => "edge.cache.l1.store", Counter;
    StoreL2 => "edge.cache.l2.store", Counter;
    L2Eviction => "edge.cache.l2.eviction", Counter;
    L1Miss => "edge.cache.l1.miss", Counter;
    L2Miss => "edge.cache.l2.miss", Counter;
    L1Eviction => "edge.cache.l1.eviction", Counter;
    Corrupt => "edge.cache.l2.corrupt", Counter;
    TooLarge => "edge.cache.too_large", Counter;
    L2TooLarge => "edge.cache.l2.too_large", Counter;
    PausedBudget => "edge.paused_budget_exceeded", Counter;
    Purge => "edge.cache.purge", Counter;
    Invalidation => "edge.cache.invalidation", Counter;
    StoredBytesRaw => "edge.cache.l2.stored_bytes_raw", Counter;
    StoredBytesCompressed => "edge.cache.l2.stored_bytes_compressed", Counter;
    L1Entries => "edge.cache.l1.entries", Gauge;
    L1Bytes => "edge.cache.l1.bytes", Gauge;
    L2Entries => "edge.cache.l2.entries", Gauge;
    L2Slots => "edge.cache.l2.slots", Gauge;
    L2Bytes => "edge.cache.l2.bytes", Gauge;
    CasConflicts => "edge.shared.cas_conflicts", Counter;
    CasExhausted => "edge.shared.cas_exhausted", Counter;
    ConfigLoaded => "edge.config.loaded", Counter;
    ConfigRejected => "edge.config.rejected", Counter;
    FleetCalls => "edge.fleet.calls", Counter;
    FleetFailed => "edge.fleet.failed", Counter;
    FleetSkipped => "edge.fleet.skipped", Counter;
    FleetDedupClaimed => "edge.fleet.dedup.claimed", Counter;
    FleetDedupReplayed => "edge.fleet.dedup.replayed", Counter;
    FleetDedupInFlight => "edge.fleet.dedup.in_flight", Counter;
    FleetRateBatches => "edge.fleet.ratelimit.batches", Counter;
    FleetRateRejected => "edge.fleet.ratelimit.rejected", Counter;
    FleetCacheHit => "edge.fleet.cache.hit", Counter;
    FleetCacheMiss => "edge.fleet.cache.miss", Counter;
    FleetCacheStore => "edge.fleet.cache.store", Counter;
    FleetCacheWaited => "edge.fleet.cache.waited", Counter;
}

/// Breaker state as the `edge.breaker.state` gauge holds it.
pub const BREAKER_CLOSED: u64 = 0;
pub const BREAKER_HALF_OPEN: u64 = 1;
pub const BREAKER_OPEN: u64 = 2;

/// Per-service metric ids.
#[derive(Debug, Default, Clone)]
struct ServiceIds {
    requests: [Option<u32>; Outcome::COUNT],
    edge_ms: Option<u32>,
    origin_ms: Option<u32>,
    breaker_state: Option<u32>,
}

/// Metric ids, defined once per VM.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: Vec<Option<u32>>,
    services: Vec<ServiceIds>,
    /// Deferred counter increments (metric id, sum) not yet handed to Envoy: at most one entry
    /// per defined counter.
    deferred: RefCell<Vec<(u32, i64)>>,
}

fn define(kind: MetricType, name: &str) -> Option<u32> {
    hostcalls::define_metric(kind, name).ok()
}

impl Metrics {
    /// Defines the process-wide stats, and the per-service ones of every configured service
    /// (requests by outcome and latency histograms when monitoring is on; breaker state for
    /// services with a breaker).
    pub fn define(registry: &Registry) -> Self {
        let monitoring = registry.settings().monitoring.enabled;
        let count = registry.service_count() + 1;
        let services = (0..count)
            .map(|index| {
                let Some(service) = registry.service_at(index) else {
                    return ServiceIds::default();
                };
                let label = stat_label(&service.name);
                let mut ids = ServiceIds::default();
                if monitoring {
                    for (slot, outcome) in ids.requests.iter_mut().zip(Outcome::ALL) {
                        let name =
                            format!("edge.requests.service.{label}.outcome.{}", outcome.label());
                        *slot = define(MetricType::Counter, &name);
                    }
                    let latency = |stage: &str| {
                        let name = format!("edge.latency_ms.service.{label}.stage.{stage}");
                        define(MetricType::Histogram, &name)
                    };
                    ids.edge_ms = latency("edge");
                    ids.origin_ms = latency("origin");
                }
                if service.breaker.is_some() {
                    let name = format!("edge.breaker.state.service.{label}");
                    ids.breaker_state = define(MetricType::Gauge, &name);
                }
                ids
            })
            .collect();
        Self {
            ids: STATS
                .iter()
                .map(|(name, kind)| define(*kind, name))
                .collect(),
            services,
            deferred: RefCell::new(Vec::new()),
        }
    }

    fn id(&self, stat: Stat) -> Option<u32> {
        self.ids.get(stat as usize).copied().flatten()
    }

    /// Adds to a counter or moves a gauge; a refused update is dropped (stats never fail traffic).
    pub fn add(&self, stat: Stat, delta: i64) {
        if delta == 0 {
            return;
        }
        if let Some(id) = self.id(stat) {
            let _ = hostcalls::increment_metric(id, delta);
        }
    }

    pub fn inc(&self, stat: Stat) {
        self.add(stat, 1);
    }

    /// Adds one to a counter at the next flush (see the module's note).
    pub fn inc_deferred(&self, stat: Stat) {
        if let Some(id) = self.id(stat) {
            self.defer(id);
        }
    }

    fn defer(&self, id: u32) {
        let Ok(mut deferred) = self.deferred.try_borrow_mut() else {
            let _ = hostcalls::increment_metric(id, 1);
            return;
        };
        match deferred.iter_mut().find(|(held, _)| *held == id) {
            Some((_, sum)) => *sum = sum.saturating_add(1),
            None => deferred.push((id, 1)),
        }
    }

    /// Hands the deferred increments to Envoy.
    pub fn flush_deferred(&self) {
        let Ok(mut deferred) = self.deferred.try_borrow_mut() else {
            return;
        };
        for (id, sum) in deferred.iter_mut() {
            if *sum != 0 {
                let _ = hostcalls::increment_metric(*id, *sum);
                *sum = 0;
            }
        }
    }

    /// Sets a gauge.
    pub fn set(&self, stat: Stat, value: u64) {
        if let Some(id) = self.id(stat) {
            let _ = hostcalls::record_metric(id, value);
        }
    }

    /// The process-wide value of a counter or gauge (0 if unreadable).
    pub fn read(&self, stat: Stat) -> u64 {
        self.flush_deferred();
        self.id(stat)
            .and_then(|id| hostcalls::get_metric(id).ok())
            .unwrap_or(0)
    }

    /// One finished request: its outcome, and its latencies in µs. `edge_us` is `None` for a
    /// request the edge answered at once: it took under a millisecond (the bucket it would
    /// land in), and one histogram sample costs Envoy about 4% of a hit's throughput.
    pub fn record_request(
        &self,
        service_index: usize,
        outcome: Outcome,
        edge_us: Option<u64>,
        origin_us: Option<u64>,
    ) {
        let Some(ids) = self.services.get(service_index) else {
            return;
        };
        if let Some(id) = ids.requests.get(outcome.index()).copied().flatten() {
            self.defer(id);
        }
        if let (Some(id), Some(edge)) = (ids.edge_ms, edge_us) {
            let _ = hostcalls::record_metric(id, edge / 1000);
        }
        if let (Some(id), Some(origin)) = (ids.origin_ms, origin_us) {
            let _ = hostcalls::record_metric(id, origin / 1000);
        }
    }

    /// Sets a service's breaker-state gauge (`BREAKER_*`).
    pub fn set_breaker_state(&self, service_index: usize, state: u64) {
        if let Some(id) = self
            .services
            .get(service_index)
            .and_then(|ids| ids.breaker_state)
        {
            let _ = hostcalls::record_metric(id, state);
        }
    }
}

//! Envoy stats the filter keeps. Counters and gauges are shared by name across workers, so a
//! gauge moved by deltas (`add`) holds the process-wide total.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    L1Hit,
    L2Hit,
    Miss,
    Revalidated,
    NotModified,
    Bypass,
    StoreL1,
    StoreL2,
    L1Eviction,
    L2Eviction,
    L1Miss,
    L2Miss,
    Corrupt,
    TooLarge,
    Purge,
    Invalidation,
    StoredBytesRaw,
    StoredBytesCompressed,
    L1Entries,
    L1Bytes,
    Collapsed,
    DedupSignatureRejected,
    BreakerTrip,
    BreakerRejected,
    BreakerStaleServed,
    RateAdmitted,
    RateRejected,
    RateShadowRejected,
    RateContention,
    RateDegraded,
    DedupForwarded,
    DedupReplayed,
    DedupWaited,
    DedupConflict,
    DedupMismatch,
    DedupReleased,
    StaleServed,
    StaleIfError,
    Refresh,
}

const STATS: [(Stat, &str, MetricType); 39] = [
    (
        Stat::DedupSignatureRejected,
        "edge.dedup.signature_rejected",
        MetricType::Counter,
    ),
    (Stat::BreakerTrip, "edge.breaker.trips", MetricType::Counter),
    (
        Stat::BreakerRejected,
        "edge.breaker.rejected",
        MetricType::Counter,
    ),
    (
        Stat::BreakerStaleServed,
        "edge.breaker.served_stale",
        MetricType::Counter,
    ),
    (
        Stat::RateAdmitted,
        "edge.ratelimit.admitted",
        MetricType::Counter,
    ),
    (
        Stat::RateRejected,
        "edge.ratelimit.rejected",
        MetricType::Counter,
    ),
    (
        Stat::RateShadowRejected,
        "edge.ratelimit.shadow_rejected",
        MetricType::Counter,
    ),
    (
        Stat::RateContention,
        "edge.ratelimit.contention_exhausted",
        MetricType::Counter,
    ),
    (
        Stat::RateDegraded,
        "edge.ratelimit.served_from_cache",
        MetricType::Counter,
    ),
    (
        Stat::DedupForwarded,
        "edge.dedup.forwarded",
        MetricType::Counter,
    ),
    (
        Stat::DedupReplayed,
        "edge.dedup.replayed",
        MetricType::Counter,
    ),
    (Stat::DedupWaited, "edge.dedup.waited", MetricType::Counter),
    (
        Stat::DedupConflict,
        "edge.dedup.conflict",
        MetricType::Counter,
    ),
    (
        Stat::DedupMismatch,
        "edge.dedup.mismatch",
        MetricType::Counter,
    ),
    (
        Stat::DedupReleased,
        "edge.dedup.released",
        MetricType::Counter,
    ),
    (Stat::Collapsed, "edge.cache.collapsed", MetricType::Counter),
    (
        Stat::StaleServed,
        "edge.cache.stale_while_revalidate",
        MetricType::Counter,
    ),
    (
        Stat::StaleIfError,
        "edge.cache.stale_if_error",
        MetricType::Counter,
    ),
    (Stat::Refresh, "edge.cache.refresh", MetricType::Counter),
    (Stat::L1Hit, "edge.cache.l1.hit", MetricType::Counter),
    (Stat::L2Hit, "edge.cache.l2.hit", MetricType::Counter),
    (Stat::Miss, "edge.cache.miss", MetricType::Counter),
    (
        Stat::Revalidated,
        "edge.cache.revalidated",
        MetricType::Counter,
    ),
    (
        Stat::NotModified,
        "edge.cache.not_modified",
        MetricType::Counter,
    ),
    (Stat::Bypass, "edge.cache.bypass", MetricType::Counter),
    (Stat::StoreL1, "edge.cache.l1.store", MetricType::Counter),
    (Stat::StoreL2, "edge.cache.l2.store", MetricType::Counter),
    (
        Stat::L2Eviction,
        "edge.cache.l2.eviction",
        MetricType::Counter,
    ),
    (Stat::L1Miss, "edge.cache.l1.miss", MetricType::Counter),
    (Stat::L2Miss, "edge.cache.l2.miss", MetricType::Counter),
    (
        Stat::L1Eviction,
        "edge.cache.l1.eviction",
        MetricType::Counter,
    ),
    (Stat::Corrupt, "edge.cache.l2.corrupt", MetricType::Counter),
    (Stat::TooLarge, "edge.cache.too_large", MetricType::Counter),
    (Stat::Purge, "edge.cache.purge", MetricType::Counter),
    (
        Stat::Invalidation,
        "edge.cache.invalidation",
        MetricType::Counter,
    ),
    (
        Stat::StoredBytesRaw,
        "edge.cache.l2.stored_bytes_raw",
        MetricType::Counter,
    ),
    (
        Stat::StoredBytesCompressed,
        "edge.cache.l2.stored_bytes_compressed",
        MetricType::Counter,
    ),
    (Stat::L1Entries, "edge.cache.l1.entries", MetricType::Gauge),
    (Stat::L1Bytes, "edge.cache.l1.bytes", MetricType::Gauge),
];

/// Metric ids, defined once per VM.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: Vec<Option<u32>>,
}

impl Metrics {
    pub fn define() -> Self {
        Self {
            ids: STATS
                .iter()
                .map(|(_, name, kind)| hostcalls::define_metric(*kind, name).ok())
                .collect(),
        }
    }

    /// Adds to a counter or moves a gauge; a refused update is dropped (stats never fail traffic).
    pub fn add(&self, stat: Stat, delta: i64) {
        if delta == 0 {
            return;
        }
        let id = STATS
            .iter()
            .position(|(s, _, _)| *s == stat)
            .and_then(|index| self.ids.get(index).copied().flatten());
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, delta);
        }
    }

    pub fn inc(&self, stat: Stat) {
        self.add(stat, 1);
    }
}

//! What each worker publishes to shared data every `publish_interval_ms` (one key per worker,
//! `monitor_slots` keys in all), and the process-wide aggregate the JSON endpoints read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::latency::SparseHistogram;
use super::outcome::Outcome;
use super::top_tenants::TenantCounts;
use super::window::Summary;

pub const SNAPSHOT_VERSION: u32 = 1;
/// A snapshot older than this (or three publish intervals, if longer) is left out of the
/// aggregate and its slot may be taken over (its worker is gone or stuck).
pub const STALE_AFTER_MS: u64 = 10_000;

/// How old a snapshot may get before it counts as abandoned.
pub fn stale_after_ms(publish_interval_ms: u64) -> u64 {
    STALE_AFTER_MS.max(publish_interval_ms.saturating_mul(3))
}
/// Rows of the top-tenant table each worker publishes.
pub const PUBLISHED_TENANTS: usize = 20;

pub fn slot_key(index: u64) -> String {
    format!("edge:mon:{index}")
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    pub name: String,
    /// Outcome counts over the last minute, in [`Outcome::ALL`] order.
    pub outcomes: Vec<u64>,
    pub edge: SparseHistogram,
    pub origin: SparseHistogram,
    pub span_ms: u64,
    pub l1_entries: u64,
    pub l1_bytes: u64,
    /// Tenants holding the most L1 entries of this service: (tenant, entries).
    pub l1_tenants: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerSnapshot {
    pub v: u32,
    pub owner: u64,
    pub published_ms: u64,
    pub services: Vec<ServiceSnapshot>,
    pub tenants: Vec<(String, TenantCounts)>,
}

impl WorkerSnapshot {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` for empty, foreign or corrupt bytes.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let snapshot: Self = serde_json::from_slice(bytes).ok()?;
        (snapshot.v == SNAPSHOT_VERSION).then_some(snapshot)
    }
}

/// Whether `owner` may write a slot holding `current`: it is empty, unreadable, its own, or
/// left by a worker that stopped publishing.
pub fn may_take(current: Option<&[u8]>, owner: u64, now_ms: u64, stale_after_ms: u64) -> bool {
    match current.and_then(WorkerSnapshot::decode) {
        None => true,
        Some(snapshot) => {
            snapshot.owner == owner || snapshot.published_ms.saturating_add(stale_after_ms) < now_ms
        }
    }
}

/// One service across all reporting workers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceAggregate {
    pub summary: Summary,
    pub l1_entries: u64,
    pub l1_bytes: u64,
    pub l1_tenants: BTreeMap<String, u64>,
}

/// Every fresh snapshot added up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    pub workers: usize,
    /// Age of the oldest snapshot included (ms): how stale the figures may be.
    pub oldest_age_ms: u64,
    pub services: BTreeMap<String, ServiceAggregate>,
    pub tenants: BTreeMap<String, TenantCounts>,
}

impl Aggregate {
    /// Adds a snapshot unless it is older than `stale_after_ms`. Sums saturate: the figures come
    /// from shared data, where any bytes may be.
    pub fn add(&mut self, snapshot: &WorkerSnapshot, now_ms: u64, stale_after_ms: u64) {
        let age = now_ms.saturating_sub(snapshot.published_ms);
        if age > stale_after_ms {
            return;
        }
        self.workers += 1;
        self.oldest_age_ms = self.oldest_age_ms.max(age);
        for service in &snapshot.services {
            let into = self.services.entry(service.name.clone()).or_default();
            let mut summary = Summary {
                span_ms: service.span_ms,
                ..Summary::default()
            };
            for (slot, count) in summary.outcomes.iter_mut().zip(service.outcomes.iter()) {
                *slot = *count;
            }
            summary.edge.merge_sparse(&service.edge);
            summary.origin.merge_sparse(&service.origin);
            into.summary.merge(&summary);
            into.l1_entries = into.l1_entries.saturating_add(service.l1_entries);
            into.l1_bytes = into.l1_bytes.saturating_add(service.l1_bytes);
            for (tenant, entries) in &service.l1_tenants {
                let sum = into.l1_tenants.entry(tenant.clone()).or_default();
                *sum = sum.saturating_add(*entries);
            }
        }
        for (tenant, counts) in &snapshot.tenants {
            let into = self.tenants.entry(tenant.clone()).or_default();
            into.requests = into.requests.saturating_add(counts.requests);
            into.rejected = into.rejected.saturating_add(counts.rejected);
        }
    }
}

/// A [`Summary`] in snapshot form.
pub fn service_snapshot(name: &str, summary: &Summary) -> ServiceSnapshot {
    ServiceSnapshot {
        name: name.to_string(),
        outcomes: summary.outcomes.to_vec(),
        edge: summary.edge.to_sparse(),
        origin: summary.origin.to_sparse(),
        span_ms: summary.span_ms,
        ..ServiceSnapshot::default()
    }
}

/// Outcome counts by label, for JSON.
pub fn outcomes_by_label(counts: &[u64]) -> BTreeMap<&'static str, u64> {
    Outcome::ALL
        .iter()
        .map(|o| (o.label(), counts.get(o.index()).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::monitor::window::Window;

    fn snapshot(owner: u64, published_ms: u64, hits: u64) -> WorkerSnapshot {
        let mut window = Window::default();
        for _ in 0..hits {
            window.record(published_ms, Outcome::HitL1, 50, None);
        }
        window.record(published_ms, Outcome::Miss, 150_000, Some(149_000));
        let mut service = service_snapshot("leads", &window.summary(published_ms));
        service.l1_entries = 3;
        service.l1_tenants = vec![("loc-1".to_string(), 2)];
        WorkerSnapshot {
            v: SNAPSHOT_VERSION,
            owner,
            published_ms,
            services: vec![service],
            tenants: vec![(
                "loc-1".to_string(),
                TenantCounts {
                    requests: hits,
                    rejected: 1,
                },
            )],
        }
    }

    #[test]
    fn round_trips_and_refuses_other_versions() {
        let s = snapshot(7, 1_000, 3);
        assert_eq!(WorkerSnapshot::decode(&s.encode()), Some(s.clone()));
        let other = WorkerSnapshot { v: 2, ..s };
        assert_eq!(WorkerSnapshot::decode(&other.encode()), None);
        assert_eq!(WorkerSnapshot::decode(b"\xff garbage"), None);
        assert_eq!(WorkerSnapshot::decode(b""), None);
    }

    #[test]
    fn slots_are_taken_when_empty_own_or_abandoned() {
        let s = snapshot(7, 100_000, 1).encode();
        let stale = stale_after_ms(1000);
        assert_eq!(stale, STALE_AFTER_MS);
        assert_eq!(stale_after_ms(60_000), 180_000);
        assert!(may_take(None, 1, 100_000, stale));
        assert!(may_take(Some(b""), 1, 100_000, stale));
        assert!(may_take(Some(&s), 7, 100_500, stale));
        assert!(!may_take(Some(&s), 8, 100_500, stale));
        assert!(may_take(Some(&s), 8, 100_000 + STALE_AFTER_MS + 1, stale));
        assert!(!may_take(
            Some(&s),
            8,
            100_000 + STALE_AFTER_MS + 1,
            180_000
        ));
    }

    /// Found by the `snapshot` fuzz target: sums of published figures overflowed.
    #[test]
    fn huge_published_figures_saturate() {
        let mut huge = snapshot(1, 50_000, 1);
        for service in &mut huge.services {
            service.outcomes = vec![u64::MAX; Outcome::COUNT];
            service.l1_entries = u64::MAX;
            service.l1_bytes = u64::MAX;
            service.l1_tenants = vec![("loc-1".to_string(), u64::MAX)];
        }
        huge.tenants[0].1 = TenantCounts {
            requests: u64::MAX,
            rejected: u64::MAX,
        };
        let huge = WorkerSnapshot::decode(&huge.encode()).unwrap();
        let mut aggregate = Aggregate::default();
        aggregate.add(&huge, 50_000, STALE_AFTER_MS);
        aggregate.add(&huge, 50_000, STALE_AFTER_MS);
        let leads = &aggregate.services["leads"];
        assert_eq!(leads.summary.requests(), u64::MAX);
        assert_eq!(leads.summary.outcomes, [u64::MAX; Outcome::COUNT]);
        assert_eq!(
            crate::policy::monitor::outcome::lookups(&leads.summary.outcomes),
            u64::MAX
        );
        assert_eq!(leads.l1_entries, u64::MAX);
        assert_eq!(leads.l1_bytes, u64::MAX);
        assert_eq!(leads.l1_tenants["loc-1"], u64::MAX);
        assert_eq!(aggregate.tenants["loc-1"].requests, u64::MAX);
        assert_eq!(aggregate.tenants["loc-1"].rejected, u64::MAX);
    }

    #[test]
    fn aggregate_adds_fresh_workers_and_skips_stale_ones() {
        let mut aggregate = Aggregate::default();
        aggregate.add(&snapshot(1, 50_000, 4), 51_000, STALE_AFTER_MS);
        aggregate.add(&snapshot(2, 50_500, 6), 51_000, STALE_AFTER_MS);
        aggregate.add(&snapshot(3, 30_000, 100), 51_000, STALE_AFTER_MS);
        assert_eq!(aggregate.workers, 2);
        assert_eq!(aggregate.oldest_age_ms, 1_000);
        let leads = &aggregate.services["leads"];
        assert_eq!(leads.summary.outcomes[Outcome::HitL1.index()], 10);
        assert_eq!(leads.summary.outcomes[Outcome::Miss.index()], 2);
        assert_eq!(leads.summary.origin.count(), 2);
        assert_eq!(leads.l1_entries, 6);
        assert_eq!(leads.l1_tenants["loc-1"], 4);
        assert_eq!(aggregate.tenants["loc-1"].requests, 10);
        assert_eq!(aggregate.tenants["loc-1"].rejected, 2);
    }
}

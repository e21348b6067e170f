//! Worker snapshots (`edge:mon:<slot>` in shared data, JSON): anything that is not a current
//! snapshot reads as none, what decodes re-encodes to itself, and adding decoded figures up
//! across workers and building the `/metrics` and `/cache/stats` reports never panics, whatever
//! the counts say.

use std::collections::BTreeMap;

use edge_filter::policy::monitor::alerts::Thresholds;
use edge_filter::policy::monitor::latency::SparseHistogram;
use edge_filter::policy::monitor::report::{
    cache_report, metrics_report, Freshness, ServiceInfo, TierFigures,
};
use edge_filter::policy::monitor::snapshot::{
    may_take, Aggregate, ServiceSnapshot, WorkerSnapshot, SNAPSHOT_VERSION, STALE_AFTER_MS,
};
use edge_filter::policy::monitor::top_tenants::TenantCounts;

use super::input::Input;

pub fn check(data: &[u8]) {
    match data.first() {
        // JSON as another worker wrote it (or anything else in the slot).
        Some(b'{') | None => decoded(data),
        // A snapshot of any figures, written as a worker would.
        Some(_) => decoded(&made(&mut Input::new(data)).encode()),
    }
}

fn histogram(input: &mut Input<'_>) -> SparseHistogram {
    SparseHistogram(
        (0..input.below(4))
            .map(|_| (input.range(0, 80) as u8, input.u32()))
            .collect(),
    )
}

fn made(input: &mut Input<'_>) -> WorkerSnapshot {
    let names = ["a", "b", "c.d"];
    WorkerSnapshot {
        v: SNAPSHOT_VERSION,
        owner: input.u64(),
        published_ms: input.u64(),
        services: (0..input.below(3))
            .map(|_| ServiceSnapshot {
                name: input.pick(&names).unwrap_or("a").to_string(),
                outcomes: (0..input.below(14)).map(|_| input.u64()).collect(),
                edge: histogram(input),
                origin: histogram(input),
                span_ms: input.u64(),
                l1_entries: input.u64(),
                l1_bytes: input.u64(),
                l1_tenants: (0..input.below(3))
                    .map(|_| (input.pick(&names).unwrap_or("a").to_string(), input.u64()))
                    .collect(),
            })
            .collect(),
        tenants: (0..input.below(3))
            .map(|_| {
                let counts = TenantCounts {
                    requests: input.u64(),
                    rejected: input.u64(),
                };
                (input.pick(&names).unwrap_or("a").to_string(), counts)
            })
            .collect(),
    }
}

fn decoded(data: &[u8]) {
    let Some(snapshot) = WorkerSnapshot::decode(data) else {
        assert!(
            may_take(Some(data), 0, 0, STALE_AFTER_MS),
            "unreadable slots are free"
        );
        return;
    };
    assert_eq!(snapshot.v, SNAPSHOT_VERSION);
    assert_eq!(
        WorkerSnapshot::decode(&snapshot.encode()).as_ref(),
        Some(&snapshot),
        "re-encoding keeps the value"
    );
    let now = snapshot.published_ms;
    assert!(may_take(Some(data), snapshot.owner, now, STALE_AFTER_MS));
    assert!(!may_take(
        Some(data),
        snapshot.owner.wrapping_add(1),
        now,
        STALE_AFTER_MS
    ));

    // Two workers published these figures.
    let mut aggregate = Aggregate::default();
    aggregate.add(&snapshot, now, STALE_AFTER_MS);
    aggregate.add(&snapshot, now, STALE_AFTER_MS);
    assert_eq!(aggregate.workers, 2);

    let services: Vec<ServiceInfo> = snapshot
        .services
        .iter()
        .map(|s| ServiceInfo {
            name: s.name.clone(),
            caches: true,
            latency_target_ms: Some(1),
            breaker: Some("open"),
            rate_limits: true,
            dedups: true,
        })
        .collect();
    let fresh = Freshness {
        publish_interval_ms: 1000,
        now_ms: now,
    };
    let thresholds = Thresholds {
        hit_rate_target: 0.9,
        rate_limited_percent: 1.0,
    };
    let metrics = metrics_report(&aggregate, &services, &BTreeMap::new(), thresholds, fresh);
    assert!(metrics.is_object());
    let cache = cache_report(
        &aggregate,
        &services,
        (TierFigures::default(), TierFigures::default()),
        (1, 1, 1),
        fresh,
    );
    assert!(cache.is_object());
}

//! What every feature of a worker reads: the configuration, the stats, and the worker's
//! identity in shared data.

use std::rc::Rc;

use super::host::{now_nanos, shared_update, HostStore};
use super::metrics::Metrics;
use crate::policy::hash::fnv1a;
use crate::policy::Registry;

pub struct Env {
    pub registry: Rc<Registry>,
    pub metrics: Metrics,
    /// A number no other worker of this Envoy uses (leases, dedup attempts, monitor slots).
    pub owner: u64,
}

impl Env {
    pub fn new(registry: Rc<Registry>, owner: u64) -> Self {
        let metrics = Metrics::define(&registry);
        Self {
            registry,
            metrics,
            owner,
        }
    }
}

/// A number no other worker of this Envoy uses, from a shared counter and the clock.
pub fn take_owner_id() -> u64 {
    let counter = shared_update(&HostStore, "edge:workers", 16, |current| {
        let next = current
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map_or(0, u64::from_le_bytes)
            .wrapping_add(1);
        Ok::<_, ()>((next, next.to_le_bytes().to_vec()))
    });
    // Workers configure at the same moment, and a write to a missing key ignores CAS: two
    // could read the same count. The clock (nanoseconds, read on each worker's own thread)
    // tells them apart.
    let nanos = now_nanos();
    counter.unwrap_or(0).rotate_left(40) ^ nanos ^ fnv1a(&nanos.to_string())
}

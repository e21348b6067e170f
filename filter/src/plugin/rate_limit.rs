//! Per-tenant rate limiting in the glue: the policy's verdict on Envoy shared data (buckets in
//! slots, several tenants to a slot, spent with CAS by whichever worker sees the request), and
//! its events counted in stats.

use super::env::Env;
use super::host::{note_exhausted, HostStore};
use super::metrics::Stat;
use crate::policy::rate_limit::verdict::{self, Event, LimitedRequest, Verdict};
use crate::policy::RateLimitSection;

/// Spends the request's cost from its tenant's bucket. With `fleet_decides` (the service's
/// limit is fleet-wide) the local bucket is only the pre-check: an admission is counted once
/// the fleet admits too (`stream/fleet_rate.rs`), so each admitted request counts once.
pub fn check(
    env: &Env,
    section: &RateLimitSection,
    request: &LimitedRequest<'_>,
    (now_ms, fleet_decides): (u64, bool),
) -> Verdict {
    let limits = env.registry.limits();
    verdict::check(&HostStore, section, limits, request, now_ms, &mut |event| {
        let stat = match event {
            Event::Admitted if fleet_decides => return,
            Event::InvalidTenant => Stat::RateInvalidTenant,
            Event::SlotFull => Stat::RateSlotFull,
            Event::Unwritten { exhausted } => {
                if exhausted {
                    note_exhausted();
                }
                Stat::RateContention
            }
            Event::Admitted => Stat::RateAdmitted,
            Event::ShadowRejected => Stat::RateShadowRejected,
            Event::Rejected => Stat::RateRejected,
        };
        env.metrics.inc(stat);
    })
}

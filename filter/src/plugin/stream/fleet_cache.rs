//! The fleet's L3 cache tier on the request path: a miss in L1 and L2 (the leader of its
//! coalescing group, or alone) asks Redis once, bounded by `fleet_bridge.timeout_ms`, before
//! the origin. An entry there that answers the request is kept in L1 and L2 and served; else
//! the request goes on to the origin, whose storable response is written behind to Redis by
//! the root context (see `Tiers::note_l3`).

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::Action;

use super::state::{CacheFlow, EdgeHttp, Pending};
use crate::plugin::coalescing::Outcome as GroupOutcome;
use crate::plugin::fleet::{answer, dispatch};
use crate::plugin::host::{now_millis, now_secs};
use crate::plugin::metrics::Stat;
use crate::plugin::reply::EntryAnswer;
use crate::plugin::worker::WorkerRef;
use crate::policy::cache::exchange::{evaluate_hit, ttl_left, CacheStatus, HitDecision};
use crate::policy::cache::range::RangeRequest;
use crate::policy::fleet::cache::{entry_key, lookup_command, read_entry};
use crate::policy::fleet::tier::CallFailure;
use crate::policy::monitor::outcome::Outcome;

impl EdgeHttp {
    /// Asks the L3 tier for a miss: `Ok(Pause)` while the answer is on its way, `Err(pending)`
    /// when the request goes on to the origin now.
    pub(super) fn l3_lookup(
        &mut self,
        worker: &WorkerRef,
        pending: Box<Pending>,
    ) -> Result<Action, Box<Pending>> {
        let w = &mut *worker.borrow_mut();
        let shares = w
            .env
            .registry
            .service_at(pending.service_index)
            .and_then(|s| s.fleet.as_ref())
            .is_some_and(|f| f.shares_cache());
        if !shares || pending.head {
            return Err(pending);
        }
        if !w.fleet.tier.usable() {
            w.env.metrics.inc(Stat::FleetSkipped);
            return Err(pending);
        }
        let prefix = &w.env.registry.settings().fleet_bridge.key_prefix;
        let key = entry_key(prefix, &pending.key.primary);
        if dispatch(&w.env, &lookup_command(&key)).is_none() {
            w.fleet.tier.failed(CallFailure::Unreachable, now_millis());
            return Err(pending);
        }
        self.l3 = Some(pending);
        Ok(Action::Pause)
    }

    /// The L3 tier answered (or the call failed or timed out).
    pub(super) fn on_l3_answer(&mut self, body_size: usize) {
        let (Some(pending), Some(worker)) = (self.l3.take(), self.worker.clone()) else {
            return;
        };
        let now = now_secs();
        let found = {
            let w = &mut *worker.borrow_mut();
            let outcome = answer(&w.env, &mut w.fleet.tier, body_size, now_millis());
            let entry = outcome
                .and_then(|reply| read_entry(&reply, &pending.key.primary))
                .ok()
                .flatten();
            let generations = Rc::clone(&w.tiers.generations);
            let headers = &pending.request_headers;
            match entry.map(|e| {
                let decision = evaluate_hit(&e, headers, &pending.request, &generations, now);
                (e, decision)
            }) {
                Some((
                    entry,
                    HitDecision::Serve { age, not_modified }
                    | HitDecision::ServeStale { age, not_modified },
                )) => {
                    w.env.metrics.inc(Stat::FleetCacheHit);
                    let tenant = pending.key.tenant.as_deref();
                    w.tiers.store(&w.env, entry.clone(), tenant);
                    let entry = Rc::new(entry);
                    let entry = w
                        .tiers
                        .encode_for(&w.env, &entry, headers, tenant)
                        .unwrap_or(entry);
                    Some((entry, age, not_modified))
                }
                _ => None,
            }
        };
        let Some((entry, age, not_modified)) = found else {
            worker.env.metrics.inc(Stat::FleetCacheMiss);
            worker.env.metrics.inc(Stat::Miss);
            self.cache = CacheFlow::Forwarded(pending);
            let _ = hostcalls::resume_http_request();
            return;
        };
        self.observe(Outcome::HitL2);
        let registry = Rc::clone(&worker.env.registry);
        let debug = registry
            .cache_at(pending.service_index)
            .is_some_and(|s| s.debug);
        let status = CacheStatus {
            hit: true,
            ttl: Some(ttl_left(&entry, age)),
            key: debug.then_some(pending.key.primary.as_str()),
            detail: Some("fleet"),
            ..CacheStatus::default()
        }
        .render(&registry.settings().cache_status_name);
        let range = RangeRequest::of("GET", &pending.request_headers);
        let answer = EntryAnswer {
            age,
            not_modified,
            head: pending.head,
            cache_status: &status,
            request_headers: &pending.request_headers,
            range: &range,
        };
        self.serve(&entry, &answer);
        self.settle_group(GroupOutcome::Entry(&entry));
    }
}

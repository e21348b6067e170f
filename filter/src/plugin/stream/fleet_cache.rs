//! The fleet's L3 cache tier on the request path: a miss in L1 and L2 (the leader of its
//! coalescing group on this replica, or alone) runs one lookup script in Redis before the
//! origin, each call bounded by `fleet_bridge.timeout_ms`:
//! - an entry that answers the request is kept in L1 and L2 and served;
//! - nothing there: the request takes the fleet's lease on the key and goes to the origin;
//!   its storable response is written behind by the root context (see `Tiers::note_l3`);
//! - another replica holds the lease: the request waits for that fetch, looking again after a
//!   short pause in Redis, until the entry is there or the lease is over (then it goes to the
//!   origin itself). So a cold key is fetched once for the whole fleet.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::Action;

use super::state::{CacheFlow, EdgeHttp, L3Step, L3Wait, Pending};
use crate::plugin::coalescing::Outcome as GroupOutcome;
use crate::plugin::fleet::{answer, dispatch};
use crate::plugin::host::now_millis;
use crate::plugin::metrics::Stat;
use crate::plugin::reply::EntryAnswer;
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{evaluate_hit, ttl_left, CacheStatus, HitDecision};
use crate::policy::cache::range::RangeRequest;
use crate::policy::fleet::cache::{lease_key, lookup_command, pause_command, read_lookup, Lookup};
use crate::policy::fleet::dedup::release_command;
use crate::policy::fleet::tier::CallFailure;
use crate::policy::header_list::borrowed;
use crate::policy::monitor::outcome::Outcome;

/// Longest pause between two lookups of a waiting request.
const PAUSE_MS: u64 = 50;

/// What a waiting miss does after an answer.
enum Next {
    Serve(Rc<Entry>, u64, bool),
    Forward,
    /// Another call is on its way.
    Wait,
}

impl EdgeHttp {
    /// Asks the L3 tier for a miss: `Ok(Pause)` while the answer is on its way, `Err(pending)`
    /// when the request goes on to the origin now.
    pub(super) fn l3_lookup(
        &mut self,
        worker: &WorkerRef,
        pending: Box<Pending>,
    ) -> Result<Action, Box<Pending>> {
        let w = &mut *worker.borrow_mut();
        let service = w.env.registry.service_at(pending.service_index);
        let shares = service
            .and_then(|s| s.fleet.as_ref())
            .is_some_and(|f| f.shares_cache());
        let lease_ms = service
            .and_then(|s| s.cache.as_ref())
            .map_or(0, |c| c.lease_ms);
        if !shares || pending.head {
            return Err(pending);
        }
        if !w.fleet.usable(now_millis()) {
            w.env.metrics.inc(Stat::FleetSkipped);
            return Err(pending);
        }
        let mut wait = Box::new(L3Wait {
            pending,
            step: L3Step::Lookup { by_sha: true },
            until_ms: now_millis().saturating_add(lease_ms),
        });
        if !self.send_l3(w, &mut wait, L3Step::Lookup { by_sha: true }) {
            return Err(wait.pending);
        }
        self.l3 = Some(wait);
        Ok(Action::Pause)
    }

    /// Sends the next call of an L3 wait; `false` when the host refused it.
    fn send_l3(&self, w: &mut Worker, wait: &mut L3Wait, step: L3Step) -> bool {
        let prefix = &w.env.registry.settings().fleet_bridge.key_prefix;
        let primary = &wait.pending.key.primary;
        let command = match step {
            L3Step::Lookup { by_sha } => {
                let owner = format!("{:x}-{}", w.env.owner, self.context_id);
                let lease_ms = wait.until_ms.saturating_sub(now_millis()).max(1);
                lookup_command(&w.fleet.lookup, prefix, primary, (&owner, lease_ms), by_sha)
            }
            L3Step::Pause => {
                let timeout = w.env.registry.settings().fleet_bridge.timeout_ms;
                pause_command(prefix, primary, PAUSE_MS.min(timeout / 2).max(1))
            }
        };
        wait.step = step;
        if dispatch(&w.env, &command).is_none() {
            w.fleet.tier.failed(CallFailure::Unreachable, now_millis());
            return false;
        }
        true
    }

    /// The L3 tier answered (or the call failed or timed out).
    pub(super) fn on_l3_answer(&mut self, body_size: usize) {
        let (Some(mut wait), Some(worker)) = (self.l3.take(), self.worker.clone()) else {
            return;
        };
        let now_ms = now_millis();
        let next = {
            let w = &mut *worker.borrow_mut();
            let outcome = answer(&w.env, &mut w.fleet.tier, body_size, now_ms);
            let next = match (wait.step, outcome) {
                // A pause that failed came back at once: the origin, no tight loop of lookups.
                (L3Step::Pause, Ok(_)) if now_ms < wait.until_ms => {
                    let lookup = L3Step::Lookup { by_sha: true };
                    if self.send_l3(w, &mut wait, lookup) {
                        Next::Wait
                    } else {
                        Next::Forward
                    }
                }
                (L3Step::Lookup { by_sha: true }, Ok(reply)) if reply.is_noscript() => {
                    let whole = L3Step::Lookup { by_sha: false };
                    if self.send_l3(w, &mut wait, whole) {
                        Next::Wait
                    } else {
                        Next::Forward
                    }
                }
                (L3Step::Lookup { .. }, Ok(reply)) => {
                    match read_lookup(&reply, &wait.pending.key.primary) {
                        Ok(Lookup::Found(entry)) => found(w, &wait.pending, *entry),
                        Ok(Lookup::Fetching(_)) if now_ms < wait.until_ms => {
                            if self.send_l3(w, &mut wait, L3Step::Pause) {
                                w.env.metrics.inc(Stat::FleetCacheWaited);
                                Next::Wait
                            } else {
                                Next::Forward
                            }
                        }
                        // Leased (this request fetches for the fleet), nothing usable, a
                        // wait that is over, or garbage: the origin.
                        _ => Next::Forward,
                    }
                }
                (L3Step::Lookup { .. }, Err(failure)) => {
                    // Redis may still run the lookup after the filter gave up on it, taking
                    // the fleet's lease for a fetch nobody announces: released (owner-checked)
                    // once the tier answers, so other replicas do not wait out lease_ms.
                    if failure.tier_down() {
                        let prefix = &w.env.registry.settings().fleet_bridge.key_prefix;
                        let lease = lease_key(prefix, &wait.pending.key.primary);
                        let owner = format!("{:x}-{}", w.env.owner, self.context_id);
                        let release = &w.fleet.release;
                        let by_sha =
                            release_command(release, lease.as_bytes(), owner.as_bytes(), true);
                        let whole =
                            release_command(release, lease.as_bytes(), owner.as_bytes(), false);
                        // Sent from the next tick (after the lookup, as far as it can tell).
                        w.fleet.post_kept(&w.env, by_sha, Some(whole));
                    }
                    Next::Forward
                }
                _ => Next::Forward,
            };
            if matches!(next, Next::Forward) {
                w.env.metrics.inc(Stat::FleetCacheMiss);
                w.env.metrics.inc(Stat::Miss);
            }
            next
        };
        match next {
            Next::Wait => self.l3 = Some(wait),
            Next::Forward => {
                self.cache = CacheFlow::Forwarded(wait.pending);
                let _ = hostcalls::resume_http_request();
            }
            Next::Serve(entry, age, not_modified) => {
                self.serve_l3(&worker, &wait.pending, &entry, (age, not_modified));
            }
        }
    }

    fn serve_l3(
        &mut self,
        worker: &WorkerRef,
        pending: &Pending,
        entry: &Entry,
        (age, not_modified): (u64, bool),
    ) {
        self.observe(Outcome::HitL2);
        let registry = Rc::clone(&worker.env.registry);
        let debug = registry
            .cache_at(pending.service_index)
            .is_some_and(|s| s.debug);
        let status = CacheStatus {
            hit: true,
            ttl: Some(ttl_left(entry, age)),
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
            request_headers: &borrowed(&pending.request_headers),
            range: &range,
        };
        self.serve(entry, &answer);
        self.settle_group(GroupOutcome::Entry(entry));
    }
}

/// An entry the L3 tier had: kept in L1 and L2 and served when it answers the request.
fn found(w: &mut Worker, pending: &Pending, entry: Entry) -> Next {
    let now_ms = now_millis();
    let generations = Rc::clone(&w.tiers.generations);
    let headers = &pending.request_headers;
    match evaluate_hit(&entry, headers, &pending.request, &generations, now_ms) {
        HitDecision::Serve { age, not_modified }
        | HitDecision::ServeStale { age, not_modified } => {
            w.env.metrics.inc(Stat::FleetCacheHit);
            let tenant = pending.key.tenant.as_deref();
            w.tiers.store(&w.env, entry.clone(), tenant);
            let entry = Rc::new(entry);
            let entry = w
                .tiers
                .encode_for(&w.env, &entry, headers, tenant)
                .unwrap_or(entry);
            Next::Serve(entry, age, not_modified)
        }
        _ => Next::Forward,
    }
}

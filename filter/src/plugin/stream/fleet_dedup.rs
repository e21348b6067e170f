//! Fleet-wide dedup of a first attempt: after the local claim, the stream claims the record
//! in Redis (`SET NX PX GET`, one call bounded by `fleet_bridge.timeout_ms`) and waits for the
//! answer: created → the attempt goes to the origin; a completed record of another replica →
//! replayed here; another attempt in flight → 409; another body → 422. When the tier is
//! unavailable the service's `failure_mode` decides: the local claim alone (fail_open), or
//! 503 (fail_closed).

use proxy_wasm::hostcalls;
use proxy_wasm::types::Action;

use super::state::{DedupPhase, EdgeHttp, FleetClaiming};
use crate::plugin::dedup::records::{finish, replay};
use crate::plugin::dedup::state::{Completion, FleetClaim, Queued};
use crate::plugin::dedup::waiters::IN_PROGRESS;
use crate::plugin::env::Env;
use crate::plugin::fleet::{answer_checked, dispatch};
use crate::plugin::host::now_millis;
use crate::plugin::metrics::Stat;
use crate::plugin::reply::{json_error, retry_headers};
use crate::plugin::worker::Worker;
use crate::policy::dedup::record::{Record, State};
use crate::policy::fleet::dedup::{
    claim_command, claim_value, read_claim, record_key, FleetClaim as Claimed,
};
use crate::policy::monitor::outcome::Outcome;
use crate::policy::{DedupSection, FailureMode};

/// The service's failure mode when its dedup is fleet-wide.
pub(super) fn fleet_mode(env: &Env, service_index: usize) -> Option<FailureMode> {
    let service = env.registry.service_at(service_index)?;
    let fleet = service.fleet.as_ref().filter(|f| f.shares_dedup())?;
    service.dedup.as_ref()?;
    Some(fleet.failure_mode)
}

/// How a fleet claim started.
pub(super) enum FleetStart {
    /// The claim is on its way; the stream stays paused until its answer.
    Waiting,
    /// The tier is unavailable and the service fails open: the local claim alone.
    Local(Box<Queued>),
    /// The tier is unavailable and the service fails closed (the local claim is released).
    Closed,
}

/// Releases a local claim that will not reach the origin.
fn release_local(w: &mut Worker, queued: &Queued) {
    let released = Completion {
        key: queued.delivery.key.clone(),
        id: queued.delivery.id.clone(),
        attempt: queued.delivery.attempt,
        result: State::Released,
    };
    finish((&*w.env, &mut w.dedup, &mut w.replies), released);
}

/// Keeps the fleet claim of `attempt` so that its result (or release) is written to the fleet
/// tier. Past `max_waiting_requests` claims it is not: a claim in Redis expires after the
/// in-flight timeout.
fn remember_claim(w: &mut Worker, attempt: u64, claim: FleetClaim) {
    let limit = usize::try_from(w.env.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
    if w.dedup.fleet_claims.len() < limit {
        w.dedup.fleet_claims.insert(attempt, claim);
    }
}

/// What the stream does once the claim's answer is read.
enum Next {
    Forward(Box<Queued>),
    Replay(Record),
    InFlight(u64),
    Mismatch,
    Unavailable(u64),
}

impl EdgeHttp {
    /// Claims the fleet-wide record of a delivery this worker claimed locally.
    pub(super) fn claim_fleet(
        &mut self,
        w: &mut Worker,
        queued: Queued,
        digest: [u8; 32],
        section: &DedupSection,
        mode: FailureMode,
    ) -> FleetStart {
        let env = &*w.env;
        let service = env
            .registry
            .service_at(queued.delivery.service_index)
            .map(|s| s.name.as_str())
            .unwrap_or_default();
        let prefix = &env.registry.settings().fleet_bridge.key_prefix;
        let key = record_key(prefix, service, &queued.delivery.id);
        let expires_at_ms = now_millis().saturating_add(section.in_flight_timeout_ms);
        let claim = claim_value(
            &queued.delivery.id,
            digest,
            queued.delivery.attempt,
            expires_at_ms,
        );
        let token = if w.fleet.usable(now_millis()) {
            dispatch(
                env,
                &claim_command(&key, &claim, section.in_flight_timeout_ms),
            )
        } else {
            None
        };
        let claim = FleetClaim {
            key,
            claim,
            digest,
            retention_ms: section.retention_s.saturating_mul(1000),
        };
        if token.is_none() {
            env.metrics.inc(Stat::FleetSkipped);
            return match mode {
                FailureMode::FailOpen => {
                    // The result is written to the fleet once the tier answers again (where
                    // no other attempt holds the record), so a retry on another replica after
                    // the outage is replayed.
                    remember_claim(w, queued.delivery.attempt, claim);
                    FleetStart::Local(Box::new(queued))
                }
                FailureMode::FailClosed => {
                    release_local(w, &queued);
                    FleetStart::Closed
                }
            };
        }
        self.dedup = Some(DedupPhase::FleetClaiming(Box::new(FleetClaiming {
            queued,
            claim,
            mode,
            retry_after_s: section.retry_after_s,
        })));
        FleetStart::Waiting
    }

    /// The fleet tier answered the claim (or the call failed or timed out).
    pub(super) fn on_fleet_claimed(&mut self, body_size: usize) {
        let (Some(DedupPhase::FleetClaiming(claiming)), Some(worker)) =
            (self.dedup.take(), self.worker.clone())
        else {
            return;
        };
        let FleetClaiming {
            queued,
            claim,
            mode,
            retry_after_s,
        } = *claiming;
        let next = {
            let w = &mut *worker.borrow_mut();
            let id = &queued.delivery.id;
            // A reply that is not a claim's (nil or a record of this identity) is garbage.
            let outcome =
                answer_checked(&w.env, &mut w.fleet.tier, (body_size, now_millis()), |r| {
                    read_claim(r, id, claim.digest).is_ok()
                });
            match outcome.and_then(|reply| read_claim(&reply, id, claim.digest)) {
                Ok(Claimed::Claimed) => {
                    w.env.metrics.inc(Stat::FleetDedupClaimed);
                    remember_claim(w, queued.delivery.attempt, claim);
                    Next::Forward(Box::new(queued))
                }
                Ok(Claimed::Replay(record)) => {
                    w.env.metrics.inc(Stat::FleetDedupReplayed);
                    // The local record gets the fleet's result: duplicates on this replica
                    // are replayed without asking the fleet again.
                    let completion = Completion {
                        key: queued.delivery.key.clone(),
                        id: queued.delivery.id.clone(),
                        attempt: queued.delivery.attempt,
                        result: record.state.clone(),
                    };
                    finish((&*w.env, &mut w.dedup, &mut w.replies), completion);
                    Next::Replay(record)
                }
                Ok(Claimed::InFlight) => {
                    w.env.metrics.inc(Stat::FleetDedupInFlight);
                    release_local(w, &queued);
                    Next::InFlight(retry_after_s)
                }
                Ok(Claimed::Mismatch) => {
                    w.env.metrics.inc(Stat::DedupMismatch);
                    release_local(w, &queued);
                    Next::Mismatch
                }
                Err(_) => {
                    w.env.metrics.inc(Stat::FleetSkipped);
                    match mode {
                        // The claim may have been written before the answer was lost, or not
                        // at all: the result is written over it, or where there is no record,
                        // once the tier answers (a release if the attempt fails).
                        FailureMode::FailOpen => {
                            remember_claim(w, queued.delivery.attempt, claim);
                            Next::Forward(Box::new(queued))
                        }
                        FailureMode::FailClosed => {
                            // Released (owner-checked) by the root context.
                            let limit =
                                usize::try_from(w.env.registry.limits().max_waiting_requests)
                                    .unwrap_or(usize::MAX);
                            if w.dedup.fleet_results.len() < limit {
                                let id = queued.delivery.id.clone();
                                w.dedup.fleet_results.push((claim, id, None));
                            }
                            release_local(w, &queued);
                            Next::Unavailable(retry_after_s)
                        }
                    }
                }
            }
        };
        match next {
            Next::Forward(queued) => {
                let action = {
                    let w = &mut *worker.borrow_mut();
                    self.forward_first(w, *queued)
                };
                if matches!(action, Action::Continue) {
                    let _ = hostcalls::resume_http_request();
                }
            }
            Next::Replay(record) => {
                worker.env.metrics.inc(Stat::DedupReplayed);
                self.observe(Outcome::DedupReplay);
                self.answered = true;
                replay(&record);
            }
            Next::InFlight(retry_after_s) => {
                worker.env.metrics.inc(Stat::DedupConflict);
                self.observe(Outcome::Refused);
                self.reply(409, &retry_headers(retry_after_s), Some(IN_PROGRESS));
            }
            Next::Mismatch => {
                self.observe(Outcome::Refused);
                let message = "this identity was already used with a different body";
                self.reply_json(json_error(422, message));
            }
            Next::Unavailable(retry_after_s) => {
                self.fleet_unavailable(retry_after_s);
            }
        }
    }

    /// 503 with `Retry-After`: the fleet tier is needed and unavailable.
    pub(super) fn fleet_unavailable(&mut self, retry_after_s: u64) -> Action {
        self.observe(Outcome::Refused);
        let body = br#"{"error":"the fleet tier is unavailable, retry"}"#;
        self.reply(503, &retry_headers(retry_after_s), Some(body))
    }

    /// The stream ended while its fleet claim was on its way: both claims are released.
    pub(super) fn fleet_claim_done(w: &mut Worker, claiming: FleetClaiming) {
        let FleetClaiming { queued, claim, .. } = claiming;
        release_local(w, &queued);
        let limit =
            usize::try_from(w.env.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
        if w.dedup.fleet_results.len() < limit {
            let id = queued.delivery.id.clone();
            w.dedup.fleet_results.push((claim, id, None));
        }
    }
}

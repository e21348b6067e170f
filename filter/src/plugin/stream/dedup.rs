//! Webhook deduplication of a stream: its body is collected, the delivery identified, and it
//! goes on as the first attempt (sent by the root context), waits for one, is replayed, or is
//! refused; a first attempt's result is recorded as it streams back.

use std::rc::Rc;

use proxy_wasm::types::{Action, BufferType};

use super::fleet_dedup::{fleet_mode, FleetStart};
use super::request::{header_bytes, Request};
use super::state::{DedupPhase, EdgeHttp, Recording};
use crate::plugin::dedup::delivery::queue as queue_delivery;
use crate::plugin::dedup::records::{claim, finish, next_attempt, replay, slot_for};
use crate::plugin::dedup::state::{Completion, DedupWaiter, Delivery, Queued};
use crate::plugin::dedup::waiters::IN_PROGRESS;
use crate::plugin::host::{body, now_millis, now_secs};
use crate::plugin::metrics::Stat;
use crate::plugin::reply::{json_error, retry_headers};
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::cache::exchange::relayed_headers;
use crate::policy::dedup::identity::{ambiguous_id, identify};
use crate::policy::dedup::record::{Claim, Record, State};
use crate::policy::dedup::signature::{decode_secret, verify as verify_signature};
use crate::policy::header_list::{header, owned};
use crate::policy::monitor::outcome::Outcome;
use crate::policy::{DedupSection, InFlightMode};

/// How a delivery is answered without the origin.
enum Answer {
    /// The first attempt's result.
    Replay(Record),
    /// 422: the id was used with another body.
    Mismatch,
    /// 409: the first attempt is in progress and this one may not wait.
    Conflict,
    /// 503: the fleet tier is unavailable and the service fails closed.
    Unavailable,
}

/// The dedup section of service `index`.
fn section_of(worker: &WorkerRef, index: usize) -> Option<DedupSection> {
    let registry = Rc::clone(&worker.env.registry);
    registry.dedup_at(index).cloned()
}

impl EdgeHttp {
    /// A delivery to a deduplicating service: its body is collected before anything reaches
    /// the origin. `Some` when that changes what the request headers callback returns.
    pub(super) fn dedup_request(
        &mut self,
        worker: &WorkerRef,
        request: &Request<'_>,
        end_of_stream: bool,
    ) -> Option<Action> {
        if request.service.dedup.is_none() || request.reads() || self.answered {
            return None;
        }
        if !self.hold_paused(&mut worker.borrow_mut(), header_bytes(request.headers)) {
            // Past the paused-request budget: the sender retries (a delivery is never
            // forwarded undeduplicated).
            let body = br#"{"error":"the edge is holding too many requests, retry"}"#;
            return Some(self.reply(503, &retry_headers(1), Some(body)));
        }
        self.dedup = Some(DedupPhase::Collecting {
            service_index: request.service.index,
            method: request.method.to_string(),
            path: request.path.to_string(),
            headers: owned(request.headers),
        });
        end_of_stream.then(|| self.decide_dedup(&[], Vec::new()))
    }

    /// The whole request is here: first attempt, duplicate, or another body under a used id.
    /// `trailers`: the request's trailers when they ended it (relayed with the delivery).
    pub(super) fn decide_dedup(&mut self, body: &[u8], trailers: Vec<(String, String)>) -> Action {
        let (
            Some(DedupPhase::Collecting {
                service_index,
                method,
                path,
                headers,
            }),
            Some(worker),
        ) = (self.dedup.take(), self.worker.clone())
        else {
            return Action::Continue;
        };
        let Some(section) = section_of(&worker, service_index) else {
            return Action::Continue;
        };
        if let Some(refused) = self.refuse_delivery(&worker, &section, &headers, body) {
            return refused;
        }
        // No identity: the request passes untouched.
        let Some(identity) = identify(&section, &method, &path, &headers, body) else {
            return Action::Continue;
        };
        let now_ms = now_millis();
        let timeout_ms = section.in_flight_timeout_ms;
        let digest = identity.body_digest;
        // Decided under the worker's borrow; any reply goes out after it.
        let answer = {
            let w = &mut *worker.borrow_mut();
            let key = slot_for(&w.env, &identity.id, now_ms);
            let attempt = next_attempt(&w.env, &mut w.dedup);
            match claim(&key, &identity.id, digest, attempt, now_ms, timeout_ms) {
                Claim::Forward => {
                    let queued = Queued {
                        delivery: Delivery {
                            context_id: self.context_id,
                            key: key.clone(),
                            id: identity.id.clone(),
                            attempt,
                            service_index,
                        },
                        headers,
                        body: body.to_vec(),
                        trailers,
                        timeout_ms,
                    };
                    let Some(mode) = fleet_mode(&w.env, service_index) else {
                        return self.forward_first(w, queued);
                    };
                    match self.claim_fleet(w, queued, digest, &section, mode) {
                        FleetStart::Waiting => return Action::Pause,
                        FleetStart::Local(queued) => return self.forward_first(w, *queued),
                        FleetStart::Closed => Answer::Unavailable,
                    }
                }
                Claim::Replay(record) => {
                    w.env.metrics.inc(Stat::DedupReplayed);
                    self.observe(Outcome::DedupReplay);
                    Answer::Replay(record)
                }
                Claim::Mismatch => {
                    w.env.metrics.inc(Stat::DedupMismatch);
                    self.observe(Outcome::Refused);
                    Answer::Mismatch
                }
                Claim::InFlight { .. } => {
                    let limit = usize::try_from(w.env.registry.limits().max_waiting_requests)
                        .unwrap_or(usize::MAX);
                    // A waiter keeps its body too (the edge sends it if the waiter takes over).
                    // With fleet-wide records, a duplicate does not wait here: a waiter that
                    // took over would skip the fleet's claim.
                    if section.in_flight == InFlightMode::Conflict
                        || fleet_mode(&w.env, service_index).is_some()
                        || w.dedup.waiters.len() >= limit
                        || !self.hold_paused(w, body.len())
                    {
                        w.env.metrics.inc(Stat::DedupConflict);
                        self.observe(Outcome::Refused);
                        Answer::Conflict
                    } else {
                        w.env.metrics.inc(Stat::DedupWaited);
                        self.observe(Outcome::DedupReplay);
                        w.dedup.waiters.push(DedupWaiter {
                            context_id: self.context_id,
                            key,
                            id: identity.id.clone(),
                            digest,
                            since_ms: now_ms,
                            timeout_ms,
                            service_index,
                            headers,
                            body: body.to_vec(),
                            trailers,
                        });
                        self.dedup = Some(DedupPhase::Waiting {
                            id: identity.id,
                            service_index,
                        });
                        return Action::Pause;
                    }
                }
            }
        };
        match answer {
            Answer::Replay(record) => {
                replay(&record);
                self.answered = true;
                Action::Pause
            }
            Answer::Mismatch => {
                let message = "this identity was already used with a different body";
                self.reply_json(json_error(422, message))
            }
            Answer::Conflict => {
                let conflict = retry_headers(section.retry_after_s);
                self.reply(409, &conflict, Some(IN_PROGRESS))
            }
            Answer::Unavailable => self.fleet_unavailable(section.retry_after_s),
        }
    }

    /// A first attempt goes to the origin: sent by the root context when it can take it (its
    /// answer then completes the record whatever this stream does), else by this stream.
    pub(super) fn forward_first(&mut self, w: &mut Worker, queued: Queued) -> Action {
        w.env.metrics.inc(Stat::DedupForwarded);
        self.observe_forwarded();
        let Queued { delivery, .. } = &queued;
        let owner = DedupPhase::Owner {
            key: delivery.key.clone(),
            id: delivery.id.clone(),
            service_index: delivery.service_index,
            attempt: delivery.attempt,
        };
        if queue_delivery((&*w.env, &mut w.dedup, &mut w.replies), queued) {
            // The root context owns the origin call: its answer completes the record and is
            // relayed to this stream.
            self.dedup = Some(DedupPhase::Dispatched);
            return Action::Pause;
        }
        self.dedup = Some(owner);
        Action::Continue
    }

    /// A bad webhook signature (401), or an id given twice with different values (400).
    fn refuse_delivery(
        &mut self,
        worker: &WorkerRef,
        section: &DedupSection,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Option<Action> {
        if let Some(signature) = &section.signature {
            let key = decode_secret(&signature.secret).unwrap_or_default();
            let verdict = verify_signature(
                &key,
                header(headers, "webhook-id"),
                header(headers, "webhook-timestamp"),
                header(headers, "webhook-signature"),
                body,
                now_secs(),
                signature.tolerance_s,
            );
            if verdict.is_err() {
                worker
                    .borrow()
                    .env
                    .metrics
                    .inc(Stat::DedupSignatureRejected);
                self.observe(Outcome::Refused);
                let message = "invalid or missing webhook signature";
                return Some(self.reply_json(json_error(401, message)));
            }
        }
        if ambiguous_id(section, headers) {
            worker.env.metrics.inc(Stat::DedupMismatch);
            self.observe(Outcome::Refused);
            let message = "the delivery id is given more than once with different values";
            return Some(self.reply_json(json_error(400, message)));
        }
        None
    }

    /// The origin answered a first attempt: keep a replayable result, or release the record.
    pub(super) fn on_dedup_response(
        &mut self,
        worker: &WorkerRef,
        status: u16,
        response: &[(String, String)],
        end_of_stream: bool,
    ) {
        let (key, id, service_index, attempt) = match self.dedup.take() {
            None => return,
            Some(DedupPhase::Owner {
                key,
                id,
                service_index,
                attempt,
            }) => (key, id, service_index, attempt),
            Some(DedupPhase::Waiting { id, service_index }) => {
                // Only a waiter the tick let through owns the record now (in the slot it took).
                let taken = worker
                    .borrow_mut()
                    .dedup
                    .taken_over
                    .remove(&self.context_id);
                let Some((key, attempt)) = taken else {
                    return;
                };
                (key, id, service_index, attempt)
            }
            other => {
                self.dedup = other;
                return;
            }
        };
        let Some(section) = section_of(worker, service_index) else {
            return;
        };
        if !section.replays(status) {
            let released = Completion {
                key,
                id,
                attempt,
                result: State::Released,
            };
            let w = &mut *worker.borrow_mut();
            finish((&*w.env, &mut w.dedup, &mut w.replies), released);
            return;
        }
        self.dedup = Some(DedupPhase::Recording(Recording {
            key,
            id,
            attempt,
            status,
            headers: relayed_headers(response),
            body: Vec::new(),
            omitted: false,
            limit: usize::try_from(section.max_response_bytes).unwrap_or(usize::MAX),
            retention_ms: section.retention_s.saturating_mul(1000),
        }));
        if end_of_stream {
            self.finish_dedup();
        }
    }

    /// A chunk of a first attempt's result: copied into the record while it fits.
    pub(super) fn record_dedup_body(&mut self, body_size: usize, end_of_stream: bool) {
        let Some(DedupPhase::Recording(recording)) = &mut self.dedup else {
            return;
        };
        if body_size > 0 && !recording.omitted {
            let chunk = body(BufferType::HttpResponseBody, body_size);
            if recording.body.len().saturating_add(chunk.len()) > recording.limit {
                // Too large to replay whole: duplicates get the status and headers only.
                recording.omitted = true;
                recording.body.clear();
            } else {
                recording.body.extend_from_slice(&chunk);
            }
        }
        if end_of_stream {
            self.finish_dedup();
        }
    }

    /// The first attempt's result is complete: it goes into the record.
    pub(super) fn finish_dedup(&mut self) {
        let (Some(DedupPhase::Recording(recording)), Some(worker)) =
            (self.dedup.take(), self.worker.clone())
        else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        finish(
            (&*w.env, &mut w.dedup, &mut w.replies),
            recording.completion(true),
        );
    }

    /// The stream ends.
    pub(super) fn dedup_done(&mut self, worker: &mut Worker) {
        match self.dedup.take() {
            // The client went away (or the stream was reset) after the delivery went to the
            // origin, which may well have processed it: the record is not released (that would
            // send the sender's retry to the origin again). It stays in flight until
            // `in_flight_timeout_ms`; duplicates meanwhile wait or get 409, as for any attempt
            // in flight. A taken-over waiter is such an attempt too.
            Some(DedupPhase::Owner { .. }) => {}
            Some(DedupPhase::Waiting { .. }) => {
                worker
                    .dedup
                    .waiters
                    .retain(|w| w.context_id != self.context_id);
                worker.dedup.taken_over.remove(&self.context_id);
            }
            Some(DedupPhase::FleetClaiming(claiming)) => Self::fleet_claim_done(worker, *claiming),
            // The origin answered with a replayable status and the stream ended before its
            // body did: the delivery was processed, so that result is kept (without a body).
            Some(DedupPhase::Recording(recording)) => {
                let completion = recording.completion(false);
                finish(
                    (&*worker.env, &mut worker.dedup, &mut worker.replies),
                    completion,
                );
            }
            _ => {}
        }
    }
}

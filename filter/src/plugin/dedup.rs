//! Webhook deduplication in the glue: records in shared data through the CAS helper, replays,
//! and duplicates that wait (on any worker) for the first attempt. Waiters are answered only
//! from the root context (the tick, or `on_queue_ready` when an attempt of this worker
//! finished): a local reply sent inside a stream's filter callback would stop that stream
//! (proxy-wasm-cpp-host's VM-wide `stopNextIteration`).

use proxy_wasm::hostcalls;

use super::delivery::{queue as queue_delivery, Delivery, Queued};
use super::host::shared_update as update;
use super::host::HostStore;
use super::metrics::Stat;
use super::reply::send;
use super::worker::Worker;
use crate::policy::dedup::record::{self, Claim, Record, State};
use crate::policy::shared_store::SharedStore;
use crate::policy::shared_store::UpdateError;

/// Marks a replayed response.
pub const DEDUP_HEADER: &str = "x-edge-dedup";
/// CAS attempts for one record change; past them a delivery goes through (never lost).
const ATTEMPTS: u32 = 8;

/// A duplicate paused until the first attempt's result is known.
pub struct DedupWaiter {
    pub context_id: u32,
    pub key: String,
    pub id: String,
    pub digest: [u8; 32],
    pub since_ms: u64,
    pub timeout_ms: u64,
    pub service_index: usize,
    /// The request, for the edge to send if this waiter takes over (see `delivery.rs`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// The slot an identity's record lives in (or will): see [`record::choose_slot`].
pub fn slot_for(worker: &Worker, id: &str, now_ms: u64) -> String {
    let keys = record::dedup_keys(id, worker.registry.limits().dedup_slots);
    let records: Vec<Option<Record>> = keys
        .iter()
        .map(|key| Record::decode(HostStore.get(key).as_ref().map(|(b, _)| b.as_slice())))
        .collect();
    let chosen = record::choose_slot(&records, id, now_ms);
    keys.get(chosen)
        .or(keys.first())
        .cloned()
        .unwrap_or_default()
}

/// A token naming one attempt at the origin (one per claim, unique across workers): records
/// are owned by attempts, not by workers, so one stream can never finish or release the
/// record another stream of the same worker claimed later.
pub fn next_attempt(worker: &mut Worker) -> u64 {
    worker.dedup_attempts = worker.dedup_attempts.wrapping_add(1);
    worker.owner ^ worker.dedup_attempts.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Claims a delivery's record in `key` for `attempt` (see [`record::claim`]).
pub fn claim(
    key: &str,
    id: &str,
    digest: [u8; 32],
    attempt: u64,
    now_ms: u64,
    timeout_ms: u64,
) -> Claim {
    let claimed = update(&HostStore, key, ATTEMPTS, |current| {
        match record::claim(current, id, digest, attempt, now_ms, timeout_ms) {
            (claim, Some(write)) => Ok((claim, write)),
            (claim, None) => Err(claim),
        }
    });
    match claimed {
        Ok(claim) | Err(UpdateError::Refused(claim)) => claim,
        // Other workers kept writing this slot (or the host refused the write): never forward
        // a delivery undeduplicated. It waits like a duplicate of an attempt in flight (the
        // tick claims again) or, in conflict mode, gets 409; the sender retries either way.
        Err(_) => Claim::InFlight {
            expires_at_ms: now_ms,
        },
    }
}

/// Records `attempt`'s result, only over that attempt's own in-flight record (a record that
/// expired and was taken over by a newer attempt is left alone). Duplicates waiting on this
/// worker are answered at once from the root context. Whether the record changed.
pub fn finish(worker: &mut Worker, key: &str, id: &str, attempt: u64, result: State) -> bool {
    let released = matches!(result, State::Released);
    let outcome = update(&HostStore, key, ATTEMPTS, |current| {
        record::complete(current, id, attempt, result.clone())
            .map(|write| ((), write))
            .ok_or(())
    });
    let written = outcome.is_ok();
    if matches!(
        outcome,
        Err(UpdateError::Contended { .. } | UpdateError::Failed)
    ) {
        // Lost every race (or the host refused): the result must not be lost, or a duplicate
        // would reach the origin once the record expires. The tick writes it again.
        let limit =
            usize::try_from(worker.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
        if worker.dedup_unfinished.len() < limit {
            worker.dedup_unfinished.push(Unfinished {
                key: key.to_string(),
                id: id.to_string(),
                attempt,
                result,
            });
        }
    }
    if written && released {
        worker.metrics.inc(Stat::DedupReleased);
    }
    if written && worker.dedup_waiters.iter().any(|w| w.id == id) {
        worker.wake_root();
    }
    written
}

/// A result whose write lost its races, kept until a tick writes it.
pub struct Unfinished {
    key: String,
    id: String,
    attempt: u64,
    result: State,
}

/// Writes the results whose first writes lost their races (from the tick).
pub fn finish_unfinished(worker: &mut Worker) {
    for unfinished in std::mem::take(&mut worker.dedup_unfinished) {
        let Unfinished {
            key,
            id,
            attempt,
            result,
        } = unfinished;
        finish(worker, &key, &id, attempt, result);
    }
}

/// Answers a duplicate with the first attempt's result.
pub fn replay(record: &Record) {
    if let State::Completed {
        status,
        headers,
        body,
        ..
    } = &record.state
    {
        let mut headers = headers.clone();
        headers.push((DEDUP_HEADER.to_string(), "replayed".to_string()));
        send(*status, &headers, Some(body));
    }
}

/// Duplicates waiting for a first attempt: replayed once it completes; when it failed or its
/// record expired, one of them takes over and goes to the origin; past their timeout they get
/// a 409 to retry later. Only from the root context (see the module notes).
pub fn poll_waiters(worker: &mut Worker, root: u32, now_ms: u64) {
    if worker.dedup_waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut worker.dedup_waiters);
    let mut waiters = waiters.into_iter();
    while let Some(waiter) = waiters.next() {
        let current = record::Record::decode(
            HostStore
                .get(&waiter.key)
                .as_ref()
                .map(|(b, _)| b.as_slice()),
        );
        let in_flight = matches!(
            &current,
            Some(Record { id, state: State::InFlight { expires_at_ms, .. }, .. })
                if *id == waiter.id && *expires_at_ms > now_ms
        );
        if in_flight && now_ms.saturating_sub(waiter.since_ms) <= waiter.timeout_ms {
            worker.dedup_waiters.push(waiter);
            continue;
        }
        if !worker.take_reply() {
            // This callback's reply budget is spent: the rest wait for the next one.
            worker.dedup_waiters.push(waiter);
            worker.dedup_waiters.extend(waiters);
            break;
        }
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue; // The stream is gone.
        }
        if in_flight {
            send_conflict(worker, waiter.context_id);
            continue;
        }
        let key = slot_for(worker, &waiter.id, now_ms);
        let attempt = next_attempt(worker);
        match claim(
            &key,
            &waiter.id,
            waiter.digest,
            attempt,
            now_ms,
            waiter.timeout_ms,
        ) {
            Claim::Replay(record) => {
                replay(&record);
                worker.answered.insert(waiter.context_id);
                worker.metrics.inc(Stat::DedupReplayed);
            }
            Claim::Forward => {
                // This waiter's attempt owns the record now. The edge sends it, like a first
                // attempt, so its result is recorded even if this sender hangs up too.
                let queued = Queued {
                    delivery: Delivery {
                        context_id: waiter.context_id,
                        key: key.clone(),
                        id: waiter.id.clone(),
                        attempt,
                        service_index: waiter.service_index,
                    },
                    headers: waiter.headers,
                    body: waiter.body,
                    trailers: waiter.trailers,
                    timeout_ms: waiter.timeout_ms,
                };
                if !queue_delivery(worker, queued) {
                    // Through the router instead: its own response callbacks finish it.
                    worker
                        .dedup_taken_over
                        .insert(waiter.context_id, (key, attempt));
                    let _ = hostcalls::resume_http_request();
                }
            }
            Claim::InFlight { .. }
                if now_ms.saturating_sub(waiter.since_ms) > waiter.timeout_ms =>
            {
                // Still not claimable past the waiting time (a slot kept contended): retry later.
                send_conflict(worker, waiter.context_id);
            }
            Claim::InFlight { .. } => {
                // Another waiter (on another worker) took over first, or the slot is contended:
                // keep waiting.
                worker.dedup_waiters.push(DedupWaiter { key, ..waiter });
            }
            Claim::Mismatch => {
                send(
                    422,
                    &json_headers(),
                    Some(br#"{"error":"this identity was used with a different body"}"#),
                );
                worker.answered.insert(waiter.context_id);
                worker.metrics.inc(Stat::DedupMismatch);
            }
        }
    }
    let _ = hostcalls::set_effective_context(root);
}

/// Tells a waiting duplicate (the effective context) to retry: 409 with `Retry-After: 1`.
fn send_conflict(worker: &mut Worker, context_id: u32) {
    send(
        409,
        &conflict_headers(1),
        Some(br#"{"error":"the first delivery is still in progress"}"#),
    );
    worker.answered.insert(context_id);
    worker.metrics.inc(Stat::DedupConflict);
}

pub fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".to_string(), "application/json".to_string())]
}

pub fn conflict_headers(retry_after_s: u64) -> Vec<(String, String)> {
    let mut headers = json_headers();
    headers.push(("retry-after".to_string(), retry_after_s.to_string()));
    headers
}

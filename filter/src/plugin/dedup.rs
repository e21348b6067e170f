//! Webhook deduplication in the glue: records in shared data through the CAS helper, replays,
//! and duplicates that wait (on any worker) for the first attempt, polled from the tick.

use proxy_wasm::hostcalls;

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

/// Claims a delivery's record in `key` (see [`record::claim`]).
pub fn claim(
    worker: &Worker,
    key: &str,
    id: &str,
    digest: [u8; 32],
    now_ms: u64,
    timeout_ms: u64,
) -> Claim {
    let owner = worker.owner;
    let claimed = update(&HostStore, key, ATTEMPTS, |current| {
        match record::claim(current, id, digest, owner, now_ms, timeout_ms) {
            (claim, Some(write)) => Ok((claim, write)),
            (claim, None) => Err(claim),
        }
    });
    match claimed {
        Ok(claim) | Err(UpdateError::Refused(claim)) => claim,
        // Other workers kept writing this slot: let the delivery through rather than lose it.
        Err(_) => Claim::Forward,
    }
}

/// Records the first attempt's result (only over our own in-flight record).
pub fn finish(worker: &Worker, key: &str, id: &str, result: State) {
    let owner = worker.owner;
    let released = matches!(result, State::Released);
    let _ = update(&HostStore, key, ATTEMPTS, |current| {
        record::complete(current, id, owner, result.clone())
            .map(|write| ((), write))
            .ok_or(())
    });
    if released {
        worker.metrics.inc(Stat::DedupReleased);
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
/// a 409 to retry later.
pub fn poll_waiters(worker: &mut Worker, root: u32, now_ms: u64) {
    if worker.dedup_waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut worker.dedup_waiters);
    for waiter in waiters {
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
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue; // The stream is gone.
        }
        if in_flight {
            send(
                409,
                &conflict_headers(1),
                Some(br#"{"error":"the first delivery is still in progress"}"#),
            );
            worker.answered.insert(waiter.context_id);
            worker.metrics.inc(Stat::DedupConflict);
            continue;
        }
        let key = slot_for(worker, &waiter.id, now_ms);
        match claim(
            worker,
            &key,
            &waiter.id,
            waiter.digest,
            now_ms,
            waiter.timeout_ms,
        ) {
            Claim::Replay(record) => {
                replay(&record);
                worker.answered.insert(waiter.context_id);
                worker.metrics.inc(Stat::DedupReplayed);
            }
            Claim::Forward => {
                // This waiter now owns the record; its own response callbacks finish it.
                worker.dedup_taken_over.insert(waiter.context_id, key);
                let _ = hostcalls::resume_http_request();
            }
            Claim::InFlight { .. } => {
                // Another waiter (on another worker) took over first: keep waiting on it.
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

pub fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".to_string(), "application/json".to_string())]
}

pub fn conflict_headers(retry_after_s: u64) -> Vec<(String, String)> {
    let mut headers = json_headers();
    headers.push(("retry-after".to_string(), retry_after_s.to_string()));
    headers
}

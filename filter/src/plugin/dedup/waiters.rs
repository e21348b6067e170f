//! Duplicates that wait (on any worker) for a first attempt. They are answered only from the
//! root context (the tick, or `on_queue_ready` when an attempt of this worker finished): a
//! local reply sent inside a stream's filter callback would stop that stream
//! (proxy-wasm-cpp-host's VM-wide `stopNextIteration`).

use proxy_wasm::hostcalls;

use super::delivery::queue as queue_delivery;
use super::records::{claim, next_attempt, replay, slot_for};
use super::state::{Dedup, DedupWaiter, Delivery, Queued};
use crate::plugin::env::Env;
use crate::plugin::metrics::Stat;
use crate::plugin::replies::Replies;
use crate::plugin::reply::{json_headers, retry_headers, send};
use crate::policy::dedup::record::{Claim, Record, State};
use crate::policy::shared_store::SharedStore;

use crate::plugin::host::HostStore;

/// What a duplicate told to wait elsewhere gets.
pub const IN_PROGRESS: &[u8] = br#"{"error":"the first delivery is still in progress"}"#;

/// Duplicates waiting for a first attempt: replayed once it completes; when it failed or its
/// record expired, one of them takes over and goes to the origin; past their timeout they get
/// a 409 to retry later. Only from the root context (see the module notes).
pub fn poll_waiters(
    (env, dedup, replies): (&Env, &mut Dedup, &mut Replies),
    root: u32,
    now_ms: u64,
) {
    if dedup.waiters.is_empty() {
        return;
    }
    let waiters = std::mem::take(&mut dedup.waiters);
    let mut waiters = waiters.into_iter();
    while let Some(waiter) = waiters.next() {
        let current = Record::decode(
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
            dedup.waiters.push(waiter);
            continue;
        }
        if !replies.take() {
            // This callback's reply budget is spent: the rest wait for the next one.
            dedup.waiters.push(waiter);
            dedup.waiters.extend(waiters);
            break;
        }
        if hostcalls::set_effective_context(waiter.context_id).is_err() {
            continue; // The stream is gone.
        }
        if in_flight {
            send_conflict(env, replies, waiter.context_id);
            continue;
        }
        let key = slot_for(env, &waiter.id, now_ms);
        let attempt = next_attempt(env, dedup);
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
                replies.mark_answered(waiter.context_id);
                env.metrics.inc(Stat::DedupReplayed);
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
                if !queue_delivery((env, dedup, replies), queued) {
                    // Through the router instead: its own response callbacks finish it.
                    dedup.taken_over.insert(waiter.context_id, (key, attempt));
                    let _ = hostcalls::resume_http_request();
                }
            }
            Claim::InFlight { .. }
                if now_ms.saturating_sub(waiter.since_ms) > waiter.timeout_ms =>
            {
                // Still not claimable past the waiting time (a slot kept contended): retry later.
                send_conflict(env, replies, waiter.context_id);
            }
            Claim::InFlight { .. } => {
                // Another waiter (on another worker) took over first, or the slot is contended:
                // keep waiting.
                dedup.waiters.push(DedupWaiter { key, ..waiter });
            }
            Claim::Mismatch => {
                send(
                    422,
                    &json_headers(),
                    Some(br#"{"error":"this identity was used with a different body"}"#),
                );
                replies.mark_answered(waiter.context_id);
                env.metrics.inc(Stat::DedupMismatch);
            }
        }
    }
    let _ = hostcalls::set_effective_context(root);
}

/// Tells a waiting duplicate (the effective context) to retry: 409 with `Retry-After: 1`.
fn send_conflict(env: &Env, replies: &mut Replies, context_id: u32) {
    send(409, &retry_headers(1), Some(IN_PROGRESS));
    replies.mark_answered(context_id);
    env.metrics.inc(Stat::DedupConflict);
}

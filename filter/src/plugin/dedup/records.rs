//! Dedup records in shared data, changed through the CAS helper: which slot an identity uses,
//! claiming it for an attempt, recording the attempt's result, and replaying it.

use super::state::{Completion, Dedup};
use crate::plugin::env::Env;
use crate::plugin::host::shared_update as update;
use crate::plugin::host::HostStore;
use crate::plugin::metrics::Stat;
use crate::plugin::replies::Replies;
use crate::plugin::reply::send;
use crate::policy::dedup::record::{self, Claim, Record, State};
use crate::policy::shared_store::SharedStore;
use crate::policy::shared_store::UpdateError;

/// Marks a replayed response.
pub const DEDUP_HEADER: &str = "x-edge-dedup";
/// CAS attempts for one record change; past them a delivery goes through (never lost).
const ATTEMPTS: u32 = 8;

/// The slot an identity's record lives in (or will): see [`record::choose_slot`].
pub fn slot_for(env: &Env, id: &str, now_ms: u64) -> String {
    let keys = record::dedup_keys(id, env.registry.limits().dedup_slots);
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
pub fn next_attempt(env: &Env, dedup: &mut Dedup) -> u64 {
    dedup.attempts = dedup.attempts.wrapping_add(1);
    env.owner ^ dedup.attempts.wrapping_mul(0x9e37_79b9_7f4a_7c15)
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
pub fn finish(
    (env, dedup, replies): (&Env, &mut Dedup, &mut Replies),
    completion: Completion,
) -> bool {
    let Completion {
        key,
        id,
        attempt,
        result,
    } = completion;
    let released = matches!(result, State::Released);
    if let Some(claim) = dedup.fleet_claims.remove(&attempt) {
        // The fleet-wide record follows (from the root context, owner-checked there).
        let limit =
            usize::try_from(env.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
        if dedup.fleet_results.len() < limit {
            let fleet_result = (!released).then(|| result.clone());
            dedup.fleet_results.push((claim, id.clone(), fleet_result));
        }
    }
    let outcome = update(&HostStore, &key, ATTEMPTS, |current| {
        record::complete(current, &id, attempt, result.clone())
            .map(|write| ((), write))
            .ok_or(())
    });
    let written = outcome.is_ok();
    if written && released {
        env.metrics.inc(Stat::DedupReleased);
    }
    if written && dedup.waiters.iter().any(|w| w.id == id) {
        replies.wake_root();
    }
    if matches!(
        outcome,
        Err(UpdateError::Contended { .. } | UpdateError::Failed)
    ) {
        // Lost every race (or the host refused): the result must not be lost, or a duplicate
        // would reach the origin once the record expires. The tick writes it again.
        let limit =
            usize::try_from(env.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
        if dedup.unfinished.len() < limit {
            dedup.unfinished.push(Completion {
                key,
                id,
                attempt,
                result,
            });
        }
    }
    written
}

/// Writes the results whose first writes lost their races (from the tick).
pub fn finish_unfinished((env, dedup, replies): (&Env, &mut Dedup, &mut Replies)) {
    for completion in std::mem::take(&mut dedup.unfinished) {
        finish((env, dedup, replies), completion);
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

//! Fleet-wide dedup records (Redis): the results of this worker's first attempts are written
//! there by the root context, owner-checked (a record another attempt took over meanwhile is
//! left alone), kept while the tier is down and written when it is back; the claim itself is made by the stream (`stream/fleet_dedup.rs`).

use super::state::Dedup;
use crate::plugin::env::Env;
use crate::plugin::fleet::Fleet;
use crate::policy::dedup::record::Record;
use crate::policy::fleet::dedup::{complete_command, release_command};

/// Queues the completions and releases of fleet claims for the root context to send.
pub fn send_results(env: &Env, dedup: &mut Dedup, fleet: &mut Fleet) {
    for (claim, id, result) in std::mem::take(&mut dedup.fleet_results) {
        let (by_sha, whole) = match result {
            Some(state) => {
                let record = Record {
                    id,
                    body_digest: claim.digest,
                    state,
                };
                let retention = claim.retention_ms;
                let command = |flag| {
                    complete_command(
                        &fleet.complete,
                        &claim.key,
                        &claim.claim,
                        &record,
                        retention,
                        flag,
                    )
                };
                (command(true), command(false))
            }
            None => (
                release_command(&fleet.release, &claim.key, &claim.claim, true),
                release_command(&fleet.release, &claim.key, &claim.claim, false),
            ),
        };
        fleet.post_kept(env, by_sha, Some(whole));
    }
}

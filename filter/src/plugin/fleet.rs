//! The fleet tier's client: Redis commands sent to the bridge cluster (webdis) with the short
//! per-call timeout, their answers classified (and counted), the worker's view of whether the
//! tier is up, and the calls only the root context makes (fire-and-forget completions and
//! releases, probes). A stream waiting for a fleet answer is bounded by the call timeout:
//! Envoy answers every call by then, with no headers when it timed out or failed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use proxy_wasm::types::{BufferType, MapType};

use super::env::Env;
use super::host::{body, call, headers, now_millis, now_secs, status_of};
use super::metrics::Stat;
use super::tiers::Tiers;
use crate::policy::fleet::cache::{store_command, L3_LOOKUP};
use crate::policy::fleet::command::Command;
use crate::policy::fleet::generations::{purge_command, read_command, read_counters};
use crate::policy::fleet::rate::{read_take, take_command, Grant, GrantDecision, RATE_TAKE};
use crate::policy::fleet::reply::Reply;
use crate::policy::fleet::scripts::{Script, DEDUP_COMPLETE, DEDUP_RELEASE};
use crate::policy::fleet::tier::{classify, CallFailure, TierState, TIER_UP_KEY};

/// What a root call was, to act on its answer.
enum RootCall {
    Probe,
    /// A script call by id: on `NOSCRIPT` it is sent again whole.
    Script(Box<Command>, Purpose),
    /// Another command (kept for sending again when it is a [`Purpose::Keep`]).
    Plain(Purpose, Option<Box<Command>>),
}

/// What a queued command is for.
#[derive(Clone)]
enum Purpose {
    /// Its answer matters to nobody, and it may be dropped while the tier is down (L3 stores).
    Fire,
    /// Its answer matters to nobody, but it is kept while the tier is down and sent when it is
    /// back (dedup completions and releases, purges: small, and losing one would let a
    /// duplicate through or a purge stay local).
    Keep,
    /// A batch of tokens for the grant of this bucket.
    Take(String),
    /// The fleet's purge counters.
    Generations,
}

/// A command waiting for the root context.
struct Outgoing {
    command: Command,
    eval: Option<Command>,
    purpose: Purpose,
}

/// Most tenants' grants one worker keeps (the least recently used goes first).
const MAX_GRANTS: usize = 4096;

pub struct Fleet {
    pub tier: TierState,
    pub complete: Script,
    pub release: Script,
    pub take: Script,
    pub lookup: Script,
    /// Commands for the root context to send (bounded by `max_waiting_requests`).
    outbox: VecDeque<Outgoing>,
    /// This worker's tokens of each tenant's fleet bucket, by bucket key.
    grants: HashMap<String, Grant>,
    /// The fleet's purge counters, read and not merged yet (the root context merges them).
    pub counters: Option<Vec<(usize, u32)>>,
    /// A read of the fleet's purge counters is on its way.
    counters_in_flight: bool,
    /// Root calls in flight, by token.
    root_calls: HashMap<u32, RootCall>,
}

impl Fleet {
    pub fn new() -> Self {
        Self {
            tier: TierState::default(),
            complete: Script::new(DEDUP_COMPLETE),
            release: Script::new(DEDUP_RELEASE),
            take: Script::new(RATE_TAKE),
            lookup: Script::new(L3_LOOKUP),
            outbox: VecDeque::new(),
            grants: HashMap::new(),
            counters: None,
            counters_in_flight: false,
            root_calls: HashMap::new(),
        }
    }

    /// Whether requests call the tier now. While this worker has it down, it first reads
    /// whether another worker of this Envoy saw it answer since (one shared-data read).
    pub fn usable(&mut self, now_ms: u64) -> bool {
        if self.tier.down {
            if let Ok((Some(bytes), _)) = proxy_wasm::hostcalls::get_shared_data(TIER_UP_KEY) {
                if let Ok(stamp) = <[u8; 8]>::try_from(bytes.as_slice()) {
                    if self.tier.heard_up(u64::from_le_bytes(stamp)) {
                        self.tier.last_activity_ms = now_ms;
                    }
                }
            }
        }
        self.tier.usable()
    }

    /// Queues a command for the root context (`eval`: what to send on `NOSCRIPT`). Dropped
    /// (and counted as failed) past the bound.
    pub fn post(&mut self, env: &Env, command: Command, eval: Option<Command>) {
        self.enqueue(env, command, eval, Purpose::Fire);
    }

    /// [`Self::post`] for a command kept while the tier is down (see [`Purpose::Keep`]).
    pub fn post_kept(&mut self, env: &Env, command: Command, eval: Option<Command>) {
        self.enqueue(env, command, eval, Purpose::Keep);
    }

    fn enqueue(&mut self, env: &Env, command: Command, eval: Option<Command>, purpose: Purpose) {
        let limit = usize::try_from(env.registry.limits().max_waiting_requests).unwrap_or(0);
        if self.outbox.len() >= limit {
            env.metrics.inc(Stat::FleetFailed);
            self.settle(&purpose, Err(CallFailure::Unreachable), 0);
            return;
        }
        self.outbox.push_back(Outgoing {
            command,
            eval,
            purpose,
        });
    }

    /// Spends `cost` of the tenant's fleet bucket `key` (`limit`: its rate and burst) from this
    /// worker's grant; a batch it asks for is queued for the root context (`true` in the
    /// second place: wake it).
    pub fn spend(
        &mut self,
        env: &Env,
        key: &str,
        limit: (f64, u64),
        (cost, batch): (u64, u64),
        now_ms: u64,
    ) -> (GrantDecision, bool) {
        let admit_locally = (GrantDecision::Admit, false);
        if !self.grants.contains_key(key) && self.grants.len() >= MAX_GRANTS {
            let oldest = self
                .grants
                .iter()
                .filter(|(_, g)| g.fetching.is_none())
                .min_by_key(|(_, g)| g.last_used_ms)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(oldest) => {
                    self.grants.remove(&oldest);
                }
                // Every grant is waiting for a batch: this tenant is limited locally only.
                None => return admit_locally,
            }
        }
        let grant = self.grants.entry(key.to_string()).or_default();
        let (decision, fetch) = grant.spend(cost, batch, now_ms);
        let owed = grant.charging();
        if let Some(want) = fetch {
            env.metrics.inc(Stat::FleetRateBatches);
            let by_sha = take_command(&self.take, key, limit, want, owed, true);
            let whole = take_command(&self.take, key, limit, want, owed, false);
            self.enqueue(env, by_sha, Some(whole), Purpose::Take(key.to_string()));
            return (decision, true);
        }
        (decision, false)
    }

    /// Queues the fleet-wide side of this worker's purges, and a read of the fleet's purge
    /// counters (one at a time; from the tick, every `generation_refresh_ms`).
    pub fn sync_generations(&mut self, env: &Env, tiers: &mut Tiers, read: bool) {
        let prefix = &env.registry.settings().fleet_bridge.key_prefix;
        for slot in std::mem::take(&mut tiers.fleet_purges) {
            self.post_kept(env, purge_command(prefix, slot), None);
        }
        if read && !self.counters_in_flight && self.usable(now_millis()) {
            self.counters_in_flight = true;
            self.enqueue(env, read_command(prefix), None, Purpose::Generations);
        }
    }

    /// A command's outcome reaches whoever waits for it.
    fn settle(&mut self, purpose: &Purpose, outcome: Result<&Reply, CallFailure>, now_ms: u64) {
        if let Purpose::Generations = purpose {
            self.counters_in_flight = false;
            self.counters = outcome.and_then(read_counters).ok();
            return;
        }
        let Purpose::Take(key) = purpose else {
            return;
        };
        let Some(grant) = self.grants.get_mut(key) else {
            return;
        };
        match outcome.and_then(read_take) {
            Ok((taken, wait_ms)) => grant.received(taken, wait_ms, now_ms),
            Err(_) => grant.failed(),
        }
    }

    /// Sends what is queued (from the root context), unless the tier is down: then the
    /// commands are dropped and counted (their keys expire by themselves in Redis).
    pub fn flush(&mut self, env: &Env) {
        let mut kept = VecDeque::new();
        if !self.outbox.is_empty() {
            self.usable(now_millis());
        }
        while let Some(Outgoing {
            command,
            eval,
            purpose,
        }) = self.outbox.pop_front()
        {
            if !self.tier.usable() {
                if matches!(purpose, Purpose::Keep) {
                    kept.push_back(Outgoing {
                        command,
                        eval,
                        purpose,
                    });
                    continue;
                }
                env.metrics.inc(Stat::FleetFailed);
                self.settle(&purpose, Err(CallFailure::Unreachable), now_millis());
                continue;
            }
            match dispatch(env, &command) {
                Some(token) => {
                    let what = match eval {
                        Some(eval) => RootCall::Script(Box::new(eval), purpose),
                        None => {
                            let again = matches!(purpose, Purpose::Keep).then(|| Box::new(command));
                            RootCall::Plain(purpose, again)
                        }
                    };
                    self.root_calls.insert(token, what);
                }
                None => {
                    self.tier.failed(CallFailure::Unreachable, now_millis());
                    self.settle(&purpose, Err(CallFailure::Unreachable), now_millis());
                }
            }
        }
        // Sent once the tier is back (the queue stays bounded: `enqueue` checks its length).
        self.outbox = kept;
    }

    /// Queues the write-behind stores of entries fetched from the origin (the L3 tier).
    pub fn store_entries(&mut self, env: &Env, tiers: &mut Tiers) {
        let prefix = &env.registry.settings().fleet_bridge.key_prefix;
        let now = now_secs();
        for entry in std::mem::take(&mut tiers.l3_stores) {
            if let Some(command) = store_command(prefix, &entry, now) {
                env.metrics.inc(Stat::FleetCacheStore);
                self.post(env, command, None);
            }
        }
    }

    /// Sends a `PING` when one is due (from the root context's tick).
    pub fn probe(&mut self, env: &Env, now_ms: u64) {
        let interval = env.registry.settings().fleet_bridge.probe_interval_ms;
        if !self.tier.probe_due(now_ms, interval) {
            return;
        }
        self.tier.probe_sent(now_ms);
        match dispatch(env, &Command::new("PING")) {
            Some(token) => {
                self.root_calls.insert(token, RootCall::Probe);
            }
            None => self
                .tier
                .probe_answered(Err(CallFailure::Unreachable), now_ms),
        }
    }

    /// The answer to a root call. `false` when `token` is not one.
    pub fn root_answer(&mut self, env: &Env, token: u32, body_size: usize, now_ms: u64) -> bool {
        let Some(what) = self.root_calls.remove(&token) else {
            return false;
        };
        let outcome = match what {
            // Only Redis's own `PONG` says the tier is there (not any reply of a stand-in).
            RootCall::Probe => answer_checked(
                env,
                &mut self.tier,
                (body_size, now_ms),
                |r| matches!(r, Reply::Status(s) if s == "PONG"),
            ),
            _ => answer(env, &mut self.tier, body_size, now_ms),
        };
        match what {
            RootCall::Probe => {
                self.tier.probe_in_flight = false;
            }
            RootCall::Script(eval, purpose) => {
                let lost = outcome.as_ref().is_err_and(|f| f.tier_down());
                if outcome.as_ref().is_ok_and(Reply::is_noscript)
                    || (lost && matches!(purpose, Purpose::Keep))
                {
                    // Sent again whole: Redis did not know the script, or a kept command's
                    // answer was lost (its scripts are owner-checked: sending one twice is
                    // harmless).
                    self.enqueue(env, *eval, None, purpose);
                    self.flush(env);
                } else {
                    self.settle(&purpose, outcome.as_ref().map_err(|f| *f), now_ms);
                }
            }
            RootCall::Plain(purpose, again) => match again {
                // A purge whose answer was lost: bumped again once the tier is back (at worst
                // twice: one more miss, never a stale hit).
                Some(command) if outcome.as_ref().is_err_and(|f| f.tier_down()) => {
                    self.enqueue(env, *command, None, purpose);
                }
                _ => self.settle(&purpose, outcome.as_ref().map_err(|f| *f), now_ms),
            },
        }
        true
    }
}

/// Sends `command` to the bridge as a call of the running context; its token, or `None` when
/// the host refused (counted as a failed call).
pub fn dispatch(env: &Env, command: &Command) -> Option<u32> {
    let bridge = &env.registry.settings().fleet_bridge;
    let timeout = Duration::from_millis(bridge.timeout_ms);
    env.metrics.inc(Stat::FleetCalls);
    let headers = Command::headers(&bridge.cluster);
    match call(
        &bridge.cluster,
        &headers,
        Some(&command.body()),
        &[],
        timeout,
    ) {
        Ok(token) => Some(token),
        Err(_) => {
            env.metrics.inc(Stat::FleetFailed);
            None
        }
    }
}

/// Reads the answer of the call being delivered now (in `on_http_call_response`), updates the
/// worker's view of the tier and counts a failure.
pub fn answer(
    env: &Env,
    tier: &mut TierState,
    body_size: usize,
    now_ms: u64,
) -> Result<Reply, CallFailure> {
    answer_checked(env, tier, (body_size, now_ms), |_| true)
}

/// [`answer`] for a call whose reply must also pass `expected` (a reply of the wrong kind is
/// garbage: the bridge is not Redis, or not the Redis it should be).
pub fn answer_checked(
    env: &Env,
    tier: &mut TierState,
    (body_size, now_ms): (usize, u64),
    expected: impl Fn(&Reply) -> bool,
) -> Result<Reply, CallFailure> {
    let status = status_of(&headers(MapType::HttpCallResponseHeaders));
    let bytes = body(BufferType::HttpCallResponseBody, body_size);
    let outcome = classify(status, &bytes).and_then(|reply| {
        if expected(&reply) {
            Ok(reply)
        } else {
            Err(CallFailure::Garbage)
        }
    });
    match outcome {
        Ok(_) => {
            tier.succeeded(now_ms);
            // The other workers of this Envoy take the tier back from this stamp.
            let interval = env.registry.settings().fleet_bridge.probe_interval_ms;
            if tier.stamp_due(now_ms, interval) {
                let stamp = now_ms.to_le_bytes();
                let _ = proxy_wasm::hostcalls::set_shared_data(TIER_UP_KEY, Some(&stamp), None);
                tier.stamped(now_ms);
            }
        }
        Err(failure) => {
            env.metrics.inc(Stat::FleetFailed);
            tier.failed(failure, now_ms);
        }
    }
    outcome
}

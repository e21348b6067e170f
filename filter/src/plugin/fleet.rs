//! The fleet tier's client: Redis commands sent to the bridge cluster (webdis) with the short
//! per-call timeout, their answers classified (and counted), the worker's view of whether the
//! tier is up, and the calls only the root context makes (fire-and-forget completions and
//! releases, probes). A stream waiting for a fleet answer is bounded by the call timeout:
//! Envoy answers every call by then, with no headers when it timed out or failed.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use proxy_wasm::types::{BufferType, MapType};

use super::env::Env;
use super::host::{body, call, headers, now_millis, status_of};
use super::metrics::Stat;
use crate::policy::fleet::command::Command;
use crate::policy::fleet::reply::Reply;
use crate::policy::fleet::scripts::{Script, DEDUP_COMPLETE, DEDUP_RELEASE};
use crate::policy::fleet::tier::{classify, CallFailure, TierState};

/// What a root call was, to act on its answer.
enum RootCall {
    Probe,
    /// A script call by id: on `NOSCRIPT` it is sent again whole.
    Script(Box<Command>),
    Plain,
}

pub struct Fleet {
    pub tier: TierState,
    pub complete: Script,
    pub release: Script,
    /// Commands for the root context to send (bounded by `max_waiting_requests`).
    outbox: VecDeque<(Command, Option<Command>)>,
    /// Root calls in flight, by token.
    root_calls: HashMap<u32, RootCall>,
}

impl Fleet {
    pub fn new() -> Self {
        Self {
            tier: TierState::default(),
            complete: Script::new(DEDUP_COMPLETE),
            release: Script::new(DEDUP_RELEASE),
            outbox: VecDeque::new(),
            root_calls: HashMap::new(),
        }
    }

    /// Queues a command for the root context (`eval`: what to send on `NOSCRIPT`). Dropped
    /// (and counted as failed) past the bound.
    pub fn post(&mut self, env: &Env, command: Command, eval: Option<Command>) {
        let limit = usize::try_from(env.registry.limits().max_waiting_requests).unwrap_or(0);
        if self.outbox.len() >= limit {
            env.metrics.inc(Stat::FleetFailed);
            return;
        }
        self.outbox.push_back((command, eval));
    }

    /// Sends what is queued (from the root context), unless the tier is down: then the
    /// commands are dropped and counted (their keys expire by themselves in Redis).
    pub fn flush(&mut self, env: &Env) {
        while let Some((command, eval)) = self.outbox.pop_front() {
            if !self.tier.usable() {
                env.metrics.inc(Stat::FleetFailed);
                continue;
            }
            match dispatch(env, &command) {
                Some(token) => {
                    let what = eval.map_or(RootCall::Plain, |e| RootCall::Script(Box::new(e)));
                    self.root_calls.insert(token, what);
                }
                None => self.tier.failed(CallFailure::Unreachable, now_millis()),
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
        let outcome = answer(env, &mut self.tier, body_size, now_ms);
        match what {
            RootCall::Probe => {
                self.tier.probe_in_flight = false;
            }
            RootCall::Script(eval) => {
                if outcome.as_ref().is_ok_and(Reply::is_noscript) {
                    self.outbox.push_back((*eval, None));
                    self.flush(env);
                }
            }
            RootCall::Plain => {}
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
    let status = status_of(&headers(MapType::HttpCallResponseHeaders));
    let bytes = body(BufferType::HttpCallResponseBody, body_size);
    let outcome = classify(status, &bytes);
    match outcome {
        Ok(_) => tier.succeeded(now_ms),
        Err(failure) => {
            env.metrics.inc(Stat::FleetFailed);
            tier.failed(failure, now_ms);
        }
    }
    outcome
}

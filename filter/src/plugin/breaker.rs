//! The circuit breaker in the glue. Each worker keeps a copy of every breaker it uses, re-read
//! from shared data at most every [`READ_CACHE_MS`]: the closed fast path touches no shared
//! data, and a worker sees another worker's trip within that time. Outcomes are counted
//! locally and added to the shared window on the next tick (every 20 ms); probe outcomes are
//! written at once.

use std::collections::HashMap;

use super::env::Env;
use super::host::shared_update as update;
use super::host::HostStore;
use super::metrics::Stat;
use crate::policy::breaker::machine::{
    admit, breaker_key, probe_abandoned, probe_done, record, Admission, Breaker, Outcomes, Phase,
};
use crate::policy::shared_store::SharedStore;
use crate::policy::BreakerSection;

/// How stale a worker's copy of a breaker may get.
pub const READ_CACHE_MS: u64 = 100;
const ATTEMPTS: u32 = 8;

/// A worker's view of one service's breaker.
#[derive(Debug, Default)]
pub struct BreakerView {
    pub state: Breaker,
    pub read_at_ms: Option<u64>,
    pub pending: Outcomes,
}

pub type Breakers = HashMap<usize, BreakerView>;

/// A request that passed a breaker: its outcome (or its abandoned probe) is still owed.
#[derive(Debug, Clone, Copy)]
pub struct BreakerPass {
    pub service_index: usize,
    /// It holds one of the half-open breaker's probe permits.
    pub probe: bool,
    pub started_ms: u64,
}

fn seed(env: &Env, now_ms: u64) -> u64 {
    now_ms.rotate_left(17) ^ env.owner
}

/// The service's breaker key in shared data (by name).
fn key(env: &Env, service_index: usize) -> String {
    let name = env
        .registry
        .service_at(service_index)
        .map_or("", |s| s.name.as_str());
    breaker_key(name)
}

fn section(env: &Env, service_index: usize) -> Option<BreakerSection> {
    env.registry
        .service_at(service_index)
        .and_then(|s| s.breaker.clone())
}

/// What `check` would say from the worker's copy alone (refreshed if older than the read-cache
/// time), without taking a probe permit.
pub fn peek(env: &Env, breakers: &mut Breakers, service_index: usize, now_ms: u64) -> Admission {
    let view = breakers.entry(service_index).or_default();
    if view
        .read_at_ms
        .is_none_or(|at| now_ms.saturating_sub(at) >= READ_CACHE_MS)
    {
        view.state = Breaker::decode(
            HostStore
                .get(&key(env, service_index))
                .as_ref()
                .map(|(b, _)| b.as_slice()),
        );
        view.read_at_ms = Some(now_ms);
    }
    match view.state.phase {
        Phase::Closed => Admission::Pass,
        Phase::Open { until_ms } if now_ms < until_ms => Admission::Reject {
            retry_after_ms: until_ms - now_ms,
        },
        _ => Admission::Probe,
    }
}

/// Whether a request to the service may go to the origin.
pub fn check(env: &Env, breakers: &mut Breakers, service_index: usize, now_ms: u64) -> Admission {
    let Some(config) = section(env, service_index) else {
        return Admission::Pass;
    };
    if let decided @ (Admission::Pass | Admission::Reject { .. }) =
        peek(env, breakers, service_index, now_ms)
    {
        return decided;
    }
    // Open past its period, or half-open: probe permits are shared, so this takes one with CAS.
    let taken = update(&HostStore, &key(env, service_index), ATTEMPTS, |current| {
        let state = Breaker::decode(current);
        match admit(&state, &config, now_ms) {
            (admission, Some(next)) => Ok(((admission, next.clone()), next.encode())),
            (admission, None) => Err((admission, Box::new(state))),
        }
    });
    let (admission, state) = match taken {
        Ok(pair) => pair,
        Err(crate::policy::shared_store::UpdateError::Refused((admission, state))) => {
            (admission, *state)
        }
        Err(_) => (
            Admission::Reject {
                retry_after_ms: config.open_base_ms,
            },
            breakers
                .get(&service_index)
                .map(|v| v.state.clone())
                .unwrap_or_default(),
        ),
    };
    if let Some(view) = breakers.get_mut(&service_index) {
        view.state = state;
        view.read_at_ms = Some(now_ms);
    }
    admission
}

/// Counts the origin's response (`status`) to a request that passed; a probe's outcome is
/// written at once.
pub fn outcome(env: &Env, breakers: &mut Breakers, pass: BreakerPass, status: u16, now_ms: u64) {
    let BreakerPass {
        service_index,
        probe,
        started_ms,
    } = pass;
    let Some(config) = section(env, service_index) else {
        return;
    };
    let failed = config.failed(status, now_ms.saturating_sub(started_ms));
    if probe {
        let seed = seed(env, now_ms);
        let written = update(&HostStore, &key(env, service_index), ATTEMPTS, |current| {
            let next = probe_done(&Breaker::decode(current), &config, !failed, now_ms, seed);
            Ok::<_, ()>((next.clone(), next.encode()))
        });
        if let (Ok(state), Some(view)) = (written, breakers.get_mut(&service_index)) {
            view.state = state;
            view.read_at_ms = Some(now_ms);
        }
        return;
    }
    let view = breakers.entry(service_index).or_default();
    if failed {
        view.pending.failures = view.pending.failures.saturating_add(1);
    } else {
        view.pending.successes = view.pending.successes.saturating_add(1);
    }
}

/// Gives back a probe permit that produced no outcome.
pub fn abandon_probe(env: &Env, breakers: &mut Breakers, service_index: usize) {
    let _ = update(&HostStore, &key(env, service_index), ATTEMPTS, |current| {
        let next = probe_abandoned(&Breaker::decode(current));
        Ok::<_, ()>(((), next.encode()))
    });
    if let Some(view) = breakers.get_mut(&service_index) {
        view.read_at_ms = None;
    }
}

/// Adds every breaker's counted outcomes to the shared window (from the tick).
pub fn flush(env: &Env, breakers: &mut Breakers, now_ms: u64) {
    let pending: Vec<(usize, Outcomes)> = breakers
        .iter_mut()
        .filter(|(_, v)| v.pending != Outcomes::default())
        .map(|(index, v)| (*index, std::mem::take(&mut v.pending)))
        .collect();
    for (service_index, outcomes) in pending {
        let Some(config) = section(env, service_index) else {
            continue;
        };
        let seed = seed(env, now_ms);
        let written = update(&HostStore, &key(env, service_index), ATTEMPTS, |current| {
            let before = Breaker::decode(current);
            let next = record(&before, &config, outcomes, now_ms, seed);
            let tripped = before.phase == Phase::Closed && next.phase != Phase::Closed;
            Ok::<_, ()>(((next.clone(), tripped), next.encode()))
        });
        if let Ok((state, tripped)) = written {
            if tripped {
                env.metrics.inc(Stat::BreakerTrip);
            }
            if let Some(view) = breakers.get_mut(&service_index) {
                view.state = state;
                view.read_at_ms = Some(now_ms);
            }
        }
    }
}

/// `closed`, `half-open` or `open` as the worker's copy (at most [`READ_CACHE_MS`] old) says;
/// never takes a probe permit: an open breaker past its period reads as half-open.
pub fn phase_name(
    env: &Env,
    breakers: &mut Breakers,
    service_index: usize,
    now_ms: u64,
) -> &'static str {
    if matches!(
        peek(env, breakers, service_index, now_ms),
        Admission::Reject { .. }
    ) {
        return "open";
    }
    match breakers.get(&service_index).map(|v| v.state.phase) {
        Some(Phase::HalfOpen { .. }) | Some(Phase::Open { .. }) => "half-open",
        _ => "closed",
    }
}

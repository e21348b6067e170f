//! Deterministic fault decisions per endpoint.
//!
//! No randomness: each endpoint keeps a request counter `n` (1, 2, 3, ...) that restarts
//! whenever its fault is set or cleared. With a rate `r` (kept as parts per million `p`),
//! request `n` is hit when `floor(n·p / 1e6) > floor((n−1)·p / 1e6)`, i.e. when the running
//! count of expected hits ticks over. So rate 1 hits every request, 0.5 every 2nd, 0.1 every
//! 10th, 0.25 every 4th, 0.3 the 4th, 7th, 10th, ..., and after `n` requests exactly
//! `floor(n·r)` were hit.
//!
//! The reset decision is made first on the endpoint's request counter; the error decision
//! is made on a second counter that only counts requests that were not reset, so
//! `error_rate` is the share of the surviving requests answered 503.

use std::sync::Mutex;
use std::time::Duration;

use super::endpoint::Endpoint;
use super::fault::Fault;

/// What to do with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Answer normally.
    Serve,
    /// Answer `503` with a JSON error.
    Error,
    /// Close the connection without answering.
    Reset,
}

/// The decision for one request: extra delay and what to do after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub extra_latency: Duration,
    pub action: Action,
}

#[derive(Debug, Default, Clone, Copy)]
struct Slot {
    fault: Fault,
    requests: u64,
    survivors: u64,
}

/// The fault table of all endpoints, with their decision counters.
#[derive(Debug, Default)]
pub struct FaultInjector {
    slots: Mutex<[Slot; Endpoint::ALL.len()]>,
}

fn parts_per_million(rate: f64) -> u128 {
    (rate.clamp(0.0, 1.0) * 1_000_000.0).round() as u128
}

/// Whether the `n`-th request (n ≥ 1) is hit at `rate`.
fn hit(n: u64, rate: f64) -> bool {
    let p = parts_per_million(rate);
    let n = u128::from(n);
    n >= 1 && (n * p) / 1_000_000 > ((n - 1) * p) / 1_000_000
}

impl FaultInjector {
    /// Sets `endpoint`'s fault and restarts its counters.
    pub fn set(&self, endpoint: Endpoint, fault: Fault) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots[endpoint.index()] = Slot {
            fault,
            ..Slot::default()
        };
    }

    /// Clears every fault and counter.
    pub fn clear(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        *slots = Default::default();
    }

    /// The fault currently set for `endpoint`.
    pub fn get(&self, endpoint: Endpoint) -> Fault {
        let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots[endpoint.index()].fault
    }

    /// Decides the fate of the next request to `endpoint`.
    pub fn decide(&self, endpoint: Endpoint) -> Decision {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let slot = &mut slots[endpoint.index()];
        slot.requests = slot.requests.saturating_add(1);
        let action = if hit(slot.requests, slot.fault.reset_rate) {
            Action::Reset
        } else {
            slot.survivors = slot.survivors.saturating_add(1);
            if hit(slot.survivors, slot.fault.error_rate) {
                Action::Error
            } else {
                Action::Serve
            }
        };
        Decision {
            extra_latency: Duration::from_millis(slot.fault.extra_latency_ms),
            action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(inj: &FaultInjector, e: Endpoint, n: usize) -> Vec<Action> {
        (0..n).map(|_| inj.decide(e).action).collect()
    }

    #[test]
    fn hit_spreads_evenly() {
        let hits = |r: f64| -> Vec<u64> { (1..=10).filter(|&n| hit(n, r)).collect() };
        assert_eq!(hits(0.0), Vec::<u64>::new());
        assert_eq!(hits(1.0), (1..=10).collect::<Vec<_>>());
        assert_eq!(hits(0.5), vec![2, 4, 6, 8, 10]);
        assert_eq!(hits(0.1), vec![10]);
        assert_eq!(hits(0.3), vec![4, 7, 10]);
        let total = (1..=1000).filter(|&n| hit(n, 0.37)).count();
        assert_eq!(total, 370);
    }

    #[test]
    fn no_fault_serves_everything() {
        let inj = FaultInjector::default();
        assert!(actions(&inj, Endpoint::Leads, 50)
            .iter()
            .all(|a| *a == Action::Serve));
        assert_eq!(inj.decide(Endpoint::Leads).extra_latency, Duration::ZERO);
    }

    #[test]
    fn rates_and_latency_apply_per_endpoint() {
        let inj = FaultInjector::default();
        inj.set(
            Endpoint::Leads,
            Fault {
                error_rate: 0.5,
                extra_latency_ms: 100,
                reset_rate: 0.0,
            },
        );
        let a = actions(&inj, Endpoint::Leads, 4);
        assert_eq!(
            a,
            vec![Action::Serve, Action::Error, Action::Serve, Action::Error]
        );
        assert_eq!(
            inj.decide(Endpoint::Leads).extra_latency,
            Duration::from_millis(100)
        );
        assert_eq!(actions(&inj, Endpoint::Coaching, 3), vec![Action::Serve; 3]);

        inj.set(
            Endpoint::Webhooks,
            Fault {
                error_rate: 1.0,
                extra_latency_ms: 0,
                reset_rate: 0.5,
            },
        );
        assert_eq!(
            actions(&inj, Endpoint::Webhooks, 4),
            vec![Action::Error, Action::Reset, Action::Error, Action::Reset]
        );

        inj.clear();
        assert_eq!(inj.get(Endpoint::Webhooks), Fault::default());
        assert_eq!(actions(&inj, Endpoint::Webhooks, 3), vec![Action::Serve; 3]);
    }

    #[test]
    fn setting_restarts_the_sequence() {
        let inj = FaultInjector::default();
        let f = Fault {
            reset_rate: 0.5,
            ..Fault::default()
        };
        inj.set(Endpoint::Health, f);
        assert_eq!(inj.decide(Endpoint::Health).action, Action::Serve);
        inj.set(Endpoint::Health, f);
        assert_eq!(inj.decide(Endpoint::Health).action, Action::Serve);
        assert_eq!(inj.decide(Endpoint::Health).action, Action::Reset);
    }
}

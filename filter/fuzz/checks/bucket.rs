//! Token-bucket slots (`edge:rl:<slot>` in shared data, several tenants per slot): taking from
//! any slot value with any configured limit, for tenants that share the slot, at clock readings
//! that may go backwards, never panics, and from a fresh slot never admits a tenant more than
//! `burst + rate × elapsed` — whatever the other tenants in its slot do.

use edge_filter::policy::rate_limit::bucket::{Limit, MICRO};
use edge_filter::policy::rate_limit::slot::take;

use super::input::Input;

const TENANTS: [&str; 5] = ["svc\na", "svc\nb", "svc\nc", "svc\nd", "svc\ne"];

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let stored = input.bytes(256).to_vec();
    // The ranges configuration validation allows.
    let limit = Limit {
        requests_per_second: input.range(1, 1_000_000_000) as f64 / 1000.0,
        burst: input.range(1, 10_000_000),
    };
    let cost = input.range(1, 1000);
    let per_slot = input.range(1, 16) as usize;
    let fresh = input.bool();
    let mut state = (!fresh).then_some(stored);
    let capacity = u128::from(limit.burst) * u128::from(MICRO);
    let rate = (limit.requests_per_second * 1000.0).round() as u128;
    let start = input.u64();
    let (mut now, mut latest) = (start, start);
    let mut spent = [0u128; TENANTS.len()];
    for _ in 0..input.range(1, 60) {
        let who = input.below(TENANTS.len());
        let tenant = TENANTS.get(who).copied().unwrap_or("svc\na");
        let (taken, next) = take(state.as_deref(), tenant, limit, cost, now, per_slot);
        latest = latest.max(now);
        let decision = taken.decision();
        assert!(decision.remaining <= limit.burst);
        if decision.admitted {
            assert_eq!(decision.retry_after_ms, 0);
            if let Some(total) = spent.get_mut(who) {
                *total += u128::from(cost) * u128::from(MICRO);
            }
        } else {
            assert!(
                decision.retry_after_ms > 0,
                "a rejection says when to retry"
            );
        }
        state = Some(next);
        let step = u64::from(input.u16());
        now = if input.range(0, 3) == 0 {
            now.saturating_sub(step)
        } else {
            now.saturating_add(step)
        };
    }
    if fresh {
        let earned = rate * u128::from(latest.saturating_sub(start));
        for total in spent {
            assert!(
                total <= capacity + earned,
                "admitted {total} micro-tokens, at most {capacity} + {earned}"
            );
        }
    }
}

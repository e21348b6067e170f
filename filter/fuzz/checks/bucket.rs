//! Token buckets (`edge:rl:<slot>` in shared data): the codec accepts exactly one encoding per
//! value, and spending from any slot value with any configured limit, at clock readings that may
//! go backwards, never panics and never admits more than `burst + rate × elapsed`.

use edge_filter::policy::rate_limit::bucket::{take, Bucket, Limit, MICRO};

use super::input::Input;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let stored = input.bytes(64);
    if let Some(bucket) = Bucket::decode(Some(stored)) {
        assert_eq!(bucket.encode(), stored, "one encoding per bucket");
    }
    let made = Bucket {
        tenant_hash: input.u64(),
        micro_tokens: input.u64(),
        last_ms: input.u64(),
    };
    let bytes = made.encode();
    assert_eq!(Bucket::decode(Some(&bytes)), Some(made), "round trip");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        Bucket::decode(Some(&longer)),
        None,
        "trailing byte accepted"
    );

    // The ranges configuration validation allows.
    let limit = Limit {
        requests_per_second: input.range(1, 1_000_000_000) as f64 / 1000.0,
        burst: input.range(1, 10_000_000),
    };
    let cost = input.range(1, 1000);
    let initial = match input.range(0, 2) {
        0 => None,
        1 => Some(stored.to_vec()),
        _ => Some(bytes),
    };
    let decoded = initial.as_deref().and_then(|b| Bucket::decode(Some(b)));
    let tenant = match decoded {
        Some(bucket) if input.bool() => bucket.tenant_hash,
        _ => input.u64(),
    };
    let own = decoded.filter(|b| b.tenant_hash == tenant);

    let capacity = u128::from(limit.burst) * u128::from(MICRO);
    let rate = (limit.requests_per_second * 1000.0).round() as u128;
    let mut now = input.u64();
    let start = own.map_or(now, |b| b.last_ms);
    let mut latest = now;
    let mut spent: u128 = 0;
    let mut state = initial;
    for _ in 0..input.range(1, 40) {
        let (decision, next) = take(state.as_deref(), tenant, limit, cost, now);
        latest = latest.max(now);
        let bucket = Bucket::decode(Some(&next));
        assert!(
            bucket.is_some_and(|b| b.tenant_hash == tenant
                && u128::from(b.micro_tokens) <= capacity
                && b.last_ms >= now),
            "the written bucket is the tenant's, within capacity, not behind the clock"
        );
        assert!(decision.remaining <= limit.burst);
        if decision.admitted {
            assert_eq!(decision.retry_after_ms, 0);
            spent += u128::from(cost) * u128::from(MICRO);
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
    let earned = rate * u128::from(latest.saturating_sub(start));
    assert!(
        spent <= capacity + earned,
        "admitted {spent} micro-tokens, at most {capacity} + {earned}"
    );
}

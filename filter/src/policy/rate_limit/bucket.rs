//! A token bucket as one small versioned value, and the pure function that spends from it
//! (applied with the CAS helper). Fixed-point micro-tokens; time in milliseconds. A clock that
//! goes backwards (or differs between workers) never creates tokens.

use crate::policy::cache::generations::fnv1a;

pub const BUCKET_KEY_PREFIX: &str = "edge:rl:";
const FORMAT_VERSION: u8 = 1;
/// Micro-tokens per token.
pub const MICRO: u64 = 1_000_000;

/// The shared-data key of a tenant's bucket slot.
pub fn bucket_key(tenant_key: &str, slots: u64) -> String {
    format!("{BUCKET_KEY_PREFIX}{}", fnv1a(tenant_key) % slots.max(1))
}

/// A limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub requests_per_second: f64,
    pub burst: u64,
}

impl Limit {
    /// Micro-tokens gained per millisecond.
    fn rate(&self) -> u64 {
        (self.requests_per_second * 1000.0).round().max(0.0) as u64
    }

    fn capacity(&self) -> u64 {
        self.burst.max(1).saturating_mul(MICRO)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub tenant_hash: u64,
    pub micro_tokens: u64,
    pub last_ms: u64,
}

impl Bucket {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25);
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&self.tenant_hash.to_le_bytes());
        out.extend_from_slice(&self.micro_tokens.to_le_bytes());
        out.extend_from_slice(&self.last_ms.to_le_bytes());
        out
    }

    /// Missing, corrupt or unknown-version values read as no bucket.
    pub fn decode(bytes: Option<&[u8]>) -> Option<Self> {
        let (&FORMAT_VERSION, rest) = bytes?.split_first()? else {
            return None;
        };
        if rest.len() != 24 {
            return None;
        }
        let word = |i: usize| -> Option<u64> {
            Some(u64::from_le_bytes(
                rest.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        Some(Self {
            tenant_hash: word(0)?,
            micro_tokens: word(1)?,
            last_ms: word(2)?,
        })
    }
}

/// What spending from a bucket decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub admitted: bool,
    /// Whole tokens left after this request.
    pub remaining: u64,
    /// When a rejected request may succeed.
    pub retry_after_ms: u64,
    /// When the bucket is full again.
    pub reset_ms: u64,
}

/// Spends `cost` tokens from the tenant's bucket at `now_ms`. A slot holding another tenant's
/// bucket (slots are shared by hash) starts this tenant with a full bucket.
pub fn take(
    current: Option<&[u8]>,
    tenant_hash: u64,
    limit: Limit,
    cost: u64,
    now_ms: u64,
) -> (Decision, Vec<u8>) {
    let capacity = limit.capacity();
    let rate = limit.rate();
    let bucket = Bucket::decode(current)
        .filter(|b| b.tenant_hash == tenant_hash)
        .unwrap_or(Bucket {
            tenant_hash,
            micro_tokens: capacity,
            last_ms: now_ms,
        });
    let elapsed = now_ms.saturating_sub(bucket.last_ms);
    let refilled = bucket
        .micro_tokens
        .saturating_add(elapsed.saturating_mul(rate))
        .min(capacity);
    let cost = cost.saturating_mul(MICRO);
    let admitted = refilled >= cost;
    let left = if admitted { refilled - cost } else { refilled };
    let per_ms = |micro: u64| {
        if rate == 0 {
            u64::MAX
        } else {
            micro.div_ceil(rate)
        }
    };
    let decision = Decision {
        admitted,
        remaining: left / MICRO,
        retry_after_ms: if admitted { 0 } else { per_ms(cost - refilled) },
        reset_ms: per_ms(capacity - left),
    };
    let next = Bucket {
        tenant_hash,
        micro_tokens: left,
        last_ms: bucket.last_ms.max(now_ms),
    };
    (decision, next.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(not(target_arch = "wasm32"))]
    use proptest::prelude::*;

    const LIMIT: Limit = Limit {
        requests_per_second: 10.0,
        burst: 5,
    };

    fn run(times: &[u64], limit: Limit, cost: u64) -> Vec<bool> {
        let mut state: Option<Vec<u8>> = None;
        times
            .iter()
            .map(|now| {
                let (decision, next) = take(state.as_deref(), 7, limit, cost, *now);
                state = Some(next);
                decision.admitted
            })
            .collect()
    }

    #[test]
    fn burst_then_rate() {
        let admitted = run(&[0; 8], LIMIT, 1);
        assert_eq!(
            admitted,
            [true, true, true, true, true, false, false, false]
        );
        assert_eq!(
            run(&[0, 0, 0, 0, 0, 0, 100, 100], LIMIT, 1)
                .iter()
                .filter(|a| **a)
                .count(),
            6
        );
    }

    #[test]
    fn retry_after_and_reset() {
        let mut state = None;
        for _ in 0..5 {
            state = Some(take(state.as_deref(), 7, LIMIT, 1, 0).1);
        }
        let (decision, _) = take(state.as_deref(), 7, LIMIT, 1, 0);
        assert_eq!(
            decision,
            Decision {
                admitted: false,
                remaining: 0,
                retry_after_ms: 100,
                reset_ms: 500
            }
        );
    }

    #[test]
    fn cost_and_fractional_rates() {
        assert_eq!(run(&[0, 0, 0], LIMIT, 2), [true, true, false]);
        let slow = Limit {
            requests_per_second: 0.5,
            burst: 1,
        };
        assert_eq!(
            run(&[0, 1000, 1999, 2000], slow, 1),
            [true, false, false, true]
        );
    }

    #[test]
    fn clock_going_back_creates_nothing() {
        assert_eq!(
            run(
                &[10_000, 10_000, 10_000, 10_000, 10_000, 5_000, 0, 9_999],
                LIMIT,
                1
            ),
            [true, true, true, true, true, false, false, false]
        );
    }

    #[test]
    fn another_tenant_in_the_slot_starts_full() {
        let (_, state) = take(None, 1, LIMIT, 5, 0);
        assert!(!take(Some(&state), 1, LIMIT, 1, 0).0.admitted);
        assert!(take(Some(&state), 2, LIMIT, 1, 0).0.admitted);
        assert!(
            take(Some(&[9, 9]), 1, LIMIT, 1, 0).0.admitted,
            "corrupt reads as absent"
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Over any window T, admitted ≤ rate × T + burst, whatever the request times (also a
        /// clock that is sometimes behind) — tokens are unsigned, so never negative.
        #[test]
        fn admitted_never_exceeds_rate_times_window_plus_burst(
            gaps in proptest::collection::vec(0u64..400, 1..150),
            rps in 1u32..50,
            burst in 1u64..30,
            skews in proptest::collection::vec(0u64..50, 1..20),
        ) {
            let limit = Limit { requests_per_second: f64::from(rps), burst };
            let mut now = 0u64;
            let mut times = Vec::new();
            for (i, gap) in gaps.iter().enumerate() {
                now += gap;
                times.push(now.saturating_sub(skews[i % skews.len()]));
            }
            let admitted = run(&times, limit, 1);
            for start in 0..times.len() {
                let (mut count, mut t0, mut t1) = (0u64, u64::MAX, 0u64);
                for end in start..times.len() {
                    count += u64::from(admitted[end]);
                    t0 = t0.min(times[end]);
                    t1 = t1.max(times[end]);
                    // Time the bucket can have earned from: up to the latest clock seen so far.
                    let latest = times[..=end].iter().copied().max().unwrap_or(0);
                    let window_ms = latest.saturating_sub(t0).max(t1.saturating_sub(t0));
                    let bound = (f64::from(rps) * window_ms as f64 / 1000.0).ceil() as u64 + burst;
                    prop_assert!(count <= bound, "{count} admitted in {window_ms} ms, bound {bound}");
                }
            }
        }
    }
}

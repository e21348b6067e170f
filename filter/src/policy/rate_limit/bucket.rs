//! A token bucket and the pure function that spends from it. Fixed-point micro-tokens; time in
//! milliseconds. A clock that goes backwards (or differs between workers) never creates tokens.
//! Buckets live in shared-data slots, several to a slot: see [`super::slot`].

/// Micro-tokens per token.
pub const MICRO: u64 = 1_000_000;

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

    /// Milliseconds to earn `micro` micro-tokens (rounded up; never, at rate 0).
    fn time_to_earn(&self, micro: u64) -> u64 {
        match self.rate() {
            0 => u64::MAX,
            rate => micro.div_ceil(rate),
        }
    }
}

/// One tenant's bucket: its tokens at `last_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub micro_tokens: u64,
    pub last_ms: u64,
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

impl Bucket {
    /// A bucket nobody has spent from.
    pub fn full(limit: Limit, now_ms: u64) -> Self {
        Self {
            micro_tokens: limit.capacity(),
            last_ms: now_ms,
        }
    }

    /// Tokens at `now_ms` (never more than the capacity; a clock behind `last_ms` adds none).
    fn refilled(&self, limit: Limit, now_ms: u64) -> u64 {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.micro_tokens
            .saturating_add(elapsed.saturating_mul(limit.rate()))
            .min(limit.capacity())
    }

    /// When the bucket holds its whole capacity again: from then on it says nothing a new
    /// full bucket would not (rounded up, so never early).
    pub fn full_at_ms(&self, limit: Limit) -> u64 {
        let missing = limit.capacity().saturating_sub(self.micro_tokens);
        self.last_ms.saturating_add(limit.time_to_earn(missing))
    }

    /// Spends `cost` tokens at `now_ms`: the decision and the bucket after it.
    pub fn spend(&self, limit: Limit, cost: u64, now_ms: u64) -> (Decision, Bucket) {
        let capacity = limit.capacity();
        let refilled = self.refilled(limit, now_ms);
        let cost = cost.saturating_mul(MICRO);
        let admitted = refilled >= cost;
        let left = if admitted { refilled - cost } else { refilled };
        let decision = Decision {
            admitted,
            remaining: left / MICRO,
            retry_after_ms: if admitted {
                0
            } else {
                limit.time_to_earn(cost - refilled)
            },
            reset_ms: limit.time_to_earn(capacity - left),
        };
        let next = Bucket {
            micro_tokens: left,
            last_ms: self.last_ms.max(now_ms),
        };
        (decision, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Limit = Limit {
        requests_per_second: 10.0,
        burst: 5,
    };

    fn run(times: &[u64], limit: Limit, cost: u64) -> Vec<bool> {
        let mut bucket: Option<Bucket> = None;
        times
            .iter()
            .map(|now| {
                let current = bucket.unwrap_or_else(|| Bucket::full(limit, *now));
                let (decision, next) = current.spend(limit, cost, *now);
                bucket = Some(next);
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
        let mut bucket = Bucket::full(LIMIT, 0);
        for _ in 0..5 {
            bucket = bucket.spend(LIMIT, 1, 0).1;
        }
        let (decision, _) = bucket.spend(LIMIT, 1, 0);
        assert_eq!(
            decision,
            Decision {
                admitted: false,
                remaining: 0,
                retry_after_ms: 100,
                reset_ms: 500
            }
        );
        assert_eq!(bucket.full_at_ms(LIMIT), 500);
        assert_eq!(Bucket::full(LIMIT, 7).full_at_ms(LIMIT), 7);
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
}

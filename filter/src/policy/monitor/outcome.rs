//! How a request ended, as counted in stats (`outcome` label) and in the JSON endpoints.

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    HitL1,
    HitL2,
    Miss,
    /// Served stale (stale-while-revalidate or stale-if-error).
    Stale,
    /// Answered from another request's origin response (coalescing).
    Collapsed,
    /// Forwarded to the origin without caching (not cacheable, no cache configured).
    Pass,
    DedupReplay,
    RateLimited,
    BreakerOpen,
    /// Refused by the filter without the origin (no tenant id, bad webhook signature, a
    /// duplicate delivery in conflict or with another body).
    Refused,
}

impl Outcome {
    pub const COUNT: usize = 10;
    pub const ALL: [Outcome; Self::COUNT] = [
        Outcome::HitL1,
        Outcome::HitL2,
        Outcome::Miss,
        Outcome::Stale,
        Outcome::Collapsed,
        Outcome::Pass,
        Outcome::DedupReplay,
        Outcome::RateLimited,
        Outcome::BreakerOpen,
        Outcome::Refused,
    ];

    /// The stat label and JSON field name.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::HitL1 => "hit_l1",
            Outcome::HitL2 => "hit_l2",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Collapsed => "collapsed",
            Outcome::Pass => "pass",
            Outcome::DedupReplay => "dedup_replay",
            Outcome::RateLimited => "rate_limited",
            Outcome::BreakerOpen => "breaker_open",
            Outcome::Refused => "refused",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Answered from the cache (any tier, stale or collapsed included).
    pub fn is_cache_hit(self) -> bool {
        matches!(
            self,
            Outcome::HitL1 | Outcome::HitL2 | Outcome::Stale | Outcome::Collapsed
        )
    }

    /// Took part in a cache lookup: the denominator of the hit rate.
    pub fn is_cache_lookup(self) -> bool {
        self.is_cache_hit() || self == Outcome::Miss
    }

    /// Reached the origin.
    pub fn reached_origin(self) -> bool {
        matches!(self, Outcome::Miss | Outcome::Pass)
    }
}

/// What a request's outcome turns out to be once its response starts: `noted` is what the
/// filter noted while handling the request, `answered_here` whether the filter (or another
/// stream for it) answered, `status` the response status (read only when it matters).
pub fn settle(
    noted: Outcome,
    answered_here: bool,
    status: impl FnOnce() -> Option<u16>,
) -> Outcome {
    match (answered_here, noted) {
        // Released waiters went to the origin themselves.
        (false, Outcome::Collapsed) => Outcome::Miss,
        (false, Outcome::DedupReplay) => Outcome::Pass,
        // A waiting duplicate that was answered with a conflict, not a replay.
        (true, Outcome::DedupReplay) if matches!(status(), Some(409 | 422)) => Outcome::Refused,
        (_, other) => other,
    }
}

/// Outcome counts, indexed by [`Outcome::index`].
pub type OutcomeCounts = [u64; Outcome::COUNT];

/// Requests that took part in a cache lookup.
pub fn lookups(counts: &OutcomeCounts) -> u64 {
    Outcome::ALL
        .iter()
        .zip(counts.iter())
        .filter(|(outcome, _)| outcome.is_cache_lookup())
        .fold(0u64, |total, (_, count)| total.saturating_add(*count))
}

/// Cache hits / cache lookups, or `None` without lookups.
pub fn hit_rate(counts: &OutcomeCounts) -> Option<f64> {
    let (mut hits, mut lookups) = (0u64, 0u64);
    for (outcome, count) in Outcome::ALL.iter().zip(counts.iter()) {
        if outcome.is_cache_hit() {
            hits = hits.saturating_add(*count);
        }
        if outcome.is_cache_lookup() {
            lookups = lookups.saturating_add(*count);
        }
    }
    (lookups > 0).then(|| hits as f64 / lookups as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_reclassifies_released_waiters_and_conflicts() {
        assert_eq!(
            settle(Outcome::Collapsed, false, || Some(200)),
            Outcome::Miss
        );
        assert_eq!(
            settle(Outcome::Collapsed, true, || Some(200)),
            Outcome::Collapsed
        );
        assert_eq!(
            settle(Outcome::DedupReplay, false, || Some(200)),
            Outcome::Pass
        );
        assert_eq!(
            settle(Outcome::DedupReplay, true, || Some(409)),
            Outcome::Refused
        );
        assert_eq!(
            settle(Outcome::DedupReplay, true, || Some(200)),
            Outcome::DedupReplay
        );
        assert_eq!(settle(Outcome::HitL1, true, || Some(304)), Outcome::HitL1);
    }

    #[test]
    fn indices_follow_all() {
        for (position, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(outcome.index(), position);
        }
    }

    #[test]
    fn hit_rate_counts_every_tier_and_ignores_passes() {
        let mut counts = [0; Outcome::COUNT];
        counts[Outcome::HitL1.index()] = 6;
        counts[Outcome::HitL2.index()] = 1;
        counts[Outcome::Collapsed.index()] = 1;
        counts[Outcome::Miss.index()] = 2;
        counts[Outcome::Pass.index()] = 50;
        assert_eq!(hit_rate(&counts), Some(0.8));
        assert_eq!(hit_rate(&[0; Outcome::COUNT]), None);
    }
}

//! A fixed-size latency histogram with log-spaced buckets (each about 25% wider than the one
//! before, from 10 µs to past 60 s): percentiles within one bucket's width, constant memory,
//! cheap merging across time slots and workers.

use serde::{Deserialize, Serialize};

pub const BUCKETS: usize = 72;

/// Upper bound (µs, inclusive) of each bucket; the last bucket takes everything above.
const BOUNDS: [u64; BUCKETS] = bounds();

// Evaluated at compile time: an out-of-range index would fail the build, not a request.
#[allow(clippy::indexing_slicing)]
const fn bounds() -> [u64; BUCKETS] {
    let mut bounds = [0u64; BUCKETS];
    let mut bound = 10u64;
    let mut index = 0;
    while index < BUCKETS {
        bounds[index] = bound;
        bound = bound * 5 / 4 + 1;
        index += 1;
    }
    bounds
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyHistogram {
    counts: [u32; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: [0; BUCKETS],
        }
    }
}

impl LatencyHistogram {
    pub fn record(&mut self, micros: u64) {
        let index = BOUNDS.partition_point(|bound| *bound < micros);
        let index = index.min(BUCKETS - 1);
        if let Some(count) = self.counts.get_mut(index) {
            *count = count.saturating_add(1);
        }
    }

    pub fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| u64::from(*c)).sum()
    }

    /// The `q` quantile (0..=1) in µs: the geometric middle of the bucket holding it, so within
    /// about 12% of the true value.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        let mut lower = 0u64;
        for (count, bound) in self.counts.iter().zip(BOUNDS.iter()) {
            seen += u64::from(*count);
            if seen >= rank {
                let low = if lower == 0 { bound / 2 } else { lower };
                return Some(((low as f64) * (*bound as f64)).sqrt().round() as u64);
            }
            lower = *bound;
        }
        BOUNDS.last().copied()
    }

    /// Non-empty buckets as (index, count): the compact form snapshots carry.
    pub fn to_sparse(&self) -> SparseHistogram {
        SparseHistogram(
            self.counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| (i as u8, *c))
                .collect(),
        )
    }

    /// Adds a sparse histogram; out-of-range buckets (a newer format) are ignored.
    pub fn merge_sparse(&mut self, sparse: &SparseHistogram) {
        for (index, count) in &sparse.0 {
            if let Some(slot) = self.counts.get_mut(usize::from(*index)) {
                *slot = slot.saturating_add(*count);
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseHistogram(pub Vec<(u8, u32)>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_a_minute_and_grow_by_a_quarter() {
        assert_eq!(BOUNDS[0], 10);
        assert!(BOUNDS[BUCKETS - 1] > 60_000_000, "{}", BOUNDS[BUCKETS - 1]);
        for pair in BOUNDS.windows(2) {
            assert!(pair[1] > pair[0]);
            assert!(pair[1] as f64 <= pair[0] as f64 * 1.25 + 2.0);
        }
    }

    #[test]
    fn quantiles_are_within_a_bucket_of_the_truth() {
        let mut histogram = LatencyHistogram::default();
        // 1..=1000 ms, uniform: p50 = 500 ms, p95 = 950 ms, p99 = 990 ms.
        for ms in 1..=1000u64 {
            histogram.record(ms * 1000);
        }
        for (q, truth) in [(0.5, 500_000.0), (0.95, 950_000.0), (0.99, 990_000.0)] {
            let got = histogram.quantile(q).unwrap() as f64;
            assert!((got / truth - 1.0).abs() <= 0.12, "q{q}: {got} vs {truth}");
        }
        assert_eq!(histogram.count(), 1000);
        assert_eq!(LatencyHistogram::default().quantile(0.5), None);
    }

    #[test]
    fn extremes_land_in_the_end_buckets() {
        let mut histogram = LatencyHistogram::default();
        histogram.record(0);
        histogram.record(u64::MAX);
        assert_eq!(histogram.quantile(0.0), Some(7));
        let top = histogram.quantile(1.0).unwrap();
        assert!(
            top > BOUNDS[BUCKETS - 2] && top < BOUNDS[BUCKETS - 1],
            "{top}"
        );
    }

    #[test]
    fn sparse_round_trip_and_merge() {
        let mut a = LatencyHistogram::default();
        a.record(150_000);
        a.record(150_000);
        a.record(45_000);
        let mut b = LatencyHistogram::default();
        b.merge_sparse(&a.to_sparse());
        b.merge_sparse(&SparseHistogram(vec![(200, 5)]));
        assert_eq!(a, b);
        b.merge(&a);
        assert_eq!(b.count(), 6);
    }
}

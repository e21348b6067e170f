//! Keys drawn the way real traffic repeats them: a Zipf distribution over `n` keys (rank 1 the
//! most frequent), from a small seeded generator so a run can be repeated.

pub use crate::origin::prng::Rng;

/// Zipf(s) over ranks 1..=n by inverse transform over the cumulative weights.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, exponent: f64) -> Self {
        let mut total = 0.0;
        let cumulative = (1..=n.max(1))
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(exponent);
                total
            })
            .collect::<Vec<_>>();
        let cumulative = cumulative.iter().map(|c| c / total).collect();
        Self { cumulative }
    }

    /// A rank in 1..=n.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cumulative.partition_point(|c| *c < u) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_ranks_dominate_and_every_rank_is_in_range() {
        let zipf = Zipf::new(100, 1.1);
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 101];
        for _ in 0..20_000 {
            let rank = zipf.sample(&mut rng);
            assert!((1..=100).contains(&rank));
            counts[rank] += 1;
        }
        assert!(counts[1] > counts[2] && counts[2] > counts[10] && counts[10] > counts[90]);
        // Rank 1 of Zipf(1.1) over 100 keys carries ~22% of draws.
        assert!((3_500..5_500).contains(&counts[1]), "{}", counts[1]);
        // The same seed gives the same sequence.
        let (mut a, mut b) = (Rng::new(1), Rng::new(1));
        assert!((0..10).all(|_| zipf.sample(&mut a) == zipf.sample(&mut b)));
    }
}

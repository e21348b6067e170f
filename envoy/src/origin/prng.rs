//! Deterministic pseudo-randomness: an FNV-1a hash to seed from a request's path and
//! parameters, and a SplitMix64 generator to draw content from. No `rand` crate: the same
//! input always gives the same bytes.

/// 64-bit FNV-1a hash of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// SplitMix64: a tiny, well-mixed generator; good enough for fake content.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (workloads that must repeat).
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A generator seeded from a key (e.g. `"/api/v1/leads/42"`).
    pub fn from_key(key: &str) -> Rng {
        Rng(fnv1a64(key.as_bytes()))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (`lo` if `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        let i = self.range(0, items.len().saturating_sub(1) as u64) as usize;
        &items[i]
    }

    /// `len` lower-case hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.next_u64(), self.next_u64());
        s.truncate(len.min(32));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn same_key_same_sequence_and_ranges_hold() {
        let mut a = Rng::from_key("/api/v1/leads/7");
        let mut b = Rng::from_key("/api/v1/leads/7");
        let mut c = Rng::from_key("/api/v1/leads/8");
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        for _ in 0..1000 {
            let v = a.range(3, 9);
            assert!((3..=9).contains(&v));
            let u = a.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(a.range(5, 5), 5);
        assert_eq!(a.hex(12).len(), 12);
    }
}

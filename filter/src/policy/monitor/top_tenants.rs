//! The busiest tenants, in a table of fixed capacity (the Space-Saving algorithm): a new
//! tenant replaces the least busy one and inherits its count as possible error, so every tenant
//! with more than `total / capacity` requests is kept. Counts halve every minute so the table
//! follows current traffic. Tenants never become stat labels; only the JSON endpoints and the
//! dashboard show them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Longest tenant id kept (longer ids are cut at a character boundary).
pub const MAX_TENANT_LEN: usize = 64;
const DECAY_MS: u64 = 60_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCounts {
    pub requests: u64,
    /// Requests refused by the rate limiter.
    pub rejected: u64,
}

#[derive(Debug, Clone)]
pub struct TopTenants {
    capacity: usize,
    table: HashMap<String, TenantCounts>,
    last_decay_ms: u64,
}

impl TopTenants {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            table: HashMap::new(),
            last_decay_ms: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn record(&mut self, tenant: &str, rejected: bool, now_ms: u64) {
        self.decay(now_ms);
        let tenant = truncate(tenant);
        if let Some(counts) = self.table.get_mut(tenant) {
            counts.requests += 1;
            counts.rejected += u64::from(rejected);
            return;
        }
        let mut inherited = TenantCounts::default();
        if self.table.len() >= self.capacity {
            let least = self
                .table
                .iter()
                .min_by_key(|(_, counts)| counts.requests)
                .map(|(name, counts)| (name.clone(), counts.clone()));
            if let Some((name, counts)) = least {
                self.table.remove(&name);
                inherited = counts;
            }
        }
        self.table.insert(
            tenant.to_string(),
            TenantCounts {
                requests: inherited.requests + 1,
                // Only requests carry over as possible error: a new tenant was never limited
                // on the evicted one's behalf.
                rejected: u64::from(rejected),
            },
        );
    }

    /// Halves every count once a minute has passed since the last halving (also called before
    /// publishing, so an idle worker's table fades).
    pub fn decay(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_decay_ms) < DECAY_MS {
            return;
        }
        self.last_decay_ms = now_ms;
        self.table.retain(|_, counts| {
            counts.requests /= 2;
            counts.rejected /= 2;
            counts.requests > 0
        });
    }

    /// The `n` busiest tenants, busiest first (ties by name, so output is stable).
    pub fn top(&self, n: usize) -> Vec<(String, TenantCounts)> {
        self.top_by(n, |counts| counts.requests)
    }

    /// The `n` busiest tenants and the `n` most rate-limited ones (each listed once).
    pub fn top_and_most_limited(&self, n: usize) -> Vec<(String, TenantCounts)> {
        let mut rows = self.top(n);
        for row in self.top_by(n, |counts| counts.rejected) {
            if row.1.rejected > 0 && !rows.iter().any(|(name, _)| *name == row.0) {
                rows.push(row);
            }
        }
        rows
    }

    fn top_by(&self, n: usize, key: impl Fn(&TenantCounts) -> u64) -> Vec<(String, TenantCounts)> {
        let mut rows: Vec<(String, TenantCounts)> = self
            .table
            .iter()
            .map(|(name, counts)| (name.clone(), counts.clone()))
            .collect();
        rows.sort_by(|a, b| key(&b.1).cmp(&key(&a.1)).then(a.0.cmp(&b.0)));
        rows.truncate(n);
        rows
    }
}

fn truncate(tenant: &str) -> &str {
    if tenant.len() <= MAX_TENANT_LEN {
        return tenant;
    }
    let mut end = MAX_TENANT_LEN;
    while !tenant.is_char_boundary(end) {
        end -= 1;
    }
    tenant.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_under_a_hundred_thousand_tenants_and_keeps_the_heavy_ones() {
        let mut top = TopTenants::new(64);
        for i in 0..100_000u64 {
            top.record(&format!("tenant-{i}"), false, 1);
            // Three heavy tenants: 1 in 10, 1 in 20, 1 in 50 requests.
            if i % 10 == 0 {
                top.record("heavy-a", true, 1);
            }
            if i % 20 == 0 {
                top.record("heavy-b", false, 1);
            }
            if i % 50 == 0 {
                top.record("heavy-c", false, 1);
            }
            assert!(top.len() <= 64);
        }
        let rows = top.top(3);
        let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["heavy-a", "heavy-b", "heavy-c"]);
        assert!(rows[0].1.requests >= 10_000);
        assert!(rows[0].1.rejected >= 10_000);
        assert_eq!(top.len(), 64);
        // Rejections are never inherited: only heavy-a was limited.
        let limited: Vec<String> = top
            .top_and_most_limited(3)
            .into_iter()
            .filter(|(_, c)| c.rejected > 0)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(limited, ["heavy-a"]);
    }

    #[test]
    fn counts_halve_each_minute() {
        let mut top = TopTenants::new(8);
        for _ in 0..10 {
            top.record("a", false, 1_000);
        }
        top.record("b", false, 1_000);
        top.record("a", false, 61_001);
        let rows = top.top(8);
        assert_eq!(
            rows,
            vec![(
                "a".to_string(),
                TenantCounts {
                    requests: 6,
                    rejected: 0
                }
            )]
        );
    }

    #[test]
    fn long_ids_are_cut() {
        let mut top = TopTenants::new(2);
        top.record(&"é".repeat(100), false, 1);
        assert!(top.top(1)[0].0.len() <= MAX_TENANT_LEN);
    }
}

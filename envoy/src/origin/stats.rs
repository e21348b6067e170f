//! Per-endpoint request counters behind `GET /__origin/stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{json, Map, Value};

use super::endpoint::Endpoint;

/// Requests that reached each endpoint's handler (injected errors and resets included).
#[derive(Debug, Default)]
pub struct Stats {
    counts: [AtomicU64; Endpoint::ALL.len()],
}

impl Stats {
    /// Counts one request to `endpoint`.
    pub fn record(&self, endpoint: Endpoint) {
        self.counts[endpoint.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Requests counted for `endpoint`.
    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.counts[endpoint.index()].load(Ordering::Relaxed)
    }

    /// Zeroes every counter.
    pub fn clear(&self) {
        for c in &self.counts {
            c.store(0, Ordering::Relaxed);
        }
    }

    /// `{"total": N, "requests": {"webhooks": n, "coaching": n, ...}}`
    pub fn to_json(&self) -> Value {
        let mut requests = Map::new();
        let mut total = 0u64;
        for e in Endpoint::ALL {
            let n = self.count(e);
            total += n;
            requests.insert(e.name().to_string(), json!(n));
        }
        json!({ "total": total, "requests": requests })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_clears() {
        let s = Stats::default();
        s.record(Endpoint::Leads);
        s.record(Endpoint::Leads);
        s.record(Endpoint::Health);
        let v = s.to_json();
        assert_eq!(v["total"], 3);
        assert_eq!(v["requests"]["leads"], 2);
        assert_eq!(v["requests"]["health"], 1);
        assert_eq!(v["requests"]["webhooks"], 0);
        assert_eq!(v["requests"].as_object().map(|m| m.len()), Some(5));
        s.clear();
        assert_eq!(s.to_json()["total"], 0);
    }
}

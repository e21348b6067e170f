//! Per-worker L1 cache: LRU bounded by entry count and bytes, TTL-aware, with
//! an optional per-tenant share cap.

use std::collections::HashMap;
use std::rc::Rc;

use foldhash::fast::FixedState;
use lru::LruCache;

use super::entry::Entry;

/// Counters and gauges of an [`L1Cache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L1Stats {
    /// Entries currently held.
    pub entries: usize,
    /// Sum of [`Entry::size_bytes`] of the held entries.
    pub bytes: usize,
    /// Live entries evicted to make room (count, byte or tenant bound).
    pub evictions: u64,
    /// Entries found past their `expires_at_s` on `get` and dropped.
    pub expired_evictions: u64,
}

struct Slot {
    entry: Rc<Entry>,
    /// Hits since the entry was (re)stored: hot entries get refreshed before they expire.
    hits: u32,
    size: usize,
    tenant: Option<String>,
    expires_at_s: u64,
}

/// Per-worker LRU of decoded entries. Not thread-safe (holds `Rc`s); one per
/// worker/VM.
pub struct L1Cache {
    /// Keyed by a seeded fold hash: the keys are request URLs, so a fixed, well-known hash
    /// would let a client pick colliding keys; SipHash costs more per hit than the hit's
    /// whole key check (and std's keys are not random on wasm32-unknown-unknown anyway).
    lru: LruCache<String, Slot, FixedState>,
    max_entries: usize,
    max_bytes: usize,
    bytes: usize,
    evictions: u64,
    expired_evictions: u64,
    /// Max entries per tenant, when a share is configured.
    tenant_cap: Option<usize>,
    tenant_share: Option<f64>,
    tenant_counts: HashMap<String, usize>,
}

impl std::fmt::Debug for L1Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1Cache")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .field("tenant_cap", &self.tenant_cap)
            .field("stats", &self.stats())
            .finish()
    }
}

impl L1Cache {
    /// An empty cache holding at most `max_entries` entries and `max_bytes`
    /// bytes (as measured by [`Entry::size_bytes`]). A zero bound makes every
    /// insert fail.
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self::with_hash_seed(max_entries, max_bytes, 0)
    }

    /// An L1 whose key hash is seeded with `seed` (pick one a client cannot guess).
    pub fn with_hash_seed(max_entries: usize, max_bytes: usize, seed: u64) -> Self {
        L1Cache {
            lru: LruCache::unbounded_with_hasher(FixedState::with_seed(seed)),
            max_entries,
            max_bytes,
            bytes: 0,
            evictions: 0,
            expired_evictions: 0,
            tenant_cap: None,
            tenant_share: None,
            tenant_counts: HashMap::new(),
        }
    }

    /// Optional per-tenant cap: no tenant may hold more than `share`
    /// (0 < share ≤ 1) of `max_entries` (at least one entry). `None`, NaN or
    /// a share ≤ 0 disables the cap; a share > 1 is treated as 1. Existing
    /// entries are not evicted by a lowered cap; it applies on the next
    /// insert of each tenant.
    pub fn set_tenant_share(&mut self, share: Option<f64>) {
        self.tenant_share = share.filter(|s| *s > 0.0).map(|s| s.min(1.0));
        self.tenant_cap = self.tenant_share.map(|s| {
            // `as` saturates; the product is within [0, max_entries].
            let cap = (s * self.max_entries as f64).floor() as usize;
            cap.clamp(1, self.max_entries.max(1))
        });
    }

    /// Looks up `key` and marks it most recently used. An entry whose
    /// `expires_at_s < now_s` is removed, counted in `expired_evictions` and not
    /// returned.
    pub fn get(&mut self, key: &str, now_s: u64) -> Option<Rc<Entry>> {
        // One lookup: an expired entry is promoted and then removed at once, which leaves the
        // same cache as not promoting it.
        let (expired, entry) = {
            let slot = self.lru.get(key)?;
            (slot.expires_at_s < now_s, Rc::clone(&slot.entry))
        };
        if expired {
            self.take(key);
            self.expired_evictions = self.expired_evictions.saturating_add(1);
            return None;
        }
        Some(entry)
    }

    /// Counts a hit on `key` and returns the hits since it was stored (0 if absent).
    pub fn record_hit(&mut self, key: &str) -> u32 {
        match self.lru.peek_mut(key) {
            Some(slot) => {
                slot.hits = slot.hits.saturating_add(1);
                slot.hits
            }
            None => 0,
        }
    }

    /// Inserts or replaces `entry` (keyed by `entry.key`). `expires_at_s` is
    /// the unix time after which the entry is useless even as stale.
    /// `tenant` is used for the share cap. When the tenant is at its cap, its
    /// own least recently used entries are evicted first; then global LRU
    /// entries are evicted until both bounds hold. Returns false (and drops
    /// any previous entry under the same key, which the new response
    /// supersedes) when the entry alone exceeds `max_bytes` or
    /// `max_entries` is 0.
    pub fn insert(&mut self, entry: Entry, tenant: Option<&str>, expires_at_s: u64) -> bool {
        let size = entry.size_bytes();
        // Replacement: the old version goes first (not counted as an eviction).
        self.take(&entry.key);
        if size > self.max_bytes || self.max_entries == 0 {
            return false;
        }

        if let (Some(t), Some(cap)) = (tenant, self.tenant_cap) {
            while self.tenant_counts.get(t).copied().unwrap_or(0) >= cap {
                if !self.evict_tenant_lru(t) {
                    break;
                }
            }
        }

        while self.lru.len() >= self.max_entries || self.bytes.saturating_add(size) > self.max_bytes
        {
            match self.lru.pop_lru() {
                Some((_, slot)) => {
                    self.forget(&slot);
                    self.evictions = self.evictions.saturating_add(1);
                }
                None => break,
            }
        }

        let tenant = tenant.map(str::to_owned);
        if let Some(t) = &tenant {
            let c = self.tenant_counts.entry(t.clone()).or_insert(0);
            *c = c.saturating_add(1);
        }
        self.bytes = self.bytes.saturating_add(size);
        let key = entry.key.clone();
        self.lru.put(
            key,
            Slot {
                hits: 0,
                entry: Rc::new(entry),
                size,
                tenant,
                expires_at_s,
            },
        );
        true
    }

    /// Removes `key`; true if it was present. Not counted as an eviction.
    pub fn remove(&mut self, key: &str) -> bool {
        self.take(key)
    }

    /// Every held entry as (key, tenant, size in bytes), in no particular order.
    pub fn census(&self) -> impl Iterator<Item = (&str, Option<&str>, usize)> {
        self.lru
            .iter()
            .map(|(key, slot)| (key.as_str(), slot.tenant.as_deref(), slot.size))
    }

    /// Current gauges and counters.
    pub fn stats(&self) -> L1Stats {
        L1Stats {
            entries: self.lru.len(),
            bytes: self.bytes,
            evictions: self.evictions,
            expired_evictions: self.expired_evictions,
        }
    }

    /// Pops `key` and undoes its accounting.
    fn take(&mut self, key: &str) -> bool {
        match self.lru.pop(key) {
            Some(slot) => {
                self.forget(&slot);
                true
            }
            None => false,
        }
    }

    /// Evicts the least recently used entry of `tenant` (O(n) scan from the
    /// LRU end; only runs when the tenant is at its cap).
    fn evict_tenant_lru(&mut self, tenant: &str) -> bool {
        let victim = self
            .lru
            .iter()
            .rev()
            .find(|(_, slot)| slot.tenant.as_deref() == Some(tenant))
            .map(|(k, _)| k.clone());
        match victim {
            Some(k) => {
                let removed = self.take(&k);
                if removed {
                    self.evictions = self.evictions.saturating_add(1);
                }
                removed
            }
            None => {
                // Count without entries: repair rather than loop.
                self.tenant_counts.remove(tenant);
                false
            }
        }
    }

    fn forget(&mut self, slot: &Slot) {
        self.bytes = self.bytes.saturating_sub(slot.size);
        if let Some(t) = &slot.tenant {
            if let Some(c) = self.tenant_counts.get_mut(t) {
                *c = c.saturating_sub(1);
                if *c == 0 {
                    self.tenant_counts.remove(t);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, body_len: usize) -> Entry {
        Entry {
            key: key.into(),
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: vec![b'x'; body_len],
            request_time: 100,
            response_time: 100,
            freshness_lifetime: 60,
            ..Default::default()
        }
    }

    const FAR: u64 = u64::MAX;

    fn keys_present(c: &mut L1Cache, keys: &[&str]) -> Vec<bool> {
        keys.iter().map(|k| c.lru.contains(*k)).collect()
    }

    fn check_invariants(c: &L1Cache) {
        let bytes: usize = c.lru.iter().map(|(_, s)| s.size).sum();
        assert_eq!(bytes, c.bytes);
        assert!(c.lru.len() <= c.max_entries);
        assert!(c.bytes <= c.max_bytes);
        let mut counts: HashMap<String, usize> = HashMap::new();
        for (_, s) in c.lru.iter() {
            if let Some(t) = &s.tenant {
                *counts.entry(t.clone()).or_default() += 1;
            }
        }
        assert_eq!(counts, c.tenant_counts);
    }

    #[test]
    fn count_bound() {
        let mut c = L1Cache::new(3, usize::MAX);
        for k in ["a", "b", "c", "d", "e"] {
            assert!(c.insert(entry(k, 10), None, FAR));
            check_invariants(&c);
        }
        assert_eq!(c.stats().entries, 3);
        assert_eq!(c.stats().evictions, 2);
        assert_eq!(
            keys_present(&mut c, &["a", "b", "c", "d", "e"]),
            [false, false, true, true, true]
        );
    }

    #[test]
    fn byte_bound() {
        let one = entry("a", 1000).size_bytes();
        let mut c = L1Cache::new(100, one * 2 + one / 2);
        assert!(c.insert(entry("a", 1000), None, FAR));
        assert!(c.insert(entry("b", 1000), None, FAR));
        assert_eq!(c.stats().bytes, one * 2);
        assert!(c.insert(entry("c", 1000), None, FAR));
        check_invariants(&c);
        assert_eq!(c.stats().entries, 2);
        assert_eq!(c.stats().bytes, one * 2);
        assert!(c.get("a", 0).is_none());
        // A big entry evicts several small ones.
        let big = entry("big", 1000 + one).size_bytes();
        assert!(big <= c.max_bytes);
        assert!(c.insert(entry("big", 1000 + one), None, FAR));
        check_invariants(&c);
        assert_eq!(c.stats().entries, 1);
        assert_eq!(c.stats().bytes, big);
    }

    #[test]
    fn lru_order_get_refreshes() {
        let mut c = L1Cache::new(3, usize::MAX);
        for k in ["a", "b", "c"] {
            c.insert(entry(k, 1), None, FAR);
        }
        assert!(c.get("a", 0).is_some()); // a is now MRU; b is LRU
        c.insert(entry("d", 1), None, FAR);
        assert_eq!(
            keys_present(&mut c, &["a", "b", "c", "d"]),
            [true, false, true, true]
        );
    }

    #[test]
    fn get_returns_shared_rc() {
        let mut c = L1Cache::new(3, usize::MAX);
        c.insert(entry("a", 5000), None, FAR);
        let x = c.get("a", 0).unwrap();
        let y = c.get("a", 0).unwrap();
        assert!(Rc::ptr_eq(&x, &y));
        assert_eq!(x.body.len(), 5000);
    }

    #[test]
    fn expiry_on_get() {
        let mut c = L1Cache::new(10, usize::MAX);
        c.insert(entry("a", 1), None, 1000);
        assert!(c.get("a", 999).is_some());
        assert!(c.get("a", 1000).is_some()); // expires_at_s < now_s only
        assert!(c.get("a", 1001).is_none());
        let s = c.stats();
        assert_eq!(s.entries, 0);
        assert_eq!(s.bytes, 0);
        assert_eq!(s.expired_evictions, 1);
        assert_eq!(s.evictions, 0);
        assert!(c.get("a", 0).is_none());
        assert!(c.get("missing", 0).is_none());
        assert_eq!(c.stats().expired_evictions, 1);
    }

    #[test]
    fn replacement_updates_byte_accounting() {
        let mut c = L1Cache::new(10, usize::MAX);
        c.insert(entry("a", 100), Some("t"), FAR);
        let small = c.stats().bytes;
        c.insert(entry("a", 5000), Some("t"), FAR);
        check_invariants(&c);
        let s = c.stats();
        assert_eq!(s.entries, 1);
        assert_eq!(s.bytes, small + 4900);
        assert_eq!(s.evictions, 0);
        assert_eq!(c.tenant_counts.get("t"), Some(&1));
        c.insert(entry("a", 10), None, FAR);
        check_invariants(&c);
        assert_eq!(c.stats().bytes, small - 90);
        assert!(c.tenant_counts.is_empty());
        assert_eq!(c.get("a", 0).unwrap().body.len(), 10);
    }

    #[test]
    fn oversized_entry_refused() {
        let e = entry("big", 10_000);
        let mut c = L1Cache::new(10, e.size_bytes() - 1);
        c.insert(entry("big", 1), None, FAR);
        assert!(c.insert(entry("small", 1), None, FAR));
        assert!(!c.insert(e, None, FAR));
        // The superseded version is gone, the other entry untouched.
        assert!(c.get("big", 0).is_none());
        assert!(c.get("small", 0).is_some());
        check_invariants(&c);
        let mut z = L1Cache::new(0, usize::MAX);
        assert!(!z.insert(entry("a", 1), None, FAR));
        assert_eq!(z.stats(), L1Stats::default());
    }

    #[test]
    fn tenant_share_evicts_own_lru() {
        let mut c = L1Cache::new(10, usize::MAX);
        c.set_tenant_share(Some(0.3)); // cap = 3
        c.insert(entry("o1", 1), Some("other"), FAR);
        c.insert(entry("o2", 1), Some("other"), FAR);
        c.insert(entry("n1", 1), None, FAR);
        for i in 0..3 {
            assert!(c.insert(entry(&format!("h{i}"), 1), Some("hog"), FAR));
        }
        assert_eq!(c.stats().evictions, 0);
        // Refresh h0 so h1 is the hog's LRU.
        assert!(c.get("h0", 0).is_some());
        // Others are older (global LRU) but the hog evicts its own LRU.
        assert!(c.insert(entry("h3", 1), Some("hog"), FAR));
        check_invariants(&c);
        assert_eq!(
            keys_present(&mut c, &["o1", "o2", "n1", "h0", "h1", "h2", "h3"]),
            [true, true, true, true, false, true, true]
        );
        assert_eq!(c.stats().evictions, 1);
        // The hog keeps filling: never more than 3, others never evicted.
        for i in 4..50 {
            assert!(c.insert(entry(&format!("h{i}"), 1), Some("hog"), FAR));
            check_invariants(&c);
            assert_eq!(c.tenant_counts.get("hog"), Some(&3));
        }
        assert_eq!(
            keys_present(&mut c, &["o1", "o2", "n1"]),
            [true, true, true]
        );
        assert_eq!(c.stats().entries, 6);
        // Replacing one of the hog's keys at cap does not evict another.
        let before = c.stats().evictions;
        assert!(c.insert(entry("h49", 2), Some("hog"), FAR));
        assert_eq!(c.stats().evictions, before);
    }

    #[test]
    fn tenant_share_config() {
        let mut c = L1Cache::new(10, usize::MAX);
        c.set_tenant_share(Some(0.01));
        assert_eq!(c.tenant_cap, Some(1));
        c.set_tenant_share(Some(5.0));
        assert_eq!(c.tenant_cap, Some(10));
        c.set_tenant_share(Some(f64::NAN));
        assert_eq!(c.tenant_cap, None);
        c.set_tenant_share(Some(0.0));
        assert_eq!(c.tenant_cap, None);
        c.set_tenant_share(Some(0.5));
        assert_eq!(c.tenant_cap, Some(5));
        c.set_tenant_share(None);
        assert_eq!(c.tenant_cap, None);
        // No cap: a tenant may fill the cache.
        for i in 0..20 {
            c.insert(entry(&format!("k{i}"), 1), Some("t"), FAR);
        }
        assert_eq!(c.tenant_counts.get("t"), Some(&10));
    }

    #[test]
    fn global_pressure_still_evicts_any_tenant() {
        let mut c = L1Cache::new(4, usize::MAX);
        c.set_tenant_share(Some(0.5)); // cap 2
        c.insert(entry("a1", 1), Some("a"), FAR);
        c.insert(entry("a2", 1), Some("a"), FAR);
        c.insert(entry("b1", 1), Some("b"), FAR);
        c.insert(entry("b2", 1), Some("b"), FAR);
        assert!(c.insert(entry("c1", 1), Some("c"), FAR));
        check_invariants(&c);
        assert_eq!(
            keys_present(&mut c, &["a1", "a2", "b1", "b2", "c1"]),
            [false, true, true, true, true]
        );
    }

    #[test]
    fn remove_and_stats() {
        let mut c = L1Cache::new(10, usize::MAX);
        assert_eq!(c.stats(), L1Stats::default());
        c.insert(entry("a", 10), Some("t"), FAR);
        c.insert(entry("b", 10), None, 5);
        let one = entry("a", 10).size_bytes();
        assert_eq!(
            c.stats(),
            L1Stats {
                entries: 2,
                bytes: 2 * one,
                evictions: 0,
                expired_evictions: 0
            }
        );
        assert!(c.remove("a"));
        assert!(!c.remove("a"));
        assert!(c.tenant_counts.is_empty());
        assert!(c.get("b", 6).is_none());
        assert_eq!(
            c.stats(),
            L1Stats {
                entries: 0,
                bytes: 0,
                evictions: 0,
                expired_evictions: 1
            }
        );
        check_invariants(&c);
    }
}

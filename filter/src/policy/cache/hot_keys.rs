//! The hottest cache keys a worker has seen, for warming (`GET <admin prefix>/cache/hot`,
//! `edge-ctl warm-cache --hot N`): a table of fixed capacity (`monitoring.hot_keys`) kept with
//! the Space-Saving algorithm — a new key replaces the least counted one and inherits its
//! count, so every key with more than `lookups / capacity` lookups is in it. Counts halve every
//! minute so the table follows current traffic. A row keeps what a warm request needs to ask
//! for the same entry again: the path with its query, and the tenant header when the service
//! takes its tenant from a header.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::Serialize;

use crate::policy::hash::fnv1a;

/// Longest path (with query) kept; longer ones are not counted.
pub const MAX_HOT_PATH_LEN: usize = 512;
/// Longest tenant id kept with a key.
pub const MAX_HOT_TENANT_LEN: usize = 128;
/// Rows a `/cache/hot` answer lists when the request names no `limit`.
pub const DEFAULT_HOT_LIMIT: usize = 100;
const DECAY_MS: u64 = 60_000;

/// What a warm request needs to fetch the entry again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HotKey {
    pub service: String,
    /// Path and query, as requested.
    pub path: String,
    /// `(header name, tenant id)` when the tenant comes from a header.
    pub tenant_header: Option<(String, String)>,
}

#[derive(Debug, Clone)]
struct Row {
    key: HotKey,
    /// Lookups counted, including `error`.
    count: u64,
    /// The count inherited from the row it replaced: at most this many were not its own.
    error: u64,
}

/// The table's keys are already hashes ([`hot_key_id`]): hashing them again (SipHash) would
/// cost more than the rest of a lookup on the hit path.
#[derive(Debug, Clone, Copy, Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, Clone)]
pub struct HotKeys {
    capacity: usize,
    rows: HashMap<u64, Row, BuildHasherDefault<IdHasher>>,
    last_decay_ms: u64,
}

/// The identity of a key in the table.
pub fn hot_key_id(path: &str, tenant: Option<&str>) -> u64 {
    fnv1a(path) ^ tenant.map_or(0, |t| fnv1a(t).rotate_left(17))
}

impl HotKeys {
    /// A table of `capacity` rows (0: nothing is kept).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            rows: HashMap::default(),
            last_decay_ms: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether the table keeps nothing (`monitoring.hot_keys: 0`).
    pub fn capacity_is_zero(&self) -> bool {
        self.capacity == 0
    }

    /// Counts one lookup of the key `id`; `make` builds the row when the key is new.
    pub fn note(&mut self, id: u64, make: impl FnOnce() -> Option<HotKey>, now_ms: u64) {
        if self.capacity == 0 {
            return;
        }
        self.decay(now_ms);
        if let Some(row) = self.rows.get_mut(&id) {
            row.count = row.count.saturating_add(1);
            return;
        }
        let Some(key) = make() else {
            return;
        };
        if key.path.len() > MAX_HOT_PATH_LEN
            || key
                .tenant_header
                .as_ref()
                .is_some_and(|(_, t)| t.len() > MAX_HOT_TENANT_LEN)
        {
            return;
        }
        let (mut count, mut error) = (1, 0);
        if self.rows.len() >= self.capacity {
            let least = self
                .rows
                .iter()
                .min_by_key(|(_, row)| row.count)
                .map(|(id, row)| (*id, row.count));
            if let Some((least_id, least_count)) = least {
                self.rows.remove(&least_id);
                count = least_count.saturating_add(1);
                error = least_count;
            }
        }
        self.rows.insert(id, Row { key, count, error });
    }

    fn decay(&mut self, now_ms: u64) {
        if self.last_decay_ms == 0 {
            self.last_decay_ms = now_ms;
        }
        if now_ms.saturating_sub(self.last_decay_ms) >= DECAY_MS {
            self.last_decay_ms = now_ms;
            self.rows.retain(|_, row| {
                row.count /= 2;
                row.error /= 2;
                row.count > 0
            });
        }
    }

    /// The `limit` keys with the most lookups surely their own (count less inherited error),
    /// with that count, most first (ties by path): a long tail of keys seen once each climbs
    /// in counts but not in this ranking.
    pub fn hottest(&self, limit: usize) -> Vec<(&HotKey, u64)> {
        let mut rows: Vec<(&HotKey, u64)> = self
            .rows
            .values()
            .map(|row| (&row.key, row.count.saturating_sub(row.error)))
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.path.cmp(&b.0.path)));
        rows.truncate(limit);
        rows
    }
}

/// The `limit` query parameter of a `/cache/hot` request (default [`DEFAULT_HOT_LIMIT`], at
/// most `capacity`); anything but a whole number from 1 is refused, not silently defaulted.
pub fn hot_limit(path: &str, capacity: usize) -> Result<usize, String> {
    let query = path.split_once('?').map_or("", |(_, q)| q);
    let Some(given) = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("limit="))
    else {
        return Ok(DEFAULT_HOT_LIMIT.min(capacity));
    };
    let digits = !given.is_empty() && given.len() <= 9 && given.bytes().all(|b| b.is_ascii_digit());
    match given.parse::<usize>() {
        Ok(limit) if digits && limit >= 1 => Ok(limit.min(capacity)),
        _ => Err(format!(
            "limit: {given:?} is not a whole number from 1 (at most {capacity} rows are kept)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(path: &str) -> Option<HotKey> {
        Some(HotKey {
            service: "leads".into(),
            path: path.into(),
            tenant_header: Some(("x-location-id".into(), "loc-1".into())),
        })
    }

    fn note(table: &mut HotKeys, path: &str, now_ms: u64) {
        table.note(hot_key_id(path, Some("loc-1")), || key(path), now_ms);
    }

    #[test]
    fn the_busiest_keys_stay_within_capacity() {
        // Space-Saving keeps every key with more than lookups / capacity (35 / 10) lookups.
        let mut table = HotKeys::new(10);
        for _ in 0..10 {
            note(&mut table, "/a", 1);
        }
        for _ in 0..5 {
            note(&mut table, "/b", 1);
        }
        // A long tail of keys seen once each.
        for n in 0..20 {
            note(&mut table, &format!("/tail/{n}"), 1);
        }
        assert_eq!(table.len(), 10);
        let hottest = table.hottest(2);
        assert_eq!(hottest[0].0.path, "/a");
        assert_eq!(hottest[0].1, 10);
        assert_eq!(hottest[1].0.path, "/b");
        assert_eq!(
            hottest[0].0.tenant_header,
            Some(("x-location-id".into(), "loc-1".into()))
        );
        // The same path under another tenant is another key.
        assert_ne!(
            hot_key_id("/a", Some("loc-1")),
            hot_key_id("/a", Some("loc-2"))
        );
        assert_ne!(hot_key_id("/a", None), hot_key_id("/a", Some("loc-1")));
    }

    #[test]
    fn counts_halve_every_minute_and_capacity_zero_keeps_nothing() {
        let mut table = HotKeys::new(4);
        for _ in 0..4 {
            note(&mut table, "/a", 1_000);
        }
        note(&mut table, "/once", 1_000);
        note(&mut table, "/a", 61_000);
        assert_eq!(table.hottest(10), vec![(&key("/a").unwrap(), 3)]);
        let mut off = HotKeys::new(0);
        note(&mut off, "/a", 1);
        assert!(off.is_empty());
        let long = "/".repeat(MAX_HOT_PATH_LEN + 1);
        note(&mut table, &long, 61_000);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn limits_come_from_the_query() {
        assert_eq!(hot_limit("/p/cache/hot?limit=5", 128), Ok(5));
        assert_eq!(hot_limit("/p/cache/hot", 128), Ok(DEFAULT_HOT_LIMIT));
        assert_eq!(hot_limit("/p/cache/hot?x=1&limit=9999", 128), Ok(128));
        for bad in ["abc", "-1", "0", "", "+5", "12345678901234567890"] {
            let err = hot_limit(&format!("/p/cache/hot?limit={bad}"), 50).unwrap_err();
            assert!(err.starts_with("limit: "), "{err}");
        }
    }
}

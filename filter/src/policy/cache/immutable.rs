//! `Cache-Control: immutable` (RFC 8246) in a shared cache.
//!
//! RFC 8246 asks clients not to revalidate a fresh immutable response on a reload, but to do so
//! on a forced reload. A browser's reload reaches the cache as `Cache-Control: max-age=0`, a
//! forced reload as `no-cache` (and `Pragma: no-cache`). So this cache answers a fresh
//! immutable entry to requests whose only objection is its age (`max-age`, `min-fresh`): the
//! origin promised the representation will not change while fresh, asking it again gains
//! nothing. `no-cache` still revalidates, and a stale immutable entry is like any other.

use super::cache_control::CacheControl;
use super::entry::Entry;
use super::freshness::{is_fresh, RequestFacts};
use super::targeted::select;
use crate::policy::header_list::header_joined;

/// Whether a request that asked for revalidation may still be answered by `entry` at `age_s`
/// because the entry is fresh and immutable and the request did not force a reload.
pub fn answers_reload(entry: &Entry, request: &RequestFacts, age_s: u64) -> bool {
    let cc = &request.cache_control;
    let forced = cc.no_cache || (request.pragma_no_cache && *cc == CacheControl::default());
    !forced
        && !cc.no_store
        && is_fresh(entry.freshness_lifetime, age_s)
        && stored_directives(entry).immutable
}

/// The stored response's directives for this cache: `CDN-Cache-Control` when valid (see
/// [`super::targeted`]), else `Cache-Control`.
fn stored_directives(entry: &Entry) -> CacheControl {
    select(&entry.headers, None).unwrap_or_else(|| {
        CacheControl::parse(&header_joined(&entry.headers, "cache-control").unwrap_or_default())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::exchange::request_facts;

    fn entry(cache_control: &str) -> Entry {
        Entry {
            key: "k".into(),
            status: 200,
            headers: vec![("cache-control".into(), cache_control.into())],
            request_time: 1000,
            response_time: 1000,
            date: Some(1000),
            freshness_lifetime: 60,
            ..Default::default()
        }
    }

    fn request(pairs: &[(&str, &str)]) -> RequestFacts {
        let headers: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        request_facts("GET", &headers)
    }

    #[test]
    fn reloads_get_fresh_immutable_entries() {
        let immutable = entry("max-age=60, immutable");
        for cc in ["max-age=0", "min-fresh=3600", "max-age=5"] {
            assert!(
                answers_reload(&immutable, &request(&[("cache-control", cc)]), 10),
                "{cc}"
            );
        }
    }

    #[test]
    fn forced_reloads_stale_or_mutable_entries_revalidate() {
        let immutable = entry("max-age=60, immutable");
        for pairs in [
            &[("cache-control", "no-cache")][..],
            &[("cache-control", "no-store")][..],
            &[("pragma", "no-cache")][..],
        ] {
            assert!(
                !answers_reload(&immutable, &request(pairs), 10),
                "{pairs:?}"
            );
        }
        let reload = request(&[("cache-control", "max-age=0")]);
        assert!(!answers_reload(&immutable, &reload, 60), "stale");
        assert!(!answers_reload(&entry("max-age=60"), &reload, 10));
    }
}

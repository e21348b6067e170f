//! What a rate-limited tenant may be answered from the cache instead of `429`: the origin is
//! not asked, so only an entry that may be used without it — fresh, or stale by at most the
//! service's `max_stale_when_limited_s`, and never one whose response (`must-revalidate`,
//! `proxy-revalidate`, `s-maxage`, `no-cache`) or request (`no-cache`, `max-age`, `no-store`)
//! demands a check with the origin.

use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{evaluate_hit, timing, within_stale_window, HitDecision};
use crate::policy::cache::freshness::{
    current_age, request_directs, RequestDirective, RequestFacts,
};
use crate::policy::cache::generations::Generations;
use crate::policy::header_list::HeaderPair;

/// Whether `entry` may answer a limited tenant's request at `now_ms` (Unix milliseconds).
pub fn may_serve_while_limited(
    entry: &Entry,
    request_headers: &[impl HeaderPair],
    request: &RequestFacts,
    generations: &Generations,
    now_ms: u64,
    max_stale_s: u64,
) -> bool {
    let age = current_age(&timing(entry), now_ms);
    match evaluate_hit(entry, request_headers, request, generations, now_ms) {
        HitDecision::Miss(_) => false,
        HitDecision::Serve { .. } => true,
        // Stale (within or beyond its own stale-while-revalidate window): only within the bound,
        // only when the request asked for nothing the origin must answer.
        HitDecision::ServeStale { .. } | HitDecision::Revalidate => {
            request_directs(
                &request.cache_control,
                request.pragma_no_cache,
                entry.freshness_lifetime,
                age,
            ) == RequestDirective::Normal
                && age > entry.freshness_lifetime
                && within_stale_window(entry, age, Some(max_stale_s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::exchange::request_facts;
    use crate::policy::cache::generations::Dimension;

    fn entry(must_revalidate: bool) -> Entry {
        Entry {
            key: "k".into(),
            status: 200,
            body: b"{}".to_vec(),
            request_time: 1000,
            response_time: 1000,
            date: Some(1000),
            freshness_lifetime: 60,
            must_revalidate,
            generations: Generations::default().stamp(&[]),
            ..Default::default()
        }
    }

    fn may(entry: &Entry, request: &[(&str, &str)], now_s: u64, bound: u64) -> bool {
        let headers: Vec<(String, String)> = request
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let facts = request_facts("GET", &headers);
        may_serve_while_limited(
            entry,
            &headers,
            &facts,
            &Generations::default(),
            now_s * 1000,
            bound,
        )
    }

    #[test]
    fn fresh_entries_serve() {
        assert!(may(&entry(false), &[], 1030, 0));
        assert!(may(&entry(true), &[], 1030, 0));
    }

    #[test]
    fn stale_only_within_the_bound() {
        // Fresh for 60 s: at 1090 it is 30 s stale.
        assert!(may(&entry(false), &[], 1090, 30));
        assert!(!may(&entry(false), &[], 1091, 30));
        assert!(!may(&entry(false), &[], 1061, 0));
        let mut swr = entry(false);
        swr.stale_while_revalidate = Some(3600);
        assert!(
            !may(&swr, &[], 1200, 60),
            "its own window does not widen the bound"
        );
    }

    #[test]
    fn never_stale_when_the_response_or_request_forbids_it() {
        assert!(!may(&entry(true), &[], 1061, 3600), "must-revalidate");
        assert!(!may(
            &entry(false),
            &[("cache-control", "no-cache")],
            1030,
            3600
        ));
        assert!(!may(
            &entry(false),
            &[("cache-control", "max-age=5")],
            1030,
            3600
        ));
        assert!(!may(
            &entry(false),
            &[("cache-control", "no-store")],
            1030,
            3600
        ));
        assert!(!may(&entry(false), &[("pragma", "no-cache")], 1030, 3600));
    }

    #[test]
    fn purged_entries_never_serve() {
        let mut gens = Generations::default();
        let mut stored = entry(false);
        stored.generations = gens.stamp(&[Dimension::Service(0)]);
        gens.bump(Dimension::Service(0));
        let facts = request_facts("GET", crate::policy::header_list::NO_HEADERS);
        assert!(!may_serve_while_limited(
            &stored,
            crate::policy::header_list::NO_HEADERS,
            &facts,
            &gens,
            1010 * 1000,
            60
        ));
    }
}

//! A newer response that this cache does not store, for a key whose older entry it holds.
//!
//! The origin has a new answer for the key: `no-store`, `private`, no freshness, a status that
//! may not be stored, or a storable response too large to keep. The older entry no longer
//! describes what the origin serves, so it must not be used any more — not while fresh, nor
//! stale (stale-while-revalidate, stale-if-error). An origin error (5xx) says nothing about the
//! representation and leaves the entry alone (stale-if-error is for exactly that), and so do
//! responses that are not stored because of who asked (`Authorization`, `Set-Cookie`, HEAD).

use super::exchange::response_facts_for;
use super::freshness::{storability, NotStorable, RequestFacts, Storable, StorePolicy};
use crate::policy::header_list::Headers;

/// Whether the origin's answer (`status`, `headers`) to `request`, not stored by this cache,
/// takes the entry stored under the same key out of use. `now_s`: when it arrived.
pub fn outdates_stored(
    request: &RequestFacts,
    status: u16,
    headers: &Headers,
    policy: &StorePolicy,
    now_s: u64,
) -> bool {
    if !(200..500).contains(&status) || status == 304 || request.cache_control.no_store {
        return false;
    }
    let facts = response_facts_for(status, headers, policy.targeted.as_deref());
    match storability(request, &facts, policy, now_s) {
        // Storable, yet not stored: too large to keep.
        Storable::Yes { .. } => true,
        Storable::No(reason) => matches!(
            reason,
            NotStorable::NoStore
                | NotStorable::Private
                | NotStorable::Status
                | NotStorable::VaryStar
                | NotStorable::NoFreshness
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::exchange::request_facts;

    use crate::policy::header_list::owned as h;

    fn policy() -> StorePolicy {
        StorePolicy {
            default_ttl: None,
            heuristic: true,
            max_ttl: 86_400,
            store_set_cookie: false,
            targeted: None,
            count_response_delay: true,
        }
    }

    fn outdates(status: u16, headers: &[(&str, &str)]) -> bool {
        outdates_stored(
            &request_facts("GET", crate::policy::header_list::NO_HEADERS),
            status,
            &h(headers),
            &policy(),
            1000,
        )
    }

    #[test]
    fn responses_the_cache_may_not_store_outdate_the_entry() {
        assert!(outdates(200, &[("cache-control", "no-store")]));
        assert!(outdates(200, &[("cache-control", "private, max-age=60")]));
        assert!(outdates(
            200,
            &[("cache-control", "max-age=60"), ("vary", "*")]
        ));
        assert!(outdates(200, &[]), "no freshness");
        assert!(outdates(201, &[]), "a status that is not stored");
        assert!(outdates(404, &[("cdn-cache-control", "no-store")]));
        assert!(
            outdates(200, &[("cache-control", "max-age=60")]),
            "storable, not kept"
        );
    }

    #[test]
    fn errors_and_requester_specific_responses_leave_it() {
        for status in [100, 304, 500, 502, 503, 504, 599] {
            assert!(
                !outdates(status, &[("cache-control", "no-store")]),
                "{status}"
            );
        }
        assert!(!outdates(
            200,
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")]
        ));
        let with_authorization = request_facts("GET", &h(&[("authorization", "Bearer x")]));
        let headers = h(&[("cache-control", "max-age=60")]);
        assert!(!outdates_stored(
            &with_authorization,
            200,
            &headers,
            &policy(),
            1000
        ));
        let no_store = request_facts("GET", &h(&[("cache-control", "no-store")]));
        assert!(!outdates_stored(&no_store, 200, &h(&[]), &policy(), 1000));
        let head = request_facts("HEAD", crate::policy::header_list::NO_HEADERS);
        assert!(!outdates_stored(&head, 200, &h(&[]), &policy(), 1000));
    }
}

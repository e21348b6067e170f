//! Answering from a stored entry when the origin must not be asked: a rate-limited tenant
//! (within `max_stale_when_limited_s`), an open breaker (any stored entry).

use std::rc::Rc;

use super::request::Request;
use super::state::EdgeHttp;
use crate::plugin::host::now_millis;
use crate::plugin::metrics::Stat;
use crate::plugin::tiers::Found;
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    answer_body, answer_coding, evaluate_hit, hit_headers, request_facts, timing, ttl_left,
    varies_by_coding, CacheStatus, HitDecision,
};
use crate::policy::cache::freshness::current_age;
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::range::RangeRequest;
use crate::policy::rate_limit::degrade::may_serve_while_limited;

impl EdgeHttp {
    /// Answers a GET from a stored entry when the origin must not be asked (a rate-limited
    /// tenant, an open breaker). `status` gives the Cache-Status member; its `ttl` is filled in.
    /// `max_stale_s`: the entry must be usable without the origin, stale by at most this many
    /// seconds (a limited tenant); `None`: any stored entry, fresh or stale (an open breaker).
    pub(super) fn serve_stored(
        &mut self,
        worker: &WorkerRef,
        request: &Request<'_>,
        status: CacheStatus<'_>,
        extra_headers: &[(String, String)],
        counter: Stat,
        max_stale_s: Option<u64>,
    ) -> bool {
        let Some(section) = &request.service.cache else {
            return false;
        };
        let Ok(key) = request.cache_key(section) else {
            return false;
        };
        let now_ms = now_millis();
        let found = {
            let w = &mut *worker.borrow_mut();
            stored_answer(w, request, &key, now_ms, max_stale_s).map(|entry| {
                w.env.metrics.inc(counter);
                let name = Rc::clone(&w.env.registry);
                (entry, name)
            })
        };
        let Some((entry, registry)) = found else {
            return false;
        };
        let age = current_age(&timing(&entry), now_ms);
        let cache_status = CacheStatus {
            ttl: Some(ttl_left(&entry, age)),
            ..status
        }
        .render(&registry.settings().cache_status_name);
        let range = RangeRequest::of(request.method, request.headers)
            .for_codings(|| varies_by_coding(&entry));
        let coding = if range.is_partial() {
            None
        } else {
            answer_coding(&entry, request.headers)
        };
        let headers = hit_headers(&entry, coding, age, &cache_status);
        let (status, mut headers, body) = match coding {
            Some(_) => (entry.status, headers, answer_body(&entry, coding)),
            None => {
                let ranged = range.answer(&entry, headers);
                (ranged.status, ranged.headers, ranged.body)
            }
        };
        headers.extend(extra_headers.iter().cloned());
        self.reply(status, &headers, (request.method != "HEAD").then_some(body));
        true
    }
}

/// A stored entry that may answer `request` without the origin (see
/// [`EdgeHttp::serve_stored`]).
fn stored_answer(
    w: &mut Worker,
    request: &Request<'_>,
    key: &CacheKey,
    now_ms: u64,
    max_stale_s: Option<u64>,
) -> Option<Rc<Entry>> {
    let entry = match w
        .tiers
        .l1_find(&w.env, &key.primary, request.headers, now_ms / 1000)
    {
        Found::Entry(entry) => entry,
        _ => match w.tiers.l2_find(&w.env, key, request.headers) {
            Found::Entry(entry) => entry,
            _ => return None,
        },
    };
    let facts = request_facts(request.method, request.headers);
    let generations = &w.tiers.generations;
    let usable = match max_stale_s {
        Some(bound) => {
            may_serve_while_limited(&entry, request.headers, &facts, generations, now_ms, bound)
        }
        None => !matches!(
            evaluate_hit(&entry, request.headers, &facts, generations, now_ms),
            HitDecision::Miss(_)
        ),
    };
    let answerable = RangeRequest::of(request.method, request.headers).answerable_by(&entry);
    (usable && answerable).then_some(entry)
}

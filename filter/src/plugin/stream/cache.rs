//! The request side of caching: where a stream stands with the cache (`CacheFlow`), the
//! lookup in L1 then L2, coalescing misses per key across workers, and answering from a
//! stored entry.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, MapType};

use super::request::{header_bytes, Request};
use super::state::{CacheFlow, EdgeHttp, Invalidation, Pending, PostReuse};
use crate::plugin::coalescing::WaitInfo;
use crate::plugin::host::{now_millis, SERVICE_HEADER};
use crate::plugin::hot_keys;
use crate::plugin::metrics::Stat;
use crate::plugin::refresh::RefreshJob;
use crate::plugin::reply::{send_entry, EntryAnswer};
use crate::plugin::tiers::Found;
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::cache::coalesce::Join;
use crate::policy::cache::encoding::cache_negotiates;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    entry_not_modified, evaluate_hit, refresh_request_headers, request_facts, ttl_left,
    CacheStatus, Forward, HitDecision, MissKind,
};
use crate::policy::cache::freshness::{request_directs, RequestDirective, RequestFacts};
use crate::policy::cache::key::{unkeyed_headers_present, CacheKey};
use crate::policy::cache::lease::Acquire;
use crate::policy::cache::range::RangeRequest;
use crate::policy::cache::variants::INDEX_STATUS;
use crate::policy::header_list::{header, owned, RequestHeaders};
use crate::policy::monitor::outcome::Outcome;
use crate::policy::CacheSection;

/// What the tiers hold for a request.
enum Lookup {
    /// An entry that answers it (`outcome`: which tier, or stale).
    Hit {
        entry: Rc<Entry>,
        age: u64,
        not_modified: bool,
        outcome: Outcome,
        /// The byte range the request asks for (read once).
        range: RangeRequest,
    },
    /// Nothing that answers it; `stale`: an entry the origin may revalidate.
    Miss {
        fwd: Forward,
        stale: Option<Rc<Entry>>,
    },
}

impl EdgeHttp {
    /// Caching for a request: lookup for GET and HEAD, invalidation for unsafe methods.
    pub(super) fn cache_request(&mut self, worker: &WorkerRef, request: &Request<'_>) -> Action {
        let Some(section) = &request.service.cache else {
            return Action::Continue;
        };
        match (request.method, request.cache_key(section)) {
            ("GET" | "HEAD", Ok(key)) => {
                self.observe_tenant(key.tenant.as_deref());
                // One clock read for the whole lookup (monitoring's, when it is on).
                let now_ms = self.request_start_millis();
                if !worker.borrow().hot_keys.capacity_is_zero() {
                    let service = (request.service.name.as_str(), section);
                    let tenant = key.tenant.as_deref();
                    let hot = &mut worker.borrow_mut().hot_keys;
                    let path = key.path_and_query();
                    hot_keys::note(hot, service, path, tenant, now_ms);
                }
                let action = self.lookup(worker, section, key, request, now_ms);
                if !self.answered {
                    // On its way to the origin (now, or once its leader is done): what the origin
                    // answers may only depend on what is keyed, and it sends the identity body
                    // (the cache encodes it per client). A hit sends nothing upstream: no calls.
                    for name in unkeyed_headers_present(section, request.headers) {
                        let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
                    }
                    if cache_negotiates(section)
                        && header(request.headers, "accept-encoding").is_some()
                    {
                        let _ = hostcalls::remove_map_value(
                            MapType::HttpRequestHeaders,
                            "accept-encoding",
                        );
                    }
                }
                action
            }
            ("POST" | "PUT" | "PATCH" | "DELETE", Ok(key)) => {
                // A POST may leave a GET entry, unless unkeyed input could have shaped it.
                let post = (request.method == "POST"
                    && unkeyed_headers_present(section, request.headers)
                        .next()
                        .is_none())
                .then(|| {
                    Box::new(PostReuse {
                        pending: Pending {
                            service_index: request.service.index,
                            key: key.clone(),
                            request_headers: owned(request.headers),
                            request: request_facts("GET", request.headers),
                            request_time_ms: now_millis(),
                            generations: Rc::clone(&worker.borrow().tiers.generations),
                            fwd: Forward::UriMiss,
                            head: false,
                            range: RangeRequest::default(),
                        },
                        path: request.path.to_string(),
                    })
                });
                self.invalidation = Some(Invalidation {
                    urls: vec![key.url],
                    scheme: request.scheme.to_string(),
                    authority: request.authority.to_string(),
                    post,
                });
                Action::Continue
            }
            (_, Err(_)) => {
                worker.env.metrics.inc(Stat::Bypass);
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn lookup(
        &mut self,
        worker: &WorkerRef,
        section: &CacheSection,
        key: CacheKey,
        request: &Request<'_>,
        now_ms: u64,
    ) -> Action {
        let facts = request_facts(request.method, request.headers);
        let directive = request_directs(&facts.cache_control, facts.pragma_no_cache, 0, 0);
        if directive == RequestDirective::Bypass {
            worker.env.metrics.inc(Stat::Bypass);
            return Action::Continue;
        }
        let found = self.find(
            &mut worker.borrow_mut(),
            section,
            &key,
            request,
            &facts,
            now_ms,
        );
        let (fwd, stale) = match found {
            Lookup::Hit {
                entry,
                age,
                not_modified,
                outcome,
                range,
            } => {
                self.observe(outcome);
                let status = CacheStatus {
                    hit: true,
                    ttl: Some(ttl_left(&entry, age)),
                    key: section.debug.then_some(key.primary.as_str()),
                    detail: (outcome == Outcome::Stale).then_some("stale-while-revalidate"),
                    ..CacheStatus::default()
                };
                let name = Rc::clone(&worker.env.registry);
                let status = status.render(&name.settings().cache_status_name);
                let answer = EntryAnswer {
                    age,
                    not_modified,
                    head: request.method == "HEAD",
                    cache_status: &status,
                    request_headers: request.headers,
                    range: &range,
                };
                return self.serve(&entry, &answer);
            }
            Lookup::Miss { fwd, stale } => (fwd, stale),
        };
        let pending = Box::new(Pending {
            service_index: request.service.index,
            key,
            request_headers: owned(request.headers),
            request: facts,
            request_time_ms: now_ms,
            generations: Rc::clone(&worker.borrow().tiers.generations),
            fwd,
            head: request.method == "HEAD",
            range: RangeRequest::default(),
        });
        let mut pending = match self.coalesce(&mut worker.borrow_mut(), section, pending) {
            Ok(paused) => return paused,
            Err(pending) => pending,
        };
        self.observe(Outcome::Miss);
        match stale {
            Some(entry) => {
                let pending = Pending {
                    fwd: Forward::Stale,
                    ..*pending
                };
                self.revalidate(worker, (*entry).clone(), pending, section, request)
            }
            None => {
                self.fetch_whole(&mut pending, request);
                let pending = match self.l3_lookup(worker, pending) {
                    Ok(paused) => return paused,
                    Err(pending) => pending,
                };
                worker.env.metrics.inc(Stat::Miss);
                self.cache = CacheFlow::Forwarded(pending);
                Action::Continue
            }
        }
    }

    /// L1 first (no shared data on this path), then L2 — also when L1 held an entry that is
    /// purged or of another variant: another worker may have stored a current one.
    fn find(
        &mut self,
        w: &mut Worker,
        section: &CacheSection,
        key: &CacheKey,
        request: &Request<'_>,
        facts: &RequestFacts,
        now_ms: u64,
    ) -> Lookup {
        let (mut fwd, mut stale) = (Forward::UriMiss, None);
        let range = RangeRequest::of(request.method, request.headers);
        for tier in [Stat::L1Hit, Stat::L2Hit] {
            let (miss, found) = if tier == Stat::L1Hit {
                let found = w
                    .tiers
                    .l1_find(&w.env, &key.primary, request.headers, now_ms / 1000);
                (Stat::L1Miss, found)
            } else {
                (Stat::L2Miss, w.tiers.l2_find(&w.env, key, request.headers))
            };
            let entry = match found {
                // A partial entry (a stored 206) answers only the ranges it holds.
                Found::Entry(entry) if range.answerable_by(&entry) => entry,
                other => {
                    match other {
                        Found::Corrupt => w.env.metrics.inc(Stat::Corrupt),
                        Found::OtherVariant => fwd = Forward::VaryMiss,
                        _ => {}
                    }
                    w.env.metrics.inc(miss);
                    continue;
                }
            };
            match evaluate_hit(&entry, request.headers, facts, &w.tiers.generations, now_ms) {
                decision @ (HitDecision::Serve { age, not_modified }
                | HitDecision::ServeStale { age, not_modified }) => {
                    let mut hit = (tier, entry, age, not_modified);
                    let mut stale = matches!(decision, HitDecision::ServeStale { .. });
                    if stale && tier == Stat::L1Hit {
                        // Another worker may have refreshed it: its fresh copy in L2 beats
                        // serving stale here (and refreshing it a second time).
                        let held = &hit.1;
                        if let Some(fresh) =
                            fresh_in_l2(w, key, held, request.headers, facts, now_ms)
                        {
                            hit = fresh;
                            stale = false;
                        }
                    }
                    let (tier, entry, age, not_modified) = hit;
                    w.env.metrics.inc_deferred(tier);
                    if tier == Stat::L2Hit {
                        w.tiers
                            .insert_l1(&w.env, (*entry).clone(), key.tenant.as_deref());
                    }
                    // The first hit that takes a coding makes this worker's encoded bodies.
                    let tenant = key.tenant.as_deref();
                    let (entry, not_modified) =
                        match w.tiers.encode_for(&w.env, &entry, request.headers, tenant) {
                            Some(encoded) => {
                                let not_modified = entry_not_modified(&encoded, request.headers);
                                (encoded, not_modified)
                            }
                            None => (entry, not_modified),
                        };
                    // A stale answer (stale-while-revalidate) always refreshes in the background;
                    // a fresh one when it is hot and about to expire (refresh-ahead).
                    let refresh = if stale {
                        w.env.metrics.inc(Stat::StaleServed);
                        true
                    } else {
                        // Hits are counted only where refresh-ahead reads them.
                        section.refresh_ahead.as_ref().is_some_and(|ahead| {
                            let hits = w.tiers.l1.record_hit(&entry.key);
                            ahead.due(hits, entry.freshness_lifetime, age)
                        })
                    };
                    if refresh {
                        let job = refresh_job(section, key, request, facts, Rc::clone(&entry));
                        let limit = w.env.registry.limits().refresh_queue;
                        w.refreshes.queue(job, limit);
                    }
                    let outcome = match (stale, tier) {
                        (true, _) => Outcome::Stale,
                        (false, Stat::L1Hit) => Outcome::HitL1,
                        _ => Outcome::HitL2,
                    };
                    return Lookup::Hit {
                        entry,
                        age,
                        not_modified,
                        outcome,
                        range: range.clone(),
                    };
                }
                HitDecision::Revalidate => {
                    // Another worker may already have stored a fresh copy in L2.
                    if stale.is_none() {
                        stale = Some(entry);
                    }
                    fwd = Forward::Stale;
                }
                HitDecision::Miss(kind) => {
                    w.env.metrics.inc(miss);
                    if tier == Stat::L1Hit {
                        w.tiers.remove_l1(&w.env, &entry.key);
                    }
                    fwd = match kind {
                        MissKind::VaryMismatch => Forward::VaryMiss,
                        MissKind::Purged => Forward::Miss,
                    };
                }
            }
        }
        Lookup::Miss { fwd, stale }
    }

    /// Going to the origin: one request per key, across workers, when the service coalesces.
    /// `Ok(Pause)` when this request waits for another one; `Err(pending)` when it goes on
    /// (as the leader, or alone).
    fn coalesce(
        &mut self,
        w: &mut Worker,
        section: &CacheSection,
        pending: Box<Pending>,
    ) -> Result<Action, Box<Pending>> {
        // A waiter keeps two copies of its request headers (to answer it, to go on as leader).
        let held = 2 * header_bytes(&pending.request_headers);
        if !section.coalesce || pending.head || !self.hold_paused(w, held) {
            return Err(pending);
        }
        let wait = || WaitInfo {
            head: pending.head,
            request_headers: pending.request_headers.clone(),
            request: pending.request.clone(),
            debug: section.debug,
            lease_ms: section.lease_ms,
        };
        let now_ms = now_millis();
        let key = &pending.key.primary;
        let coalescer = &mut w.coalescing.coalescer;
        let waits = match coalescer.join(key, self.context_id, now_ms, wait()) {
            Join::Wait => true,
            Join::Lead => {
                let acquired = w.leases.acquire(key, now_ms, section.lease_ms);
                let coalescer = &mut w.coalescing.coalescer;
                if let Acquire::HeldElsewhere { .. } = acquired {
                    // Another worker fetches it: wait for its store (the tick polls L2).
                    let joined = coalescer.wait_remote(key, self.context_id, now_ms, wait());
                    if joined != Join::Wait {
                        return Err(pending);
                    }
                    true
                } else {
                    self.group = Some(key.clone());
                    false
                }
            }
            Join::Full => return Err(pending),
        };
        if !waits {
            return Err(pending);
        }
        self.group = Some(key.clone());
        self.cache = CacheFlow::Forwarded(pending);
        self.observe(Outcome::Collapsed);
        Ok(Action::Pause)
    }

    /// Answers this stream from a stored entry.
    pub(super) fn serve(&mut self, entry: &Entry, answer: &EntryAnswer<'_>) -> Action {
        if answer.not_modified {
            if let Some(worker) = &self.worker {
                worker.env.metrics.inc(Stat::NotModified);
            }
        }
        send_entry(entry, answer);
        self.answered = true;
        Action::Pause
    }
}

/// A fresh entry for `key` in L2 that answers the request whole, as an L2 hit, newer than the
/// `stale` one L1 holds.
fn fresh_in_l2(
    w: &mut Worker,
    key: &CacheKey,
    stale: &Entry,
    request_headers: &RequestHeaders,
    facts: &RequestFacts,
    now_ms: u64,
) -> Option<(Stat, Rc<Entry>, u64, bool)> {
    // Usually L2 holds the same entry: its arrival time tells, without decoding its body. (A
    // variants index there is followed in full.)
    if stale.key == key.primary
        && w.tiers
            .l2_stamp(&w.env, &key.primary)
            .is_none_or(|(status, stored_ms)| {
                status != INDEX_STATUS && stored_ms <= stale.response_ms()
            })
    {
        return None;
    }
    let Found::Entry(entry) = w.tiers.l2_find(&w.env, key, request_headers) else {
        return None;
    };
    if entry.status == 206 {
        return None;
    }
    match evaluate_hit(&entry, request_headers, facts, &w.tiers.generations, now_ms) {
        HitDecision::Serve { age, not_modified } => Some((Stat::L2Hit, entry, age, not_modified)),
        _ => None,
    }
}

/// A background refresh of `entry`, sent with its validators and the request's keyed headers.
fn refresh_job(
    section: &CacheSection,
    key: &CacheKey,
    request: &Request<'_>,
    facts: &RequestFacts,
    entry: Rc<Entry>,
) -> RefreshJob {
    let unkeyed: Vec<&str> = unkeyed_headers_present(section, request.headers).collect();
    RefreshJob {
        key: key.clone(),
        service_index: request.service.index,
        call_headers: refresh_request_headers(
            request.headers,
            &unkeyed,
            (SERVICE_HEADER, &request.service.name),
            Some(&entry),
        ),
        request_headers: owned(request.headers),
        request: facts.clone(),
        entry,
        lease_ms: section.lease_ms,
        request_time_ms: 0,
        generations: Rc::default(),
    }
}

//! The request side of caching: where a stream stands with the cache (`CacheFlow`), the
//! lookup in L1 then L2, coalescing misses per key across workers, and answering from a
//! stored entry.

use std::cell::RefCell;
use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, MapType};

use super::capture::{Capture, Invalidation};
use super::request::{header_bytes, Request};
use super::revalidation::Revalidation;
use super::EdgeHttp;
use crate::plugin::coalescing::WaitInfo;
use crate::plugin::host::{now_millis, now_secs, SERVICE_HEADER};
use crate::plugin::metrics::Stat;
use crate::plugin::refresh::RefreshJob;
use crate::plugin::reply::send_entry;
use crate::plugin::tiers::L2Read;
use crate::plugin::worker::Worker;
use crate::policy::cache::coalesce::Join;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    evaluate_hit, hit_headers, refresh_request_headers, request_facts, timing, ttl_left,
    CacheStatus, HitDecision, MissKind,
};
use crate::policy::cache::freshness::{
    current_age, request_directs, RequestDirective, RequestFacts,
};
use crate::policy::cache::generations::Generations;
use crate::policy::cache::key::{unkeyed_headers_present, CacheKey};
use crate::policy::cache::lease::Acquire;
use crate::policy::monitor::outcome::Outcome;
use crate::policy::rate_limit::degrade::may_serve_while_limited;
use crate::policy::CacheSection;

/// Where a stream stands with the cache. Each phase holds what its next step needs (boxed:
/// the stream moves its phase on every response, and most streams never leave `Idle`).
pub(super) enum CacheFlow {
    /// Nothing to do for the cache (not cached, answered here, or done).
    Idle,
    /// On its way to the origin (or waiting for a leader): its response may be stored.
    Forwarded(Box<Pending>),
    /// Paused while the filter asks the origin whether a stale entry still holds.
    Revalidating(Box<Revalidation>),
    /// The response is storable: its body is copied as it streams to the client.
    Capturing(Box<Capture>),
}

impl CacheFlow {
    /// The current phase; the stream is `Idle` until a new one is set.
    pub fn take(&mut self) -> Self {
        std::mem::replace(self, Self::Idle)
    }
}

/// A cache miss on its way to the origin: what storing its response needs.
pub(super) struct Pending {
    pub service_index: usize,
    pub key: CacheKey,
    pub request_headers: Vec<(String, String)>,
    pub request: RequestFacts,
    pub request_time: u64,
    /// The purge generations when the request arrived: a response fetched across a purge of
    /// its service, URL, tenant or tags is not stored.
    pub generations: Rc<Generations>,
    /// Why the cache forwarded the request (`Cache-Status: fwd=`).
    pub fwd: &'static str,
    pub head: bool,
}

/// What the tiers hold for a request.
enum Lookup {
    /// An entry that answers it (`outcome`: which tier, or stale).
    Hit {
        entry: Rc<Entry>,
        age: u64,
        not_modified: bool,
        outcome: Outcome,
    },
    /// Nothing that answers it; `stale`: an entry the origin may revalidate.
    Miss {
        fwd: &'static str,
        stale: Option<Rc<Entry>>,
    },
}

impl EdgeHttp {
    /// Caching for a request: lookup for GET and HEAD, invalidation for unsafe methods.
    pub(super) fn cache_request(
        &mut self,
        worker: &Rc<RefCell<Worker>>,
        request: &Request<'_>,
    ) -> Action {
        let Some(section) = &request.service.cache else {
            return Action::Continue;
        };
        match (request.method, request.cache_key(section)) {
            ("GET" | "HEAD", Ok(key)) => {
                self.observe_tenant(key.tenant.as_deref());
                // What the origin answers a cacheable request may only depend on what is keyed.
                for name in unkeyed_headers_present(section, request.headers) {
                    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
                }
                self.lookup(worker, section, key, request)
            }
            ("POST" | "PUT" | "PATCH" | "DELETE", Ok(key)) => {
                self.invalidation = Some(Invalidation {
                    urls: vec![key.url],
                    scheme: request.scheme.to_string(),
                    authority: request.authority.to_string(),
                });
                Action::Continue
            }
            (_, Err(_)) => {
                worker.borrow().env.metrics.inc(Stat::Bypass);
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn lookup(
        &mut self,
        worker: &Rc<RefCell<Worker>>,
        section: &CacheSection,
        key: CacheKey,
        request: &Request<'_>,
    ) -> Action {
        let facts = request_facts(request.method, request.headers);
        let directive = request_directs(&facts.cache_control, facts.pragma_no_cache, 0, 0);
        if directive == RequestDirective::Bypass {
            worker.borrow().env.metrics.inc(Stat::Bypass);
            return Action::Continue;
        }
        let now = now_secs();
        let found = self.find(
            &mut worker.borrow_mut(),
            section,
            &key,
            request,
            &facts,
            now,
        );
        let (fwd, stale) = match found {
            Lookup::Hit {
                entry,
                age,
                not_modified,
                outcome,
            } => {
                self.observe(outcome);
                let status = CacheStatus {
                    hit: true,
                    ttl: Some(ttl_left(&entry, age)),
                    key: section.debug.then_some(key.primary.as_str()),
                    detail: (outcome == Outcome::Stale).then_some("stale-while-revalidate"),
                    ..CacheStatus::default()
                };
                let name = Rc::clone(&worker.borrow().env.registry);
                let status = status.render(&name.settings().cache_status_name);
                return self.serve(&entry, age, not_modified, request.method == "HEAD", &status);
            }
            Lookup::Miss { fwd, stale } => (fwd, stale),
        };
        let pending = Box::new(Pending {
            service_index: request.service.index,
            key,
            request_headers: request.headers.to_vec(),
            request: facts,
            request_time: now,
            generations: Rc::clone(&worker.borrow().tiers.generations),
            fwd,
            head: request.method == "HEAD",
        });
        let pending = match self.coalesce(&mut worker.borrow_mut(), section, pending) {
            Ok(paused) => return paused,
            Err(pending) => pending,
        };
        self.observe(Outcome::Miss);
        match stale {
            Some(entry) => {
                let pending = Pending {
                    fwd: "stale",
                    ..*pending
                };
                self.revalidate(worker, (*entry).clone(), pending, section, request)
            }
            None => {
                worker.borrow().env.metrics.inc(Stat::Miss);
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
        now: u64,
    ) -> Lookup {
        let (mut fwd, mut stale) = ("uri-miss", None);
        for tier in [Stat::L1Hit, Stat::L2Hit] {
            let (miss, entry) = if tier == Stat::L1Hit {
                (Stat::L1Miss, w.tiers.l1_get(&w.env, &key.primary, now))
            } else {
                let from_l2 = match w.tiers.l2_get(&w.env, &key.primary) {
                    L2Read::Found(entry) => Some(Rc::new(entry)),
                    L2Read::Corrupt => {
                        w.env.metrics.inc(Stat::Corrupt);
                        None
                    }
                    L2Read::Absent => None,
                };
                (Stat::L2Miss, from_l2)
            };
            let Some(entry) = entry else {
                w.env.metrics.inc(miss);
                continue;
            };
            match evaluate_hit(&entry, request.headers, facts, &w.tiers.generations, now) {
                decision @ (HitDecision::Serve { age, not_modified }
                | HitDecision::ServeStale { age, not_modified }) => {
                    let stale = matches!(decision, HitDecision::ServeStale { .. });
                    w.env.metrics.inc(tier);
                    if tier == Stat::L2Hit {
                        w.tiers
                            .insert_l1(&w.env, (*entry).clone(), key.tenant.as_deref());
                    }
                    // A stale answer (stale-while-revalidate) always refreshes in the background;
                    // a fresh one when it is hot and about to expire (refresh-ahead).
                    let refresh = if stale {
                        w.env.metrics.inc(Stat::StaleServed);
                        true
                    } else {
                        let hits = w.tiers.l1.record_hit(&key.primary);
                        section
                            .refresh_ahead
                            .as_ref()
                            .is_some_and(|ahead| ahead.due(hits, entry.freshness_lifetime, age))
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
                    };
                }
                HitDecision::Revalidate => {
                    // Another worker may already have stored a fresh copy in L2.
                    if stale.is_none() {
                        stale = Some(entry);
                    }
                    fwd = "stale";
                }
                HitDecision::Miss(kind) => {
                    w.env.metrics.inc(miss);
                    if tier == Stat::L1Hit {
                        w.tiers.remove_l1(&w.env, &key.primary);
                    }
                    fwd = match kind {
                        MissKind::VaryMismatch => "vary-miss",
                        MissKind::Purged => "miss",
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
    pub(super) fn serve(
        &mut self,
        entry: &Entry,
        age: u64,
        not_modified: bool,
        head: bool,
        status: &str,
    ) -> Action {
        if not_modified {
            if let Some(worker) = &self.worker {
                worker.borrow().env.metrics.inc(Stat::NotModified);
            }
        }
        send_entry(entry, age, not_modified, head, status);
        self.answered = true;
        Action::Pause
    }

    /// Answers a GET from a stored entry when the origin must not be asked (a rate-limited
    /// tenant, an open breaker). `status` gives the Cache-Status member; its `ttl` is filled in.
    /// `max_stale_s`: the entry must be usable without the origin, stale by at most this many
    /// seconds (a limited tenant); `None`: any stored entry, fresh or stale (an open breaker).
    pub(super) fn serve_stored(
        &mut self,
        worker: &Rc<RefCell<Worker>>,
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
        let now = now_secs();
        let found = {
            let w = &mut *worker.borrow_mut();
            stored_answer(w, request, &key, now, max_stale_s).map(|entry| {
                w.env.metrics.inc(counter);
                let name = Rc::clone(&w.env.registry);
                (entry, name)
            })
        };
        let Some((entry, registry)) = found else {
            return false;
        };
        let age = current_age(&timing(&entry), now);
        let cache_status = CacheStatus {
            ttl: Some(ttl_left(&entry, age)),
            ..status
        }
        .render(&registry.settings().cache_status_name);
        let mut headers = hit_headers(&entry, age, &cache_status);
        headers.extend(extra_headers.iter().cloned());
        let body = (request.method != "HEAD").then_some(entry.body.as_slice());
        self.reply(entry.status, &headers, body);
        true
    }
}

/// A stored entry that may answer `request` without the origin (see
/// [`EdgeHttp::serve_stored`]).
fn stored_answer(
    w: &mut Worker,
    request: &Request<'_>,
    key: &CacheKey,
    now: u64,
    max_stale_s: Option<u64>,
) -> Option<Rc<Entry>> {
    let entry = w.tiers.l1_get(&w.env, &key.primary, now).or_else(|| {
        match w.tiers.l2_get(&w.env, &key.primary) {
            L2Read::Found(entry) => Some(Rc::new(entry)),
            _ => None,
        }
    })?;
    let facts = request_facts(request.method, request.headers);
    let generations = &w.tiers.generations;
    let usable = match max_stale_s {
        Some(bound) => {
            may_serve_while_limited(&entry, request.headers, &facts, generations, now, bound)
        }
        None => !matches!(
            evaluate_hit(&entry, request.headers, &facts, generations, now),
            HitDecision::Miss(_)
        ),
    };
    usable.then_some(entry)
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
        request_headers: request.headers.to_vec(),
        request: facts.clone(),
        entry,
        lease_ms: section.lease_ms,
        request_time: 0,
        generations: Rc::default(),
    }
}

//! The response side of caching: deciding whether the origin's response is stored, copying
//! its body as it streams to the client, storing it, answering or releasing the coalescing
//! group this stream leads, and invalidating cached URLs after a successful unsafe request.

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::state::{CacheFlow, Capture, EdgeHttp, Invalidation, Pending};
use crate::plugin::admin;
use crate::plugin::coalescing::{defer_waiters, resume_as_leader, settle_waiters, Outcome};
use crate::plugin::host::{body, now_millis};
use crate::plugin::metrics::Stat;
use crate::plugin::tiers::Kept;
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::cache::capture::capture_decision;
use crate::policy::cache::exchange::{
    append_cache_status, response_facts_for, CacheStatus, Forward,
};
use crate::policy::cache::freshness::{storability, Storable};
use crate::policy::cache::generations::Dimension;
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::post_reuse::{reusable_for_get, same_origin_path};
use crate::policy::cache::supersede::outdates_stored;
use crate::policy::header_list::{header, header_joined};

impl EdgeHttp {
    /// The origin's response headers to a forwarded request: stored or not, and said so in
    /// `Cache-Status`.
    pub(super) fn on_cache_response(
        &mut self,
        worker: &WorkerRef,
        status: u16,
        response: Vec<(String, String)>,
        end_of_stream: bool,
    ) {
        let CacheFlow::Forwarded(pending) = self.cache.take() else {
            return;
        };
        self.start_cut(&pending.range, status, &response);
        let registry = Rc::clone(&worker.env.registry);
        let Some(section) = registry.cache_at(pending.service_index) else {
            return;
        };
        let now_ms = now_millis();
        let now = now_ms / 1000;
        let storable = !pending.head && {
            let targeted = section.targeted_cache_control.as_deref();
            let facts = response_facts_for(status, &response, targeted);
            let storable = storability(&pending.request, &facts, &section.store_policy(), now);
            matches!(storable, Storable::Yes { .. })
        };
        let limit = usize::try_from(registry.limits().max_entry_bytes).unwrap_or(usize::MAX);
        let length =
            header(&response, "content-length").and_then(|l| l.trim().parse::<usize>().ok());
        let decision = capture_decision(storable, length, limit, end_of_stream);
        if decision.too_large {
            worker.env.metrics.inc(Stat::TooLarge);
        }
        let capture = decision.capture;
        let member = CacheStatus {
            fwd: Some(pending.fwd),
            stored: decision.stored,
            key: section.debug.then_some(pending.key.primary.as_str()),
            ..CacheStatus::default()
        }
        .render(&registry.settings().cache_status_name);
        let value =
            append_cache_status(header_joined(&response, "cache-status").as_deref(), &member);
        let _ =
            hostcalls::set_map_value(MapType::HttpResponseHeaders, "cache-status", Some(&value));
        if !capture {
            // A stale entry this request found is outdated by a response that is not stored.
            if pending.fwd == Forward::Stale
                && outdates_stored(
                    &pending.request,
                    status,
                    &response,
                    &section.store_policy(),
                    now,
                )
            {
                self.outdate_stored(worker, &pending.key);
            }
            // Nothing will be stored: whoever waits for this key goes to the origin itself.
            self.settle_group_later(Outcome::Release);
            return;
        }
        self.cache = CacheFlow::Capturing(Box::new(Capture {
            pending: *pending,
            status,
            response_headers: response,
            response_time_ms: now_ms,
            body: Vec::new(),
            limit,
        }));
        if end_of_stream {
            self.finish_capture();
        }
    }

    /// A chunk of a captured response: it passes on as it comes; a bounded copy is kept.
    pub(super) fn capture_body(&mut self, body_size: usize, end_of_stream: bool) {
        let CacheFlow::Capturing(capture) = &mut self.cache else {
            return;
        };
        if body_size > 0 {
            let chunk = body(BufferType::HttpResponseBody, body_size);
            let worker = self.worker.clone();
            let within_budget = worker
                .as_ref()
                .is_some_and(|w| w.borrow_mut().budgets.reserve_capture(chunk.len()));
            if !within_budget || capture.body.len().saturating_add(chunk.len()) > capture.limit {
                let held = capture.body.len() + if within_budget { chunk.len() } else { 0 };
                self.cache = CacheFlow::Idle;
                if let Some(worker) = &worker {
                    let w = &mut *worker.borrow_mut();
                    w.budgets.release_capture(held);
                    w.env.metrics.inc(Stat::TooLarge);
                }
                self.settle_group_later(Outcome::Release);
                return;
            }
            capture.body.extend_from_slice(&chunk);
        }
        if end_of_stream {
            self.finish_capture();
        }
    }

    /// The captured response is complete: store it and answer the group's waiters with it.
    pub(super) fn finish_capture(&mut self) {
        let (CacheFlow::Capturing(capture), Some(worker)) =
            (self.cache.take(), self.worker.clone())
        else {
            return;
        };
        let registry = Rc::clone(&worker.env.registry);
        let Some(section) = registry.cache_at(capture.pending.service_index) else {
            return;
        };
        let pending = &capture.pending;
        let kept = {
            let w = &mut *worker.borrow_mut();
            w.budgets.release_capture(capture.body.len());
            let response = (
                capture.status,
                capture.response_headers.as_slice(),
                capture.body,
            );
            let fetched = pending.fetched(response, capture.response_time_ms, None);
            w.tiers.store_fetched(&w.env, section, fetched)
        };
        match &kept {
            Kept::Stored(entry) => self.settle_group_later(Outcome::Entry(entry)),
            // Not storable, or a purge of this entry happened while it was on its way (it may
            // be what was purged): the waiters go to the origin.
            Kept::Unkept(_) | Kept::NotStorable => self.settle_group_later(Outcome::Release),
        }
    }

    /// The stream ends: a capture in progress gives its bytes back.
    pub(super) fn capture_done(&mut self, worker: &mut Worker) {
        if let CacheFlow::Capturing(capture) = self.cache.take() {
            worker.budgets.release_capture(capture.body.len());
        }
    }

    /// The origin answered a key whose older entry this stream found with a response that is
    /// not stored (see [`outdates_stored`]): the older entry goes out of use on every worker.
    pub(super) fn outdate_stored(&self, worker: &WorkerRef, key: &CacheKey) {
        let w = &mut *worker.borrow_mut();
        w.tiers.outdate(&w.env, key);
    }

    /// After a successful unsafe request: invalidates its URL, and its `Location` and
    /// `Content-Location` when they point at the same origin.
    pub(super) fn invalidate_after_success(&mut self, worker: &WorkerRef, status: u16) {
        let Some(Invalidation {
            mut urls,
            scheme,
            authority,
            post,
        }) = self.invalidation.take()
        else {
            return;
        };
        if !(200..400).contains(&status) {
            return;
        }
        let w = &mut *worker.borrow_mut();
        let response = crate::plugin::host::headers(MapType::HttpResponseHeaders);
        let reuse = post.filter(|post| {
            let targeted = w
                .env
                .registry
                .cache_at(post.pending.service_index)
                .and_then(|section| section.targeted_cache_control.as_deref());
            let target = (scheme.as_str(), authority.as_str(), post.path.as_str());
            reusable_for_get(status, &response, targeted, target)
        });
        for name in ["location", "content-location"] {
            let target = header(&response, name)
                .and_then(|value| same_origin_path(value, &scheme, &authority));
            if let Some(url) = target
                .and_then(|path| admin::cache_url(&w.env.registry, &scheme, &authority, &path))
            {
                urls.push(url);
            }
        }
        for url in &urls {
            if w.tiers.purge(Dimension::Url(url)) {
                w.env.metrics.inc(Stat::Invalidation);
            }
        }
        // Stored (by `on_cache_response`, as a GET's response) under the generations after
        // these purges.
        if let Some(post) = reuse {
            let pending = Pending {
                generations: Rc::clone(&w.tiers.generations),
                ..post.pending
            };
            self.cache = CacheFlow::Forwarded(Box::new(pending));
        }
    }

    /// This stream led a coalescing group and is done: answer or release its waiters.
    /// Not from a filter callback (see [`settle_waiters`]).
    pub(super) fn settle_group(&mut self, outcome: Outcome<'_>) {
        self.end_group(outcome, false);
    }

    /// [`Self::settle_group`] from a response callback: answers go out from the root context.
    fn settle_group_later(&mut self, outcome: Outcome<'_>) {
        self.end_group(outcome, true);
    }

    fn end_group(&mut self, outcome: Outcome<'_>, from_filter_callback: bool) {
        let (Some(key), Some(worker)) = (self.group.take(), self.worker.clone()) else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        if !w.coalescing.coalescer.is_leader(&key, self.context_id) {
            return;
        }
        let answering = (&*w.env, &w.tiers, &mut w.replies);
        let (coalescing, current) = (&mut w.coalescing, self.context_id);
        if from_filter_callback {
            defer_waiters(answering, coalescing, &key, outcome, current);
        } else {
            settle_waiters(answering, coalescing, &key, outcome, current);
        }
        w.leases.release(&key);
    }

    /// The stream ends: a leader that did not settle its group (client gone, stream reset)
    /// hands it to the oldest waiter, which goes to the origin itself.
    pub(super) fn group_done(&mut self, worker: &mut Worker) {
        if self.group.is_none() {
            return;
        }
        let coalescer = &mut worker.coalescing.coalescer;
        if let Some(key) = coalescer.leave(self.context_id) {
            match coalescer.promote(&key) {
                Some(next) => resume_as_leader(next.context_id, self.context_id),
                None => worker.leases.release(&key),
            }
        }
    }
}

//! A stale entry the stream revalidates itself, with the entry's validators, while the
//! client's request waits: a `304` refreshes it, a new response replaces it, an origin error
//! within its stale-if-error window lets it stand in.

use std::rc::Rc;
use std::time::Duration;

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, BufferType, MapType};

use super::request::Request;
use super::state::{CacheFlow, EdgeHttp, Pending, Revalidation};
use crate::plugin::coalescing::Outcome;
use crate::plugin::host::{body, call, headers, now_millis, status_of, SERVICE_HEADER};
use crate::plugin::metrics::Stat;
use crate::plugin::reply::EntryAnswer;
use crate::plugin::tiers::Kept;
use crate::plugin::worker::WorkerRef;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    append_cache_status, is_origin_error, may_serve_if_error, refresh_request_headers,
    relayed_headers, timing, ttl_left, CacheStatus, Forward,
};
use crate::policy::cache::freshness::current_age;
use crate::policy::cache::key::unkeyed_headers_present;
use crate::policy::cache::range::RangeRequest;
use crate::policy::cache::supersede::outdates_stored;
use crate::policy::header_list::{borrowed, header_joined};
use crate::policy::monitor::outcome::Outcome as Observed;
use crate::policy::CacheSection;

/// How long a revalidation request to the origin may take.
pub(super) const REVALIDATION_TIMEOUT: Duration = Duration::from_secs(15);

impl EdgeHttp {
    /// Asks the origin whether a stale entry still holds, with the entry's validators.
    pub(super) fn revalidate(
        &mut self,
        worker: &WorkerRef,
        entry: Entry,
        pending: Pending,
        section: &CacheSection,
        request: &Request<'_>,
    ) -> Action {
        let registry = Rc::clone(&worker.env.registry);
        let cluster = &registry.settings().upstream_cluster;
        self.observe_forwarded();
        let unkeyed: Vec<&str> = unkeyed_headers_present(section, request.headers).collect();
        let service = (SERVICE_HEADER, request.service.name.as_str());
        let call_headers =
            refresh_request_headers(request.headers, &unkeyed, service, Some(&entry));
        match call(cluster, &call_headers, None, &[], REVALIDATION_TIMEOUT) {
            Ok(_) => {
                self.cache = CacheFlow::Revalidating(Box::new(Revalidation { pending, entry }));
                Action::Pause
            }
            Err(status) => {
                warn!(
                    "revalidation via cluster {cluster:?} refused ({status:?}); forwarding instead"
                );
                self.cache = CacheFlow::Forwarded(Box::new(pending));
                Action::Continue
            }
        }
    }

    /// The origin answered (or failed) the revalidation this stream sent.
    pub(super) fn on_revalidated(&mut self, revalidation: Box<Revalidation>, body_size: usize) {
        let Some(worker) = self.worker.clone() else {
            return;
        };
        let registry = Rc::clone(&worker.env.registry);
        let Some(section) = registry.cache_at(revalidation.pending.service_index) else {
            let _ = hostcalls::resume_http_request();
            return;
        };
        let name = &registry.settings().cache_status_name;
        let response = headers(MapType::HttpCallResponseHeaders);
        let status = status_of(&response);
        let now_ms = now_millis();
        let now = now_ms / 1000;
        self.observe_origin_answer();
        let Revalidation {
            pending,
            entry: old,
        } = *revalidation;
        let age = current_age(&timing(&old), now_ms);
        let key = section.debug.then_some(pending.key.primary.as_str());
        // The origin failed: a stale entry within its stale-if-error window stands in.
        if status.is_none_or(is_origin_error) && may_serve_if_error(&old, age) {
            worker.env.metrics.inc(Stat::StaleIfError);
            self.observe(Observed::Stale);
            let cache_status = CacheStatus {
                fwd: Some(Forward::Stale),
                fwd_status: status,
                ttl: Some(ttl_left(&old, age)),
                detail: Some("stale-if-error"),
                key,
                ..CacheStatus::default()
            }
            .render(name);
            let range = RangeRequest::of(&pending.request.method, &pending.request_headers);
            let request_headers = borrowed(&pending.request_headers);
            let asked = (request_headers.as_slice(), pending.head);
            let answer = EntryAnswer::for_request(&old, asked, &range, age, &cache_status);
            self.serve(&old, &answer);
            self.settle_group(Outcome::StaleIfError(&old));
            return;
        }
        let Some(status) = status else {
            // Unreachable, and the entry may not stand in: the client's own request goes to the
            // origin (and gets Envoy's 503/504 if it is down).
            self.settle_group(Outcome::Release);
            self.cache = CacheFlow::Forwarded(Box::new(pending));
            let _ = hostcalls::resume_http_request();
            return;
        };
        let body = body(BufferType::HttpCallResponseBody, body_size);
        if status == 304 {
            worker.env.metrics.inc(Stat::Revalidated);
        }
        let answer = (status, response.as_slice(), body.clone());
        let fetched = pending.fetched(answer, now_ms, Some(&old));
        let kept = {
            let w = &mut *worker.borrow_mut();
            let kept = w.tiers.store_fetched(&w.env, section, fetched);
            if matches!(kept, Kept::NotStorable) && status == 304 {
                // A 304 whose headers forbid storing: the stored body is still the valid answer.
                w.tiers.remove_l1(&w.env, &old.key);
            }
            kept
        };
        let policy = section.store_policy();
        if matches!(kept, Kept::NotStorable)
            && outdates_stored(&pending.request, status, &response, &policy, now)
        {
            self.outdate_stored(&worker, &pending.key);
        }
        let (entry, stored) = match kept {
            Kept::Stored(entry) => (Some(entry), true),
            Kept::NotStorable if status == 304 => (Some(old), false),
            // Fetched across a purge: answer with it, but do not keep it.
            Kept::Unkept(entry) => (Some(entry), false),
            Kept::NotStorable => (None, false),
        };
        let forwarded = CacheStatus {
            fwd: Some(Forward::Stale),
            fwd_status: Some(status),
            key,
            ..CacheStatus::default()
        };
        let range = RangeRequest::of(&pending.request.method, &pending.request_headers);
        match &entry {
            Some(entry) if range.answerable_by(entry) => {
                let age = current_age(&timing(entry), now_ms);
                let cache_status = CacheStatus {
                    stored,
                    ttl: Some(ttl_left(entry, age)),
                    ..forwarded
                }
                .render(name);
                let request_headers = borrowed(&pending.request_headers);
                let asked = (request_headers.as_slice(), pending.head);
                let answer = EntryAnswer::for_request(entry, asked, &range, age, &cache_status);
                self.serve(entry, &answer);
            }
            _ => {
                // Relay the origin's answer as it is (nothing stored, or a partial entry that
                // does not hold this request's range).
                let member = forwarded.render(name);
                let mut relayed = relayed_headers(&response);
                let existing = header_joined(&relayed, "cache-status");
                relayed.retain(|(n, _)| !n.eq_ignore_ascii_case("cache-status"));
                relayed.push((
                    "cache-status".to_string(),
                    append_cache_status(existing.as_deref(), &member),
                ));
                self.reply(status, &relayed, (!pending.head).then_some(body.as_slice()));
            }
        }
        self.settle_group(entry.as_ref().map_or(Outcome::Release, Outcome::Entry));
    }
}

//! The request as the stream reads it once, and what monitoring notes of it until `on_log`.

use super::state::{EdgeHttp, Observed};
use crate::plugin::host::{now_millis, now_nanos};
use crate::plugin::worker::WorkerRef;
use crate::policy::cache::key::{cache_key, CacheKey, KeyInput};
use crate::policy::header_list::{HeaderPair, RequestHeaders};
use crate::policy::monitor::outcome::{settle, Outcome};
use crate::policy::{CacheSection, Registry, RequestAttributes, Service};

/// The request attributes the filter reads once per request.
pub(super) struct Request<'a> {
    pub headers: &'a RequestHeaders<'a>,
    /// Header names whose value was not UTF-8 (lossy in `headers`).
    pub non_utf8: &'a [&'a str],
    pub method: &'a str,
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    /// The service the request matched (the default service if none).
    pub service: &'a Service,
}

impl<'a> Request<'a> {
    pub fn new(
        registry: &'a Registry,
        headers: &'a RequestHeaders<'a>,
        non_utf8: &'a [&'a str],
    ) -> Self {
        // The pseudo-headers in one pass (Envoy gives them lowercase, first).
        let (mut method, mut path, mut authority, mut scheme) = (None, None, None, None);
        for &(name, value) in headers {
            if !name.starts_with(':') {
                continue;
            }
            let slot = match name {
                ":method" => &mut method,
                ":path" => &mut path,
                ":authority" => &mut authority,
                ":scheme" => &mut scheme,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        let (method, path) = (method.unwrap_or_default(), path.unwrap_or_default());
        let authority = authority.unwrap_or_default();
        let service = registry.match_request(&RequestAttributes {
            authority,
            path,
            method,
        });
        Self {
            headers,
            non_utf8,
            method,
            path,
            authority,
            scheme: scheme.unwrap_or("http"),
            service,
        }
    }

    /// GET or HEAD: may be answered from the cache.
    pub fn reads(&self) -> bool {
        matches!(self.method, "GET" | "HEAD")
    }

    /// The request's cache key under its service's cache section.
    pub fn cache_key(&self, section: &CacheSection) -> Result<CacheKey, &'static str> {
        cache_key(
            section,
            &KeyInput {
                service: &self.service.name,
                scheme: self.scheme,
                authority: self.authority,
                path: self.path,
                headers: self.headers,
                non_utf8: self.non_utf8,
            },
        )
    }
}

/// Bytes a copy of a header list holds.
pub(super) fn header_bytes(headers: &[impl HeaderPair]) -> usize {
    headers
        .iter()
        .map(|p| p.name().len() + p.value().len())
        .sum()
}

impl EdgeHttp {
    /// Starts monitoring the request (when monitoring is on).
    pub(super) fn start_observing(&mut self, worker: &WorkerRef, request: &Request<'_>) {
        if worker.env.registry.settings().monitoring.enabled {
            self.observed = Some(Observed {
                service_index: request.service.index,
                started_us: now_nanos() / 1000,
                outcome: Outcome::Pass,
                forwarded_us: None,
                origin_us: None,
                tenant: None,
                answered_at_once: false,
            });
        }
    }

    /// When monitoring saw the request start (Unix ms), else the clock now: one clock read
    /// serves both.
    pub(super) fn request_start_millis(&self) -> u64 {
        match &self.observed {
            Some(observed) => observed.started_us / 1000,
            None => now_millis(),
        }
    }

    /// The request-headers callback ends: whether the edge answered the request in it.
    pub(super) fn observe_request_headers_done(&mut self) {
        if let Some(observed) = &mut self.observed {
            observed.answered_at_once = self.answered;
        }
    }

    /// Notes how the request is being answered.
    pub(super) fn observe(&mut self, outcome: Outcome) {
        if let Some(observed) = &mut self.observed {
            observed.outcome = outcome;
        }
    }

    /// Notes that the request goes to the origin now (origin latency counts from here).
    pub(super) fn observe_forwarded(&mut self) {
        if let Some(observed) = &mut self.observed {
            observed.forwarded_us = Some(now_nanos() / 1000);
        }
    }

    /// Notes that the origin answered (its latency is measured).
    pub(super) fn observe_origin_answer(&mut self) {
        if let Some(observed) = &mut self.observed {
            let since = observed.forwarded_us.unwrap_or(observed.started_us);
            observed.origin_us = Some((now_nanos() / 1000).saturating_sub(since));
        }
    }

    /// Notes the request's tenant (the first one found: the rate limiter's, else the cache's).
    pub(super) fn observe_tenant(&mut self, tenant: Option<&str>) {
        if let (Some(observed), Some(tenant)) = (&mut self.observed, tenant) {
            if observed.tenant.is_none() && tenant != "-" {
                observed.tenant = Some(tenant.to_string());
            }
        }
    }

    /// The response starts: the noted outcome becomes what happened (see [`settle`]).
    pub(super) fn settle_observed(
        &mut self,
        answered_here: bool,
        status: impl FnOnce() -> Option<u16>,
    ) {
        if let Some(observed) = &mut self.observed {
            observed.outcome = settle(observed.outcome, answered_here, status);
        }
    }

    /// The stream is logged: its outcome and latencies go to stats and the monitor.
    pub(super) fn record_observed(&mut self) {
        let (Some(observed), Some(worker)) = (self.observed.take(), &self.worker) else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        let (now_us, edge_us) = w
            .monitor
            .logged_at(observed.started_us, observed.answered_at_once);
        let edge_sample_us = (!observed.answered_at_once).then_some(edge_us);
        w.env.metrics.record_request(
            observed.service_index,
            observed.outcome,
            edge_sample_us,
            observed.origin_us,
        );
        w.monitor.record(
            observed.service_index,
            observed.outcome,
            (edge_us, observed.origin_us),
            observed.tenant.as_deref(),
            now_us / 1000,
        );
    }
}

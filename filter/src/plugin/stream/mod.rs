//! One HTTP stream: the `Context`/`HttpContext` callbacks, each reading as guards (rate limit,
//! breaker) → management → cache → dedup. The stream's state and its phases are in `state`;
//! what each step does lives in its own file: `request` (the request view, monitoring),
//! `guards`, `management` and `warm`, `cache` (lookup) and `stored`, `revalidation`, `capture`
//! (storing and invalidating on the response), `ranged` (a range miss fetching the whole
//! representation), `dedup` and `recording`.

mod cache;
mod capture;
mod dedup;
mod fleet_cache;
mod fleet_dedup;
mod fleet_rate;
mod guards;
mod management;
mod ranged;
mod request;
mod revalidation;
mod state;
mod stored;
mod warm;

use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use self::request::Request;
pub use self::state::EdgeHttp;
use self::state::{CacheFlow, DedupPhase, Management};
use super::admin::TOKEN_HEADER;
use super::header_map::with_header_map;
use super::host::{body, headers, status_of, SERVICE_HEADER};
use super::worker::WorkerRef;
use crate::policy::header_list::header;

impl Context for EdgeHttp {
    fn on_http_call_response(&mut self, token: u32, _: usize, body_size: usize, _: usize) {
        if let Some(worker) = &self.worker {
            worker.borrow_mut().replies.begin_callback();
        }
        if matches!(self.management, Management::Warming(_)) {
            self.on_warmed(token, body_size);
        } else if self.l3.is_some() {
            self.on_l3_answer(body_size);
        } else if matches!(self.dedup, Some(DedupPhase::FleetClaiming(_))) {
            self.on_fleet_claimed(body_size);
        } else if let CacheFlow::Revalidating(revalidation) = self.cache.take() {
            self.on_revalidated(revalidation, body_size);
        }
    }

    fn on_done(&mut self) -> bool {
        let Some(worker) = self.worker.clone() else {
            return true;
        };
        let w = &mut *worker.borrow_mut();
        if !self.answered {
            // Forget a reply another context sent this stream (never one it sent itself).
            w.replies.take_answered(self.context_id);
        }
        w.budgets.release_paused(self.paused_bytes);
        self.capture_done(w);
        self.guards_done(w);
        self.dedup_done(w);
        self.group_done(w);
        true
    }
}

impl EdgeHttp {
    /// The request's headers, read once: management, guards, cache, dedup in that order.
    fn on_request(
        &mut self,
        worker: &WorkerRef,
        request: &Request<'_>,
        end_of_stream: bool,
    ) -> Action {
        if let Some(action) = self.on_management(worker, request, end_of_stream) {
            return action;
        }
        self.start_observing(worker, request);
        if let Some(refused) = self.admit(worker, request) {
            return refused;
        }
        let mut action = self.cache_request(worker, request);
        if let Some(dedup) = self.dedup_request(worker, request, end_of_stream) {
            action = dedup;
        }
        let collecting = matches!(self.dedup, Some(DedupPhase::Collecting { .. }));
        if matches!(action, Action::Continue) && !self.answered && !collecting {
            self.observe_forwarded();
        }
        if !self.answered {
            // Failing to tag is not worth failing the request: the request still goes through.
            let name = Some(request.service.name.as_str());
            let _ = hostcalls::set_map_value(MapType::HttpRequestHeaders, SERVICE_HEADER, name);
            // The admin token is for the edge alone.
            if header(request.headers, TOKEN_HEADER).is_some() {
                let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, TOKEN_HEADER);
            }
        }
        action
    }
}

impl HttpContext for EdgeHttp {
    fn on_http_request_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        let registry = Rc::clone(&worker.env.registry);
        let action = with_header_map(MapType::HttpRequestHeaders, |request_headers, non_utf8| {
            let request = Request::new(&registry, request_headers, non_utf8);
            self.on_request(&worker, &request, end_of_stream)
        });
        self.observe_request_headers_done();
        action
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if matches!(self.dedup, Some(DedupPhase::Collecting { .. })) {
            // The buffer filter after this one holds the request; nothing reached the origin.
            if !end_of_stream {
                return Action::Pause;
            }
            let request_body = body(BufferType::HttpRequestBody, body_size);
            return self.decide_dedup(&request_body, Vec::new());
        }
        self.on_management_body(body_size, end_of_stream)
    }

    fn on_http_request_trailers(&mut self, _: usize) -> Action {
        if let Some(refused) = self.on_management_trailers() {
            return refused;
        }
        if matches!(self.dedup, Some(DedupPhase::Collecting { .. })) {
            // Trailers end the request (HTTP/2): the body callbacks never saw end_of_stream,
            // so the decision is made here, on the body Envoy buffered while they paused
            // (the whole body). Nothing reached the origin yet.
            let request_body = body(BufferType::HttpRequestBody, usize::MAX);
            return self.decide_dedup(&request_body, headers(MapType::HttpRequestTrailers));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, end_of_stream: bool) -> Action {
        let Some(worker) = self.worker.clone() else {
            return Action::Continue;
        };
        self.add_rate_headers();
        let answered_here =
            self.answered || worker.borrow_mut().replies.take_answered(self.context_id);
        if answered_here {
            // Our own reply (or one another stream sent for us): no origin outcome, nothing to
            // store or tag.
            self.breaker_outcome(&worker, None);
            self.settle_observed(true, || status_of(&headers(MapType::HttpResponseHeaders)));
            self.cache = CacheFlow::Idle;
            self.dedup = None;
            return Action::Continue;
        }
        let response = headers(MapType::HttpResponseHeaders);
        let status = status_of(&response).unwrap_or(0);
        self.breaker_outcome(&worker, Some(status));
        self.settle_observed(false, || Some(status));
        self.observe_origin_answer();
        self.invalidate_after_success(&worker, status);
        self.on_dedup_response(&worker, status, &response, end_of_stream);
        self.on_cache_response(&worker, status, response, end_of_stream);
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        self.record_dedup_body(body_size, end_of_stream);
        self.capture_body(body_size, end_of_stream);
        self.cut_body(body_size);
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _: usize) -> Action {
        self.finish_dedup();
        self.finish_capture();
        Action::Continue
    }

    fn on_log(&mut self) {
        self.record_observed();
    }
}

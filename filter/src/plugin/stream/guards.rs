//! Admission before anything else: the tenant's rate limit (429, or a stored answer when
//! allowed) and the service's breaker (503, or any stored answer), and on the response the
//! breaker's outcome and the rate-limit headers.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{Action, MapType};

use super::request::Request;
use super::state::EdgeHttp;
use crate::plugin::breaker::{self, BreakerPass};
use crate::plugin::host::now_millis;
use crate::plugin::metrics::Stat;
use crate::plugin::rate_limit;
use crate::plugin::reply::{json_headers, retry_headers};
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::breaker::machine::Admission;
use crate::policy::cache::exchange::{CacheStatus, Forward};
use crate::policy::monitor::outcome::Outcome;
use crate::policy::rate_limit::verdict::{LimitedRequest, Verdict};
use crate::policy::RateLimitSection;

impl EdgeHttp {
    /// Rate limit, then breaker. `Some` when the request was answered here.
    pub(super) fn admit(&mut self, worker: &WorkerRef, request: &Request<'_>) -> Option<Action> {
        if let Some(section) = &request.service.rate_limit {
            if let Some(refused) = self.rate_limit(worker, section, request) {
                return Some(refused);
            }
        }
        if request.service.breaker.is_some() {
            return self.pass_breaker(worker, request);
        }
        None
    }

    fn rate_limit(
        &mut self,
        worker: &WorkerRef,
        section: &RateLimitSection,
        request: &Request<'_>,
    ) -> Option<Action> {
        let limited = LimitedRequest {
            service: &request.service.name,
            method: request.method,
            path: request.path,
            headers: request.headers,
        };
        let fleet_decides = request
            .service
            .fleet
            .as_ref()
            .is_some_and(|f| f.shares_rate_limit());
        let verdict = rate_limit::check(
            &worker.env,
            section,
            &limited,
            (now_millis(), fleet_decides),
        );
        let (tenant, mut headers, retry_after_s) = match verdict {
            Verdict::Admit { fields, tenant } => {
                self.rate_headers = fields;
                self.observe_tenant(Some(&tenant));
                return self.fleet_rate_limit(worker, section, request, &tenant);
            }
            Verdict::Refuse(body) => {
                self.observe(Outcome::Refused);
                return Some(self.reply_json((400, body)));
            }
            Verdict::Limit {
                tenant,
                headers,
                retry_after_s,
            } => (tenant, headers, retry_after_s),
        };
        self.observe_tenant(Some(&tenant));
        self.observe(Outcome::RateLimited);
        if section.serve_stale_when_limited && request.reads() {
            let limited = CacheStatus {
                hit: true,
                detail: Some("rate-limited"),
                ..CacheStatus::default()
            };
            let extra: Vec<(String, String)> = headers
                .iter()
                .filter(|(n, _)| n != "retry-after")
                .cloned()
                .collect();
            let bound = Some(section.max_stale_when_limited_s);
            if self.serve_stored(worker, request, limited, &extra, Stat::RateDegraded, bound) {
                return Some(Action::Pause);
            }
        }
        headers.extend(json_headers());
        let body = serde_json::json!({
            "error": "rate limited",
            "service": request.service.name,
            "tenant": tenant,
            "retry_after_s": retry_after_s,
        })
        .to_string();
        Some(self.reply(429, &headers, Some(body.as_bytes())))
    }

    fn pass_breaker(&mut self, worker: &WorkerRef, request: &Request<'_>) -> Option<Action> {
        let now_ms = now_millis();
        let service_index = request.service.index;
        let admission = {
            let w = &mut *worker.borrow_mut();
            breaker::check(&w.env, &mut w.breakers, service_index, now_ms)
        };
        let probe = match admission {
            Admission::Pass => false,
            Admission::Probe => true,
            Admission::Reject { retry_after_ms } => {
                worker.env.metrics.inc(Stat::BreakerRejected);
                self.observe(Outcome::BreakerOpen);
                let stale = CacheStatus {
                    fwd: Some(Forward::Stale),
                    detail: Some("circuit-open"),
                    ..CacheStatus::default()
                };
                if request.reads()
                    && self.serve_stored(
                        worker,
                        request,
                        stale,
                        &[],
                        Stat::BreakerStaleServed,
                        None,
                    )
                {
                    return Some(Action::Pause);
                }
                let retry = retry_after_ms.div_ceil(1000).max(1);
                let headers = retry_headers(retry);
                let body = serde_json::json!({
                    "error": "circuit open",
                    "service": request.service.name,
                    "retry_after_s": retry,
                })
                .to_string();
                return Some(self.reply(503, &headers, Some(body.as_bytes())));
            }
        };
        self.breaker = Some(BreakerPass {
            service_index,
            probe,
            started_ms: now_ms,
        });
        None
    }

    /// Puts the rate-limit fields on the response.
    pub(super) fn add_rate_headers(&mut self) {
        if let Some((policy, state)) = self.rate_headers.take() {
            let response = MapType::HttpResponseHeaders;
            let _ = hostcalls::set_map_value(response, "ratelimit-policy", Some(&policy));
            let _ = hostcalls::set_map_value(response, "ratelimit", Some(&state));
        }
    }

    /// The response starts: the origin's `status` counts for the breaker; answered without
    /// the origin (`None`) there is no outcome, and a probe gives its permit back.
    pub(super) fn breaker_outcome(&mut self, worker: &WorkerRef, status: Option<u16>) {
        let Some(pass) = self.breaker.take() else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        match status {
            Some(status) => breaker::outcome(&w.env, &mut w.breakers, pass, status, now_millis()),
            None if pass.probe => {
                breaker::abandon_probe(&w.env, &mut w.breakers, pass.service_index)
            }
            None => {}
        }
    }

    /// The stream ends: a probe whose stream ended before any response (client gone, reset)
    /// gives its permit back at once, or the breaker would wait for the permits to expire.
    pub(super) fn guards_done(&mut self, worker: &mut Worker) {
        if let Some(pass) = self.breaker.take().filter(|pass| pass.probe) {
            breaker::abandon_probe(&worker.env, &mut worker.breakers, pass.service_index);
        }
    }
}

//! Fleet-wide rate limits of a request the local bucket admitted (the local bucket is the
//! pre-check: a tenant it limits costs no Redis call): spent from this worker's grant of the
//! tenant's fleet bucket, whose batches the root context fetches (see
//! `policy::fleet::rate`). Never pauses the request.

use proxy_wasm::types::Action;

use super::request::Request;
use super::state::EdgeHttp;
use crate::plugin::host::now_millis;
use crate::plugin::metrics::Stat;
use crate::plugin::reply::retry_headers;
use crate::plugin::worker::WorkerRef;
use crate::policy::fleet::rate::{batch_size, bucket_key, GrantDecision};
use crate::policy::monitor::outcome::Outcome;
use crate::policy::{FailureMode, Mode, RateLimitSection};

impl EdgeHttp {
    /// `Some` when the fleet refuses a request the local bucket admitted.
    pub(super) fn fleet_rate_limit(
        &mut self,
        worker: &WorkerRef,
        section: &RateLimitSection,
        request: &Request<'_>,
        tenant: &str,
    ) -> Option<Action> {
        let fleet = request
            .service
            .fleet
            .as_ref()
            .filter(|f| f.shares_rate_limit())?;
        let now_ms = now_millis();
        let limit = section.limit_for(Some(tenant));
        let limit = (limit.requests_per_second, limit.burst);
        let cost = section.cost_of(request.method);
        let batch = batch_size(limit.0, limit.1, cost);
        let decision = {
            let w = &mut *worker.borrow_mut();
            if !w.fleet.usable(now_millis()) {
                w.env.metrics.inc(Stat::FleetSkipped);
                None
            } else {
                let prefix = &w.env.registry.settings().fleet_bridge.key_prefix;
                let key = bucket_key(prefix, &request.service.name, tenant);
                let (decision, wake) = w.fleet.spend(&w.env, &key, limit, (cost, batch), now_ms);
                if wake {
                    w.replies.wake_root();
                }
                Some(decision)
            }
        };
        let retry_after_ms = match decision {
            Some(GrantDecision::Admit) => {
                worker.env.metrics.inc(Stat::RateAdmitted);
                return None;
            }
            Some(GrantDecision::Refuse { retry_after_ms }) => retry_after_ms,
            None if fleet.failure_mode == FailureMode::FailOpen => {
                worker.env.metrics.inc(Stat::RateAdmitted);
                return None;
            }
            None => {
                // fail_closed: the fleet's limit cannot be checked.
                self.observe(Outcome::Refused);
                let body = br#"{"error":"the fleet tier is unavailable, retry"}"#;
                return Some(self.reply(503, &retry_headers(1), Some(body)));
            }
        };
        worker.env.metrics.inc(Stat::FleetRateRejected);
        if section.mode == Mode::Shadow {
            worker.env.metrics.inc(Stat::RateShadowRejected);
            return None;
        }
        self.observe(Outcome::RateLimited);
        let retry_after_s = retry_after_ms.div_ceil(1000).max(1);
        // The local bucket's fields said what this replica had left; the fleet's say none.
        if let Some((_, state)) = self.rate_headers.as_mut() {
            *state = format!("\"default\";r=0;t={retry_after_s}");
        }
        let headers = retry_headers(retry_after_s);
        let body = serde_json::json!({
            "error": "rate limited",
            "service": request.service.name,
            "tenant": tenant,
            "retry_after_s": retry_after_s,
            "scope": "fleet",
        })
        .to_string();
        Some(self.reply(429, &headers, Some(body.as_bytes())))
    }
}

//! Per-tenant rate limiting in the glue: buckets in shared-data slots (several tenants to a
//! slot), spent with the CAS helper by whichever worker sees the request.

use super::host::shared_update as update;
use super::host::HostStore;
use super::metrics::Stat;
use super::worker::Worker;
use crate::policy::header_list::Headers;
use crate::policy::rate_limit::bucket::{Decision, Limit};
use crate::policy::rate_limit::headers::{policy_header, retry_after_s, state_header};
use crate::policy::rate_limit::slot::{identity, slot_key, take, Taken};
use crate::policy::rate_limit::tenant::tenant_of;
use crate::policy::{MissingTenant, Mode, OnContention, RateLimitSection};

/// CAS attempts for one bucket update before `on_contention` decides.
const ATTEMPTS: u32 = 8;

/// What the limiter decided for a request.
pub enum Verdict {
    /// Go on; these `RateLimit-Policy` / `RateLimit` values go on the response (if wanted).
    Admit {
        fields: Option<(String, String)>,
        tenant: String,
    },
    /// Over the limit: answer 429 (or from the cache when allowed).
    Limit {
        tenant: String,
        headers: Vec<(String, String)>,
        retry_after_s: u64,
    },
    /// No tenant id and the service wants one, or one that is refused: `400` with this JSON.
    Refuse(String),
}

/// Spends the request's cost from its tenant's bucket.
pub fn check(
    worker: &Worker,
    service: &str,
    section: &RateLimitSection,
    method: &str,
    path: &str,
    headers: &Headers,
    now_ms: u64,
) -> Verdict {
    let tenant = match tenant_of(&section.tenant, path, headers) {
        Ok(tenant) => tenant,
        Err(refused) => {
            worker.metrics.inc(Stat::RateInvalidTenant);
            return Verdict::Refuse(serde_json::json!({ "error": refused.message() }).to_string());
        }
    };
    if tenant.is_none() && section.missing_tenant == MissingTenant::Reject {
        return Verdict::Refuse(r#"{"error":"this service needs a tenant id"}"#.to_string());
    }
    let limit: Limit = section.limit_for(tenant.as_deref());
    let who = identity(service, tenant.as_deref());
    let limits = worker.registry.limits();
    let key = slot_key(&who, limits.rate_limit_slots);
    let per_slot = usize::try_from(limits.rate_limit_tenants_per_slot).unwrap_or(1);
    let cost = section.cost_of(method);
    let taken = update(&HostStore, &key, ATTEMPTS, |current| {
        Ok::<_, ()>(take(current, &who, limit, cost, now_ms, per_slot))
    });
    let decision: Decision = match taken {
        Ok(Taken::Spent(decision)) => decision,
        Ok(Taken::SlotFull(decision)) => {
            worker.metrics.inc(Stat::RateSlotFull);
            decision
        }
        Err(_) => {
            worker.metrics.inc(Stat::RateContention);
            let admitted = section.on_contention == OnContention::Allow;
            Decision {
                admitted,
                remaining: 0,
                retry_after_ms: 1000,
                reset_ms: 1000,
            }
        }
    };
    let tenant = tenant.unwrap_or_else(|| "-".to_string());
    let fields = (policy_header(limit), state_header(&decision));
    if decision.admitted {
        worker.metrics.inc(Stat::RateAdmitted);
        return Verdict::Admit {
            fields: section.headers_on_admitted.then_some(fields),
            tenant,
        };
    }
    if section.mode == Mode::Shadow {
        worker.metrics.inc(Stat::RateShadowRejected);
        return Verdict::Admit {
            fields: section.headers_on_admitted.then_some(fields),
            tenant,
        };
    }
    worker.metrics.inc(Stat::RateRejected);
    let retry = retry_after_s(&decision);
    Verdict::Limit {
        tenant,
        headers: vec![
            ("ratelimit-policy".to_string(), fields.0),
            ("ratelimit".to_string(), fields.1),
            ("retry-after".to_string(), retry.to_string()),
        ],
        retry_after_s: retry,
    }
}

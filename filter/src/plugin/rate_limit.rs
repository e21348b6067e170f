//! Per-tenant rate limiting in the glue: one shared-data bucket per tenant slot, spent with the
//! CAS helper by whichever worker sees the request.

use super::host::shared_update as update;
use super::host::HostStore;
use super::metrics::Stat;
use super::worker::Worker;
use crate::policy::cache::exchange::{header_joined, Headers};
use crate::policy::cache::generations::fnv1a;
use crate::policy::cache::key::tenant_id;
use crate::policy::rate_limit::bucket::{bucket_key, take, Decision, Limit};
use crate::policy::rate_limit::headers::{policy_header, retry_after_s, state_header};
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
    /// No tenant and the service wants one.
    MissingTenant,
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
    let lookup = |name: &str| header_joined(headers, name);
    let tenant = match tenant_id(&section.tenant, path, &lookup) {
        Some(tenant) => tenant,
        None if section.missing_tenant == MissingTenant::Reject => return Verdict::MissingTenant,
        None => "-".to_string(),
    };
    let limit: Limit = section.limit_for(&tenant);
    let tenant_key = format!("{service}\n{tenant}");
    let key = bucket_key(&tenant_key, worker.registry.limits().rate_limit_slots);
    let hash = fnv1a(&tenant_key);
    let cost = section.cost_of(method);
    let decision = update(&HostStore, &key, ATTEMPTS, |current| {
        Ok::<_, ()>(take(current, hash, limit, cost, now_ms))
    });
    let decision: Decision = match decision {
        Ok(decision) => decision,
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

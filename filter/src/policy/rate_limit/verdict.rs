//! The rate limiter's decision for one request: its tenant, its bucket spent with the CAS
//! helper on whatever shared store the caller gives, shadow mode and contention applied.

use super::bucket::{Decision, Limit};
use super::headers::{policy_header, retry_after_s, state_header};
use super::slot::{identity, slot_key, take, Taken};
use super::tenant::tenant_of;
use crate::policy::header_list::RequestHeaders;
use crate::policy::shared_store::{update, SharedStore, UpdateError};
use crate::policy::{Limits, MissingTenant, Mode, OnContention, RateLimitSection};

/// CAS attempts for one bucket update before `on_contention` decides.
const ATTEMPTS: u32 = 8;

/// What the limiter decided for a request.
#[derive(Debug, PartialEq, Eq)]
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

/// What happened on the way to a verdict, for the caller to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    InvalidTenant,
    /// The tenant's slot was full of other tenants: it was limited in a shared bucket.
    SlotFull,
    /// The bucket could not be written; `exhausted`: because other workers kept writing it.
    Unwritten {
        exhausted: bool,
    },
    Admitted,
    /// Over the limit, admitted because the service is in shadow mode.
    ShadowRejected,
    Rejected,
}

/// The request as the limiter sees it.
pub struct LimitedRequest<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a RequestHeaders<'a>,
}

/// Spends the request's cost from its tenant's bucket in `store`.
pub fn check(
    store: &dyn SharedStore,
    section: &RateLimitSection,
    limits: &Limits,
    request: &LimitedRequest<'_>,
    now_ms: u64,
    count: &mut dyn FnMut(Event),
) -> Verdict {
    let tenant = match tenant_of(&section.tenant, request.path, request.headers) {
        Ok(tenant) => tenant,
        Err(refused) => {
            count(Event::InvalidTenant);
            return Verdict::Refuse(serde_json::json!({ "error": refused.message() }).to_string());
        }
    };
    if tenant.is_none() && section.missing_tenant == MissingTenant::Reject {
        return Verdict::Refuse(r#"{"error":"this service needs a tenant id"}"#.to_string());
    }
    let limit: Limit = section.limit_for(tenant.as_deref());
    let who = identity(request.service, tenant.as_deref());
    let key = slot_key(&who, limits.rate_limit_slots);
    let per_slot = usize::try_from(limits.rate_limit_tenants_per_slot).unwrap_or(1);
    let cost = section.cost_of(request.method);
    let taken = update(store, &key, ATTEMPTS, |current| {
        Ok::<_, ()>(take(current, &who, limit, cost, now_ms, per_slot))
    });
    let decision: Decision = match taken {
        Ok(Taken::Spent(decision)) => decision,
        Ok(Taken::SlotFull(decision)) => {
            count(Event::SlotFull);
            decision
        }
        Err(err) => {
            count(Event::Unwritten {
                exhausted: matches!(err, UpdateError::Contended { .. }),
            });
            Decision {
                admitted: section.on_contention == OnContention::Allow,
                remaining: 0,
                retry_after_ms: 1000,
                reset_ms: 1000,
            }
        }
    };
    let tenant = tenant.unwrap_or_else(|| "-".to_string());
    let fields = (policy_header(limit), state_header(&decision));
    if decision.admitted || section.mode == Mode::Shadow {
        count(if decision.admitted {
            Event::Admitted
        } else {
            Event::ShadowRejected
        });
        return Verdict::Admit {
            fields: section.headers_on_admitted.then_some(fields),
            tenant,
        };
    }
    count(Event::Rejected);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::shared_store::memory::MemoryStore;
    use crate::policy::Config;

    fn section_and_limits(mode: &str) -> (RateLimitSection, Limits) {
        let config = format!(
            r#"{{"services":[{{"name":"api","match":{{"path_prefix":"/"}},
              "rate_limit":{{"mode":"{mode}","requests_per_second":1,"burst":2,
              "tenant":{{"header":"x-tenant"}}}}}}]}}"#
        );
        let registry = Config::parse_registry(config.as_bytes()).expect("valid config");
        let service = registry.service_named("api").expect("service");
        let section = service.rate_limit.clone().expect("rate limit");
        (section, registry.limits().clone())
    }

    fn run(mode: &str, requests: usize) -> (Vec<Verdict>, Vec<Event>) {
        let (section, limits) = section_and_limits(mode);
        let store = MemoryStore::default();
        let headers = [("x-tenant", "acme")];
        let request = LimitedRequest {
            service: "api",
            method: "GET",
            path: "/a",
            headers: &headers,
        };
        let mut events = Vec::new();
        let verdicts = (0..requests)
            .map(|_| {
                check(&store, &section, &limits, &request, 1_000, &mut |e| {
                    events.push(e)
                })
            })
            .collect();
        (verdicts, events)
    }

    #[test]
    fn burst_is_admitted_then_limited() {
        let (verdicts, events) = run("enforce", 3);
        assert!(matches!(&verdicts[0], Verdict::Admit { tenant, .. } if tenant == "acme"));
        assert!(matches!(&verdicts[1], Verdict::Admit { .. }));
        assert!(
            matches!(&verdicts[2], Verdict::Limit { retry_after_s, .. } if *retry_after_s >= 1)
        );
        assert_eq!(
            events,
            vec![Event::Admitted, Event::Admitted, Event::Rejected]
        );
    }

    #[test]
    fn shadow_mode_admits_and_counts_what_it_would_limit() {
        let (verdicts, events) = run("shadow", 3);
        assert!(verdicts.iter().all(|v| matches!(v, Verdict::Admit { .. })));
        assert_eq!(events.last(), Some(&Event::ShadowRejected));
    }
}

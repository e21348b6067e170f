//! `GET <admin prefix>/health`: cheap enough for probes (no token, no shared-data write): the
//! worker's view of every breaker (at most 100 ms old), its own last-minute hit rate per caching
//! service, whether the fleet tier answers (as this worker saw it last, probed at least every
//! `fleet_bridge.probe_interval_ms`, or as another worker of this Envoy saw it answer since),
//! and the serving configuration's note of a refused update decide healthy / degraded /
//! unhealthy.

use serde_json::{json, Map, Value};

use super::breaker::Breakers;
use super::env::Env;
use super::fleet::Fleet;
use super::monitor::{breaker_state, Monitor};
use super::reply::Reply;
use crate::policy::monitor::alerts::MIN_REQUESTS_FOR_ALERT;
use crate::policy::monitor::outcome::{hit_rate, lookups};

/// The reply: 200 when healthy or degraded, 503 when unhealthy.
pub fn health(
    (env, breakers): (&Env, &mut Breakers),
    (monitor, fleet): (&Monitor, &Fleet),
    now_ms: u64,
) -> Reply {
    let registry = &env.registry;
    let target = registry.settings().monitoring.hit_rate_target;
    let mut services = Map::new();
    let mut reasons: Vec<String> = Vec::new();
    let (mut with_breaker, mut open) = (0, 0);
    // `open` counts fully open breakers only: a half-open one is letting probes through.
    let indices =
        (0..registry.service_count()).chain(std::iter::once(registry.default_service().index));
    for index in indices {
        let Some(service) = registry.service_at(index) else {
            continue;
        };
        let mut row = Map::new();
        if let Some(phase) = breaker_state(env, breakers, index, now_ms) {
            with_breaker += 1;
            if phase != "closed" {
                reasons.push(format!("breaker {phase}: {}", service.name));
            }
            if phase == "open" {
                open += 1;
            }
            row.insert("breaker".into(), json!(phase));
        }
        if service.cache.is_some() && monitor.enabled {
            let summary = monitor.summary(index, now_ms);
            let rate = hit_rate(&summary.outcomes);
            let enough = lookups(&summary.outcomes) >= MIN_REQUESTS_FOR_ALERT;
            if let Some(rate) = rate.filter(|_| enough) {
                if rate < target {
                    reasons.push(format!(
                        "hit rate {:.0}% under target {:.0}%: {}",
                        rate * 100.0,
                        target * 100.0,
                        service.name
                    ));
                }
            }
            row.insert("hit_rate".into(), json!(rate));
        }
        if !row.is_empty() {
            services.insert(service.name.clone(), Value::Object(row));
        }
    }
    if registry.uses_fleet() && !fleet.tier.usable() {
        reasons.push("fleet tier unreachable".to_string());
    }
    // From the configuration serving: a note the launcher adds when it refused a newer one.
    if let Some(reason) = &registry.settings().update_refused {
        reasons.push(format!("configuration update rejected: {reason}"));
    }
    let status = if with_breaker > 0 && open == with_breaker {
        "unhealthy"
    } else if !reasons.is_empty() {
        "degraded"
    } else {
        "healthy"
    };
    let body = json!({ "status": status, "reasons": reasons, "services": Value::Object(services) });
    (
        if status == "unhealthy" { 503 } else { 200 },
        body.to_string(),
    )
}

//! `GET <admin prefix>/health`: cheap enough for probes (no token, no shared-data write): the
//! worker's view of every breaker (at most 100 ms old) decides healthy / degraded / unhealthy.

use serde_json::{json, Map, Value};

use super::breaker;
use super::worker::Worker;
use crate::policy::breaker::machine::{Admission, Phase};

/// The reply: 200 when healthy or degraded, 503 when unhealthy.
pub fn health(worker: &mut Worker, now_ms: u64) -> (u16, String) {
    let registry = std::rc::Rc::clone(&worker.registry);
    let mut services = Map::new();
    let mut reasons: Vec<String> = Vec::new();
    let (mut with_breaker, mut open) = (0, 0);
    let indices =
        (0..registry.service_count()).chain(std::iter::once(registry.default_service().index));
    for index in indices {
        let Some(service) = registry.service_at(index) else {
            continue;
        };
        if service.breaker.is_none() {
            continue;
        }
        with_breaker += 1;
        // Refreshes the worker's copy if it is older than the read-cache time; never a probe
        // permit: an open breaker past its period is reported as half-open.
        let phase = match worker.breakers.get(&index).map(|v| v.state.phase) {
            _ if matches!(
                breaker::peek(worker, index, now_ms),
                Admission::Reject { .. }
            ) =>
            {
                "open"
            }
            Some(Phase::HalfOpen { .. }) | Some(Phase::Open { .. }) => "half-open",
            _ => "closed",
        };
        if phase != "closed" {
            open += 1;
            reasons.push(format!("breaker {phase}: {}", service.name));
        }
        services.insert(service.name.clone(), json!({ "breaker": phase }));
    }
    let status = if with_breaker > 0 && open == with_breaker {
        "unhealthy"
    } else if open > 0 {
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

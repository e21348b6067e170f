//! What one running origin shares between its handlers.

use std::time::Duration;

use axum::http::request::Parts;
use axum::http::HeaderValue;
use serde_json::{json, Map, Value};

use super::config::OriginConfig;
use super::endpoint::Endpoint;
use super::fault::{check_fault_target, Fault};
use super::injector::FaultInjector;
use super::request_log::{LoggedRequest, RequestLog};
use super::stats::Stats;

/// Shared state of one origin: latency scale, counters, request log and faults.
#[derive(Debug)]
pub struct OriginState {
    latency_scale: f64,
    pub stats: Stats,
    pub log: RequestLog,
    pub faults: FaultInjector,
    pub deliveries: super::deliveries::Deliveries,
    /// `Cache-Control` by endpoint index, where `--cache-control` replaced the built-in one.
    cache_control: [Option<HeaderValue>; Endpoint::ALL.len()],
}

impl OriginState {
    /// State for `config`, with its faults applied; fails on an invalid config.
    pub fn new(config: &OriginConfig) -> Result<OriginState, String> {
        config.validate()?;
        let mut state = OriginState {
            latency_scale: config.latency_scale,
            stats: Stats::default(),
            log: RequestLog::default(),
            faults: FaultInjector::default(),
            deliveries: Default::default(),
            cache_control: Default::default(),
        };
        for (target, fault) in &config.faults {
            state.apply_fault(target, *fault)?;
        }
        for (target, value) in &config.cache_control {
            let value = HeaderValue::from_str(value)
                .map_err(|_| format!("cache-control for {target}: not a header value"))?;
            for e in Endpoint::ALL {
                if target == "*" || target == e.name() {
                    if let Some(slot) = state.cache_control.get_mut(e.index()) {
                        *slot = Some(value.clone());
                    }
                }
            }
        }
        Ok(state)
    }

    /// The scaled baseline delay of `endpoint`.
    pub fn baseline_delay(&self, endpoint: Endpoint) -> Duration {
        // The scale is validated finite and within 0..=1000, so this cannot overflow.
        endpoint.baseline().mul_f64(self.latency_scale)
    }

    /// The `Cache-Control` of `endpoint`'s cacheable answers: the `--cache-control` override, or
    /// the endpoint's own.
    pub fn cache_control(&self, endpoint: Endpoint) -> HeaderValue {
        self.cache_control
            .get(endpoint.index())
            .cloned()
            .flatten()
            .unwrap_or_else(|| HeaderValue::from_static(endpoint.cache_control()))
    }

    /// Sets the fault of an endpoint by name, or of all of them for `*`.
    pub fn apply_fault(&self, target: &str, fault: Fault) -> Result<(), String> {
        check_fault_target(target)?;
        fault.validate()?;
        for e in Endpoint::ALL {
            if target == "*" || target == e.name() {
                self.faults.set(e, fault);
            }
        }
        Ok(())
    }

    /// Counts and logs a request that reached `endpoint`'s handler.
    pub fn record(&self, endpoint: Endpoint, parts: &Parts) {
        self.stats.record(endpoint);
        let target = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or_else(|| parts.uri.path());
        self.log.push(LoggedRequest::new(
            parts.method.as_str(),
            target,
            endpoint.name(),
            &parts.headers,
        ));
    }

    /// `{"latency_scale": F, "faults": {"<endpoint>": {"error_rate", "extra_latency_ms", "reset_rate"}}}`
    pub fn faults_json(&self) -> Value {
        let mut faults = Map::new();
        for e in Endpoint::ALL {
            faults.insert(e.name().to_string(), json!(self.faults.get(e)));
        }
        json!({ "latency_scale": self.latency_scale, "faults": faults })
    }

    /// Clears counters, the request log and every fault.
    pub fn reset(&self) {
        self.stats.clear();
        self.log.clear();
        self.faults.clear();
        self.deliveries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_faults_apply_and_reset_clears() {
        let f = Fault {
            error_rate: 1.0,
            ..Fault::default()
        };
        let config = OriginConfig {
            latency_scale: 0.5,
            faults: vec![("*".into(), f), ("health".into(), Fault::default())],
            cache_control: vec![("leads".into(), "max-age=1, stale-while-revalidate=5".into())],
        };
        let st = OriginState::new(&config).unwrap();
        assert_eq!(st.faults.get(Endpoint::Leads), f);
        assert_eq!(st.faults.get(Endpoint::Health), Fault::default());
        assert_eq!(
            st.baseline_delay(Endpoint::Webhooks),
            Duration::from_millis(200)
        );
        assert_eq!(st.faults_json()["faults"]["leads"]["error_rate"], 1.0);
        assert_eq!(
            st.cache_control(Endpoint::Leads),
            "max-age=1, stale-while-revalidate=5"
        );
        assert_eq!(st.cache_control(Endpoint::Coaching), "public, max-age=30");
        assert!(st.apply_fault("nope", f).is_err());
        st.reset();
        assert_eq!(st.faults.get(Endpoint::Leads), Fault::default());
    }
}

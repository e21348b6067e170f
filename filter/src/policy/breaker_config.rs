//! The per-service `breaker` section: an adaptive circuit breaker shared by all workers.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSection {
    /// Statuses counted as failures (default: every 5xx). Resets and timeouts always count
    /// (Envoy answers them with 503/504).
    #[serde(default)]
    pub failure_statuses: Vec<u16>,
    /// Responses slower than this count as failures too.
    #[serde(default)]
    pub slow_ms: Option<u64>,
    /// Rolling window the failure rate is measured over (10 buckets).
    #[serde(default = "default_window_s")]
    pub window_s: u64,
    /// Requests in the window before the breaker may trip.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    /// Failure rate that trips a healthy service (health score 1.0).
    #[serde(default = "default_max_failure_rate")]
    pub max_failure_rate: f64,
    /// Failure rate that trips a service whose health score is 0 (it has been failing/flapping).
    #[serde(default = "default_min_failure_rate")]
    pub min_failure_rate: f64,
    /// First open period; doubles with each consecutive trip up to `open_max_ms`.
    #[serde(default = "default_open_base_ms")]
    pub open_base_ms: u64,
    #[serde(default = "default_open_max_ms")]
    pub open_max_ms: u64,
    /// ± this share of the open period, so workers and services do not probe in lockstep.
    #[serde(default = "default_jitter_percent")]
    pub jitter_percent: u64,
    /// Probe requests in flight at most (across all workers) while half-open.
    #[serde(default = "default_probes")]
    pub half_open_probes: u32,
    /// Successful probes that close the breaker.
    #[serde(default = "default_probes")]
    pub close_after_successes: u32,
    /// Probe permits taken longer ago than this are presumed lost (a probe whose stream ended
    /// without an outcome on a worker that could not give it back): new probes may go.
    #[serde(default = "default_probe_timeout_ms")]
    pub probe_timeout_ms: u64,
    /// A closed, healthy period after which the consecutive-trip count (the backoff) resets.
    #[serde(default = "default_healthy_reset_s")]
    pub healthy_reset_s: u64,
}

fn default_window_s() -> u64 {
    10
}
fn default_min_requests() -> u64 {
    20
}
fn default_max_failure_rate() -> f64 {
    0.5
}
fn default_min_failure_rate() -> f64 {
    0.2
}
fn default_open_base_ms() -> u64 {
    1000
}
fn default_open_max_ms() -> u64 {
    60_000
}
fn default_jitter_percent() -> u64 {
    10
}
fn default_probes() -> u32 {
    3
}
/// Envoy's default route timeout: a probe still waiting past it has timed out anyway.
fn default_probe_timeout_ms() -> u64 {
    15_000
}
fn default_healthy_reset_s() -> u64 {
    60
}

impl BreakerSection {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let field = |name: &str| format!("{path}.{name}");
        for (index, status) in self.failure_statuses.iter().enumerate() {
            if !(100..600).contains(status) {
                return Err(ConfigError::new(
                    format!("{path}.failure_statuses[{index}]"),
                    format!("{status} is not an HTTP status"),
                ));
            }
        }
        let rate_ok = |r: f64| r.is_finite() && r > 0.0 && r <= 1.0;
        if !rate_ok(self.max_failure_rate)
            || !rate_ok(self.min_failure_rate)
            || self.min_failure_rate > self.max_failure_rate
        {
            return Err(ConfigError::new(
                field("min_failure_rate"),
                "failure rates must be in (0, 1] with min_failure_rate ≤ max_failure_rate",
            ));
        }
        let ranges = [
            ("window_s", self.window_s, 1, 3600),
            ("min_requests", self.min_requests, 1, 1_000_000),
            ("open_base_ms", self.open_base_ms, 10, 3_600_000),
            ("open_max_ms", self.open_max_ms, 10, 3_600_000),
            ("jitter_percent", self.jitter_percent, 0, 50),
            (
                "half_open_probes",
                u64::from(self.half_open_probes),
                1,
                1000,
            ),
            (
                "close_after_successes",
                u64::from(self.close_after_successes),
                1,
                1000,
            ),
            ("healthy_reset_s", self.healthy_reset_s, 1, 86_400),
            ("probe_timeout_ms", self.probe_timeout_ms, 100, 600_000),
        ];
        for (name, value, low, high) in ranges {
            if value < low || value > high {
                return Err(ConfigError::new(
                    field(name),
                    format!("{value} is out of range, must be between {low} and {high}"),
                ));
            }
        }
        if self.open_max_ms < self.open_base_ms {
            return Err(ConfigError::new(
                field("open_max_ms"),
                "must not be below open_base_ms",
            ));
        }
        Ok(())
    }

    /// Whether a response from the origin counts as a failure: a failure status, or slower
    /// than `slow_ms` (`elapsed_ms` since the request passed the breaker).
    pub fn failed(&self, status: u16, elapsed_ms: u64) -> bool {
        self.is_failure(status) || self.slow_ms.is_some_and(|slow| elapsed_ms > slow)
    }

    /// Whether a response status counts as a failure.
    pub fn is_failure(&self, status: u16) -> bool {
        if self.failure_statuses.is_empty() {
            (500..600).contains(&status)
        } else {
            self.failure_statuses.contains(&status)
        }
    }
}

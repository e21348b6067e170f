//! Top-level `monitoring` section: per-request stats, the last-minute windows, how workers
//! publish their figures for the process-wide view, and alert thresholds.

use serde::Deserialize;

use super::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// Per-request stats (outcome counters, latency histograms), windows and top tenants.
    /// Off: none of these are recorded (the feature counters such as `edge.cache.*` remain).
    pub enabled: bool,
    /// How often each worker publishes its last-minute figures to shared data.
    pub publish_interval_ms: u64,
    /// Shared-data keys for published figures: the most workers the process-wide view counts.
    pub worker_slots: u64,
    /// Rows of each worker's top-tenant table.
    pub top_tenants: u64,
    /// A caching service under this hit rate (0..1) raises an alert.
    pub hit_rate_target: f64,
    /// A tenant with more than this percentage of its requests rate-limited raises an alert.
    pub rate_limited_alert_percent: f64,
    /// Rows of each worker's hottest-keys table (`/cache/hot`, for warming); 0 keeps none.
    pub hot_keys: u64,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            publish_interval_ms: 1000,
            worker_slots: 64,
            top_tenants: 64,
            hit_rate_target: 0.9,
            rate_limited_alert_percent: 5.0,
            hot_keys: 128,
        }
    }
}

impl MonitoringConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let ranges = [
            ("publish_interval_ms", self.publish_interval_ms, 100, 60_000),
            ("worker_slots", self.worker_slots, 1, 1024),
            ("top_tenants", self.top_tenants, 1, 10_000),
            ("hot_keys", self.hot_keys, 0, 10_000),
        ];
        for (field, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(ConfigError::new(
                    format!("monitoring.{field}"),
                    format!("must be between {low} and {high}"),
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.hit_rate_target) {
            return Err(ConfigError::new(
                "monitoring.hit_rate_target",
                "must be between 0 and 1",
            ));
        }
        if !(0.0..=100.0).contains(&self.rate_limited_alert_percent) {
            return Err(ConfigError::new(
                "monitoring.rate_limited_alert_percent",
                "must be between 0 and 100",
            ));
        }
        Ok(())
    }
}

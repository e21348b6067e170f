//! The per-service `fleet` section (what becomes fleet-wide) and the top-level `fleet_bridge`
//! (how the filter reaches Redis).

use serde::Deserialize;

use crate::policy::ConfigError;

/// What dedup and rate limits do while the fleet tier is unavailable.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    /// The local tiers decide alone (duplicates across replicas may reach the origin; each
    /// replica admits up to the limit on its own).
    #[default]
    FailOpen,
    /// Deliveries get 503 and rate-limited requests 429, both with `Retry-After`.
    FailClosed,
}

/// Per service: which of its features are fleet-wide.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// Dedup records in Redis (the service needs a `dedup` section).
    #[serde(default = "yes")]
    pub dedup: bool,
    /// What dedup and rate limits do while the tier is unavailable.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

fn yes() -> bool {
    true
}

impl FleetSection {
    pub(crate) fn validate(&self, path: &str, has_dedup: bool) -> Result<(), ConfigError> {
        if self.dedup && !has_dedup {
            return Err(ConfigError::new(
                format!("{path}.dedup"),
                "the service has no dedup section (set \"dedup\": false or add one)",
            ));
        }
        Ok(())
    }
}

/// How the filter reaches the fleet tier (top level, `fleet_bridge`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FleetBridge {
    /// The Envoy cluster of the HTTP bridge to Redis (webdis).
    pub cluster: String,
    /// Timeout of one call; past it the request goes on with the local tiers alone.
    pub timeout_ms: u64,
    /// Prefix of every Redis key the filter writes.
    pub key_prefix: String,
    /// While the tier is unavailable, how often a worker probes it (requests skip it
    /// meanwhile); while available, how often an idle worker checks it.
    pub probe_interval_ms: u64,
}

impl Default for FleetBridge {
    fn default() -> Self {
        Self {
            cluster: "fleet_bridge".to_string(),
            timeout_ms: 100,
            key_prefix: "edge:".to_string(),
            probe_interval_ms: 1000,
        }
    }
}

impl FleetBridge {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.cluster.is_empty() {
            return Err(ConfigError::new(
                "fleet_bridge.cluster",
                "must not be empty",
            ));
        }
        if !(5..=5_000).contains(&self.timeout_ms) {
            return Err(ConfigError::new(
                "fleet_bridge.timeout_ms",
                format!(
                    "{} is out of range, must be between 5 and 5000",
                    self.timeout_ms
                ),
            ));
        }
        if !(50..=60_000).contains(&self.probe_interval_ms) {
            return Err(ConfigError::new(
                "fleet_bridge.probe_interval_ms",
                format!(
                    "{} is out of range, must be between 50 and 60000",
                    self.probe_interval_ms
                ),
            ));
        }
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.');
        if self.key_prefix.len() > 64 || !self.key_prefix.chars().all(plain) {
            return Err(ConfigError::new(
                "fleet_bridge.key_prefix",
                "at most 64 letters, digits, ':', '-', '_' and '.'",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ranges() {
        let bridge = FleetBridge::default();
        assert_eq!(bridge.cluster, "fleet_bridge");
        assert!(bridge.validate().is_ok());
        let slow = FleetBridge {
            timeout_ms: 10_000,
            ..FleetBridge::default()
        };
        assert_eq!(slow.validate().unwrap_err().path, "fleet_bridge.timeout_ms");
        let odd = FleetBridge {
            key_prefix: "a/b".into(),
            ..FleetBridge::default()
        };
        assert_eq!(odd.validate().unwrap_err().path, "fleet_bridge.key_prefix");
    }

    #[test]
    fn dedup_needs_a_dedup_section() {
        let section: FleetSection = serde_json::from_str("{}").unwrap();
        assert!(section.dedup);
        assert_eq!(section.failure_mode, FailureMode::FailOpen);
        let err = section.validate("services[0].fleet", false).unwrap_err();
        assert_eq!(err.path, "services[0].fleet.dedup");
        let closed: FleetSection =
            serde_json::from_str(r#"{"dedup": false, "failure_mode": "fail_closed"}"#).unwrap();
        assert!(closed.validate("x", false).is_ok());
        assert_eq!(closed.failure_mode, FailureMode::FailClosed);
    }
}

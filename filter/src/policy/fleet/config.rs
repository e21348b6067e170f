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

/// Per service: which of its features are fleet-wide. Each defaults to on when the service
/// has that feature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSection {
    /// Dedup records in Redis (the service needs a `dedup` section).
    #[serde(default)]
    pub dedup: Option<bool>,
    /// One token bucket per tenant for the fleet (the service needs a `rate_limit` section).
    #[serde(default)]
    pub rate_limit: Option<bool>,
    /// The L3 cache tier in Redis (the service needs a `cache` section).
    #[serde(default)]
    pub cache: Option<bool>,
    /// What dedup and rate limits do while the tier is unavailable.
    #[serde(default)]
    pub failure_mode: FailureMode,
}

/// Which features a service has (what a `fleet` section may share).
#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    pub dedup: bool,
    pub rate_limit: bool,
    pub cache: bool,
}

impl FleetSection {
    pub(crate) fn validate(&self, path: &str, has: Features) -> Result<(), ConfigError> {
        for (field, asked, present) in [
            ("dedup", self.dedup, has.dedup),
            ("rate_limit", self.rate_limit, has.rate_limit),
            ("cache", self.cache, has.cache),
        ] {
            if asked == Some(true) && !present {
                return Err(ConfigError::new(
                    format!("{path}.{field}"),
                    format!("the service has no {field} section"),
                ));
            }
        }
        Ok(())
    }

    /// Whether dedup is fleet-wide (given the service deduplicates).
    pub fn shares_dedup(&self) -> bool {
        self.dedup.unwrap_or(true)
    }

    /// Whether rate limits are fleet-wide (given the service limits rates).
    pub fn shares_rate_limit(&self) -> bool {
        self.rate_limit.unwrap_or(true)
    }

    /// Whether the service's cache has the L3 tier (given the service caches).
    pub fn shares_cache(&self) -> bool {
        self.cache.unwrap_or(true)
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
    fn a_shared_feature_needs_its_section() {
        let section: FleetSection = serde_json::from_str("{}").unwrap();
        assert!(section.shares_dedup() && section.shares_rate_limit());
        assert_eq!(section.failure_mode, FailureMode::FailOpen);
        assert!(section.validate("x", Features::default()).is_ok());
        let asked: FleetSection = serde_json::from_str(r#"{"dedup": true}"#).unwrap();
        let err = asked
            .validate("services[0].fleet", Features::default())
            .unwrap_err();
        assert_eq!(err.path, "services[0].fleet.dedup");
        let asked: FleetSection = serde_json::from_str(r#"{"rate_limit": true}"#).unwrap();
        let err = asked
            .validate("services[0].fleet", Features::default())
            .unwrap_err();
        assert_eq!(err.path, "services[0].fleet.rate_limit");
        let closed: FleetSection =
            serde_json::from_str(r#"{"dedup": false, "failure_mode": "fail_closed"}"#).unwrap();
        assert!(!closed.shares_dedup());
        assert_eq!(closed.failure_mode, FailureMode::FailClosed);
    }
}

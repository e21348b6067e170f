//! The per-service `dedup` section: webhook deduplication and idempotency.

use serde::Deserialize;

use super::ConfigError;

/// What a duplicate that arrives while the first attempt is in flight gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InFlightMode {
    /// Wait for the first attempt's result and get it replayed (senders count only 2xx).
    #[default]
    Wait,
    /// `409 Conflict` with `Retry-After` (IETF idempotency-key draft).
    Conflict,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupSection {
    /// Where a request's identity comes from, first match wins: header names, or `"body"` for a
    /// SHA-256 of method, path and body.
    #[serde(default = "default_identity")]
    pub identity: Vec<String>,
    #[serde(default)]
    pub in_flight: InFlightMode,
    /// How long a result is kept and replayed.
    #[serde(default = "default_retention_s")]
    pub retention_s: u64,
    /// How long a first attempt may stay unfinished before a retry may take over.
    #[serde(default = "default_in_flight_timeout_ms")]
    pub in_flight_timeout_ms: u64,
    /// Statuses whose results are kept and replayed (default: every 2xx).
    #[serde(default)]
    pub replay_statuses: Vec<u16>,
    /// Largest response body kept for replay; a larger 2xx is replayed without its body.
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: u64,
    /// `Retry-After` seconds on a 409.
    #[serde(default = "default_retry_after_s")]
    pub retry_after_s: u64,
    /// Verify Standard Webhooks signatures before accepting a delivery (401 otherwise).
    #[serde(default)]
    pub signature: Option<SignatureConfig>,
}

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// `whsec_<base64>` (the sender's signing secret). Never logged.
    pub secret: String,
    /// How far `webhook-timestamp` may be from now.
    #[serde(default = "default_tolerance_s")]
    pub tolerance_s: u64,
}

/// The secret never reaches a log line, not even through `{:?}`.
impl std::fmt::Debug for SignatureConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignatureConfig")
            .field("secret", &"<redacted>")
            .field("tolerance_s", &self.tolerance_s)
            .finish()
    }
}

fn default_tolerance_s() -> u64 {
    300
}

fn default_identity() -> Vec<String> {
    ["webhook-id", "idempotency-key", "body"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

fn default_retention_s() -> u64 {
    86_400
}

fn default_in_flight_timeout_ms() -> u64 {
    30_000
}

fn default_max_response_bytes() -> u64 {
    65_536
}

fn default_retry_after_s() -> u64 {
    1
}

impl DedupSection {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.identity.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.identity"),
                "must name at least one source",
            ));
        }
        for (index, source) in self.identity.iter().enumerate() {
            let valid = source == "body"
                || (!source.is_empty()
                    && source.len() <= 128
                    && source
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
            if !valid {
                return Err(ConfigError::new(
                    format!("{path}.identity[{index}]"),
                    format!("{source:?} is neither \"body\" nor a lower-case header name"),
                ));
            }
        }
        let ranges = [
            ("retention_s", self.retention_s, 1, 2_592_000),
            (
                "in_flight_timeout_ms",
                self.in_flight_timeout_ms,
                100,
                600_000,
            ),
            ("max_response_bytes", self.max_response_bytes, 0, 1_048_576),
            ("retry_after_s", self.retry_after_s, 1, 3600),
        ];
        for (field, value, low, high) in ranges {
            if value < low || value > high {
                return Err(ConfigError::new(
                    format!("{path}.{field}"),
                    format!("{value} is out of range, must be between {low} and {high}"),
                ));
            }
        }
        if let Some(signature) = &self.signature {
            if super::dedup::signature::decode_secret(&signature.secret)
                .is_none_or(|key| key.len() < 16)
            {
                return Err(ConfigError::new(
                    format!("{path}.signature.secret"),
                    "must be whsec_ followed by base64 of at least 16 bytes",
                ));
            }
            if !(1..=86_400).contains(&signature.tolerance_s) {
                return Err(ConfigError::new(
                    format!("{path}.signature.tolerance_s"),
                    format!(
                        "{} is out of range, must be between 1 and 86400",
                        signature.tolerance_s
                    ),
                ));
            }
        }
        for (index, status) in self.replay_statuses.iter().enumerate() {
            if !(200..600).contains(status) {
                return Err(ConfigError::new(
                    format!("{path}.replay_statuses[{index}]"),
                    format!("{status} is not a final HTTP status"),
                ));
            }
        }
        Ok(())
    }

    /// Whether a result with this status is kept and replayed.
    pub fn replays(&self, status: u16) -> bool {
        if self.replay_statuses.is_empty() {
            (200..300).contains(&status)
        } else {
            self.replay_statuses.contains(&status)
        }
    }
}

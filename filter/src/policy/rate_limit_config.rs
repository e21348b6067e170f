//! The per-service `rate_limit` section: per-tenant token buckets shared by all workers.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::rate_limit::bucket::Limit;
use super::{ConfigError, TenantConfig};

/// What a request without a tenant id does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingTenant {
    /// Shares one bucket with every other request that names no tenant.
    #[default]
    Anonymous,
    /// Gets `400`.
    Reject,
}

/// When other workers keep winning the race for a bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnContention {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    /// Counts what would be rejected, admits everything.
    Shadow,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantLimit {
    pub requests_per_second: f64,
    pub burst: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSection {
    /// Where the tenant id comes from (header, query parameter or path segment).
    pub tenant: TenantConfig,
    #[serde(default)]
    pub missing_tenant: MissingTenant,
    pub requests_per_second: f64,
    pub burst: u64,
    /// Per-tenant limits replacing the default.
    #[serde(default)]
    pub overrides: BTreeMap<String, TenantLimit>,
    /// Tokens a request costs by method (default 1).
    #[serde(default)]
    pub cost: BTreeMap<String, u64>,
    #[serde(default)]
    pub on_contention: OnContention,
    #[serde(default)]
    pub mode: Mode,
    /// Send `RateLimit-Policy` / `RateLimit` on admitted responses too.
    #[serde(default = "yes")]
    pub headers_on_admitted: bool,
    /// A limited tenant's GET is answered from the cache instead of 429 when a stored entry
    /// may be used without the origin (see `max_stale_when_limited_s`).
    #[serde(default = "yes")]
    pub serve_stale_when_limited: bool,
    /// How stale (seconds past its freshness lifetime) an entry may be to answer a limited
    /// tenant; 0: fresh entries only. Entries that forbid stale use never answer stale.
    #[serde(default = "default_max_stale_when_limited_s")]
    pub max_stale_when_limited_s: u64,
}

fn yes() -> bool {
    true
}

fn default_max_stale_when_limited_s() -> u64 {
    60
}

/// Upper bound of `max_stale_when_limited_s` (one day).
pub const MAX_STALE_WHEN_LIMITED_S: u64 = 86_400;

/// Most per-tenant overrides one service may list.
pub const MAX_OVERRIDES: usize = 1000;

fn check_limit(path: &str, requests_per_second: f64, burst: u64) -> Result<(), ConfigError> {
    if !requests_per_second.is_finite()
        || requests_per_second <= 0.0
        || requests_per_second > 1_000_000.0
    {
        return Err(ConfigError::new(
            format!("{path}.requests_per_second"),
            format!("{requests_per_second} is out of range, must be above 0 and at most 1000000"),
        ));
    }
    if !(1..=10_000_000).contains(&burst) {
        return Err(ConfigError::new(
            format!("{path}.burst"),
            format!("{burst} is out of range, must be between 1 and 10000000"),
        ));
    }
    Ok(())
}

impl RateLimitSection {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        self.tenant.validate(&format!("{path}.tenant"))?;
        check_limit(path, self.requests_per_second, self.burst)?;
        if self.overrides.len() > MAX_OVERRIDES {
            return Err(ConfigError::new(
                format!("{path}.overrides"),
                format!(
                    "{} overrides given, at most {MAX_OVERRIDES}",
                    self.overrides.len()
                ),
            ));
        }
        for (tenant, limit) in &self.overrides {
            check_limit(
                &format!("{path}.overrides.{tenant}"),
                limit.requests_per_second,
                limit.burst,
            )?;
        }
        if self.max_stale_when_limited_s > MAX_STALE_WHEN_LIMITED_S {
            return Err(ConfigError::new(
                format!("{path}.max_stale_when_limited_s"),
                format!(
                    "{} is out of range, must be between 0 and {MAX_STALE_WHEN_LIMITED_S}",
                    self.max_stale_when_limited_s
                ),
            ));
        }
        for (method, cost) in &self.cost {
            if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
                return Err(ConfigError::new(
                    format!("{path}.cost.{method}"),
                    "is not an upper-case HTTP method",
                ));
            }
            if !(1..=1000).contains(cost) {
                return Err(ConfigError::new(
                    format!("{path}.cost.{method}"),
                    format!("{cost} is out of range, must be between 1 and 1000"),
                ));
            }
        }
        Ok(())
    }

    /// The limit for a tenant (its override, else the default; the anonymous bucket, `None`,
    /// has the default).
    pub fn limit_for(&self, tenant: Option<&str>) -> Limit {
        match tenant.and_then(|tenant| self.overrides.get(tenant)) {
            Some(o) => Limit {
                requests_per_second: o.requests_per_second,
                burst: o.burst,
            },
            None => Limit {
                requests_per_second: self.requests_per_second,
                burst: self.burst,
            },
        }
    }

    pub fn cost_of(&self, method: &str) -> u64 {
        self.cost.get(method).copied().unwrap_or(1)
    }
}

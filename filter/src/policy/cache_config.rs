//! The per-service `cache` section.

use serde::Deserialize;

use super::cache::exchange::StaleDefaults;
use super::cache::freshness::StorePolicy;
use super::cache::variants::{DEFAULT_MAX_VARIANTS, MAX_VARIANTS};
use super::ConfigError;

/// Edge caching for one service (L1 per worker, L2 in shared data).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// Freshness lifetime for responses that carry none (no max-age, s-maxage or Expires).
    #[serde(default)]
    pub default_ttl_s: Option<u64>,
    /// Heuristic freshness (10% of the time since Last-Modified) when no explicit lifetime and
    /// no `default_ttl_s` is given.
    #[serde(default = "yes")]
    pub heuristic: bool,
    /// Upper bound on any freshness lifetime.
    #[serde(default = "default_max_ttl_s")]
    pub max_ttl_s: u64,
    /// Store responses with `Set-Cookie` (off, like Varnish and nginx).
    #[serde(default)]
    pub store_set_cookie: bool,
    #[serde(default)]
    pub key: KeyConfig,
    /// Where the tenant id comes from; each tenant's keys get their own namespace.
    #[serde(default)]
    pub tenant: Option<TenantConfig>,
    /// Response header listing purge tags (space or comma separated).
    #[serde(default = "default_tag_header")]
    pub tag_header: String,
    /// A targeted cache-control response field of our own (RFC 9213, e.g.
    /// `edge-cache-control`), obeyed ahead of `CDN-Cache-Control` and `Cache-Control`.
    #[serde(default)]
    pub targeted_cache_control: Option<String>,
    /// Adds the cache key to `Cache-Status` (never turn on where keys are sensitive).
    #[serde(default)]
    pub debug: bool,
    /// Stale-while-revalidate window for responses that set none (RFC 5861).
    #[serde(default)]
    pub stale_while_revalidate_s: Option<u64>,
    /// Stale-if-error window for responses that set none (RFC 5861).
    #[serde(default)]
    pub stale_if_error_s: Option<u64>,
    /// Concurrent misses for one key become one origin request, across workers.
    #[serde(default = "yes")]
    pub coalesce: bool,
    /// How long one worker may fetch a key for the others before they stop waiting.
    #[serde(default = "default_lease_ms")]
    pub lease_ms: u64,
    /// Refresh hot entries in the background shortly before they expire.
    #[serde(default)]
    pub refresh_ahead: Option<RefreshAhead>,
    /// Variants (`Vary`) one URL keeps; storing one more drops the least recently stored.
    #[serde(default = "default_max_variants")]
    pub max_variants: u32,
    /// RFC 9111 §4.2.3: the time the origin took to answer counts toward a stored response's
    /// age. Off: age counts from the response's arrival (plus `Age`, and `Date`), as Varnish
    /// and nginx count it.
    #[serde(default = "yes")]
    pub age_includes_response_delay: bool,
}

/// Predictive refresh of hot entries.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshAhead {
    /// Hits (on one worker, since the entry was stored) that make an entry hot.
    pub min_hits: u32,
    /// Refresh once less than this share of the lifetime is left.
    #[serde(default = "default_before_expiry_percent")]
    pub before_expiry_percent: u64,
}

impl RefreshAhead {
    /// Whether a fresh entry hit `hits` times, `age_s` old, is due for a refresh before it
    /// expires: it is hot and less than `before_expiry_percent` of its lifetime is left.
    pub fn due(&self, hits: u32, lifetime_s: u64, age_s: u64) -> bool {
        let left = lifetime_s.saturating_sub(age_s);
        let threshold = lifetime_s.saturating_mul(self.before_expiry_percent) / 100;
        hits >= self.min_hits && left <= threshold
    }
}

fn default_max_variants() -> u32 {
    DEFAULT_MAX_VARIANTS
}

fn default_lease_ms() -> u64 {
    5000
}

fn default_before_expiry_percent() -> u64 {
    10
}

/// How the query string enters the cache key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryMode {
    /// Every parameter (minus `query_deny`), sorted.
    #[default]
    All,
    /// Only the parameters in `query_allow`, sorted.
    Allow,
    /// The query string is ignored.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    #[serde(default)]
    pub query: QueryMode,
    /// Parameters kept with `query: "allow"`; a trailing `*` matches a prefix.
    #[serde(default)]
    pub query_allow: Vec<String>,
    /// Parameters dropped with `query: "all"`; a trailing `*` matches a prefix.
    #[serde(default = "default_query_deny")]
    pub query_deny: Vec<String>,
    /// Request headers whose values become part of the key (lower-case names).
    #[serde(default)]
    pub headers: Vec<String>,
}

impl Default for KeyConfig {
    fn default() -> Self {
        Self {
            query: QueryMode::All,
            query_allow: Vec::new(),
            query_deny: default_query_deny(),
            headers: Vec::new(),
        }
    }
}

/// Exactly one source of the tenant id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// 1-based path segment (`/api/v1/{tenant}/...` is segment 3).
    #[serde(default)]
    pub path_segment: Option<u32>,
}

fn yes() -> bool {
    true
}

fn default_max_ttl_s() -> u64 {
    86_400
}

fn default_tag_header() -> String {
    "cache-tag".to_string()
}

fn default_query_deny() -> Vec<String> {
    ["utm_*", "fbclid", "gclid"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Longest header name or parameter name accepted in key settings.
const MAX_NAME_LEN: usize = 128;

impl CacheSection {
    /// What decides whether (and how long) a response of this service is stored.
    pub fn store_policy(&self) -> StorePolicy {
        StorePolicy {
            default_ttl: self.default_ttl_s,
            heuristic: self.heuristic,
            max_ttl: self.max_ttl_s,
            store_set_cookie: self.store_set_cookie,
            targeted: self.targeted_cache_control.clone(),
            count_response_delay: self.age_includes_response_delay,
        }
    }

    /// The stale windows an entry of this service gets when its response names none.
    pub fn stale_defaults(&self) -> StaleDefaults {
        StaleDefaults {
            stale_while_revalidate: self.stale_while_revalidate_s,
            stale_if_error: self.stale_if_error_s,
        }
    }

    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if let Some(ttl) = self.default_ttl_s {
            if ttl > self.max_ttl_s {
                return Err(ConfigError::new(
                    format!("{path}.default_ttl_s"),
                    format!("{ttl} is larger than max_ttl_s ({})", self.max_ttl_s),
                ));
            }
        }
        if self.max_ttl_s == 0 || self.max_ttl_s > 31_536_000 {
            return Err(ConfigError::new(
                format!("{path}.max_ttl_s"),
                format!(
                    "{} is out of range, must be between 1 and 31536000 (a year)",
                    self.max_ttl_s
                ),
            ));
        }
        validate_header_name(&format!("{path}.tag_header"), &self.tag_header)?;
        if let Some(name) = &self.targeted_cache_control {
            let field = format!("{path}.targeted_cache_control");
            validate_header_name(&field, name)?;
            if name == "cache-control" {
                return Err(ConfigError::new(
                    field,
                    "must name a targeted field, not cache-control itself",
                ));
            }
        }
        for (field, window) in [
            ("stale_while_revalidate_s", self.stale_while_revalidate_s),
            ("stale_if_error_s", self.stale_if_error_s),
        ] {
            if window.is_some_and(|w| w > 31_536_000) {
                return Err(ConfigError::new(
                    format!("{path}.{field}"),
                    "is out of range, must be at most 31536000 (a year)",
                ));
            }
        }
        if !(100..=60_000).contains(&self.lease_ms) {
            return Err(ConfigError::new(
                format!("{path}.lease_ms"),
                format!(
                    "{} is out of range, must be between 100 and 60000",
                    self.lease_ms
                ),
            ));
        }
        if !(1..=MAX_VARIANTS).contains(&usize::try_from(self.max_variants).unwrap_or(usize::MAX)) {
            return Err(ConfigError::new(
                format!("{path}.max_variants"),
                format!(
                    "{} is out of range, must be between 1 and {MAX_VARIANTS}",
                    self.max_variants
                ),
            ));
        }
        if let Some(refresh) = &self.refresh_ahead {
            if refresh.min_hits == 0 {
                return Err(ConfigError::new(
                    format!("{path}.refresh_ahead.min_hits"),
                    "must be at least 1",
                ));
            }
            if !(1..=90).contains(&refresh.before_expiry_percent) {
                return Err(ConfigError::new(
                    format!("{path}.refresh_ahead.before_expiry_percent"),
                    format!(
                        "{} is out of range, must be between 1 and 90",
                        refresh.before_expiry_percent
                    ),
                ));
            }
        }
        self.key.validate(&format!("{path}.key"))?;
        if let Some(tenant) = &self.tenant {
            tenant.validate(&format!("{path}.tenant"))?;
        }
        Ok(())
    }
}

impl KeyConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.query != QueryMode::Allow && !self.query_allow.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.query_allow"),
                "only applies with \"query\": \"allow\"",
            ));
        }
        if self.query == QueryMode::Allow && self.query_allow.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.query_allow"),
                "must list at least one parameter with \"query\": \"allow\" (or use \"none\")",
            ));
        }
        for (field, names) in [
            ("query_allow", &self.query_allow),
            ("query_deny", &self.query_deny),
        ] {
            for (index, name) in names.iter().enumerate() {
                let bare = name.strip_suffix('*').unwrap_or(name);
                if bare.is_empty() || name.len() > MAX_NAME_LEN || bare.contains(['&', '=', '*']) {
                    return Err(ConfigError::new(
                        format!("{path}.{field}[{index}]"),
                        format!(
                            "{name:?} is not a parameter name (a trailing '*' matches a prefix)"
                        ),
                    ));
                }
            }
        }
        for (index, name) in self.headers.iter().enumerate() {
            validate_header_name(&format!("{path}.headers[{index}]"), name)?;
        }
        Ok(())
    }
}

impl TenantConfig {
    pub(crate) fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let given = [
            self.header.is_some(),
            self.query.is_some(),
            self.path_segment.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(ConfigError::new(
                path,
                "must name exactly one of header, query, path_segment",
            ));
        }
        if let Some(header) = &self.header {
            validate_header_name(&format!("{path}.header"), header)?;
        }
        if let Some(query) = &self.query {
            if query.is_empty() || query.len() > MAX_NAME_LEN || query.contains(['&', '=']) {
                return Err(ConfigError::new(
                    format!("{path}.query"),
                    format!("{query:?} is not a parameter name"),
                ));
            }
        }
        if self.path_segment == Some(0) {
            return Err(ConfigError::new(
                format!("{path}.path_segment"),
                "segments count from 1",
            ));
        }
        Ok(())
    }
}

fn validate_header_name(path: &str, name: &str) -> Result<(), ConfigError> {
    let valid = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::new(
            path,
            format!("{name:?} is not a lower-case header name"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::RefreshAhead;

    #[test]
    fn refresh_ahead_is_due_for_hot_entries_near_expiry() {
        let ahead = RefreshAhead {
            min_hits: 3,
            before_expiry_percent: 10,
        };
        // 100 s lifetime: due once 10 s or less are left, and only when hot.
        assert!(!ahead.due(3, 100, 89));
        assert!(ahead.due(3, 100, 90));
        assert!(!ahead.due(2, 100, 95));
        assert!(ahead.due(5, 100, 200));
    }
}

//! The plugin configuration as operators write it (JSON): the service list, the default
//! service and the global sections, parsed strictly (unknown fields refused) and validated as a
//! whole, so a bad configuration is refused at load time with the field it names.

use serde::Deserialize;

use super::{
    AdminConfig, BreakerSection, CacheSection, ConfigError, DedupSection, FleetBridge,
    FleetSection, Limits, MonitoringConfig, RateLimitSection, Registry,
};

/// The plugin configuration as operators write it (JSON). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Named services, matched in order; the first match wins.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// What unmatched traffic is counted as.
    #[serde(default)]
    pub default_service: DefaultServiceConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// The Envoy cluster of the origin, for requests the filter makes itself (revalidation).
    #[serde(default = "default_upstream_cluster")]
    pub upstream_cluster: String,
    /// The cache's name in `Cache-Status` response headers.
    #[serde(default = "default_cache_status_name")]
    pub cache_status_name: String,
    /// How often each worker re-reads purge generations from shared data; a purge made on one
    /// worker takes effect on the others within this time.
    #[serde(default = "default_generation_refresh_ms")]
    pub generation_refresh_ms: u64,
    /// How the filter reaches the fleet tier (Redis through an HTTP bridge); used by services
    /// with a `fleet` section.
    #[serde(default)]
    pub fleet_bridge: FleetBridge,
    /// Set by `edge-launch`, not by hand: the reason the last configuration written to the
    /// running edge was refused. The launcher then hands Envoy the configuration still serving
    /// with this note, so `/health` reports the refusal from the configuration actually serving
    /// (true however Envoy reuses or caches plugins for identical configurations).
    #[serde(default)]
    pub update_refused: Option<String>,
}

fn default_upstream_cluster() -> String {
    "origin".to_string()
}

fn default_cache_status_name() -> String {
    "edge".to_string()
}

fn default_generation_refresh_ms() -> u64 {
    250
}

impl Default for Config {
    fn default() -> Self {
        Self {
            services: Vec::new(),
            default_service: DefaultServiceConfig::default(),
            limits: Limits::default(),
            admin: AdminConfig::default(),
            monitoring: MonitoringConfig::default(),
            upstream_cluster: default_upstream_cluster(),
            cache_status_name: default_cache_status_name(),
            generation_refresh_ms: default_generation_refresh_ms(),
            fleet_bridge: FleetBridge::default(),
            update_refused: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    #[serde(rename = "match")]
    pub match_: MatchConfig,
    #[serde(default)]
    pub cache: Option<CacheSection>,
    #[serde(default)]
    pub dedup: Option<DedupSection>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSection>,
    #[serde(default)]
    pub breaker: Option<BreakerSection>,
    /// Expected edge latency (p95, ms): twice this raises a dashboard alert.
    #[serde(default)]
    pub latency_target_ms: Option<u64>,
    /// Which of the service's features are shared by the fleet through Redis.
    #[serde(default)]
    pub fleet: Option<FleetSection>,
}

/// Request attributes a service is matched by; every given attribute must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Host (`:authority`), case-insensitive; a port in the request is ignored unless given here.
    #[serde(default)]
    pub authority: Option<String>,
    /// Path prefix (query string excluded), must start with `/`.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// Exact path (query string excluded), must start with `/`.
    #[serde(default)]
    pub path_exact: Option<String>,
    /// HTTP methods (upper case).
    #[serde(default)]
    pub methods: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultServiceConfig {
    #[serde(default = "default_service_name")]
    pub name: String,
    #[serde(default)]
    pub cache: Option<CacheSection>,
    #[serde(default)]
    pub dedup: Option<DedupSection>,
    #[serde(default)]
    pub rate_limit: Option<RateLimitSection>,
    #[serde(default)]
    pub breaker: Option<BreakerSection>,
    /// Expected edge latency (p95, ms): twice this raises a dashboard alert.
    #[serde(default)]
    pub latency_target_ms: Option<u64>,
    /// Which of the service's features are shared by the fleet through Redis.
    #[serde(default)]
    pub fleet: Option<FleetSection>,
}

fn default_service_name() -> String {
    "default".to_string()
}

impl Default for DefaultServiceConfig {
    fn default() -> Self {
        Self {
            name: default_service_name(),
            cache: None,
            dedup: None,
            rate_limit: None,
            breaker: None,
            latency_target_ms: None,
            fleet: None,
        }
    }
}

/// Longest service name; names become stat label values, so they stay short and plain.
pub const MAX_SERVICE_NAME_LEN: usize = 64;
/// Largest configuration (256 services of generous size fit many times over).
pub const MAX_CONFIG_BYTES: usize = 1 << 20;
/// Longest `update_refused` note.
pub const MAX_UPDATE_REFUSED_LEN: usize = 1024;
/// The UTF-8 byte order mark some editors put first.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";
/// Most services one configuration may declare (matching is a linear scan).
pub const MAX_SERVICES: usize = 256;

impl Config {
    /// Parses and validates a plugin configuration. Empty (or whitespace-only) input is refused:
    /// it is far more often a truncated file (`jq … cfg.json > cfg.json`) than a wish for the
    /// defaults, which `{}` spells.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.len() > MAX_CONFIG_BYTES {
            return Err(ConfigError::new(
                "config",
                format!(
                    "{} bytes, at most {MAX_CONFIG_BYTES} are allowed",
                    bytes.len()
                ),
            ));
        }
        let (bom, rest) = match bytes.strip_prefix(UTF8_BOM) {
            Some(rest) => (true, rest),
            None => (false, bytes),
        };
        if rest.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::new(
                "config",
                "empty (write {} for all defaults)",
            ));
        }
        if bom {
            return Err(ConfigError::new(
                "config",
                "starts with a UTF-8 byte order mark (BOM); save the file without it",
            ));
        }
        // serde would also accept a positional array for a struct; operators write objects.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ConfigError::new("config", "must be a JSON object"));
        }
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let config: Self =
            serde_path_to_error::deserialize(&mut deserializer).map_err(ConfigError::from_json)?;
        deserializer
            .end()
            .map_err(|err| ConfigError::new("config", format!("trailing characters: {err}")))?;
        config.validate()?;
        Ok(config)
    }

    /// Parses, validates and compiles into the registry the filter matches requests with.
    pub fn parse_registry(bytes: &[u8]) -> Result<Registry, ConfigError> {
        Self::parse(bytes).map(|config| Registry::new(&config))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.services.len() > MAX_SERVICES {
            return Err(ConfigError::new(
                "services",
                format!(
                    "{} services given, at most {MAX_SERVICES} are allowed",
                    self.services.len()
                ),
            ));
        }
        let mut seen: Vec<(&str, String)> = Vec::with_capacity(self.services.len() + 1);
        for (index, service) in self.services.iter().enumerate() {
            let path = format!("services[{index}]");
            validate_name(&format!("{path}.name"), &service.name, &seen)?;
            seen.push((&service.name, path.clone()));
            service.match_.validate(&format!("{path}.match"))?;
            if let Some(cache) = &service.cache {
                cache.validate(&format!("{path}.cache"))?;
            }
            if let Some(dedup) = &service.dedup {
                dedup.validate(&format!("{path}.dedup"))?;
            }
            if let Some(rate_limit) = &service.rate_limit {
                rate_limit.validate(&format!("{path}.rate_limit"))?;
            }
            if let Some(breaker) = &service.breaker {
                breaker.validate(&format!("{path}.breaker"))?;
            }
            if let Some(fleet) = &service.fleet {
                let has = super::fleet::config::Features {
                    dedup: service.dedup.is_some(),
                    rate_limit: service.rate_limit.is_some(),
                    cache: service.cache.is_some(),
                };
                fleet.validate(&format!("{path}.fleet"), has)?;
            }
            validate_latency_target(
                &format!("{path}.latency_target_ms"),
                service.latency_target_ms,
            )?;
        }
        let default = &self.default_service;
        validate_name("default_service.name", &default.name, &seen)?;
        seen.push((&default.name, "default_service".to_string()));
        validate_stat_labels(&seen)?;
        if let Some(cache) = &default.cache {
            cache.validate("default_service.cache")?;
        }
        if let Some(dedup) = &default.dedup {
            dedup.validate("default_service.dedup")?;
        }
        if let Some(rate_limit) = &default.rate_limit {
            rate_limit.validate("default_service.rate_limit")?;
        }
        if let Some(breaker) = &default.breaker {
            breaker.validate("default_service.breaker")?;
        }
        if let Some(fleet) = &default.fleet {
            let has = super::fleet::config::Features {
                dedup: default.dedup.is_some(),
                rate_limit: default.rate_limit.is_some(),
                cache: default.cache.is_some(),
            };
            fleet.validate("default_service.fleet", has)?;
        }
        self.fleet_bridge.validate()?;
        validate_latency_target(
            "default_service.latency_target_ms",
            default.latency_target_ms,
        )?;
        self.monitoring.validate()?;
        self.limits.validate()?;
        self.admin.validate()?;
        if self.upstream_cluster.is_empty() {
            return Err(ConfigError::new("upstream_cluster", "must not be empty"));
        }
        if self.cache_status_name.is_empty()
            || !self
                .cache_status_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(ConfigError::new(
                "cache_status_name",
                "must be a token of letters, digits, '-', '_' and '.'",
            ));
        }
        if self
            .update_refused
            .as_ref()
            .is_some_and(|reason| reason.len() > MAX_UPDATE_REFUSED_LEN)
        {
            return Err(ConfigError::new(
                "update_refused",
                format!("longer than {MAX_UPDATE_REFUSED_LEN} bytes"),
            ));
        }
        if !(10..=60_000).contains(&self.generation_refresh_ms) {
            return Err(ConfigError::new(
                "generation_refresh_ms",
                format!(
                    "{} is out of range, must be between 10 and 60000",
                    self.generation_refresh_ms
                ),
            ));
        }
        Ok(())
    }
}

/// Words the shipped `stats_tags` look for in stat names: a service named so would confuse them.
const RESERVED_LABELS: [&str; 3] = ["service", "outcome", "stage"];

/// A service name as a stat label value (`.` would split the stat name, so it becomes `_`).
pub fn stat_label(name: &str) -> String {
    name.replace('.', "_")
}

/// Service names become stat label values: two names that differ only in `.` vs `_` would share
/// their series, and the tag words would be misread.
fn validate_stat_labels(names: &[(&str, String)]) -> Result<(), ConfigError> {
    for (index, (name, path)) in names.iter().enumerate() {
        let label = stat_label(name);
        if RESERVED_LABELS.contains(&label.as_str()) {
            return Err(ConfigError::new(
                format!("{path}.name"),
                format!("{name:?} is reserved (stat tag names: service, outcome, stage)"),
            ));
        }
        if let Some((other, other_path)) = names
            .iter()
            .take(index)
            .find(|(other, _)| stat_label(other) == label)
        {
            return Err(ConfigError::new(
                format!("{path}.name"),
                format!(
                    "{name:?} and {other:?} ({other_path}) would share the stats label {label:?}"
                ),
            ));
        }
    }
    Ok(())
}

fn validate_latency_target(path: &str, target: Option<u64>) -> Result<(), ConfigError> {
    match target {
        Some(ms) if !(1..=600_000).contains(&ms) => {
            Err(ConfigError::new(path, "must be between 1 and 600000"))
        }
        _ => Ok(()),
    }
}

fn validate_name(path: &str, name: &str, seen: &[(&str, String)]) -> Result<(), ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(path, "must not be empty"));
    }
    if name.len() > MAX_SERVICE_NAME_LEN {
        return Err(ConfigError::new(
            path,
            format!(
                "is {} bytes long, at most {MAX_SERVICE_NAME_LEN} are allowed",
                name.len()
            ),
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(ConfigError::new(
            path,
            format!("contains {bad:?}; use only letters, digits, '-', '_' and '.'"),
        ));
    }
    if let Some((_, first)) = seen.iter().find(|(other, _)| *other == name) {
        return Err(ConfigError::new(
            path,
            format!("duplicate service name {name:?} (already used by {first})"),
        ));
    }
    Ok(())
}

impl MatchConfig {
    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        if self.authority.is_none()
            && self.path_prefix.is_none()
            && self.path_exact.is_none()
            && self.methods.is_none()
        {
            return Err(ConfigError::new(
                path,
                "must name at least one of authority, path_prefix, path_exact, methods \
                 (unmatched traffic goes to default_service)",
            ));
        }
        if self.path_prefix.is_some() && self.path_exact.is_some() {
            return Err(ConfigError::new(
                path,
                "path_prefix and path_exact are mutually exclusive",
            ));
        }
        for (field, value) in [
            ("path_prefix", &self.path_prefix),
            ("path_exact", &self.path_exact),
        ] {
            if let Some(value) = value {
                if !value.starts_with('/') {
                    return Err(ConfigError::new(
                        format!("{path}.{field}"),
                        "must start with '/'",
                    ));
                }
                if value.contains(['?', '#']) {
                    return Err(ConfigError::new(
                        format!("{path}.{field}"),
                        "must not contain '?' or '#' (the query string is not matched)",
                    ));
                }
            }
        }
        if let Some(authority) = &self.authority {
            if authority.is_empty() || authority.contains(|c: char| c.is_whitespace() || c == '/') {
                return Err(ConfigError::new(
                    format!("{path}.authority"),
                    "must be a host name with an optional port",
                ));
            }
        }
        if let Some(methods) = &self.methods {
            if methods.is_empty() {
                return Err(ConfigError::new(
                    format!("{path}.methods"),
                    "must list at least one method (leave the field out to match every method)",
                ));
            }
            for (index, method) in methods.iter().enumerate() {
                if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
                    return Err(ConfigError::new(
                        format!("{path}.methods[{index}]"),
                        format!("{method:?} is not an upper-case HTTP method"),
                    ));
                }
            }
        }
        Ok(())
    }
}

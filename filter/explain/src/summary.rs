//! A configuration as the filter reads it: its validation result (the filter's own messages
//! and field paths) and a readable summary per service.

use edge_filter::policy::{CacheSection, Config, MatchConfig, QueryMode, Service, TenantConfig};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigReport {
    pub valid: bool,
    /// The field the filter refuses, and why (as the filter logs it: `path: reason`).
    pub error_path: Option<String>,
    pub error: Option<String>,
    pub services: Vec<ServiceSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSummary {
    pub name: String,
    /// `services[i]` or `default_service`.
    pub field: String,
    pub matches: String,
    /// What is on: cache, dedup, rate limit, breaker, with their main settings.
    pub features: Vec<String>,
    /// The cache key's parts, when the service caches.
    pub key_template: Option<String>,
}

/// Validates `config` with the filter's parser and summarises each service.
pub fn check_config(config: &str) -> ConfigReport {
    match Config::parse(config.as_bytes()) {
        Err(err) => ConfigReport {
            valid: false,
            error_path: Some(err.path.clone()),
            error: Some(err.to_string()),
            services: Vec::new(),
        },
        Ok(config) => {
            let registry = edge_filter::policy::Registry::new(&config);
            let mut services: Vec<ServiceSummary> = config
                .services
                .iter()
                .enumerate()
                .filter_map(|(index, s)| {
                    let service = registry.service_at(index)?;
                    Some(summarise(
                        service,
                        &format!("services[{index}]"),
                        Some(&s.match_),
                    ))
                })
                .collect();
            services.push(summarise(
                registry.default_service(),
                "default_service",
                None,
            ));
            ConfigReport {
                valid: true,
                error_path: None,
                error: None,
                services,
            }
        }
    }
}

/// The field path of a service by its registry index.
pub(crate) fn service_field(config: &Config, index: usize) -> String {
    if index < config.services.len() {
        format!("services[{index}]")
    } else {
        "default_service".to_string()
    }
}

/// A `match` section in words.
pub(crate) fn describe_match(m: Option<&MatchConfig>) -> String {
    let Some(m) = m else {
        return "every request no service matches".to_string();
    };
    let mut parts = Vec::new();
    if let Some(authority) = &m.authority {
        parts.push(format!("authority {authority}"));
    }
    match (&m.path_exact, &m.path_prefix) {
        (Some(exact), _) => parts.push(format!("path exactly {exact}")),
        (None, Some(prefix)) => parts.push(format!("path starting with {prefix}")),
        (None, None) => parts.push("any path".to_string()),
    }
    if let Some(methods) = &m.methods {
        parts.push(format!("methods {}", methods.join(", ")));
    }
    parts.join(", ")
}

pub(crate) fn describe_tenant(tenant: &TenantConfig) -> String {
    let mut sources = Vec::new();
    if let Some(header) = &tenant.header {
        sources.push(format!("header {header}"));
    }
    if let Some(query) = &tenant.query {
        sources.push(format!("query parameter {query}"));
    }
    if let Some(segment) = tenant.path_segment {
        sources.push(format!("path segment {segment}"));
    }
    sources.join(", ")
}

pub(crate) fn key_template(service: &str, cache: &CacheSection) -> String {
    let tenant = cache
        .tenant
        .as_ref()
        .map_or_else(|| "no tenant".to_string(), describe_tenant);
    let query = match cache.key.query {
        QueryMode::All if cache.key.query_deny.is_empty() => "every query parameter, sorted".into(),
        QueryMode::All => format!(
            "every query parameter but {}, sorted",
            cache.key.query_deny.join(", ")
        ),
        QueryMode::Allow => format!("only {}, sorted", cache.key.query_allow.join(", ")),
        QueryMode::None => "no query".to_string(),
    };
    let headers = if cache.key.headers.is_empty() {
        "no headers".to_string()
    } else {
        format!("headers {}", cache.key.headers.join(", "))
    };
    format!("{service} / tenant: {tenant} / scheme://authority/path / query: {query} / {headers}")
}

fn summarise(service: &Service, field: &str, m: Option<&MatchConfig>) -> ServiceSummary {
    let mut features = Vec::new();
    if let Some(cache) = &service.cache {
        let ttl = cache
            .default_ttl_s
            .map_or_else(|| "origin's".to_string(), |t| format!("{t} s default"));
        features.push(format!(
            "cache (freshness: {ttl}, at most {} s{}{})",
            cache.max_ttl_s,
            if cache.coalesce {
                ", coalescing misses"
            } else {
                ""
            },
            if cache.debug {
                ", key in Cache-Status"
            } else {
                ""
            }
        ));
    }
    if let Some(dedup) = &service.dedup {
        features.push(format!(
            "dedup (identity: {}; results kept {} s)",
            dedup.identity.join(" then "),
            dedup.retention_s
        ));
    }
    if let Some(rl) = &service.rate_limit {
        features.push(format!(
            "rate limit ({} req/s, burst {}, per tenant from {}, {:?} mode)",
            rl.requests_per_second,
            rl.burst,
            describe_tenant(&rl.tenant),
            rl.mode
        ));
    }
    if let Some(breaker) = &service.breaker {
        features.push(format!(
            "breaker (opens above {}% failures of at least {} requests in {} s; open {} ms first)",
            breaker.max_failure_rate * 100.0,
            breaker.min_requests,
            breaker.window_s,
            breaker.open_base_ms
        ));
    }
    if features.is_empty() {
        features.push("nothing: requests pass through".to_string());
    }
    ServiceSummary {
        name: service.name.clone(),
        field: field.to_string(),
        matches: describe_match(m),
        features,
        key_template: service
            .cache
            .as_ref()
            .map(|cache| key_template(&service.name, cache)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_config_names_the_field_like_the_filter() {
        let report = check_config(
            r#"{"services":[{"name":"a","match":{"path_prefix":"/"},"cache":{"max_ttl_s":0}}]}"#,
        );
        assert!(!report.valid);
        assert_eq!(
            report.error_path.as_deref(),
            Some("services[0].cache.max_ttl_s")
        );
        let filter = Config::parse(
            br#"{"services":[{"name":"a","match":{"path_prefix":"/"},"cache":{"max_ttl_s":0}}]}"#,
        );
        assert_eq!(report.error, filter.err().map(|e| e.to_string()));
    }

    #[test]
    fn valid_config_is_summarised_per_service() {
        let report = check_config(
            r#"{"services":[{"name":"leads","match":{"path_prefix":"/l/"},
                "cache":{"tenant":{"header":"x-t"}},"breaker":{}}]}"#,
        );
        assert!(report.valid, "{report:?}");
        assert_eq!(report.services.len(), 2);
        let leads = &report.services[0];
        assert_eq!(leads.matches, "path starting with /l/");
        assert!(leads
            .key_template
            .as_deref()
            .unwrap()
            .contains("header x-t"));
        assert_eq!(report.services[1].field, "default_service");
    }
}

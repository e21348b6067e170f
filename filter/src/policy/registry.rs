//! The validated configuration in the form the request path uses: services in match order with
//! their compiled matchers (the first that matches wins, else the default service), and the
//! global settings.

use super::{
    AdminConfig, BreakerSection, CacheSection, Config, DedupSection, FleetBridge, FleetSection,
    Limits, Matcher, MonitoringConfig, RateLimitSection, RequestAttributes,
};

/// A named service traffic is attributed to, with its feature settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    /// Position in the registry (the default service comes after the named ones); used as the
    /// service's purge-generation slot.
    pub index: usize,
    pub cache: Option<CacheSection>,
    pub dedup: Option<DedupSection>,
    pub rate_limit: Option<RateLimitSection>,
    pub breaker: Option<BreakerSection>,
    pub latency_target_ms: Option<u64>,
    /// Which features are shared by the fleet through Redis.
    pub fleet: Option<FleetSection>,
}

/// Settings that are not per service.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalSettings {
    pub limits: Limits,
    pub admin: AdminConfig,
    pub monitoring: MonitoringConfig,
    pub upstream_cluster: String,
    pub cache_status_name: String,
    pub generation_refresh_ms: u64,
    pub fleet_bridge: FleetBridge,
    /// Why the last configuration written to the edge was refused (see
    /// [`super::Config::update_refused`]).
    pub update_refused: Option<String>,
}

/// The validated configuration in the form the request path uses: services in match order,
/// the default service, and the global settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    services: Vec<(Matcher, Service)>,
    default: Service,
    settings: GlobalSettings,
}

impl Registry {
    pub fn new(config: &Config) -> Self {
        Self {
            services: config
                .services
                .iter()
                .enumerate()
                .map(|(index, s)| {
                    (
                        Matcher::new(&s.match_),
                        Service {
                            name: s.name.clone(),
                            index,
                            cache: s.cache.clone(),
                            dedup: s.dedup.clone(),
                            rate_limit: s.rate_limit.clone(),
                            breaker: s.breaker.clone(),
                            latency_target_ms: s.latency_target_ms,
                            fleet: s.fleet.clone(),
                        },
                    )
                })
                .collect(),
            default: Service {
                name: config.default_service.name.clone(),
                index: config.services.len(),
                cache: config.default_service.cache.clone(),
                dedup: config.default_service.dedup.clone(),
                rate_limit: config.default_service.rate_limit.clone(),
                breaker: config.default_service.breaker.clone(),
                latency_target_ms: config.default_service.latency_target_ms,
                fleet: config.default_service.fleet.clone(),
            },
            settings: GlobalSettings {
                limits: config.limits.clone(),
                admin: config.admin.clone(),
                monitoring: config.monitoring.clone(),
                upstream_cluster: config.upstream_cluster.clone(),
                cache_status_name: config.cache_status_name.clone(),
                generation_refresh_ms: config.generation_refresh_ms,
                fleet_bridge: config.fleet_bridge.clone(),
                update_refused: config.update_refused.clone(),
            },
        }
    }

    /// The first service whose match accepts the request, else the default service.
    pub fn match_request(&self, request: &RequestAttributes<'_>) -> &Service {
        self.services
            .iter()
            .find(|(matcher, _)| matcher.matches(request))
            .map_or(&self.default, |(_, service)| service)
    }

    /// A service (or the default service) by its index.
    pub fn service_at(&self, index: usize) -> Option<&Service> {
        match self.services.get(index) {
            Some((_, service)) => Some(service),
            None => (index == self.default.index).then_some(&self.default),
        }
    }

    /// The cache section of the service at `index`, if it caches.
    pub fn cache_at(&self, index: usize) -> Option<&CacheSection> {
        self.service_at(index).and_then(|s| s.cache.as_ref())
    }

    /// The dedup section of the service at `index`, if it deduplicates.
    pub fn dedup_at(&self, index: usize) -> Option<&DedupSection> {
        self.service_at(index).and_then(|s| s.dedup.as_ref())
    }

    /// A service (or the default service) by name.
    pub fn service_named(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .map(|(_, service)| service)
            .chain(std::iter::once(&self.default))
            .find(|service| service.name == name)
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn default_service(&self) -> &Service {
        &self.default
    }

    pub fn limits(&self) -> &Limits {
        &self.settings.limits
    }

    pub fn settings(&self) -> &GlobalSettings {
        &self.settings
    }

    /// Whether any service caches (the filter then keeps L1 and watches purge generations).
    /// Whether any service deduplicates (the filter then polls for waiting duplicates).
    pub fn deduplicates(&self) -> bool {
        self.default.dedup.is_some() || self.services.iter().any(|(_, s)| s.dedup.is_some())
    }

    /// Whether any service has a circuit breaker.
    pub fn breaks(&self) -> bool {
        self.default.breaker.is_some() || self.services.iter().any(|(_, s)| s.breaker.is_some())
    }

    /// Whether any service rate-limits.
    pub fn limits_rates(&self) -> bool {
        self.default.rate_limit.is_some()
            || self.services.iter().any(|(_, s)| s.rate_limit.is_some())
    }

    /// Whether any service shares a feature through the fleet tier.
    pub fn uses_fleet(&self) -> bool {
        self.default.fleet.is_some() || self.services.iter().any(|(_, s)| s.fleet.is_some())
    }

    pub fn caches(&self) -> bool {
        self.default.cache.is_some() || self.services.iter().any(|(_, s)| s.cache.is_some())
    }
}

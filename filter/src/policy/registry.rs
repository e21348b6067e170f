use super::{Config, Limits, Matcher, RequestAttributes};

/// A named service traffic is attributed to. Feature settings join it as features land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
}

/// The validated configuration in the form the request path uses: services in match order,
/// the default service, and the global limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    services: Vec<(Matcher, Service)>,
    default: Service,
    limits: Limits,
}

impl Registry {
    pub fn new(config: &Config) -> Self {
        Self {
            services: config
                .services
                .iter()
                .map(|s| {
                    (
                        Matcher::new(&s.match_),
                        Service {
                            name: s.name.clone(),
                        },
                    )
                })
                .collect(),
            default: Service {
                name: config.default_service.name.clone(),
            },
            limits: config.limits.clone(),
        }
    }

    /// The first service whose match accepts the request, else the default service.
    pub fn match_request(&self, request: &RequestAttributes<'_>) -> &Service {
        self.services
            .iter()
            .find(|(matcher, _)| matcher.matches(request))
            .map_or(&self.default, |(_, service)| service)
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn default_service(&self) -> &Service {
        &self.default
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

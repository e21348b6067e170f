//! Host-free policy: everything that decides, nothing that talks to the host.

mod config;
mod config_error;
mod limits;
mod matcher;
mod registry;
mod sections;

pub use config::{Config, DefaultServiceConfig, MatchConfig, ServiceConfig};
pub use config_error::ConfigError;
pub use limits::Limits;
pub use matcher::{Matcher, PathMatch, RequestAttributes};
pub use registry::{Registry, Service};
pub use sections::{BreakerSection, CacheSection, DedupSection, RateLimitSection};

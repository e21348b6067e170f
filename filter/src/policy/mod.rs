//! Host-free policy: everything that decides, nothing that talks to the host.

mod admin_config;
pub mod admin_guard;
pub mod breaker;
mod breaker_config;
pub mod cache;
mod cache_config;
pub mod codec;
mod config;
mod config_error;
pub mod config_redact;
pub mod decimal;
pub mod dedup;
mod dedup_config;
pub mod explain_page;
pub mod fleet;
pub mod hash;
pub mod header_list;
pub mod header_map;
mod limits;
mod matcher;
pub mod monitor;
mod monitor_config;
pub mod rate_limit;
mod rate_limit_config;
mod registry;
pub mod shared_store;
pub mod tenant_id;

pub use admin_config::{AdminConfig, MIN_TOKEN_LEN};
pub use breaker_config::BreakerSection;
pub use cache_config::{CacheSection, KeyConfig, QueryMode, RefreshAhead, TenantConfig};
pub use config::{
    stat_label, Config, DefaultServiceConfig, MatchConfig, ServiceConfig, MAX_UPDATE_REFUSED_LEN,
};
pub use config_error::ConfigError;
pub use dedup_config::{DedupSection, InFlightMode, SignatureConfig};
pub use fleet::{FailureMode, FleetBridge, FleetSection};
pub use limits::Limits;
pub use matcher::{path_without_query, Matcher, PathMatch, RequestAttributes};
pub use monitor_config::MonitoringConfig;
pub use rate_limit_config::{MissingTenant, Mode, OnContention, RateLimitSection, TenantLimit};
pub use registry::{GlobalSettings, Registry, Service};

//! Starting Envoy with the edge filter: options, the rendered Envoy configuration, the Envoy
//! process, and a tiny HTTP client for readiness checks and tests.

mod chromium;
mod envoy_process;
mod error;
mod fleet;
mod http_client;
mod live;
mod options;
mod paths;
mod ports;
mod render;
mod stack;
mod test_origin;
mod test_support;
mod watch;

pub use chromium::{chromium, chromium_run, Browser};
pub use envoy_process::EnvoyProcess;
pub use error::LaunchError;
pub use fleet::{render_fleet_cluster, FleetTier};
pub use http_client::{
    http_request, http_request_bounded, http_request_bytes, HttpResponse, KeepAliveClient,
};
pub use live::{
    ecds_resource, render_live_config, restart_only_change, validate_plugin_config, LiveConfig,
    LiveInputs, FILTER_NAME,
};
pub use options::{FleetOption, LaunchOptions, Upstream, USAGE};
pub use paths::{
    default_envoy_binary, default_plugin_config, default_wasm, runs_root, workspace_root,
};
pub use ports::free_port;
pub use render::{render_envoy_config, RenderInput};
pub use stack::Stack;
pub use test_origin::{TestOrigin, TestOriginSpec};
pub use test_support::{
    admin_stats, cache_status, one_at_a_time, origin_requests, set_origin_fault, test_fleet_stack,
    test_options, test_stack, test_stack_before, test_stack_with, test_stack_with_workers,
    wasm_counter,
};
pub use watch::{ConfigWatcher, ReloadEvent};

//! proxy-wasm glue: reads what the host gives, asks the policy, acts. No decisions here.
//!
//! Layers, each importing only those below it (checked by `filter/tests/plugin_layers.rs`):
//! - `root`, `stream/`: the contexts;
//! - `worker`: the worker's state, one field per feature;
//! - features: `coalescing`, `refresh`, `breaker`, `rate_limit`, `dedup/`, `monitor`,
//!   `health`, `admin`, `config_status`, `dashboard`, `explain`, `hot_keys`;
//! - `env`, `fleet`, `tiers`, `leases`, `replies`, `budgets`, `reply`, `metrics`, `host`;
//! - then `crate::policy`, which knows nothing of the host.

mod admin;
mod allocator;
mod breaker;
mod budgets;
mod coalescing;
mod config_status;
mod dashboard;
mod dedup;
mod env;
mod explain;
mod fleet;
mod header_map;
mod health;
mod host;
mod hot_keys;
mod leases;
mod metrics;
mod monitor;
mod rate_limit;
mod refresh;
mod replies;
mod reply;
mod root;
mod stream;
mod tiers;
mod worker;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root::EdgeRoot::new(context_id)));
}}

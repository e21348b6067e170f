//! proxy-wasm glue: reads what the host gives, asks the policy, acts. No decisions here.

mod admin;
mod breaker;
mod coalescing;
mod config_status;
mod dashboard;
mod dedup;
mod delivery;
mod health;
mod host;
mod http;
mod metrics;
mod monitor;
mod rate_limit;
mod refresh;
mod reply;
mod root;
mod worker;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| Box::new(root::EdgeRoot::new(context_id)));
}}

//! proxy-wasm glue: reads what the host gives, asks the policy, acts. No decisions here.

mod admin;
mod host;
mod http;
mod metrics;
mod root;
mod worker;

use proxy_wasm::types::LogLevel;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_context_id| Box::new(root::EdgeRoot::default()));
}}

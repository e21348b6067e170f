//! "Why was this (not) cached?": the filter's own policy code replaying a request against a
//! configuration and naming, for every decision, the configuration field that drove it.
//!
//! Everything here is plain Rust over `edge_filter::policy` (tested natively); [`web`] is the
//! thin JSON-in/JSON-out `wasm-bindgen` layer the static page calls.

mod cache_status;
mod input;
mod store;
mod summary;
mod trace;

#[cfg(target_arch = "wasm32")]
pub mod web;

pub use cache_status::{explain_cache_status, StatusMember};
pub use input::{
    check_request, header_line, header_lines, is_token, parse_header_lines, OriginResponse,
    TraceRequest,
};
pub use summary::{check_config, ConfigReport, ServiceSummary};
pub use trace::{trace, KeyView, Step, Trace};

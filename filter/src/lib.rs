//! Edge acceleration filter for Envoy (proxy-wasm ABI 0.2.1).
//!
//! Two layers with a hard wall between them:
//! - [`policy`]: host-free decisions (configuration, service matching, ...), compiled and tested
//!   natively;
//! - `plugin`: the thin proxy-wasm glue, compiled only for wasm32.

pub mod policy;

#[cfg(target_arch = "wasm32")]
mod plugin;

//! Edge acceleration filter for Envoy (proxy-wasm ABI 0.2.1).
//!
//! Two layers with a hard wall between them:
//! - [`policy`]: host-free decisions (configuration, service matching, ...), compiled and tested
//!   natively;
//! - `plugin`: the thin proxy-wasm glue, compiled only for wasm32 (and only with the default
//!   `plugin` feature: the explainer reuses the policy on wasm32 without it).

pub mod policy;

#[cfg(all(target_arch = "wasm32", feature = "plugin"))]
mod plugin;

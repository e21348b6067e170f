//! The runtime configuration blob of a Wasm image (the Wasm image spec's
//! `application/vnd.module.wasm.config.v1+json`): which runtime, which ABI, which root ids.

use serde_json::json;

/// The filter's ABI: the module exports `proxy_abi_version_0_2_1`.
const ABI_VERSION: &str = "proxy_abi_version_0_2_1";

/// The runtime configuration for the edge filter, `root_id` as in the shipped Envoy config.
/// Deterministic bytes, so the same `.wasm` always gives the same image digests.
pub fn runtime_config_json(root_id: &str) -> Vec<u8> {
    let config = json!({
        "type": "envoy_proxy",
        "abiVersions": [ABI_VERSION],
        "config": { "root_ids": [root_id] },
    });
    serde_json::to_vec(&config).unwrap_or_default()
}

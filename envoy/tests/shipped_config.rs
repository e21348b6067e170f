//! The shipped `envoy/envoy.yaml` is the launcher's rendering for its defaults, and the shipped
//! plugin configuration is valid.

use std::net::SocketAddr;

use edge_envoy::launch::{default_plugin_config, render_envoy_config, workspace_root, RenderInput};

#[test]
fn envoy_yaml_is_the_default_rendering() {
    let plugin_config = std::fs::read_to_string(default_plugin_config()).unwrap();
    let rendered = render_envoy_config(&RenderInput {
        listen: SocketAddr::from(([127, 0, 0, 1], 10000)),
        admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
        upstream_host: "127.0.0.1",
        upstream_port: 8080,
        wasm: "target/wasm32-unknown-unknown/release/edge_filter.wasm",
        plugin_config: &plugin_config,
        bypass: &[],
    });
    let shipped = std::fs::read_to_string(workspace_root().join("envoy/envoy.yaml")).unwrap();
    assert!(
        shipped == rendered,
        "envoy/envoy.yaml is stale; regenerate it with:\n  cargo run -p edge-envoy --bin edge-launch -- \
         --print-config --wasm target/wasm32-unknown-unknown/release/edge_filter.wasm > envoy/envoy.yaml"
    );
}

#[test]
fn example_plugin_configuration_is_valid() {
    let text = std::fs::read(default_plugin_config()).unwrap();
    let config = edge_filter::policy::Config::parse(&text).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.services.len(), 4);
}

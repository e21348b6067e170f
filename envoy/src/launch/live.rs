//! Live reload of the plugin configuration: Envoy takes the edge filter's configuration from a
//! file through its extension config discovery (ECDS, `config_discovery` with a
//! `path_config_source` and a `watched_directory`), and a new configuration is applied by
//! writing that file atomically (a temporary file renamed over it). Envoy then builds the filter
//! anew — new VMs, so each worker's L1 starts empty, while shared data (L2, rate-limit buckets,
//! breakers, dedup records, purge generations) lives on with the process — and connections
//! stay open.
//!
//! Writers validate with the filter's own code first ([`validate_plugin_config`]); the
//! launcher's watcher hands Envoy no refused configuration but the serving one again with the
//! refusal noted (`update_refused`), which `/health` reports (see [`super::watch`]). A
//! configuration the filter refuses anyway (`on_configure` returns false) makes Envoy reject
//! the update (`extension_config_discovery.http_filter.edge.update_rejected`) and the previous
//! configuration keeps serving.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::LaunchError;
use super::render::{render_envoy_config, RenderInput};

/// The name of the filter (and of the ECDS resource) in the rendered configuration.
pub const FILTER_NAME: &str = "edge";

/// Where the wasm filter starts and ends in the static rendering.
const WASM_FILTER_START: &str = "          - name: envoy.filters.http.wasm\n";
const TYPED_CONFIG_LINE: &str = "            typed_config:\n";

/// The plugin configuration checked by the filter's own code (the same messages and field
/// paths Envoy would log).
pub fn validate_plugin_config(text: &str) -> Result<(), edge_filter::policy::ConfigError> {
    edge_filter::policy::Config::parse(text.as_bytes()).map(|_| ())
}

/// Why `new` cannot be applied live over `serving`: a changed slot count (`limits.*_slots`,
/// `monitoring.worker_slots`) lays shared data out anew, so a live reload would silently drop
/// that table (cached entries, dedup records, rate-limit buckets). Such a change needs a restart.
/// `None` when both are valid and no slot count differs (or either is invalid: validation says
/// why).
pub fn restart_only_change(serving: &str, new: &str) -> Option<String> {
    use edge_filter::policy::Config;
    let (Ok(old), Ok(new)) = (
        Config::parse(serving.as_bytes()),
        Config::parse(new.as_bytes()),
    ) else {
        return None;
    };
    let pairs = [
        ("limits.l2_slots", old.limits.l2_slots, new.limits.l2_slots),
        (
            "limits.lease_slots",
            old.limits.lease_slots,
            new.limits.lease_slots,
        ),
        (
            "limits.dedup_slots",
            old.limits.dedup_slots,
            new.limits.dedup_slots,
        ),
        (
            "limits.rate_limit_slots",
            old.limits.rate_limit_slots,
            new.limits.rate_limit_slots,
        ),
        (
            "monitoring.worker_slots",
            old.monitoring.worker_slots,
            new.monitoring.worker_slots,
        ),
    ];
    let (field, from, to) = pairs.into_iter().find(|(_, from, to)| from != to)?;
    Some(format!(
        "{field}: {from} -> {to} changes the layout of shared data and needs a restart of \
         edge-launch (a live reload would drop that table)"
    ))
}

/// The static Envoy configuration turned into the live one: the wasm filter's `typed_config`
/// moves into the ECDS file (see [`ecds_resource`]) and the filter is found through
/// `config_discovery` watching `ecds_file`. `None` if the static form has no wasm filter block.
pub fn render_live_config(static_config: &str, ecds_file: &Path) -> Option<String> {
    let (before, _, after) = split_wasm_filter(static_config)?;
    let dir = ecds_file.parent().unwrap_or(Path::new("."));
    let discovery = format!(
        "          # The edge filter's configuration comes from a watched file (extension config\n\
         \x20         # discovery): writing it (atomically, by rename) applies a new configuration\n\
         \x20         # without a restart; one the filter refuses is rejected and the old one serves.\n\
         \x20         - name: {FILTER_NAME}\n\
         \x20           config_discovery:\n\
         \x20             config_source:\n\
         \x20               path_config_source:\n\
         \x20                 path: {file:?}\n\
         \x20                 watched_directory: {{ path: {dir:?} }}\n\
         \x20             type_urls: [\"type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\"]\n",
        file = ecds_file.to_string_lossy(),
        dir = dir.to_string_lossy(),
    );
    // Dynamic resources need a node identity.
    let with_node = before.replacen(
        "\nadmin:\n",
        "\n# ECDS needs a node identity.\nnode: { id: edge-launch, cluster: edge }\nadmin:\n",
        1,
    );
    Some(format!("{with_node}{discovery}{after}"))
}

/// The ECDS file's content for the static configuration's wasm filter (its `typed_config`,
/// which carries the plugin configuration), as a discovery response with `version`.
pub fn ecds_resource(static_config: &str, version: u64) -> Option<String> {
    let (_, block, _) = split_wasm_filter(static_config)?;
    let at = block.find(TYPED_CONFIG_LINE)?;
    let typed = block.get(at + TYPED_CONFIG_LINE.len()..)?;
    let mut out = format!(
        "version_info: \"{version}\"\nresources:\n- \"@type\": type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig\n  name: {FILTER_NAME}\n  typed_config:\n"
    );
    for line in typed.lines() {
        // From 14 columns in the listener to 4 in the resource.
        let line = line.strip_prefix("          ").unwrap_or(line.trim_start());
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// (before the wasm filter, the wasm filter's lines, after it).
fn split_wasm_filter(config: &str) -> Option<(&str, &str, &str)> {
    let start = config.find(WASM_FILTER_START)?;
    let rest = config.get(start + WASM_FILTER_START.len()..)?;
    // The block ends at the next line indented like a list item of the filter list (a comment
    // or the next `- name:`).
    let mut end = start + WASM_FILTER_START.len();
    for line in rest.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        if indent <= 10 && !line.trim().is_empty() {
            break;
        }
        end += line.len();
    }
    Some((
        config.get(..start)?,
        config.get(start..end)?,
        config.get(end..)?,
    ))
}

/// What the static rendering needs besides the plugin configuration.
#[derive(Debug, Clone)]
pub struct LiveInputs {
    pub listen: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    pub upstream_host: String,
    pub upstream_port: u16,
    pub wasm: String,
    pub bypass: Vec<String>,
}

impl LiveInputs {
    /// The static Envoy configuration for `plugin_config`.
    pub fn render_static(&self, plugin_config: &str) -> String {
        render_envoy_config(&RenderInput {
            listen: self.listen,
            admin: self.admin,
            upstream_host: &self.upstream_host,
            upstream_port: self.upstream_port,
            wasm: &self.wasm,
            plugin_config,
            bypass: &self.bypass,
        })
    }
}

/// The ECDS file of a running edge: new plugin configurations are written to it atomically.
#[derive(Debug)]
pub struct LiveConfig {
    pub file: PathBuf,
    inputs: LiveInputs,
    version: AtomicU64,
}

impl LiveConfig {
    pub(crate) fn new(file: PathBuf, inputs: LiveInputs) -> Self {
        Self {
            file,
            inputs,
            version: AtomicU64::new(0),
        }
    }

    /// Writes the ECDS file for `plugin_config` (a temporary file renamed over it, so Envoy
    /// never reads half a file) and returns its version. No validation: the filter refuses
    /// what it cannot load (see the module notes); [`validate_plugin_config`] tells earlier.
    pub fn write(&self, plugin_config: &str) -> Result<u64, LaunchError> {
        let static_config = self.inputs.render_static(plugin_config);
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let resource = ecds_resource(&static_config, version).ok_or_else(|| {
            LaunchError::io(
                "render the filter's ECDS resource",
                std::io::Error::other("no wasm filter in the rendered configuration"),
            )
        })?;
        let temporary = self.file.with_extension("yaml.tmp");
        std::fs::write(&temporary, resource)
            .map_err(|err| LaunchError::io(format!("write {}", temporary.display()), err))?;
        std::fs::rename(&temporary, &self.file)
            .map_err(|err| LaunchError::io(format!("rename to {}", self.file.display()), err))?;
        Ok(version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(plugin_config: &str) -> String {
        render_envoy_config(&RenderInput {
            listen: "127.0.0.1:10000".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
            upstream_host: "127.0.0.1",
            upstream_port: 8080,
            wasm: "/x/edge_filter.wasm",
            plugin_config,
            bypass: &[],
        })
    }

    #[test]
    fn the_filter_block_moves_into_the_resource() {
        let static_config = rendered("{\n  \"services\": []\n}\n");
        let live =
            render_live_config(&static_config, Path::new("/run/e/edge-filter.yaml")).unwrap();
        assert!(!live.contains("filename:"), "{live}");
        assert!(live.contains("path: \"/run/e/edge-filter.yaml\""), "{live}");
        assert!(
            live.contains("watched_directory: { path: \"/run/e\" }"),
            "{live}"
        );
        assert!(live.contains("node: { id: edge-launch, cluster: edge }\nadmin:"));
        // Everything after the wasm filter is kept.
        assert!(live.contains("- name: envoy.filters.http.buffer"));
        assert!(live.contains("- name: envoy.filters.http.router"));
        let resource = ecds_resource(&static_config, 7).unwrap();
        assert!(resource.starts_with("version_info: \"7\"\nresources:\n"));
        assert!(resource.contains("\n  typed_config:\n    \"@type\": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm\n    config:\n      name: edge\n"), "{resource}");
        assert!(
            resource.contains("\n            \"services\": []\n"),
            "{resource}"
        );
        assert!(resource.contains("filename: \"/x/edge_filter.wasm\""));
    }

    #[test]
    fn a_slot_count_change_needs_a_restart() {
        let serving = r#"{"limits": {"l2_slots": 1024}}"#;
        assert_eq!(
            restart_only_change(serving, r#"{"limits": {"l2_slots": 2048}}"#).as_deref(),
            Some(
                "limits.l2_slots: 1024 -> 2048 changes the layout of shared data and needs a \
                 restart of edge-launch (a live reload would drop that table)"
            )
        );
        let dedup = restart_only_change("{}", r#"{"limits": {"dedup_slots": 7}}"#).unwrap();
        assert!(dedup.starts_with("limits.dedup_slots: "), "{dedup}");
        let buckets = restart_only_change("{}", r#"{"limits": {"rate_limit_slots": 7}}"#);
        assert!(buckets.unwrap().starts_with("limits.rate_limit_slots: "));
        // Anything else is live.
        assert_eq!(
            restart_only_change(
                serving,
                r#"{"limits": {"l2_slots": 1024, "l1_max_entries": 9}}"#
            ),
            None
        );
    }

    #[test]
    fn validation_is_the_filters_own() {
        assert!(validate_plugin_config("{}").is_ok());
        let err = validate_plugin_config(
            r#"{"services": [{"name": "a", "match": {"path_prefix": "a/"}}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "services[0].match.path_prefix: must start with '/'"
        );
    }
}

//! The outcome of the last configuration Envoy gave the plugin, kept in shared data so that a
//! VM still serving the previous configuration can report a rejected update in `health`, and
//! counted in `edge.config.loaded` / `edge.config.rejected`.

use proxy_wasm::hostcalls;

use super::host::HostStore;
use super::metrics::{Metrics, Stat, STATS};
use crate::policy::shared_store::SharedStore;

const CONFIG_STATUS_KEY: &str = "edge:config";
/// Longest rejection reason kept.
const MAX_REASON: usize = 512;

pub fn loaded(metrics: &Metrics) {
    metrics.inc(Stat::ConfigLoaded);
    let _ = HostStore.set(CONFIG_STATUS_KEY, b"ok", 0);
}

/// Without an accepted configuration there is no [`Metrics`]: the one counter is defined here.
pub fn rejected(reason: &str) {
    if let Some((name, kind)) = STATS.get(Stat::ConfigRejected as usize) {
        if let Ok(id) = hostcalls::define_metric(*kind, name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let value = format!("rejected:{}", reason.get(..end).unwrap_or_default());
    let _ = HostStore.set(CONFIG_STATUS_KEY, value.as_bytes(), 0);
}

/// The reason the last configuration update was rejected, if it was.
pub fn last_rejection() -> Option<String> {
    let (bytes, _) = HostStore.get(CONFIG_STATUS_KEY)?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("rejected:").map(str::to_string)
}

//! Configurations accepted and refused by this plugin, counted in `edge.config.loaded` /
//! `edge.config.rejected`. Whether the running edge refused a newer configuration is not kept
//! here: the launcher writes it into the configuration still serving (`update_refused`), which
//! stays true when Envoy reuses a plugin for an identical configuration or keeps a failed one.

use proxy_wasm::hostcalls;

use super::metrics::{Metrics, Stat, STATS};

pub fn loaded(metrics: &Metrics) {
    metrics.inc(Stat::ConfigLoaded);
}

/// Without an accepted configuration there is no [`Metrics`]: the one counter is defined here.
pub fn rejected() {
    if let Some((name, kind)) = STATS.get(Stat::ConfigRejected as usize) {
        if let Ok(id) = hostcalls::define_metric(*kind, name) {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }
}

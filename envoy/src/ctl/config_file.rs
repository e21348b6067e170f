//! The plugin configuration file `edge-ctl` reads and (with `optimize --apply`) writes: the
//! file `edge-launch --plugin-config` watches, so a write is a live reload.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::exit::CtlError;
use crate::launch::{restart_only_change, validate_plugin_config};

#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub text: String,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<Self, CtlError> {
        let text = std::fs::read_to_string(path)
            .map_err(|err| CtlError::Io(format!("cannot read {}: {err}", path.display())))?;
        Ok(Self {
            path: path.to_path_buf(),
            text,
        })
    }

    /// `field: reason` as the filter would refuse it, or the number of services.
    pub fn validate(&self) -> Result<usize, String> {
        validate_plugin_config(&self.text).map_err(|err| err.to_string())?;
        Ok(self
            .json()
            .map_or(0, |v| v["services"].as_array().map_or(0, Vec::len)))
    }

    /// The configuration as JSON (`None` when it is not JSON).
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    /// `admin.token`, if set.
    pub fn admin_token(&self) -> Option<String> {
        self.json()?["admin"]["token"].as_str().map(str::to_string)
    }

    /// `admin.path_prefix` (default `/api/v1/performance`).
    pub fn admin_prefix(&self) -> String {
        self.json()
            .and_then(|v| v["admin"]["path_prefix"].as_str().map(str::to_string))
            .unwrap_or_else(|| "/api/v1/performance".to_string())
    }

    /// `monitoring.hit_rate_target` (default 0.9).
    pub fn hit_rate_target(&self) -> f64 {
        self.json()
            .and_then(|v| v["monitoring"]["hit_rate_target"].as_f64())
            .unwrap_or(0.9)
    }
}

/// Validates `config` with the filter's own code and writes it to `path` atomically (a
/// temporary file renamed over it): the watching launcher applies it live. Nothing invalid is
/// ever written.
pub fn write_validated(path: &Path, config: &Value) -> Result<(), CtlError> {
    let text = serde_json::to_string_pretty(config).unwrap_or_default() + "\n";
    validate_plugin_config(&text)
        .map_err(|err| CtlError::Io(format!("not written, the filter would refuse it: {err}")))?;
    if let Ok(serving) = std::fs::read_to_string(path) {
        if let Some(reason) = restart_only_change(&serving, &text) {
            return Err(CtlError::Io(format!("not written: {reason}")));
        }
    }
    let temporary = path.with_extension("json.edge-ctl-tmp");
    std::fs::write(&temporary, &text)
        .map_err(|err| CtlError::Io(format!("cannot write {}: {err}", temporary.display())))?;
    std::fs::rename(&temporary, path)
        .map_err(|err| CtlError::Io(format!("cannot replace {}: {err}", path.display())))
}

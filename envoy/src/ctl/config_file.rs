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
    /// The file is not UTF-8 (`text` is its lossy reading): invalid.
    pub not_utf8: bool,
}

impl ConfigFile {
    pub fn read(path: &Path) -> Result<Self, CtlError> {
        let bytes = std::fs::read(path)
            .map_err(|err| CtlError::Io(format!("cannot read {}: {err}", path.display())))?;
        // A file that is not UTF-8 is read (it is there) and found invalid (see `validate`).
        let (text, not_utf8) = match String::from_utf8(bytes) {
            Ok(text) => (text, false),
            Err(err) => (String::from_utf8_lossy(err.as_bytes()).into_owned(), true),
        };
        Ok(Self {
            path: path.to_path_buf(),
            text,
            not_utf8,
        })
    }

    /// `field: reason` as the filter would refuse it, or the number of services.
    pub fn validate(&self) -> Result<usize, String> {
        if self.not_utf8 {
            return Err("config: not UTF-8".to_string());
        }
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
    // Through a symlink: its target is replaced, the link stays.
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let path = resolved.as_path();
    let temporary = path.with_extension("json.edge-ctl-tmp");
    std::fs::write(&temporary, &text)
        .map_err(|err| CtlError::Io(format!("cannot write {}: {err}", temporary.display())))?;
    std::fs::rename(&temporary, path)
        .map_err(|err| CtlError::Io(format!("cannot replace {}: {err}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_through_a_symlink_replaces_its_target_and_keeps_the_link() {
        let dir = std::env::temp_dir().join(format!("edge-ctl-link-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("real.json");
        std::fs::write(&target, "{}").unwrap();
        let link = dir.join("lnk.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let config = serde_json::json!({"cache_status_name": "x"});
        write_validated(&link, &config).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(std::fs::read_to_string(&target).unwrap().contains("\"x\""));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_that_is_not_utf8_is_invalid() {
        let dir = std::env::temp_dir().join(format!("edge-ctl-utf8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.json");
        std::fs::write(&path, b"{\"x\": \"\xe9\"}").unwrap();
        let file = ConfigFile::read(&path).unwrap();
        assert_eq!(file.validate(), Err("config: not UTF-8".to_string()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! The one error a configuration is refused with: the field path and the reason.

use std::fmt;

/// Why a plugin configuration was refused: the field path (`services[2].match.path_prefix`)
/// and the reason, so an operator can find the mistake from one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Maps a JSON decoding error to the field it happened at.
    pub(crate) fn from_json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let path = if path == "." || path.is_empty() {
            "config".to_string()
        } else {
            path
        };
        // serde_json appends " at line L column C"; keep the reason and give the place once.
        let message = inner.to_string();
        let reason = match message.rfind(" at line ") {
            Some(cut) if inner.line() > 0 => message.get(..cut).unwrap_or(&message).to_string(),
            _ => message,
        };
        let reason = if inner.line() > 0 {
            format!(
                "{reason} (line {}, column {})",
                inner.line(),
                inner.column()
            )
        } else {
            reason
        };
        Self { path, reason }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for ConfigError {}

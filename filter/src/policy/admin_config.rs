//! Top-level `admin` section: who may call the management endpoints (purge, later metrics).

use std::fmt;

use serde::Deserialize;

use super::ConfigError;

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for management requests (`Authorization: Bearer <token>` or
    /// `x-edge-admin-token`). Absent: every management request is refused with 403.
    #[serde(default)]
    pub token: Option<String>,
    /// Where the management endpoints live.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
}

fn default_path_prefix() -> String {
    "/api/v1/performance".to_string()
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            path_prefix: default_path_prefix(),
        }
    }
}

/// The token never reaches a log line, not even through `{:?}`.
impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("path_prefix", &self.path_prefix)
            .finish()
    }
}

/// Shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

impl AdminConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.token {
            if token.len() < MIN_TOKEN_LEN
                || token.contains(|c: char| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::new(
                    "admin.token",
                    format!("must be at least {MIN_TOKEN_LEN} characters without spaces"),
                ));
            }
        }
        if !self.path_prefix.starts_with('/')
            || self.path_prefix.len() < 2
            || self.path_prefix.ends_with('/')
        {
            return Err(ConfigError::new(
                "admin.path_prefix",
                "must start with '/' and not end with '/'",
            ));
        }
        Ok(())
    }

    /// Constant-time comparison of a presented token with the configured one.
    pub fn accepts(&self, presented: Option<&str>) -> bool {
        let (Some(expected), Some(presented)) = (&self.token, presented) else {
            return false;
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        let mut difference = a.len() ^ b.len();
        for (index, byte) in a.iter().enumerate() {
            difference |= usize::from(byte ^ b.get(index).copied().unwrap_or(0));
        }
        difference == 0
    }
}

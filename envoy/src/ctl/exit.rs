//! `edge-ctl`'s exit codes, for CI jobs, and the error an action ends with.

use std::fmt;
use std::process::ExitCode;

/// Everything went as asked; checks passed.
pub const OK: u8 = 0;
/// The action ran and found something wrong: a target missed, an invalid configuration, a
/// warm request that failed, proposals not applied.
pub const CHECK_FAILED: u8 = 1;
/// Bad arguments (clap's own code).
pub const USAGE: u8 = 2;
/// The edge (or the origin, or Envoy's admin) could not be reached, or gave an answer that
/// cannot be read.
pub const UNREACHABLE: u8 = 3;
/// A local file could not be read or written, or a stack could not be started.
pub const IO: u8 = 4;

/// Why an action could not finish.
#[derive(Debug)]
pub enum CtlError {
    Unreachable(String),
    Io(String),
    /// Bad arguments found after parsing (exit 2).
    Usage(String),
}

impl CtlError {
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            CtlError::Unreachable(_) => UNREACHABLE,
            CtlError::Io(_) => IO,
            CtlError::Usage(_) => USAGE,
        })
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtlError::Unreachable(reason) | CtlError::Io(reason) | CtlError::Usage(reason) => {
                f.write_str(reason)
            }
        }
    }
}

impl std::error::Error for CtlError {}

/// The outcome of an action: its exit code (`OK` or `CHECK_FAILED`).
pub fn verdict(passed: bool) -> u8 {
    if passed {
        OK
    } else {
        CHECK_FAILED
    }
}

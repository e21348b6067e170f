use std::fmt;

use crate::vm_state::LogLine;

/// The guest trapped (a Rust panic in the filter aborts into a trap). Envoy would kill the VM.
#[derive(Debug, Clone)]
pub struct GuestTrap {
    /// The exported function that was running.
    pub function: String,
    pub message: String,
    /// Everything the guest logged before it died.
    pub log: Vec<LogLine>,
}

impl GuestTrap {
    /// The panic message the guest logged (the SDK's panic hook logs at critical), if any.
    pub fn panic_message(&self) -> Option<&str> {
        self.log
            .iter()
            .rev()
            .find(|line| line.level == "critical")
            .map(|line| line.message.as_str())
    }
}

impl fmt::Display for GuestTrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.panic_message() {
            Some(panic) => writeln!(f, "guest panicked in {}: {panic}", self.function)?,
            None => writeln!(f, "guest trapped in {}", self.function)?,
        }
        writeln!(f, "trap: {}", self.message)?;
        writeln!(f, "--- guest log ---")?;
        for line in &self.log {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GuestTrap {}

/// Why a VM did not start.
#[derive(Debug, Clone)]
pub enum StartError {
    /// `proxy_on_vm_start` or `proxy_on_configure` returned false: Envoy refuses the plugin.
    Rejected {
        function: String,
        log: Vec<LogLine>,
    },
    Trap(GuestTrap),
}

impl StartError {
    pub fn log(&self) -> &[LogLine] {
        match self {
            Self::Rejected { log, .. } => log,
            Self::Trap(trap) => &trap.log,
        }
    }

    /// The guest's log as one text, for `contains` assertions.
    pub fn log_text(&self) -> String {
        self.log()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { function, .. } => {
                writeln!(f, "{function} returned false")?;
                writeln!(f, "--- guest log ---\n{}", self.log_text())
            }
            Self::Trap(trap) => trap.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

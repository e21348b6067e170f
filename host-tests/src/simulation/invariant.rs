//! What must hold after every step, whatever the schedule.

use std::fmt;

/// A broken invariant, with what shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    /// A delivery reached the origin again after the origin had processed it.
    DuplicateDelivery(String),
    /// A stream stayed paused longer than any timeout allows.
    StreamStuck { vm: usize, context_id: u32, ms: u64 },
    /// A response made for one tenant reached another.
    CrossTenant { asked: String, got: String },
    /// More requests of a tenant were admitted than rate × T + burst.
    RateExceeded {
        tenant: u8,
        admitted: u64,
        bound: u64,
    },
    /// The breaker does not close once its origin is healthy.
    BreakerStuck,
    /// A response stored in the cache was not served to the next request on its worker.
    StoredNotServed { path: String, cache_status: String },
    /// A VM's memory grew past the bound.
    Memory { vm: usize, bytes: usize },
    /// The guest trapped.
    Trap(String),
}

impl Violation {
    /// The kind, for shrinking (a smaller schedule must break the same invariant).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::DuplicateDelivery(_) => "duplicate delivery",
            Self::StreamStuck { .. } => "stream stuck",
            Self::CrossTenant { .. } => "cross-tenant response",
            Self::RateExceeded { .. } => "rate exceeded",
            Self::BreakerStuck => "breaker stuck",
            Self::StoredNotServed { .. } => "stored entry not served",
            Self::Memory { .. } => "memory bound",
            Self::Trap(_) => "guest trap",
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self:?}", self.kind())
    }
}

/// How long any stream may stay open (route timeout 15 s, dedup in-flight timeout, leases and
/// their takeover all end well within it).
pub const STREAM_BOUND_MS: u64 = 120_000;
/// VM linear memory bound.
pub const MEMORY_BOUND: usize = 256 << 20;

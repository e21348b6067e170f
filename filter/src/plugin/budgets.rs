//! Byte budgets of one worker: request bytes held by paused streams, and response bytes being
//! copied to store. Past them, requests go on without what would need the bytes.

use super::metrics::{Metrics, Stat};

/// Most response bytes one worker copies at once to store (all streams together); beyond it,
/// responses pass through uncached. Keeps a burst of large misses from exhausting the VM.
pub const MAX_CAPTURE_BYTES: usize = 64 * 1024 * 1024;

pub struct Budgets {
    /// `limits.max_paused_bytes`.
    max_paused: usize,
    /// Request bytes held by paused streams.
    paused: usize,
    /// Response bytes all streams of this worker are copying to store right now.
    capturing: usize,
}

impl Budgets {
    pub fn new(max_paused_bytes: u64) -> Self {
        Self {
            max_paused: usize::try_from(max_paused_bytes).unwrap_or(usize::MAX),
            paused: 0,
            capturing: 0,
        }
    }

    /// Reserves `bytes` of the paused-request budget; `false` (counted) when it is spent.
    pub fn reserve_paused(&mut self, metrics: &Metrics, bytes: usize) -> bool {
        if self.paused.saturating_add(bytes) > self.max_paused {
            metrics.inc(Stat::PausedBudget);
            return false;
        }
        self.paused += bytes;
        true
    }

    pub fn release_paused(&mut self, bytes: usize) {
        self.paused = self.paused.saturating_sub(bytes);
    }

    /// Reserves `bytes` of the capture budget; `false` when they do not fit.
    pub fn reserve_capture(&mut self, bytes: usize) -> bool {
        let fits = self.capturing.saturating_add(bytes) <= MAX_CAPTURE_BYTES;
        if fits {
            self.capturing += bytes;
        }
        fits
    }

    pub fn release_capture(&mut self, bytes: usize) {
        self.capturing = self.capturing.saturating_sub(bytes);
    }
}

//! One service's last minute: twelve 5-second slots of outcome counts and edge/origin latency
//! histograms. Old slots are reused in place, so memory is fixed.

use super::latency::LatencyHistogram;
use super::outcome::{Outcome, OutcomeCounts};

pub const SLOT_MS: u64 = 5_000;
pub const SLOTS: usize = 12;
/// The span every summary covers at most.
pub const WINDOW_MS: u64 = SLOT_MS * SLOTS as u64;

#[derive(Debug, Clone, Default)]
struct Slot {
    /// `now_ms / SLOT_MS` of the period this slot holds.
    period: u64,
    outcomes: OutcomeCounts,
    edge: LatencyHistogram,
    origin: LatencyHistogram,
}

/// What a window held over its last minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub outcomes: OutcomeCounts,
    pub edge: LatencyHistogram,
    pub origin: LatencyHistogram,
    /// How much time the summary covers (ms): from the oldest slot with data, at most a minute.
    pub span_ms: u64,
}

impl Summary {
    /// Saturating: summaries add up figures other workers published in shared data.
    pub fn requests(&self) -> u64 {
        self.outcomes
            .iter()
            .fold(0u64, |total, count| total.saturating_add(*count))
    }

    pub fn merge(&mut self, other: &Summary) {
        for (mine, theirs) in self.outcomes.iter_mut().zip(other.outcomes.iter()) {
            *mine = mine.saturating_add(*theirs);
        }
        self.edge.merge(&other.edge);
        self.origin.merge(&other.origin);
        self.span_ms = self.span_ms.max(other.span_ms);
    }
}

#[derive(Debug, Clone, Default)]
pub struct Window {
    slots: Vec<Slot>,
}

impl Window {
    fn slot(&mut self, now_ms: u64) -> Option<&mut Slot> {
        if self.slots.is_empty() {
            self.slots = vec![Slot::default(); SLOTS];
        }
        let period = now_ms / SLOT_MS;
        let slot = self.slots.get_mut((period % SLOTS as u64) as usize)?;
        if slot.period != period {
            *slot = Slot {
                period,
                ..Slot::default()
            };
        }
        Some(slot)
    }

    /// Records one request: its outcome, edge latency and (if it reached the origin) origin
    /// latency, in µs.
    pub fn record(&mut self, now_ms: u64, outcome: Outcome, edge_us: u64, origin_us: Option<u64>) {
        if let Some(slot) = self.slot(now_ms) {
            if let Some(count) = slot.outcomes.get_mut(outcome.index()) {
                *count += 1;
            }
            slot.edge.record(edge_us);
            if let Some(origin) = origin_us {
                slot.origin.record(origin);
            }
        }
    }

    /// The last minute as of `now_ms`.
    pub fn summary(&self, now_ms: u64) -> Summary {
        let period = now_ms / SLOT_MS;
        let mut summary = Summary::default();
        let mut oldest = period;
        for slot in &self.slots {
            if slot.period + (SLOTS as u64) <= period || slot.period > period {
                continue;
            }
            if slot.outcomes.iter().all(|c| *c == 0) {
                continue;
            }
            oldest = oldest.min(slot.period);
            for (mine, theirs) in summary.outcomes.iter_mut().zip(slot.outcomes.iter()) {
                *mine += theirs;
            }
            summary.edge.merge(&slot.edge);
            summary.origin.merge(&slot.origin);
        }
        if summary.requests() > 0 {
            summary.span_ms = now_ms.saturating_sub(oldest * SLOT_MS).clamp(1, WINDOW_MS);
        }
        summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_is_kept_and_older_slots_drop_out() {
        let mut window = Window::default();
        let start = 1_000_000 * SLOT_MS;
        for second in 0..120u64 {
            window.record(start + second * 1000, Outcome::HitL1, 100, None);
        }
        let summary = window.summary(start + 119_000);
        // 12 slots of 5 s: the last 60 s (seconds 60..=119).
        assert_eq!(summary.outcomes[Outcome::HitL1.index()], 60);
        assert_eq!(summary.span_ms, WINDOW_MS - 1_000);
        assert!(window.summary(start + 400_000).requests() == 0);
    }

    #[test]
    fn origin_latency_only_for_requests_that_reached_it() {
        let mut window = Window::default();
        window.record(10_000, Outcome::Miss, 151_000, Some(150_000));
        window.record(10_100, Outcome::HitL1, 40, None);
        let summary = window.summary(10_200);
        assert_eq!(summary.requests(), 2);
        assert_eq!(summary.origin.count(), 1);
        assert_eq!(summary.edge.count(), 2);
        assert!(summary.span_ms >= 200 && summary.span_ms <= SLOT_MS);
    }
}

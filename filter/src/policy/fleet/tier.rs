//! Whether the fleet tier is worth calling, from the outcomes of the calls made to it:
//! [`DOWN_AFTER`] failed calls in a row (no answer within the timeout, the bridge refusing,
//! garbage) mark it unavailable; one failure alone only makes the worker probe at once (its
//! next tick) to confirm, so a single spontaneous timeout on a healthy tier costs nothing
//! more. While unavailable, requests skip it (the local tiers alone) while a probe every
//! `probe_interval_ms` looks for its return; the first success marks it available again.
//! Workers of one Envoy share what they see: a worker whose calls succeed stamps "the tier
//! answered at" in shared data (at most every `probe_interval_ms / 4`), and a worker that
//! has the tier down reads the stamp (once per request or tick) and takes it back as soon as
//! another worker saw it answer after its own outage began.

use super::reply::Reply;

/// Why a call to the fleet tier did not give a Redis reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallFailure {
    /// No answer: connection refused or reset, or the call timed out.
    Unreachable,
    /// The bridge answered with this non-200 status (webdis: 503 while Redis is down).
    Bridge(u16),
    /// A 200 whose body is not one RESP reply.
    Garbage,
    /// Redis answered with an error (other than `NOSCRIPT`).
    Redis,
}

impl CallFailure {
    /// Whether the failure says the tier itself is down (vs one command failing).
    pub fn tier_down(self) -> bool {
        !matches!(self, Self::Redis)
    }
}

/// What a bridge answer (its `:status`, if any, and its body) means.
pub fn classify(status: Option<u16>, body: &[u8]) -> Result<Reply, CallFailure> {
    match status {
        None => Err(CallFailure::Unreachable),
        Some(200) => match Reply::parse(body) {
            Ok(Reply::Error(message)) if !message.starts_with("NOSCRIPT") => {
                Err(CallFailure::Redis)
            }
            Ok(reply) => Ok(reply),
            Err(_) => Err(CallFailure::Garbage),
        },
        Some(other) => Err(CallFailure::Bridge(other)),
    }
}

/// The shared-data key of "the fleet tier answered at" (milliseconds, little-endian u64).
pub const TIER_UP_KEY: &str = "edge:fleet:up";

/// Failed calls in a row (without a success between) that mark the tier unavailable.
pub const DOWN_AFTER: u32 = 3;

/// One worker's view of the fleet tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierState {
    /// [`DOWN_AFTER`] calls failed in a row and no call has succeeded since.
    pub down: bool,
    /// Calls that failed since the last success.
    pub failures: u32,
    /// When the tier was marked down.
    pub down_since_ms: u64,
    /// When this worker last stamped "the tier answered" in shared data.
    pub stamped_ms: u64,
    /// When the last call was answered (either way) or a probe was sent.
    pub last_activity_ms: u64,
    /// When the last probe was sent (at most one in flight).
    pub probe_in_flight: bool,
}

impl TierState {
    /// Whether requests call the tier now.
    pub fn usable(&self) -> bool {
        !self.down
    }

    /// A call got a Redis reply (or a command error: Redis is there).
    pub fn succeeded(&mut self, now_ms: u64) {
        self.down = false;
        self.failures = 0;
        self.last_activity_ms = now_ms;
    }

    /// A call failed with `failure`.
    pub fn failed(&mut self, failure: CallFailure, now_ms: u64) {
        if failure.tier_down() {
            self.failures = self.failures.saturating_add(1);
            if self.failures >= DOWN_AFTER && !self.down {
                self.down = true;
                self.down_since_ms = now_ms;
            }
        }
        self.last_activity_ms = now_ms;
    }

    /// Whether a call failed since the last success while the tier is still deemed up.
    pub fn suspect(&self) -> bool {
        !self.down && self.failures > 0
    }

    /// Whether the worker's tick sends a probe now: while down, every `interval_ms`; while
    /// suspect, at once (to confirm or clear a failure quickly); while up, when no call was
    /// answered for `interval_ms` (so an idle worker notices an outage too).
    pub fn probe_due(&self, now_ms: u64, interval_ms: u64) -> bool {
        !self.probe_in_flight
            && (self.suspect() || now_ms.saturating_sub(self.last_activity_ms) >= interval_ms)
    }

    /// Whether this worker stamps "the tier answered at `now_ms`" for the other workers now
    /// (after a success; at most every `interval_ms / 4`).
    pub fn stamp_due(&self, now_ms: u64, interval_ms: u64) -> bool {
        !self.down && now_ms.saturating_sub(self.stamped_ms) >= (interval_ms / 4).max(1)
    }

    pub fn stamped(&mut self, now_ms: u64) {
        self.stamped_ms = now_ms;
    }

    /// Another worker of this Envoy saw the tier answer at `answered_ms`: when that is after
    /// this worker marked it down, it is usable again here too (one more failure marks it
    /// down again: this worker's own calls have not succeeded yet). `true` when taken back.
    pub fn heard_up(&mut self, answered_ms: u64) -> bool {
        if !self.down || answered_ms <= self.down_since_ms {
            return false;
        }
        self.down = false;
        self.failures = DOWN_AFTER.saturating_sub(1);
        true
    }

    pub fn probe_sent(&mut self, now_ms: u64) {
        self.probe_in_flight = true;
        self.last_activity_ms = now_ms;
    }

    pub fn probe_answered(&mut self, outcome: Result<(), CallFailure>, now_ms: u64) {
        self.probe_in_flight = false;
        match outcome {
            Ok(()) => self.succeeded(now_ms),
            Err(failure) => self.failed(failure, now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(None, b""), Err(CallFailure::Unreachable));
        assert_eq!(classify(Some(503), b""), Err(CallFailure::Bridge(503)));
        assert_eq!(classify(Some(200), b"<html>"), Err(CallFailure::Garbage));
        assert_eq!(classify(Some(200), b"-ERR x\r\n"), Err(CallFailure::Redis));
        assert!(classify(Some(200), b"-NOSCRIPT x\r\n").is_ok_and(|r| r.is_noscript()));
        assert_eq!(
            classify(Some(200), b"+PONG\r\n"),
            Ok(Reply::Status("PONG".into()))
        );
    }

    #[test]
    fn one_spontaneous_failure_is_confirmed_by_a_probe_not_an_outage() {
        let mut tier = TierState::default();
        tier.failed(CallFailure::Unreachable, 20);
        assert!(
            tier.usable(),
            "one timeout alone does not take the tier away"
        );
        assert!(tier.probe_due(21, 1000), "confirmed at once");
        tier.probe_sent(21);
        tier.probe_answered(Ok(()), 22);
        assert!(tier.usable());
        assert_eq!(tier.failures, 0);
        assert!(!tier.probe_due(40, 1000));
    }

    #[test]
    fn another_workers_success_after_the_outage_began_takes_the_tier_back() {
        let mut tier = TierState::default();
        for at in [10, 20, 30] {
            tier.failed(CallFailure::Unreachable, at);
        }
        assert!(!tier.usable());
        assert!(!tier.heard_up(25), "seen before the outage began here");
        assert!(!tier.usable());
        assert!(tier.heard_up(31));
        assert!(tier.usable());
        tier.failed(CallFailure::Unreachable, 40);
        assert!(!tier.usable(), "down again at its own next failure");
        assert!(
            !tier.stamp_due(50, 200),
            "a worker with the tier down stamps nothing"
        );
        tier.succeeded(60);
        assert!(tier.stamp_due(60, 200));
        tier.stamped(60);
        assert!(!tier.stamp_due(100, 200));
        assert!(tier.stamp_due(110, 200));
    }

    #[test]
    fn down_after_failures_in_a_row_up_after_a_success_probes_bounded() {
        let mut tier = TierState::default();
        assert!(tier.usable());
        tier.failed(CallFailure::Redis, 10);
        assert!(tier.usable(), "a command error is not an outage");
        tier.failed(CallFailure::Unreachable, 18);
        tier.failed(CallFailure::Unreachable, 19);
        assert!(tier.usable());
        tier.failed(CallFailure::Unreachable, 20);
        assert!(!tier.usable());
        assert!(!tier.probe_due(500, 1000));
        assert!(tier.probe_due(1020, 1000));
        tier.probe_sent(1020);
        assert!(!tier.probe_due(5000, 1000), "one probe in flight at most");
        tier.probe_answered(Err(CallFailure::Bridge(503)), 1030);
        assert!(!tier.usable());
        tier.probe_sent(2030);
        tier.probe_answered(Ok(()), 2040);
        assert!(tier.usable());
        assert!(!tier.probe_due(2500, 1000));
        assert!(tier.probe_due(3040, 1000), "an idle worker checks too");
    }
}

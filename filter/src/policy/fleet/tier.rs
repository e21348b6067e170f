//! Whether the fleet tier is worth calling, from the outcomes of the calls made to it: one
//! failed call (no answer within the timeout, the bridge refusing, garbage) marks it
//! unavailable; requests then skip it (the local tiers alone) while a probe every
//! `probe_interval_ms` looks for its return, and the first success marks it available again.

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

/// One worker's view of the fleet tier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TierState {
    /// A call failed and no call has succeeded since.
    pub down: bool,
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
        self.last_activity_ms = now_ms;
    }

    /// A call failed with `failure`.
    pub fn failed(&mut self, failure: CallFailure, now_ms: u64) {
        if failure.tier_down() {
            self.down = true;
        }
        self.last_activity_ms = now_ms;
    }

    /// Whether the worker's tick sends a probe now: while down, every `interval_ms`; while up,
    /// when no call was answered for `interval_ms` (so an idle worker notices an outage too).
    pub fn probe_due(&self, now_ms: u64, interval_ms: u64) -> bool {
        !self.probe_in_flight && now_ms.saturating_sub(self.last_activity_ms) >= interval_ms
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
    fn down_after_a_failure_up_after_a_success_probes_bounded() {
        let mut tier = TierState::default();
        assert!(tier.usable());
        tier.failed(CallFailure::Redis, 10);
        assert!(tier.usable(), "a command error is not an outage");
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

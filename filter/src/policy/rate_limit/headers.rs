//! IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers): `RateLimit-Policy`
//! describes the quota, `RateLimit` the current state.

use super::bucket::{Decision, Limit};

/// `RateLimit-Policy: "default";q=<burst>;w=<window seconds>` — the burst is the quota, the
/// window the time the rate takes to earn it.
pub fn policy_header(limit: Limit) -> String {
    let window = if limit.requests_per_second > 0.0 {
        (limit.burst as f64 / limit.requests_per_second)
            .ceil()
            .max(1.0) as u64
    } else {
        1
    };
    format!("\"default\";q={};w={window}", limit.burst)
}

/// `RateLimit: "default";r=<remaining>;t=<seconds until full>`.
pub fn state_header(decision: &Decision) -> String {
    format!(
        "\"default\";r={};t={}",
        decision.remaining,
        decision.reset_ms.div_ceil(1000)
    )
}

/// Whole seconds to wait, at least 1 (`Retry-After`).
pub fn retry_after_s(decision: &Decision) -> u64 {
    decision.retry_after_ms.div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let limit = Limit {
            requests_per_second: 100.0,
            burst: 20,
        };
        assert_eq!(policy_header(limit), "\"default\";q=20;w=1");
        let decision = Decision {
            admitted: false,
            remaining: 0,
            retry_after_ms: 10,
            reset_ms: 200,
        };
        assert_eq!(state_header(&decision), "\"default\";r=0;t=1");
        assert_eq!(retry_after_s(&decision), 1);
    }
}

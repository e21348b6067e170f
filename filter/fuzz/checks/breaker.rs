//! Breaker state (`edge:breaker:<service>` in shared data): anything that is not a current
//! encoding reads as a fresh closed breaker, what decodes re-encodes to itself, and every
//! transition from any stored state, with any valid configuration, at any clock reading, is
//! panic-free and writes a state that reads back unchanged.

use edge_filter::policy::breaker::machine::{
    admit, open_period_ms, probe_abandoned, probe_done, record, Admission, Breaker, Outcomes, Phase,
};
use edge_filter::policy::{BreakerSection, Config};

use super::input::Input;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mut stored = input.bytes(255).to_vec();
    if input.bool() {
        // A current encoding with some words changed: reaches every field of the format.
        stored = Breaker::default().encode();
        for _ in 0..input.range(1, 12) {
            let at = input.below(stored.len());
            let value = input.u64().to_le_bytes();
            for (slot, byte) in stored.iter_mut().skip(at).zip(value) {
                *slot = byte;
            }
        }
        if let Some(version) = stored.first_mut() {
            *version = 1;
        }
        if let Some(kind) = stored.get_mut(1) {
            *kind %= 3;
        }
    }
    let stored = stored.as_slice();
    let breaker = Breaker::decode(Some(stored));
    let fresh = Breaker::default();
    if breaker != fresh {
        assert_eq!(
            Breaker::decode(Some(&breaker.encode())),
            breaker,
            "re-encoding keeps the value"
        );
        let mut longer = stored.to_vec();
        longer.push(0);
        assert_eq!(
            Breaker::decode(Some(&longer)),
            fresh,
            "trailing byte accepted"
        );
    }
    if stored.len() != breaker.encode().len() {
        assert_eq!(breaker, fresh, "only a full-length value decodes");
    }

    let Some(config) = config(&mut input) else {
        return;
    };
    let mut current = breaker.encode();
    let mut now = input.u64();
    for _ in 0..input.range(1, 24) {
        let breaker = Breaker::decode(Some(&current));
        let seed = input.u64();
        let next = match input.range(0, 3) {
            0 => {
                let (admission, next) = admit(&breaker, &config, now);
                match admission {
                    Admission::Pass => assert_eq!(breaker.phase, Phase::Closed),
                    Admission::Probe => assert!(matches!(
                        next.as_ref().map(|b| b.phase),
                        Some(Phase::HalfOpen { .. })
                    )),
                    Admission::Reject { retry_after_ms } => {
                        assert!(retry_after_ms > 0);
                        assert_eq!(next, None);
                    }
                }
                next.unwrap_or(breaker)
            }
            1 => {
                let outcomes = Outcomes {
                    successes: input.u32(),
                    failures: input.u32(),
                };
                let next = record(&breaker, &config, outcomes, now, seed);
                if breaker.phase == Phase::Closed {
                    if let Phase::Open { until_ms } = next.phase {
                        assert!(until_ms > now || now == u64::MAX, "opens for a while");
                    }
                } else {
                    assert_eq!(
                        next.phase, breaker.phase,
                        "only probes decide when not closed"
                    );
                }
                next
            }
            2 => probe_done(&breaker, &config, input.bool(), now, seed),
            _ => probe_abandoned(&breaker),
        };
        assert_eq!(
            Breaker::decode(Some(&next.encode())),
            next,
            "the written state reads back"
        );
        current = next.encode();
        let step = u64::from(input.u32());
        now = if input.range(0, 3) == 0 {
            now.saturating_sub(step)
        } else {
            now.saturating_add(step)
        };
    }

    let trips = input.u32();
    let period = open_period_ms(&config, trips, input.u64());
    let most = config.open_max_ms + config.open_max_ms * config.jitter_percent / 100;
    assert!(
        (1..=most).contains(&period),
        "open period {period} ms outside 1..={most}"
    );
}

/// A breaker section that passed the configuration's own validation.
fn config(input: &mut Input<'_>) -> Option<BreakerSection> {
    let json = format!(
        r#"{{"default_service": {{"breaker": {{
            "window_s": {}, "min_requests": {}, "max_failure_rate": {}, "min_failure_rate": {},
            "open_base_ms": {}, "open_max_ms": {}, "jitter_percent": {},
            "half_open_probes": {}, "close_after_successes": {}, "healthy_reset_s": {}}}}}}}"#,
        input.range(1, 3600),
        input.range(1, 1_000_000),
        input.range(1, 1000) as f64 / 1000.0,
        input.range(1, 1000) as f64 / 1000.0,
        input.range(10, 3_600_000),
        input.range(10, 3_600_000),
        input.range(0, 50),
        input.range(1, 1000),
        input.range(1, 1000),
        input.range(1, 86_400),
    );
    let registry = Config::parse_registry(json.as_bytes()).ok()?;
    registry.service_at(0)?.breaker.clone()
}

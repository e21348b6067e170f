//! One service's breaker as a versioned value and the pure transitions the CAS helper applies.
//!
//! Closed: outcomes are counted in a rolling window of 10 buckets; the breaker trips when the
//! window holds at least `min_requests` and the failure rate reaches the adaptive threshold
//! `min_failure_rate + (max_failure_rate − min_failure_rate) × health`, where health is an EWMA
//! of the success rate (α = 0.05 per window flush): a service that has been healthy needs more
//! failures to trip than one that has been failing or flapping. Open: nothing reaches the origin
//! for `open_base_ms × 2^(trips−1)` (capped, ± jitter). Half-open: at most `half_open_probes`
//! requests in flight across workers; `close_after_successes` successes close it, a failure
//! reopens it with the next backoff. After `healthy_reset_s` closed, the trip count resets.

use crate::policy::codec::{ReadError, Reader, Writer};
use crate::policy::BreakerSection;

/// Version 2 added the probe permits' expiry; a version-1 value reads as expired permits.
const FORMAT_VERSION: u8 = 2;
const FORMAT_VERSION_1: u8 = 1;
const BUCKETS: usize = 10;
/// Health is kept in thousandths.
const HEALTH_MAX: u32 = 1000;

pub const BREAKER_KEY_PREFIX: &str = "edge:breaker:";

/// A service's breaker in shared data, by the service's name: a new configuration that adds,
/// removes or reorders services keeps each breaker with its service (names are bounded by the
/// configuration: at most 256 services of at most 64 characters).
pub fn breaker_key(service_name: &str) -> String {
    format!("{BREAKER_KEY_PREFIX}{service_name}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Closed,
    Open {
        until_ms: u64,
    },
    /// `permits_expire_ms`: when the permits in flight are presumed lost (see
    /// `probe_timeout_ms`); every admitted probe moves it.
    HalfOpen {
        in_flight: u32,
        successes: u32,
        permits_expire_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Bucket {
    /// Bucket start (window index), so stale buckets are recognised and reset.
    slot: u64,
    successes: u32,
    failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Breaker {
    pub phase: Phase,
    buckets: [Bucket; BUCKETS],
    /// EWMA of the success rate, in thousandths.
    pub health: u32,
    /// Consecutive trips (the backoff exponent).
    pub trips: u32,
    /// When the breaker last closed (for resetting `trips` after a healthy period).
    pub closed_since_ms: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            phase: Phase::Closed,
            buckets: [Bucket::default(); BUCKETS],
            health: HEALTH_MAX,
            trips: 0,
            closed_since_ms: 0,
        }
    }
}

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Pass,
    /// Half-open: this request is one of the probes.
    Probe,
    /// Open: answer without the origin; retry after this many milliseconds.
    Reject {
        retry_after_ms: u64,
    },
}

/// Outcomes one worker counted since its last flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcomes {
    pub successes: u32,
    pub failures: u32,
}

impl Breaker {
    /// `[2][phase u8][three phase words u64][health u32][trips u32][closed since ms u64]`
    /// then per bucket `[slot u64][successes u32][failures u32]`, little-endian. Version 1
    /// had two phase words.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, a, b, c) = match self.phase {
            Phase::Closed => (0u8, 0u64, 0u64, 0u64),
            Phase::Open { until_ms } => (1, until_ms, 0, 0),
            Phase::HalfOpen {
                in_flight,
                successes,
                permits_expire_ms,
            } => (
                2,
                u64::from(in_flight),
                u64::from(successes),
                permits_expire_ms,
            ),
        };
        let mut out = Writer::new(FORMAT_VERSION);
        out.u8(kind)
            .u64(a)
            .u64(b)
            .u64(c)
            .u32(self.health)
            .u32(self.trips)
            .u64(self.closed_since_ms);
        for bucket in &self.buckets {
            out.u64(bucket.slot)
                .u32(bucket.successes)
                .u32(bucket.failures);
        }
        out.finish()
    }

    /// Missing, corrupt or unknown-version values read as a fresh, closed breaker.
    pub fn decode(bytes: Option<&[u8]>) -> Self {
        bytes
            .and_then(|bytes| Self::read(Reader::new(bytes)).ok())
            .unwrap_or_default()
    }

    fn read(mut reader: Reader<'_>) -> Result<Self, ReadError> {
        let version = reader.version(&[FORMAT_VERSION, FORMAT_VERSION_1])?;
        let kind = reader.u8()?;
        let a = reader.u64()?;
        let b = reader.u64()?;
        // Version 1 had no permit expiry: its permits read as already expired.
        let c = if version == FORMAT_VERSION {
            reader.u64()?
        } else {
            0
        };
        let half = |word: u64| u32::try_from(word).map_err(|_| ReadError::Invalid);
        let phase = match kind {
            0 => Phase::Closed,
            1 => Phase::Open { until_ms: a },
            2 => Phase::HalfOpen {
                in_flight: half(a)?,
                successes: half(b)?,
                permits_expire_ms: c,
            },
            _ => return Err(ReadError::Invalid),
        };
        let health = reader.u32()?.min(HEALTH_MAX);
        let trips = reader.u32()?;
        let closed_since_ms = reader.u64()?;
        let mut buckets = [Bucket::default(); BUCKETS];
        for bucket in &mut buckets {
            *bucket = Bucket {
                slot: reader.u64()?,
                successes: reader.u32()?,
                failures: reader.u32()?,
            };
        }
        reader.finish(Self {
            phase,
            buckets,
            health,
            trips,
            closed_since_ms,
        })
    }

    fn window_totals(&self, config: &BreakerSection, now_ms: u64) -> (u64, u64) {
        let current = window_slot(config, now_ms);
        self.buckets
            .iter()
            .filter(|b| b.slot.saturating_add(BUCKETS as u64) > current && b.slot <= current)
            .fold((0, 0), |(s, f), b| {
                (s + u64::from(b.successes), f + u64::from(b.failures))
            })
    }

    /// The failure rate that trips the breaker now (adaptive, see the module docs).
    pub fn threshold(&self, config: &BreakerSection) -> f64 {
        let health = f64::from(self.health) / f64::from(HEALTH_MAX);
        config.min_failure_rate + (config.max_failure_rate - config.min_failure_rate) * health
    }
}

fn window_slot(config: &BreakerSection, now_ms: u64) -> u64 {
    let bucket_ms = (config.window_s.saturating_mul(1000) / BUCKETS as u64).max(1);
    now_ms / bucket_ms
}

/// Open period for the `trips`-th consecutive trip, with jitter drawn from `seed`.
pub fn open_period_ms(config: &BreakerSection, trips: u32, seed: u64) -> u64 {
    let exponent = trips.saturating_sub(1).min(30);
    let base = config
        .open_base_ms
        .saturating_mul(1u64 << exponent)
        .min(config.open_max_ms);
    let spread = base.saturating_mul(config.jitter_percent) / 100;
    if spread == 0 {
        return base;
    }
    let offset = seed % (2 * spread + 1);
    (base + offset).saturating_sub(spread).max(1)
}

/// Whether a request may go to the origin (the pure change for the CAS helper; only half-open
/// admissions write).
pub fn admit(
    current: &Breaker,
    config: &BreakerSection,
    now_ms: u64,
) -> (Admission, Option<Breaker>) {
    match current.phase {
        Phase::Closed => (Admission::Pass, None),
        Phase::Open { until_ms } if now_ms < until_ms => (
            Admission::Reject {
                retry_after_ms: until_ms - now_ms,
            },
            None,
        ),
        Phase::Open { .. } => {
            let next = Breaker {
                phase: Phase::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                    permits_expire_ms: now_ms.saturating_add(config.probe_timeout_ms),
                },
                ..current.clone()
            };
            (Admission::Probe, Some(next))
        }
        Phase::HalfOpen {
            in_flight,
            successes,
            permits_expire_ms,
        } if in_flight < config.half_open_probes || now_ms >= permits_expire_ms => {
            // Past the expiry, the permits in flight are presumed lost: start counting again.
            let in_flight = if now_ms >= permits_expire_ms {
                0
            } else {
                in_flight
            };
            let next = Breaker {
                phase: Phase::HalfOpen {
                    in_flight: in_flight.saturating_add(1),
                    successes,
                    permits_expire_ms: now_ms.saturating_add(config.probe_timeout_ms),
                },
                ..current.clone()
            };
            (Admission::Probe, Some(next))
        }
        Phase::HalfOpen { .. } => (
            Admission::Reject {
                retry_after_ms: config.open_base_ms,
            },
            None,
        ),
    }
}

/// Adds a worker's counted outcomes (closed state) and trips when the window says so.
pub fn record(
    current: &Breaker,
    config: &BreakerSection,
    outcomes: Outcomes,
    now_ms: u64,
    seed: u64,
) -> Breaker {
    let mut next = current.clone();
    if next.phase != Phase::Closed {
        return next; // Outcomes of requests admitted before the trip: the probes decide now.
    }
    if next.trips > 0
        && now_ms.saturating_sub(next.closed_since_ms)
            >= config.healthy_reset_s.saturating_mul(1000)
    {
        next.trips = 0;
    }
    let slot = window_slot(config, now_ms);
    let index = (slot % BUCKETS as u64) as usize;
    if let Some(bucket) = next.buckets.get_mut(index) {
        if bucket.slot != slot {
            *bucket = Bucket {
                slot,
                successes: 0,
                failures: 0,
            };
        }
        bucket.successes = bucket.successes.saturating_add(outcomes.successes);
        bucket.failures = bucket.failures.saturating_add(outcomes.failures);
    }
    let total = u64::from(outcomes.successes) + u64::from(outcomes.failures);
    if let Some(rate) = (u64::from(outcomes.successes) * u64::from(HEALTH_MAX)).checked_div(total) {
        // EWMA with α = 1/20 per flush.
        next.health = ((u64::from(next.health) * 19 + rate) / 20) as u32;
    }
    let (successes, failures) = next.window_totals(config, now_ms);
    let requests = successes + failures;
    if requests >= config.min_requests
        && failures as f64 / requests as f64 >= next.threshold(config)
    {
        next.trips = next.trips.saturating_add(1);
        let period = open_period_ms(config, next.trips, seed);
        next.phase = Phase::Open {
            until_ms: now_ms.saturating_add(period),
        };
        next.buckets = [Bucket::default(); BUCKETS];
    }
    next
}

/// A probe's outcome (half-open): enough successes close the breaker; a failure reopens it.
pub fn probe_done(
    current: &Breaker,
    config: &BreakerSection,
    success: bool,
    now_ms: u64,
    seed: u64,
) -> Breaker {
    let mut next = current.clone();
    let Phase::HalfOpen {
        in_flight,
        successes,
        permits_expire_ms,
    } = current.phase
    else {
        return next;
    };
    if !success {
        next.trips = next.trips.saturating_add(1);
        next.phase = Phase::Open {
            until_ms: now_ms.saturating_add(open_period_ms(config, next.trips, seed)),
        };
        next.health = next.health * 19 / 20;
        return next;
    }
    let successes = successes.saturating_add(1);
    if successes >= config.close_after_successes {
        next.phase = Phase::Closed;
        next.closed_since_ms = now_ms;
        next.buckets = [Bucket::default(); BUCKETS];
    } else {
        next.phase = Phase::HalfOpen {
            in_flight: in_flight.saturating_sub(1),
            successes,
            permits_expire_ms,
        };
    }
    next
}

/// A probe that never reached the origin (answered from the cache, client gone) gives its
/// permit back without an outcome.
pub fn probe_abandoned(current: &Breaker) -> Breaker {
    let mut next = current.clone();
    if let Phase::HalfOpen {
        in_flight,
        successes,
        permits_expire_ms,
    } = current.phase
    {
        next.phase = Phase::HalfOpen {
            in_flight: in_flight.saturating_sub(1),
            successes,
            permits_expire_ms,
        };
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::codec::hex;

    /// Bytes written by the format-2 encoder (and by format 1, without the permits' expiry):
    /// still read, and format 2 written, exactly so.
    #[test]
    fn reads_and_writes_stored_format_bytes() {
        let mut breaker = Breaker {
            phase: Phase::HalfOpen {
                in_flight: 1,
                successes: 2,
                permits_expire_ms: 5000,
            },
            health: 950,
            trips: 2,
            closed_since_ms: 1234,
            ..Breaker::default()
        };
        breaker.buckets[3] = Bucket {
            slot: 3,
            successes: 4,
            failures: 5,
        };
        let stored = hex(
            "0202010000000000000002000000000000008813000000000000b60300000200\
             0000d20400000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000030000000000\
             0000040000000500000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             00000000000000000000",
        );
        assert_eq!(Breaker::decode(Some(&stored)), breaker);
        assert_eq!(breaker.encode(), stored);
        let open = Breaker {
            phase: Phase::Open { until_ms: 77 },
            ..breaker.clone()
        };
        let stored = hex(
            "02014d0000000000000000000000000000000000000000000000b60300000200\
             0000d20400000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000030000000000\
             0000040000000500000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             00000000000000000000",
        );
        assert_eq!(Breaker::decode(Some(&stored)), open);
        assert_eq!(open.encode(), stored);
        let version_1 = hex(
            "010201000000000000000200000000000000b603000002000000d20400000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000300000000000000040000000500\
             0000000000000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             0000000000000000000000000000000000000000000000000000000000000000\
             0000",
        );
        let mut v1 = breaker.encode();
        v1[0] = 1;
        v1.drain(18..26);
        breaker.phase = Phase::HalfOpen {
            in_flight: 1,
            successes: 2,
            permits_expire_ms: 0,
        };
        assert_eq!(Breaker::decode(Some(&version_1)), breaker);
    }

    fn config() -> BreakerSection {
        serde_json::from_value(serde_json::json!({
            "min_requests": 10, "open_base_ms": 1000, "open_max_ms": 8000, "jitter_percent": 0,
            "half_open_probes": 2, "close_after_successes": 2, "healthy_reset_s": 30
        }))
        .unwrap()
    }

    fn failures(n: u32) -> Outcomes {
        Outcomes {
            successes: 0,
            failures: n,
        }
    }

    fn successes(n: u32) -> Outcomes {
        Outcomes {
            successes: n,
            failures: 0,
        }
    }

    #[test]
    fn trips_only_with_enough_volume_and_failures() {
        let c = config();
        let b = record(&Breaker::default(), &c, failures(9), 0, 0);
        assert_eq!(b.phase, Phase::Closed, "below min_requests");
        let b = record(&b, &c, failures(1), 10, 0);
        assert_eq!(b.phase, Phase::Open { until_ms: 1010 });
        assert_eq!(b.trips, 1);
        let healthy = record(
            &Breaker::default(),
            &c,
            Outcomes {
                successes: 7,
                failures: 3,
            },
            0,
            0,
        );
        assert_eq!(
            healthy.phase,
            Phase::Closed,
            "30% failures do not trip a healthy service"
        );
    }

    #[test]
    fn adaptive_threshold_is_lower_for_an_unhealthy_service() {
        let c = config();
        let mut flapping = Breaker::default();
        for t in 0..40 {
            flapping = record(
                &flapping,
                &c,
                Outcomes {
                    successes: 1,
                    failures: 1,
                },
                t * 100_000,
                0,
            );
            flapping.phase = Phase::Closed;
        }
        assert!(flapping.threshold(&c) < Breaker::default().threshold(&c));
        let mixed = Outcomes {
            successes: 6,
            failures: 4,
        };
        assert_eq!(
            record(&Breaker::default(), &c, mixed, 0, 0).phase,
            Phase::Closed,
            "40% does not trip a healthy service"
        );
        assert!(
            matches!(
                record(&flapping, &c, mixed, 5_000_000, 0).phase,
                Phase::Open { .. }
            ),
            "{}",
            flapping.threshold(&c)
        );
    }

    #[test]
    fn open_half_open_closed_and_backoff_growth() {
        let c = config();
        let open = record(&Breaker::default(), &c, failures(10), 0, 0);
        assert_eq!(
            admit(&open, &c, 500).0,
            Admission::Reject {
                retry_after_ms: 500
            }
        );
        let (probe, half) = admit(&open, &c, 1000);
        assert_eq!(probe, Admission::Probe);
        let half = half.unwrap();
        let (second, half) = admit(&half, &c, 1001);
        assert_eq!(second, Admission::Probe);
        let half = half.unwrap();
        assert!(
            matches!(admit(&half, &c, 1002).0, Admission::Reject { .. }),
            "probes capped"
        );
        // A failed probe reopens with the next backoff (2 s).
        let reopened = probe_done(&half, &c, false, 1100, 0);
        assert_eq!(reopened.phase, Phase::Open { until_ms: 3100 });
        assert_eq!(reopened.trips, 2);
        // Two successes close it.
        let (_, half) = admit(&reopened, &c, 3100);
        let half = probe_done(&half.unwrap(), &c, true, 3200, 0);
        assert_eq!(
            half.phase,
            Phase::HalfOpen {
                in_flight: 0,
                successes: 1,
                permits_expire_ms: 3100 + c.probe_timeout_ms,
            }
        );
        let closed = probe_done(&half, &c, true, 3300, 0);
        assert_eq!(closed.phase, Phase::Closed);
        assert_eq!(
            closed.trips, 2,
            "the backoff remembers until a healthy period"
        );
        let later = record(&closed, &c, successes(1), 3300 + 30_000, 0);
        assert_eq!(later.trips, 0, "reset after healthy_reset_s");
    }

    #[test]
    fn lost_probe_permits_expire_after_the_probe_timeout() {
        let c = config();
        let open = record(&Breaker::default(), &c, failures(10), 0, 0);
        // Every permit is taken by probes whose outcome never comes back (clients gone).
        let mut half = open;
        for at in 1000..1000 + u64::from(c.half_open_probes) {
            let (admission, next) = admit(&half, &c, at);
            assert_eq!(admission, Admission::Probe);
            half = next.unwrap();
        }
        let last = 1000 + u64::from(c.half_open_probes) - 1;
        assert!(matches!(
            admit(&half, &c, last + 1).0,
            Admission::Reject { .. }
        ));
        let expiry = last + c.probe_timeout_ms;
        assert!(matches!(
            admit(&half, &c, expiry - 1).0,
            Admission::Reject { .. }
        ));
        let (admission, next) = admit(&half, &c, expiry);
        assert_eq!(admission, Admission::Probe, "permits presumed lost");
        let next = next.unwrap();
        assert!(matches!(next.phase, Phase::HalfOpen { in_flight: 1, .. }));
        // Round trip keeps the expiry; a version-1 value reads with expired permits.
        assert_eq!(Breaker::decode(Some(&next.encode())), next);
        let mut v1 = next.encode();
        v1[0] = 1;
        v1.drain(18..26);
        assert!(matches!(
            Breaker::decode(Some(&v1)).phase,
            Phase::HalfOpen {
                in_flight: 1,
                permits_expire_ms: 0,
                ..
            }
        ));
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let mut c = config();
        assert_eq!(open_period_ms(&c, 1, 0), 1000);
        assert_eq!(open_period_ms(&c, 3, 0), 4000);
        assert_eq!(open_period_ms(&c, 9, 0), 8000);
        c.jitter_percent = 10;
        let periods: Vec<u64> = (0..50)
            .map(|seed| open_period_ms(&c, 1, seed * 7919))
            .collect();
        assert!(periods.iter().all(|p| (900..=1100).contains(p)));
        assert!(periods.iter().any(|p| *p != 1000));
    }

    /// Found by the `breaker` fuzz target: a stored window slot near `u64::MAX` or a half-open
    /// success count at `u32::MAX` (any bytes may be in shared data) overflowed.
    #[test]
    fn extreme_stored_counters_do_not_overflow() {
        let c = config();
        let far = Breaker {
            buckets: [Bucket {
                slot: u64::MAX - 1,
                successes: 1,
                failures: 1,
            }; BUCKETS],
            ..Breaker::default()
        };
        let far = Breaker::decode(Some(&far.encode()));
        assert_eq!(record(&far, &c, failures(1), 0, 0).phase, Phase::Closed);
        let counting = Breaker {
            phase: Phase::HalfOpen {
                in_flight: 1,
                successes: u32::MAX,
                permits_expire_ms: 0,
            },
            ..Breaker::default()
        };
        let counting = Breaker::decode(Some(&counting.encode()));
        assert_eq!(probe_done(&counting, &c, true, 5, 0).phase, Phase::Closed);
    }

    #[test]
    fn codec_round_trip_and_garbage_reads_closed() {
        let c = config();
        let b = record(&Breaker::default(), &c, failures(10), 0, 0);
        assert_eq!(Breaker::decode(Some(&b.encode())), b);
        assert_eq!(Breaker::decode(Some(&[1, 2, 3])), Breaker::default());
        assert_eq!(Breaker::decode(None), Breaker::default());
        let bytes = b.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Breaker::decode(Some(&bytes[..cut])), Breaker::default());
        }
    }
}

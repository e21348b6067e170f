//! Shared-data slots of token buckets. Tenants hash to a fixed number of slots (the key space
//! stays bounded: shared data has no delete), and a slot holds the buckets of up to
//! `per_slot` tenants, each under its exact identity (service and tenant id, compared as
//! bytes). A bucket leaves its slot only once it is full again — then a new bucket is the same
//! thing, so nothing is forgotten and no tenant can reset another's bucket by colliding with
//! it. When every bucket of a slot is still refilling, a tenant without one is refused (fail
//! closed) until the first of them is full: any other answer would let someone exceed a limit.

use super::bucket::{Bucket, Decision, Limit};
use crate::policy::codec::{ReadError, Reader, Writer};
use crate::policy::hash::fnv1a;

pub const SLOT_KEY_PREFIX: &str = "edge:rl:";
/// Version 1 held one bucket per slot under a 64-bit hash; it reads as an empty slot.
const FORMAT_VERSION: u8 = 2;

/// Who a bucket belongs to: the service and the tenant id (`None`: the anonymous bucket,
/// which no tenant id can name since ids are never empty).
pub fn identity(service: &str, tenant: Option<&str>) -> String {
    format!("{service}\n{}", tenant.unwrap_or(""))
}

/// The shared-data key of the slot a bucket lives in.
pub fn slot_key(identity: &str, slots: u64) -> String {
    format!("{SLOT_KEY_PREFIX}{}", fnv1a(identity) % slots.max(1))
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Held {
    identity: Vec<u8>,
    bucket: Bucket,
    /// When the bucket is full again (under the limit it was last spent with).
    full_at_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Slot {
    held: Vec<Held>,
}

impl Slot {
    /// `[2][count]` then per bucket `[identity length u16][identity][micro-tokens u64]
    /// [last ms u64][full-at ms u64]`, little-endian.
    fn encode(&self) -> Vec<u8> {
        // Identities are far shorter (service name and 128 bytes); a longer one is not kept.
        let kept: Vec<&Held> = self
            .held
            .iter()
            .filter(|held| u16::try_from(held.identity.len()).is_ok())
            .take(usize::from(u8::MAX))
            .collect();
        let mut out = Writer::new(FORMAT_VERSION);
        out.u8(u8::try_from(kept.len()).unwrap_or(u8::MAX));
        for held in kept {
            out.bytes16(&held.identity)
                .u64(held.bucket.micro_tokens)
                .u64(held.bucket.last_ms)
                .u64(held.full_at_ms);
        }
        out.finish()
    }

    /// Missing, corrupt or unknown-version values read as an empty slot.
    fn decode(bytes: Option<&[u8]>) -> Option<Self> {
        Self::read(Reader::new(bytes?)).ok()
    }

    fn read(mut reader: Reader<'_>) -> Result<Self, ReadError> {
        reader.version(&[FORMAT_VERSION])?;
        let count = reader.u8()?;
        let mut held = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let identity = reader.bytes16()?.to_vec();
            let micro_tokens = reader.u64()?;
            let last_ms = reader.u64()?;
            let full_at_ms = reader.u64()?;
            held.push(Held {
                identity,
                bucket: Bucket {
                    micro_tokens,
                    last_ms,
                },
                full_at_ms,
            });
        }
        reader.finish(Self { held })
    }
}

/// What taking from a slot decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The tenant's bucket decided.
    Spent(Decision),
    /// The tenant has no bucket and every place in the slot is held by a bucket still
    /// refilling: refused until the first of them is full.
    SlotFull(Decision),
}

impl Taken {
    pub fn decision(&self) -> Decision {
        match self {
            Taken::Spent(decision) | Taken::SlotFull(decision) => *decision,
        }
    }
}

/// Spends `cost` tokens from `identity`'s bucket in the slot value `current` at `now_ms`
/// (pure: applied with the CAS helper). Full buckets of other tenants are dropped on the way.
pub fn take(
    current: Option<&[u8]>,
    identity: &str,
    limit: Limit,
    cost: u64,
    now_ms: u64,
    per_slot: usize,
) -> (Taken, Vec<u8>) {
    let mut slot = Slot::decode(current).unwrap_or_default();
    let own = identity.as_bytes();
    slot.held
        .retain(|held| held.identity == own || held.full_at_ms > now_ms);
    let position = slot.held.iter().position(|held| held.identity == own);
    let bucket = match position.and_then(|index| slot.held.get(index)) {
        Some(held) => held.bucket,
        None if slot.held.len() < per_slot.max(1) => Bucket::full(limit, now_ms),
        None => {
            let first_full = slot
                .held
                .iter()
                .map(|held| held.full_at_ms)
                .min()
                .unwrap_or(now_ms);
            let wait = first_full.saturating_sub(now_ms).max(1);
            let decision = Decision {
                admitted: false,
                remaining: 0,
                retry_after_ms: wait,
                reset_ms: wait,
            };
            return (Taken::SlotFull(decision), slot.encode());
        }
    };
    let (decision, next) = bucket.spend(limit, cost, now_ms);
    let held = Held {
        identity: own.to_vec(),
        bucket: next,
        full_at_ms: next.full_at_ms(limit),
    };
    match position.and_then(|index| slot.held.get_mut(index)) {
        Some(place) => *place = held,
        None => slot.held.push(held),
    }
    (Taken::Spent(decision), slot.encode())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::codec::hex;
    #[cfg(not(target_arch = "wasm32"))]
    use crate::policy::shared_store::memory::MemoryStore;
    #[cfg(not(target_arch = "wasm32"))]
    use crate::policy::shared_store::{update, SharedStore};
    #[cfg(not(target_arch = "wasm32"))]
    use proptest::prelude::*;

    const LIMIT: Limit = Limit {
        requests_per_second: 10.0,
        burst: 5,
    };

    fn admitted(state: &mut Option<Vec<u8>>, who: &str, now_ms: u64, per_slot: usize) -> Taken {
        let (taken, next) = take(state.as_deref(), who, LIMIT, 1, now_ms, per_slot);
        *state = Some(next);
        taken
    }

    #[test]
    fn a_colliding_tenant_never_resets_another_bucket() {
        let mut slot = None;
        for _ in 0..5 {
            admitted(&mut slot, "svc\na", 0, 4);
        }
        assert!(!admitted(&mut slot, "svc\na", 0, 4).decision().admitted);
        assert!(admitted(&mut slot, "svc\nb", 0, 4).decision().admitted);
        assert!(
            !admitted(&mut slot, "svc\na", 0, 4).decision().admitted,
            "b's bucket did not replace a's"
        );
        assert!(admitted(&mut slot, "svc\na", 100, 4).decision().admitted);
    }

    #[test]
    fn a_full_slot_refuses_newcomers_until_a_bucket_is_full() {
        let mut slot = None;
        assert!(admitted(&mut slot, "s\na", 0, 2).decision().admitted);
        assert!(admitted(&mut slot, "s\nb", 50, 2).decision().admitted);
        // a is full again at 100 (one token at 10/s), b at 150.
        assert_eq!(
            admitted(&mut slot, "s\nc", 60, 2),
            Taken::SlotFull(Decision {
                admitted: false,
                remaining: 0,
                retry_after_ms: 40,
                reset_ms: 40
            })
        );
        assert!(
            admitted(&mut slot, "s\nb", 60, 2).decision().admitted,
            "holders go on"
        );
        assert!(
            admitted(&mut slot, "s\nc", 100, 2).decision().admitted,
            "a's place"
        );
        assert!(matches!(
            admitted(&mut slot, "s\na", 100, 2),
            Taken::SlotFull(_)
        ));
    }

    #[test]
    fn identities_are_compared_exactly() {
        assert_ne!(identity("svc", Some("-")), identity("svc", None));
        assert_ne!(identity("a", Some("b")), identity("a\nb", None));
        let mut slot = None;
        for _ in 0..5 {
            admitted(&mut slot, &identity("svc", Some("ab")), 0, 4);
        }
        assert!(
            admitted(&mut slot, &identity("svc", Some("aB")), 0, 4)
                .decision()
                .admitted
        );
    }

    #[test]
    fn corrupt_and_old_values_read_as_empty() {
        let (_, full) = take(None, "s\na", LIMIT, 5, 0, 4);
        assert!(
            !take(Some(&full), "s\na", LIMIT, 1, 0, 4)
                .0
                .decision()
                .admitted
        );
        let version_one = [[1u8].as_slice(), &[0; 24]].concat();
        for bad in [
            &[][..],
            &[0][..],
            &[9, 9][..],
            &version_one[..],
            &full[..full.len() - 1],
            &[full.as_slice(), &[0]].concat()[..],
            &[2, 3, 0, 0][..],
        ] {
            assert!(
                take(Some(bad), "s\na", LIMIT, 1, 0, 4)
                    .0
                    .decision()
                    .admitted,
                "{bad:?} reads as absent"
            );
        }
        assert_eq!(Slot::decode(Some(&full)).map(|s| s.encode()), Some(full));
    }

    /// Bytes written by the format-2 encoder: still read, and written, exactly so.
    #[test]
    fn reads_and_writes_stored_format_2_bytes() {
        let (_, one) = take(None, "s\na", LIMIT, 1, 0, 4);
        let (_, two) = take(Some(&one), "s\nbc", LIMIT, 2, 50, 4);
        let stored = hex(
            "02020300730a6100093d00000000000000000000000000640000000000000004\
             00730a6263c0c62d00000000003200000000000000fa00000000000000",
        );
        assert_eq!(two, stored);
        let slot = Slot::decode(Some(&stored));
        assert_eq!(slot.as_ref().map(|s| s.held.len()), Some(2), "{slot:?}");
        assert_eq!(slot.map(|s| s.encode()), Some(stored));
    }

    /// Admitted per tenant within every window of its requests.
    #[cfg(not(target_arch = "wasm32"))]
    fn check_bound(times: &[(usize, u64, bool)], limits: &[Limit]) -> Result<(), TestCaseError> {
        for (tenant, limit) in limits.iter().enumerate() {
            let mine: Vec<(u64, bool)> = times
                .iter()
                .filter(|(t, _, _)| *t == tenant)
                .map(|(_, now, ok)| (*now, *ok))
                .collect();
            for start in 0..mine.len() {
                let (mut count, mut t0, mut t1) = (0u64, u64::MAX, 0u64);
                for end in start..mine.len() {
                    count += u64::from(mine[end].1);
                    t0 = t0.min(mine[end].0);
                    t1 = t1.max(mine[end].0);
                    let latest = mine[..=end].iter().map(|m| m.0).max().unwrap_or(0);
                    let window_ms = latest.saturating_sub(t0).max(t1.saturating_sub(t0));
                    let bound = (limit.requests_per_second * window_ms as f64 / 1000.0).ceil()
                        as u64
                        + limit.burst;
                    prop_assert!(
                        count <= bound,
                        "tenant {tenant}: {count} admitted in {window_ms} ms, bound {bound}"
                    );
                }
            }
        }
        Ok(())
    }

    #[cfg(not(target_arch = "wasm32"))]
    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]
        /// Several tenants (each with its own limit) in one slot with fewer places than
        /// tenants, through the CAS helper with lost races: over any window T of a tenant's
        /// requests, its admitted ≤ rate × T + burst, whatever the order, the clock skew
        /// between workers and the races. A request whose update keeps losing is refused.
        #[test]
        fn admitted_per_tenant_never_exceeds_rate_times_window_plus_burst(
            steps in proptest::collection::vec((0usize..5, 0u64..300, 0u64..40, 0u32..6), 1..160),
            rates in proptest::collection::vec((1u32..40, 1u64..12), 5),
            per_slot in 1usize..4,
        ) {
            let limits: Vec<Limit> = rates
                .iter()
                .map(|(rps, burst)| Limit { requests_per_second: f64::from(*rps) / 2.0, burst: *burst })
                .collect();
            let store = MemoryStore::default();
            let mut now = 0u64;
            let mut seen = Vec::new();
            for (tenant, gap, skew, races) in steps {
                now += gap;
                let at = now.saturating_sub(skew);
                *store.races.borrow_mut() = races;
                let who = identity("svc", Some(&format!("t{tenant}")));
                let limit = limits[tenant];
                let outcome = update(&store, "edge:rl:0", 4, |current| {
                    Ok::<_, ()>(take(current, &who, limit, 1, at, per_slot))
                });
                *store.races.borrow_mut() = 0;
                let ok = matches!(outcome, Ok(Taken::Spent(d)) if d.admitted);
                seen.push((tenant, at, ok));
                let stored = store.get("edge:rl:0").map(|(v, _)| v);
                if let Some(slot) = Slot::decode(stored.as_deref()) {
                    prop_assert!(slot.held.len() <= per_slot);
                }
            }
            check_bound(&seen, &limits)?;
        }
    }
}

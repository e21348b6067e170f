//! Cross-worker leases in shared data: one worker fetches a key at a time. A lease names the
//! key (by hash), its owner and when it expires, so a dead owner never blocks anyone for long.
//! Leases live in a fixed number of slots (the key space stays bounded).

use crate::policy::codec::{ReadError, Reader, Writer};
use crate::policy::hash::fnv1a;

pub const LEASE_KEY_PREFIX: &str = "edge:lease:";
const FORMAT_VERSION: u8 = 1;

/// The shared-data key of the lease slot for a cache key.
pub fn lease_key(key: &str, slots: u64) -> String {
    // Mixed (a SplitMix64 finalizer) so every byte of the key moves the slot — a plain shift
    // of FNV-1a left keys that differ only in their last byte in one slot — and so a key's
    // lease slot does not follow its L2 slot.
    let mut z = fnv1a(key);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    let slot = (z ^ (z >> 31)) % slots.max(1);
    format!("{LEASE_KEY_PREFIX}{slot}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub key_hash: u64,
    pub owner: u64,
    pub expires_at_ms: u64,
}

impl Lease {
    /// `[1][key hash u64][owner u64][expires at ms u64]`, little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(FORMAT_VERSION, 24);
        out.u64(self.key_hash)
            .u64(self.owner)
            .u64(self.expires_at_ms);
        out.finish()
    }

    /// A missing, corrupt or unknown-version value reads as no lease.
    pub fn decode(bytes: Option<&[u8]>) -> Option<Self> {
        Self::read(Reader::new(bytes?)).ok()
    }

    fn read(mut reader: Reader<'_>) -> Result<Self, ReadError> {
        reader.version(&[FORMAT_VERSION])?;
        let lease = Self {
            key_hash: reader.u64()?,
            owner: reader.u64()?,
            expires_at_ms: reader.u64()?,
        };
        reader.finish(lease)
    }
}

/// What trying to take a lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquire {
    /// Ours now: fetch the key.
    Acquired,
    /// Another worker fetches this key until then: wait for it.
    HeldElsewhere { expires_at_ms: u64 },
    /// The slot is busy with another key: fetch without a lease (no cross-worker coalescing).
    Collision,
}

/// The lease change for taking `key_hash` (the pure function the CAS helper applies).
pub fn acquire(
    current: Option<&[u8]>,
    key_hash: u64,
    owner: u64,
    now_ms: u64,
    ttl_ms: u64,
) -> (Acquire, Option<Vec<u8>>) {
    let ours = Lease {
        key_hash,
        owner,
        expires_at_ms: now_ms.saturating_add(ttl_ms),
    };
    match Lease::decode(current) {
        Some(lease)
            if lease.expires_at_ms > now_ms
                && lease.key_hash == key_hash
                && lease.owner != owner =>
        {
            (
                Acquire::HeldElsewhere {
                    expires_at_ms: lease.expires_at_ms,
                },
                None,
            )
        }
        Some(lease) if lease.expires_at_ms > now_ms && lease.key_hash != key_hash => {
            (Acquire::Collision, None)
        }
        _ => (Acquire::Acquired, Some(ours.encode())),
    }
}

/// The lease change for giving `key_hash` back: only the owner's own lease is cleared.
pub fn release(current: Option<&[u8]>, key_hash: u64, owner: u64) -> Option<Vec<u8>> {
    let lease = Lease::decode(current)?;
    (lease.key_hash == key_hash && lease.owner == owner).then(|| {
        Lease {
            expires_at_ms: 0,
            ..lease
        }
        .encode()
    })
}

/// Whether a lease on `key_hash` is still held by someone at `now_ms`.
pub fn is_held(current: Option<&[u8]>, key_hash: u64, now_ms: u64) -> bool {
    Lease::decode(current).is_some_and(|l| l.key_hash == key_hash && l.expires_at_ms > now_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::codec::hex;

    /// Bytes written by the format-1 encoder: still read, and written, exactly so.
    #[test]
    fn reads_and_writes_stored_format_1_bytes() {
        let lease = Lease {
            key_hash: 0x0102_0304_0506_0708,
            owner: 9,
            expires_at_ms: 6000,
        };
        let stored = hex("01080706050403020109000000000000007017000000000000");
        assert_eq!(Lease::decode(Some(&stored)), Some(lease));
        assert_eq!(lease.encode(), stored);
        assert_eq!(Lease::decode(Some(&stored[..24])), None);
        assert_eq!(
            Lease::decode(Some(&[stored.as_slice(), &[0]].concat())),
            None
        );
    }

    #[test]
    fn keys_that_differ_in_their_last_byte_take_different_slots() {
        let slots: std::collections::HashSet<String> = (0..10)
            .map(|i| {
                lease_key(
                    &format!("v1\nleads\n-\nhttp://edge/api/v1/leads/4{i}"),
                    4096,
                )
            })
            .collect();
        assert!(slots.len() >= 9, "{} slots for 10 keys", slots.len());
    }

    #[test]
    fn one_owner_at_a_time_until_expiry() {
        let (a, written) = acquire(None, 7, 1, 1000, 5000);
        assert_eq!(a, Acquire::Acquired);
        let held = written.unwrap();
        assert_eq!(
            acquire(Some(&held), 7, 2, 2000, 5000).0,
            Acquire::HeldElsewhere {
                expires_at_ms: 6000
            }
        );
        assert_eq!(acquire(Some(&held), 8, 2, 2000, 5000).0, Acquire::Collision);
        assert_eq!(
            acquire(Some(&held), 7, 2, 6000, 5000).0,
            Acquire::Acquired,
            "expired"
        );
        assert!(is_held(Some(&held), 7, 5999));
        let released = release(Some(&held), 7, 1).unwrap();
        assert!(!is_held(Some(&released), 7, 2000));
        assert_eq!(release(Some(&held), 7, 2), None, "only the owner releases");
        assert_eq!(Lease::decode(Some(&[9, 9])), None);
    }
}

//! Coalescing leases (`edge:lease:<slot>` in shared data): one encoding per value, and taking,
//! checking or giving back a lease over whatever a slot holds never panics and never lets two
//! owners hold the same key at once.

use edge_filter::policy::cache::lease::{acquire, is_held, release, Acquire, Lease};

use super::input::Input;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let stored = input.bytes(64);
    let held = Lease::decode(Some(stored));
    if let Some(lease) = held {
        assert_eq!(lease.encode(), stored, "one encoding per lease");
    }
    let made = Lease {
        key_hash: input.range(0, 3),
        owner: input.range(0, 3),
        expires_at_ms: input.u64(),
    };
    let bytes = made.encode();
    assert_eq!(Lease::decode(Some(&bytes)), Some(made), "round trip");
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Lease::decode(Some(&longer)), None, "trailing byte accepted");

    let slot = match input.range(0, 2) {
        0 => None,
        1 => Some(stored.to_vec()),
        _ => Some(bytes),
    };
    let slot = slot.as_deref();
    let held = slot.and_then(|b| Lease::decode(Some(b)));
    let key = input.range(0, 3);
    let owner = input.range(0, 3);
    let now = input.u64();
    let ttl = input.range(1, 600_000);
    let live = held.filter(|l| l.expires_at_ms > now);

    let (outcome, written) = acquire(slot, key, owner, now, ttl);
    match outcome {
        Acquire::Acquired => {
            assert!(
                live.is_none_or(|l| l.key_hash == key && l.owner == owner),
                "acquired a lease someone else holds"
            );
            let expires_at_ms = now.saturating_add(ttl);
            let ours = Lease {
                key_hash: key,
                owner,
                expires_at_ms,
            };
            let written = written.unwrap_or_default();
            assert_eq!(Lease::decode(Some(&written)), Some(ours));
            assert_eq!(is_held(Some(&written), key, now), expires_at_ms > now);
            if expires_at_ms > now {
                let other = owner.wrapping_add(1);
                assert_eq!(
                    acquire(Some(&written), key, other, now, ttl),
                    (Acquire::HeldElsewhere { expires_at_ms }, None),
                    "a second owner waits"
                );
            }
            let given_back = release(Some(&written), key, owner);
            assert!(
                !is_held(given_back.as_deref(), key, now),
                "release frees it"
            );
            assert_eq!(release(Some(&written), key, owner.wrapping_add(1)), None);
        }
        Acquire::HeldElsewhere { expires_at_ms } => {
            assert_eq!(written, None);
            assert!(expires_at_ms > now);
            assert!(live.is_some_and(|l| l.key_hash == key && l.owner != owner));
            assert!(is_held(slot, key, now));
        }
        Acquire::Collision => {
            assert_eq!(written, None);
            assert!(live.is_some_and(|l| l.key_hash != key));
        }
    }
    if let Some(bytes) = release(slot, key, owner) {
        assert!(Lease::decode(Some(&bytes)).is_some_and(|l| l.key_hash == key && l.owner == owner));
        assert!(!is_held(Some(&bytes), key, now));
    }
}

//! L2 slot math: a cache key hashes to one of a fixed number of shared-data keys, so the L2
//! key space is bounded by construction whatever the traffic.

use crate::policy::hash::fnv1a;

/// Prefix of every L2 key: `edge:l2:<slot>`.
pub const L2_KEY_PREFIX: &str = "edge:l2:";

/// The slot a key lives in.
pub fn slot_of(key: &str, slots: u64) -> u64 {
    fnv1a(key) % slots.max(1)
}

/// The shared-data key of a slot.
pub fn slot_key(slot: u64) -> String {
    format!("{L2_KEY_PREFIX}{slot}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_stay_in_range_and_spread() {
        let slots = 64;
        let mut used = std::collections::BTreeSet::new();
        for i in 0..6400 {
            let slot = slot_of(&format!("key-{i}"), slots);
            assert!(slot < slots);
            used.insert(slot);
        }
        assert_eq!(used.len(), 64);
        assert_eq!(slot_key(7), "edge:l2:7");
    }
}

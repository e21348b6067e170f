//! Coalescing leases of one worker: the shared-data slot that makes one worker the one fetching
//! a key, and how many of this worker's fetches share each lease it holds.

use std::collections::HashMap;

use super::host::{shared_update as update, HostStore};
use crate::policy::cache::lease::{self, lease_key, Acquire};
use crate::policy::hash::fnv1a;
use crate::policy::shared_store::{SharedStore, UpdateError};

pub struct Leases {
    owner: u64,
    slots: u64,
    /// Leases this worker holds, by cache key: the slot and how many fetches share it (a
    /// leader and a background refresh of the same key).
    held: HashMap<String, (String, u32)>,
}

impl Leases {
    pub fn new(owner: u64, slots: u64) -> Self {
        Self {
            owner,
            slots,
            held: HashMap::new(),
        }
    }

    /// Tries to become the one worker fetching `key`.
    pub fn acquire(&mut self, key: &str, now_ms: u64, ttl_ms: u64) -> Acquire {
        let slot = lease_key(key, self.slots);
        let (owner, hash) = (self.owner, fnv1a(key));
        let taken = update(&HostStore, &slot, 4, |current| {
            match lease::acquire(current, hash, owner, now_ms, ttl_ms) {
                (outcome, Some(write)) => Ok((outcome, write)),
                (outcome, None) => Err(outcome),
            }
        });
        match taken {
            Ok(outcome) => {
                let holders = self.held.entry(key.to_string()).or_insert((slot, 0));
                holders.1 += 1;
                outcome
            }
            Err(UpdateError::Refused(outcome)) => outcome,
            // Contended or refused by the host: fetch without a lease.
            Err(_) => Acquire::Collision,
        }
    }

    /// Gives back this worker's lease on `key`, if it holds one.
    pub fn release(&mut self, key: &str) {
        let Some((slot, holders)) = self.held.remove(key) else {
            return;
        };
        if holders > 1 {
            self.held.insert(key.to_string(), (slot, holders - 1));
            return;
        }
        let (owner, hash) = (self.owner, fnv1a(key));
        let _ = update(&HostStore, &slot, 4, |current| {
            lease::release(current, hash, owner)
                .map(|write| ((), write))
                .ok_or(())
        });
    }

    /// Whether any worker still holds a lease on `key`.
    pub fn held_anywhere(&self, key: &str, now_ms: u64) -> bool {
        let slot = lease_key(key, self.slots);
        let current = HostStore.get(&slot);
        lease::is_held(
            current.as_ref().map(|(b, _)| b.as_slice()),
            fnv1a(key),
            now_ms,
        )
    }
}

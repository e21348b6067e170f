//! What one worker (VM) keeps across requests: the registry, its L1, its copy of the purge
//! generations, and its metric ids. Root and stream contexts share it.

use log::warn;

use super::host::HostStore;
use super::metrics::{Metrics, Stat};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::keep_until;
use crate::policy::cache::generations::{Dimension, Generations, GENERATIONS_KEY};
use crate::policy::cache::l1::L1Cache;
use crate::policy::cache::l2::{slot_key, slot_of};
use crate::policy::shared_store::{update, SharedStore};
use crate::policy::Registry;
use std::rc::Rc;

/// How often a purge retries when other workers purge at the same moment.
const PURGE_ATTEMPTS: u32 = 16;

pub struct Worker {
    pub registry: Rc<Registry>,
    pub l1: L1Cache,
    pub generations: Generations,
    generations_cas: Option<u32>,
    pub metrics: Metrics,
    /// Logged once: an L2 write the host refused.
    l2_write_warned: bool,
}

/// What an L2 slot held for a key.
pub enum L2Read {
    Found(Entry),
    /// Nothing, or another key's entry (slots are shared by hash).
    Absent,
    /// A value that does not decode: counted, treated as absent.
    Corrupt,
}

impl Worker {
    pub fn new(registry: Rc<Registry>) -> Self {
        let limits = registry.limits();
        let mut l1 = L1Cache::new(
            usize::try_from(limits.l1_max_entries).unwrap_or(usize::MAX),
            usize::try_from(limits.l1_max_bytes).unwrap_or(usize::MAX),
        );
        l1.set_tenant_share(limits.l1_tenant_share_percent.map(|p| p as f64 / 100.0));
        Self {
            registry,
            l1,
            generations: Generations::default(),
            generations_cas: None,
            metrics: Metrics::define(),
            l2_write_warned: false,
        }
    }

    /// Creates the generations value if no worker has yet (a write to a missing key ignores
    /// CAS, so this happens at start-up, before any purge can race it).
    pub fn ensure_generations(&mut self) {
        if HostStore.get(GENERATIONS_KEY).is_none() {
            let _ = HostStore.set(GENERATIONS_KEY, &Generations::default().encode(), 0);
        }
        self.refresh_generations();
    }

    /// Re-reads the purge generations; decodes only when another worker changed them.
    pub fn refresh_generations(&mut self) {
        match HostStore.get(GENERATIONS_KEY) {
            Some((bytes, cas)) if Some(cas) != self.generations_cas => {
                self.generations = Generations::decode(Some(&bytes));
                self.generations_cas = Some(cas);
            }
            _ => {}
        }
    }

    /// Invalidates everything stored under `dimension`, on every worker.
    pub fn purge(&mut self, dimension: Dimension<'_>) -> bool {
        let bumped = update(&HostStore, GENERATIONS_KEY, PURGE_ATTEMPTS, |current| {
            let mut generations = Generations::decode(current);
            generations.bump(dimension);
            let encoded = generations.encode();
            Ok::<_, ()>((generations, encoded))
        });
        match bumped {
            Ok(generations) => {
                self.generations = generations;
                self.generations_cas = None;
                true
            }
            Err(_) => false,
        }
    }

    pub fn l2_get(&self, key: &str) -> L2Read {
        let slots = self.registry.limits().l2_slots;
        let Some((bytes, _)) = HostStore.get(&slot_key(slot_of(key, slots))) else {
            return L2Read::Absent;
        };
        match Entry::decode_key(&bytes) {
            Ok(stored) if stored == key => {}
            Ok(_) => return L2Read::Absent,
            Err(_) if bytes.is_empty() => return L2Read::Absent,
            Err(_) => return L2Read::Corrupt,
        }
        match Entry::decode(&bytes) {
            Ok(entry) => L2Read::Found(entry),
            Err(_) => L2Read::Corrupt,
        }
    }

    /// Stores in L1 and L2 and counts what happened.
    pub fn store(&mut self, entry: Entry, tenant: Option<&str>) {
        let encoded = entry.encode();
        let entry_key = entry.key.clone();
        let slot = slot_key(slot_of(&entry.key, self.registry.limits().l2_slots));
        self.insert_l1(entry, tenant);
        let cas = match HostStore.get(&slot) {
            Some((previous, cas)) => {
                if Entry::decode_key(&previous).is_ok_and(|k| k != entry_key) {
                    // Another key's entry leaves L2 (slots are shared by hash).
                    self.metrics.inc(Stat::L2Eviction);
                }
                cas
            }
            None => 0,
        };
        match HostStore.set(&slot, &encoded, cas) {
            Ok(()) => {
                self.metrics.inc(Stat::StoreL2);
                if let Some((stored, raw)) = Entry::stored_body_len(&encoded) {
                    self.metrics
                        .add(Stat::StoredBytesRaw, i64::try_from(raw).unwrap_or(0));
                    self.metrics.add(
                        Stat::StoredBytesCompressed,
                        i64::try_from(stored).unwrap_or(0),
                    );
                }
            }
            // Another worker just wrote this slot: its entry is as good as ours.
            Err(crate::policy::shared_store::SetError::CasMismatch) => {}
            Err(_) => {
                if !self.l2_write_warned {
                    warn!("L2 write refused by the host; entries stay in L1 only");
                    self.l2_write_warned = true;
                }
            }
        }
    }

    /// Copies an entry into L1 (a store, or a promotion from L2) and tracks L1 size and evictions.
    pub fn insert_l1(&mut self, entry: Entry, tenant: Option<&str>) {
        let before = self.l1.stats();
        let keep = keep_until(&entry);
        if self.l1.insert(entry, tenant, keep) {
            self.metrics.inc(Stat::StoreL1);
        }
        self.track_l1(before);
    }

    pub fn remove_l1(&mut self, key: &str) {
        let before = self.l1.stats();
        self.l1.remove(key);
        self.track_l1(before);
    }

    pub fn track_l1(&self, before: crate::policy::cache::l1::L1Stats) {
        let after = self.l1.stats();
        let delta =
            |a: usize, b: usize| i64::try_from(a).unwrap_or(0) - i64::try_from(b).unwrap_or(0);
        self.metrics
            .add(Stat::L1Entries, delta(after.entries, before.entries));
        self.metrics
            .add(Stat::L1Bytes, delta(after.bytes, before.bytes));
        let evicted = (after.evictions + after.expired_evictions)
            .saturating_sub(before.evictions + before.expired_evictions);
        self.metrics
            .add(Stat::L1Eviction, i64::try_from(evicted).unwrap_or(0));
    }
}

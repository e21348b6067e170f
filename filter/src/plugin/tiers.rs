//! The worker's two cache tiers: its own L1 (no shared data on a hit) and the L2 slots in
//! shared data, the purge generations entries are checked against, and the one way a response
//! fetched from the origin is stored (misses, warm fetches, revalidations, refreshes). Several
//! `Vary` variants of a URL: `tiers/variants.rs`.

use std::rc::Rc;

use log::warn;

use super::env::Env;
use super::host::{now_nanos, shared_update as update, HostStore};
use super::metrics::Stat;
use crate::policy::cache::encoding::{encode_all, wants_coding};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{fetched_entry, keep_until, tags, Fetch, FetchedEntry};
use crate::policy::cache::freshness::RequestFacts;
use crate::policy::cache::generations::{Dimension, Generations, GENERATIONS_KEY};
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::l1::{L1Cache, L1Stats};
use crate::policy::cache::l2::{slot_key, slot_of};
use crate::policy::header_list::{header_joined, HeaderPair, Headers};
use crate::policy::shared_store::{SetError, SharedStore};
use crate::policy::CacheSection;

mod variants;
pub use variants::Found;

/// How often a purge retries when other workers purge at the same moment.
const PURGE_ATTEMPTS: u32 = 16;

/// Purges one worker queues for the fleet tier between two ticks, at most.
const MAX_FLEET_PURGES: usize = 1024;

pub struct Tiers {
    pub l1: L1Cache,
    /// Shared with the requests in flight, which keep the counters they started under.
    pub generations: Rc<Generations>,
    generations_cas: Option<u32>,
    /// Logged once: an L2 write the host refused.
    l2_write_warned: bool,
    /// Entries stored from the origin for services with the fleet's L3 tier, for the root
    /// context to write behind to Redis (bounded by `refresh_queue`).
    pub l3_stores: Vec<Entry>,
    /// Counter slots this worker purged, for the root context to bump in the fleet tier too
    /// (bounded; dropped when no service uses the fleet).
    pub fleet_purges: Vec<usize>,
}

/// What an L2 slot held for a key. (A value returned and matched at once: boxing the entry
/// would cost an allocation per read to save a few bytes of stack.)
#[allow(clippy::large_enum_variant)]
pub enum L2Read {
    Found(Entry),
    /// Nothing, or another key's entry (slots are shared by hash).
    Absent,
    /// A value that does not decode: counted, treated as absent.
    Corrupt,
}

/// A response the origin gave the filter (or a stream), to store.
pub struct FetchedResponse<'a> {
    pub service_index: usize,
    pub key: &'a CacheKey,
    /// The purge generations when the request started.
    pub started: &'a Generations,
    pub request: &'a RequestFacts,
    pub request_headers: &'a Headers,
    /// Unix milliseconds.
    pub request_time_ms: u64,
    /// Unix milliseconds.
    pub response_time_ms: u64,
    pub status: u16,
    pub response_headers: &'a Headers,
    pub body: Vec<u8>,
    /// The stored entry this fetch revalidated, if it did.
    pub old: Option<&'a Entry>,
}

/// What storing a fetched response came to.
pub enum Kept {
    /// Stored in L1 (and L2 if it fits).
    Stored(Entry),
    /// A usable answer, not kept: a purge of its service, URL, tenant or tags happened while
    /// it was fetched (it may be what was purged).
    Unkept(Entry),
    /// Nothing to store (not storable, too large, an error).
    NotStorable,
}

impl Tiers {
    pub fn new(env: &Env) -> Self {
        let limits = env.registry.limits();
        // The clock at start-up is not a secret, but a client cannot read it to the nanosecond.
        let mut l1 = L1Cache::with_hash_seed(
            usize::try_from(limits.l1_max_entries).unwrap_or(usize::MAX),
            usize::try_from(limits.l1_max_bytes).unwrap_or(usize::MAX),
            now_nanos(),
        );
        l1.set_tenant_share(limits.l1_tenant_share_percent.map(|p| p as f64 / 100.0));
        Self {
            l1,
            generations: Rc::new(Generations::default()),
            generations_cas: None,
            l2_write_warned: false,
            l3_stores: Vec::new(),
            fleet_purges: Vec::new(),
        }
    }

    /// An L1 lookup (expired entries it drops are counted).
    pub fn l1_get(&mut self, env: &Env, key: &str, now: u64) -> Option<Rc<Entry>> {
        let before = self.l1.stats();
        let entry = self.l1.get(key, now);
        self.track_l1(env, before);
        entry
    }

    pub fn l2_get(&self, env: &Env, key: &str) -> L2Read {
        let slots = env.registry.limits().l2_slots;
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

    /// The status of the entry L2 holds for `key` and when it arrived (Unix ms), read without
    /// decoding it: `None` when the slot holds no entry for `key` (or one that does not read).
    pub fn l2_stamp(&self, env: &Env, key: &str) -> Option<(u16, u64)> {
        let slots = env.registry.limits().l2_slots;
        let (bytes, _) = HostStore.get(&slot_key(slot_of(key, slots)))?;
        if Entry::decode_key(&bytes).ok()? != key {
            return None;
        }
        Entry::decode_stamp(&bytes).ok()
    }

    /// Stores a fetched response if it may be stored and no purge crossed its fetch.
    pub fn store_fetched(
        &mut self,
        env: &Env,
        section: &CacheSection,
        fetched: FetchedResponse<'_>,
    ) -> Kept {
        let stamp = self.stamp_since(
            fetched.started,
            fetched.service_index,
            fetched.key,
            &tags(fetched.response_headers, &section.tag_header),
        );
        let fetch = Fetch {
            key: &fetched.key.primary,
            old: fetched.old,
            request: fetched.request,
            request_headers: fetched.request_headers,
            policy: &section.store_policy(),
            defaults: section.stale_defaults(),
            request_time_ms: fetched.request_time_ms,
            response_time_ms: fetched.response_time_ms,
            max_body: usize::try_from(env.registry.limits().max_entry_bytes).unwrap_or(usize::MAX),
            generations: stamp.clone().unwrap_or_default(),
        };
        let status = fetched.status;
        match fetched_entry(&fetch, status, fetched.response_headers, fetched.body) {
            FetchedEntry::Refreshed(entry) | FetchedEntry::Replaced(entry) if stamp.is_some() => {
                let stored = self.store_keyed(env, section, fetched.key, entry);
                self.note_l3(env, fetched.service_index, &stored);
                Kept::Stored(stored)
            }
            FetchedEntry::Refreshed(entry) | FetchedEntry::Replaced(entry) => Kept::Unkept(entry),
            FetchedEntry::NotStored => Kept::NotStorable,
        }
    }

    /// Queues `entry` for the fleet's L3 tier when its service has it.
    fn note_l3(&mut self, env: &Env, service_index: usize, entry: &Entry) {
        let shares = env
            .registry
            .service_at(service_index)
            .and_then(|s| s.fleet.as_ref())
            .is_some_and(|f| f.shares_cache());
        let limit = usize::try_from(env.registry.limits().refresh_queue).unwrap_or(0);
        if shares && self.l3_stores.len() < limit {
            self.l3_stores.push(entry.clone());
        }
    }

    /// Takes the entry stored under `key` out of use on every worker: a newer response for it
    /// is not stored (see `policy::cache::supersede`). Its URL's purge generation is bumped
    /// (no L1 copy nor the L2 slot answers with it any more) and it leaves this worker's L1.
    pub fn outdate(&mut self, env: &Env, key: &CacheKey) {
        self.remove_l1(env, &key.primary);
        if self.purge(Dimension::Url(&key.url)) {
            env.metrics.inc(Stat::Invalidation);
        }
    }

    /// Stores in L1 and L2 and counts what happened.
    pub fn store(&mut self, env: &Env, entry: Entry, tenant: Option<&str>) {
        let limits = env.registry.limits();
        let metrics = &env.metrics;
        let slot_bytes = usize::try_from(limits.l2_slot_bytes()).unwrap_or(usize::MAX);
        let mut encoded = entry.encode();
        if encoded.len() > slot_bytes && !entry.encoded.is_empty() {
            // Too large with its encoded bodies: L2 keeps the identity body, and a worker that
            // reads it there encodes it again (see `encode_for`).
            let identity_only = Entry {
                encoded: Vec::new(),
                ..entry.clone()
            };
            encoded = identity_only.encode();
        }
        let entry_key = entry.key.clone();
        let slot = slot_key(slot_of(&entry.key, limits.l2_slots));
        self.insert_l1(env, entry, tenant);
        if encoded.len() > slot_bytes {
            // Within the L2 byte budget only: this one stays in L1.
            metrics.inc(Stat::L2TooLarge);
            return;
        }
        // (cas, bytes the slot held): an empty slot (never written, or the placeholder) is
        // filled by this store.
        let (cas, previous_len) = match HostStore.get(&slot) {
            Some((previous, cas)) => {
                if Entry::decode_key(&previous).is_ok_and(|k| k != entry_key) {
                    // Another key's entry leaves L2 (slots are shared by hash).
                    metrics.inc(Stat::L2Eviction);
                }
                (cas, previous.len())
            }
            None => (0, 0),
        };
        match HostStore.set(&slot, &encoded, cas) {
            Ok(()) => {
                metrics.inc(Stat::StoreL2);
                if previous_len <= 1 {
                    metrics.inc(Stat::L2Entries);
                }
                let grown = i64::try_from(encoded.len()).unwrap_or(0)
                    - i64::try_from(previous_len).unwrap_or(0);
                metrics.add(Stat::L2Bytes, grown);
                if let Some((stored, raw)) = Entry::stored_body_len(&encoded) {
                    metrics.add(Stat::StoredBytesRaw, i64::try_from(raw).unwrap_or(0));
                    metrics.add(
                        Stat::StoredBytesCompressed,
                        i64::try_from(stored).unwrap_or(0),
                    );
                }
            }
            // Another worker just wrote this slot: its entry is as good as ours.
            Err(SetError::CasMismatch) => {}
            Err(_) => {
                if !self.l2_write_warned {
                    warn!("L2 write refused by the host; entries stay in L1 only");
                    self.l2_write_warned = true;
                }
            }
        }
    }

    /// `entry` with its encoded bodies, when this hit's client takes a coding and the entry
    /// lacks them: made now, once per worker, and kept in L1 in place of the identity-only copy
    /// (L2 keeps the identity body). `None` when nothing was made.
    pub fn encode_for(
        &mut self,
        env: &Env,
        entry: &Entry,
        request_headers: &[impl HeaderPair],
        tenant: Option<&str>,
    ) -> Option<Rc<Entry>> {
        if !entry.encoded.is_empty()
            || !wants_coding(header_joined(request_headers, "accept-encoding").as_deref())
        {
            return None;
        }
        let encoded = encode_all(&entry.headers, &entry.body);
        if encoded.is_empty() {
            return None;
        }
        let entry = Entry {
            encoded,
            ..entry.clone()
        };
        let before = self.l1.stats();
        let keep = keep_until(&entry);
        self.l1.insert(entry.clone(), tenant, keep);
        self.track_l1(env, before);
        Some(Rc::new(entry))
    }

    /// Copies an entry into L1 (a store, or a promotion from L2) and tracks L1 size and evictions.
    pub fn insert_l1(&mut self, env: &Env, entry: Entry, tenant: Option<&str>) {
        let before = self.l1.stats();
        let keep = keep_until(&entry);
        if self.l1.insert(entry, tenant, keep) {
            env.metrics.inc(Stat::StoreL1);
        }
        self.track_l1(env, before);
    }

    pub fn remove_l1(&mut self, env: &Env, key: &str) {
        let before = self.l1.stats();
        self.l1.remove(key);
        self.track_l1(env, before);
    }

    fn track_l1(&self, env: &Env, before: L1Stats) {
        let after = self.l1.stats();
        let delta =
            |a: usize, b: usize| i64::try_from(a).unwrap_or(0) - i64::try_from(b).unwrap_or(0);
        let metrics = &env.metrics;
        metrics.add(Stat::L1Entries, delta(after.entries, before.entries));
        metrics.add(Stat::L1Bytes, delta(after.bytes, before.bytes));
        let evicted = (after.evictions + after.expired_evictions)
            .saturating_sub(before.evictions + before.expired_evictions);
        metrics.add(Stat::L1Eviction, i64::try_from(evicted).unwrap_or(0));
    }

    /// The purge generations an entry records: its service, URL, tenant and tags, as they were
    /// in `started` (the counters when its request started). `None` when a purge has touched
    /// one of those since: the response may be what was purged, so it is not stored. Purges of
    /// other URLs, tenants or tags do not matter.
    fn stamp_since(
        &self,
        started: &Generations,
        service_index: usize,
        key: &CacheKey,
        tags: &[String],
    ) -> Option<Vec<u32>> {
        let mut dimensions = vec![Dimension::Service(service_index), Dimension::Url(&key.url)];
        if let Some(tenant) = &key.tenant {
            dimensions.push(Dimension::Tenant(tenant));
        }
        dimensions.extend(tags.iter().map(|t| Dimension::Tag(t)));
        let stamp = started.stamp(&dimensions);
        self.generations.is_current(&stamp).then_some(stamp)
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
                self.generations = Rc::new(Generations::decode(Some(&bytes)));
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
                self.generations = Rc::new(generations);
                self.generations_cas = None;
                if self.fleet_purges.len() < MAX_FLEET_PURGES {
                    self.fleet_purges.push(dimension.slot_index());
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Raises the purge counters to the fleet's (read from Redis); whether any changed.
    pub fn merge_generations(&mut self, counters: &[(usize, u32)]) -> bool {
        let merged = update(&HostStore, GENERATIONS_KEY, PURGE_ATTEMPTS, |current| {
            let mut generations = Generations::decode(current);
            if !generations.merge_max(counters) {
                return Err(());
            }
            let encoded = generations.encode();
            Ok((generations, encoded))
        });
        match merged {
            Ok(generations) => {
                self.generations = Rc::new(generations);
                self.generations_cas = None;
                true
            }
            Err(_) => false,
        }
    }
}

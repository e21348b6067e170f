//! What one worker (VM) keeps across requests: the registry, its L1, its copy of the purge
//! generations, and its metric ids. Root and stream contexts share it.

use log::warn;
use proxy_wasm::hostcalls;

use super::host::HostStore;
use super::metrics::{Metrics, Stat};
use super::refresh::RefreshJob;

/// Most response bytes one worker copies at once to store (all streams together); beyond it,
/// responses pass through uncached. Keeps a burst of large misses from exhausting the VM.
pub const MAX_CAPTURE_BYTES: usize = 64 * 1024 * 1024;
use super::host::shared_update as update;
use crate::policy::cache::coalesce::Coalescer;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::keep_until;
use crate::policy::cache::freshness::RequestFacts;
use crate::policy::cache::generations::{Dimension, Generations, GENERATIONS_KEY};
use crate::policy::cache::l1::L1Cache;
use crate::policy::cache::l2::{slot_key, slot_of};
use crate::policy::cache::lease::{self, lease_key, Acquire};
use crate::policy::hash::fnv1a;
use crate::policy::shared_store::{SharedStore, UpdateError};
use crate::policy::Registry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

/// Most other streams one VM callback answers or resumes. Envoy runs each local reply's own
/// filter callbacks inside the after-call actions of the previous one, so the stack grows with
/// every reply sent in one callback (about 600 overflowed V8's stack); the rest go out from
/// the next root callback (the worker's wake queue, or the tick).
pub const REPLIES_PER_CALLBACK: usize = 32;

/// What answering a request that waits for another one needs.
pub struct WaitInfo {
    pub head: bool,
    pub request_headers: Vec<(String, String)>,
    pub request: RequestFacts,
    pub debug: bool,
    pub lease_ms: u64,
}

/// How often a purge retries when other workers purge at the same moment.
const PURGE_ATTEMPTS: u32 = 16;

pub struct Worker {
    pub registry: Rc<Registry>,
    pub l1: L1Cache,
    /// Shared with the requests in flight, which keep the counters they started under.
    pub generations: Rc<Generations>,
    generations_cas: Option<u32>,
    pub metrics: Metrics,
    pub monitor: super::monitor::Monitor,
    /// Logged once: an L2 write the host refused.
    l2_write_warned: bool,
    /// Requests waiting for another request's response, per key.
    pub coalescer: Coalescer<WaitInfo>,
    /// Streams another context answered (their own response callbacks must stand back).
    pub answered: HashSet<u32>,
    /// Leases this worker holds, by cache key: the slot and how many fetches share it (a
    /// leader and a background refresh of the same key).
    leases: HashMap<String, (String, u32)>,
    /// Response bytes all streams of this worker are copying to store right now.
    pub capture_bytes: usize,
    /// This worker's identity in leases.
    pub owner: u64,
    /// Background refreshes waiting for the next tick, and those in flight by call token.
    pub refresh_queue: VecDeque<RefreshJob>,
    pub refresh_inflight: HashMap<u32, RefreshJob>,
    pub root_context_id: u32,
    /// This worker's copy of each service's breaker (one per configured service at most).
    pub breakers: super::breaker::Breakers,
    /// Duplicates waiting for a first attempt's result (bounded by `max_waiting_requests`).
    pub dedup_waiters: Vec<super::dedup::DedupWaiter>,
    /// Waiters the tick let through as the new first attempt: their record's key and attempt.
    pub dedup_taken_over: HashMap<u32, (String, u64)>,
    /// First attempts of deliveries at the origin, by the root context's call token.
    pub deliveries: HashMap<u32, super::delivery::Delivery>,
    /// Dedup results whose write lost every race, written again on the tick.
    pub dedup_unfinished: Vec<super::dedup::Unfinished>,
    /// Deliveries waiting for the root context to send them.
    pub delivery_queue: Vec<super::delivery::Queued>,
    /// Attempts this worker has started at the origin (see `dedup::next_attempt`).
    pub dedup_attempts: u64,
    pub last_generation_refresh_ms: u64,
    /// Coalesced waiters to answer from the root context (see `coalescing::defer_waiters`).
    pub deferred: Vec<super::coalescing::DeferredGroup>,
    /// Local replies (and resumes) this VM callback may still send to other streams; see
    /// [`REPLIES_PER_CALLBACK`].
    pub reply_budget: usize,
    /// Request bytes held by paused streams (bounded by `limits.max_paused_bytes`).
    pub paused_bytes: usize,
    /// This worker's own shared queue: an item in it wakes the root context (`on_queue_ready`).
    pub wake_queue: Option<u32>,
    /// A wake-up is queued and not yet handled.
    wake_pending: bool,
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
        let limits = registry.limits().clone();
        let mut l1 = L1Cache::new(
            usize::try_from(limits.l1_max_entries).unwrap_or(usize::MAX),
            usize::try_from(limits.l1_max_bytes).unwrap_or(usize::MAX),
        );
        l1.set_tenant_share(limits.l1_tenant_share_percent.map(|p| p as f64 / 100.0));
        let metrics = Metrics::define(&registry);
        let monitor = super::monitor::Monitor::new(&registry);
        Self {
            registry,
            l1,
            generations: Rc::new(Generations::default()),
            generations_cas: None,
            metrics,
            monitor,
            l2_write_warned: false,
            coalescer: Coalescer::new(
                usize::try_from(limits.max_waiting_requests).unwrap_or(usize::MAX),
            ),
            answered: HashSet::new(),
            leases: HashMap::new(),
            capture_bytes: 0,
            owner: 0,
            refresh_queue: VecDeque::new(),
            refresh_inflight: HashMap::new(),
            root_context_id: 0,
            breakers: Default::default(),
            dedup_waiters: Vec::new(),
            dedup_taken_over: HashMap::new(),
            dedup_attempts: 0,
            last_generation_refresh_ms: 0,
            deferred: Vec::new(),
            deliveries: HashMap::new(),
            delivery_queue: Vec::new(),
            dedup_unfinished: Vec::new(),
            paused_bytes: 0,
            reply_budget: REPLIES_PER_CALLBACK,
            wake_queue: None,
            wake_pending: false,
        }
    }

    /// Writes a placeholder into every slot of a table that does not exist yet. Shared data has
    /// no atomic create (a write to a missing key ignores CAS), so two workers could both
    /// "create" a record; with every slot present from the start, every claim is a real CAS.
    /// Envoy configures the plugin on the main thread before workers take traffic, so that VM
    /// creates the table; workers then find it complete.
    pub fn precreate_slots(&self, prefix: &str, slots: u64) {
        for slot in 0..slots {
            let key = format!("{prefix}{slot}");
            if HostStore.get(&key).is_none() {
                let _ = HostStore.set(&key, &[0], 0);
            }
        }
    }

    /// A number no other worker of this Envoy uses, from a shared counter and the clock.
    pub fn take_owner_id(&mut self) {
        let counter = update(&HostStore, "edge:workers", 16, |current| {
            let next = current
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map_or(0, u64::from_le_bytes)
                .wrapping_add(1);
            Ok::<_, ()>((next, next.to_le_bytes().to_vec()))
        });
        // Workers configure at the same moment, and a write to a missing key ignores CAS: two
        // could read the same count. The clock (nanoseconds, read on each worker's own thread)
        // tells them apart.
        let nanos = super::host::now_nanos();
        self.owner = counter.unwrap_or(0).rotate_left(40) ^ nanos ^ fnv1a(&nanos.to_string());
    }

    /// A VM callback that may answer other streams starts: its reply budget is whole.
    pub fn begin_callback(&mut self) {
        self.reply_budget = REPLIES_PER_CALLBACK;
    }

    /// Takes one reply from the callback's budget; `false` (and the root is woken to go on)
    /// when it is spent.
    pub fn take_reply(&mut self) -> bool {
        if self.reply_budget == 0 {
            self.wake_root();
            return false;
        }
        self.reply_budget -= 1;
        true
    }

    /// Reserves `bytes` of the paused-request budget; `false` (counted) when it is spent.
    pub fn reserve_paused(&mut self, bytes: usize) -> bool {
        let budget = usize::try_from(self.registry.limits().max_paused_bytes).unwrap_or(usize::MAX);
        if self.paused_bytes.saturating_add(bytes) > budget {
            self.metrics.inc(Stat::PausedBudget);
            return false;
        }
        self.paused_bytes += bytes;
        true
    }

    /// Registers the queue that wakes this worker's root context. Names are per worker (only
    /// the last registrant of a name is woken); one name per VM ever started.
    pub fn register_wake_queue(&mut self) {
        let name = format!("edge:wake:{:016x}", self.owner);
        self.wake_queue = hostcalls::register_shared_queue(&name).ok();
    }

    /// Asks for `on_queue_ready` on this worker's root context soon (once per wake-up).
    pub fn wake_root(&mut self) {
        if self.wake_pending {
            return;
        }
        if let Some(queue) = self.wake_queue {
            self.wake_pending = hostcalls::enqueue_shared_queue(queue, Some(&[1])).is_ok();
        }
    }

    /// The root context was woken: empties the queue (its items carry nothing).
    pub fn woken(&mut self) {
        self.wake_pending = false;
        if let Some(queue) = self.wake_queue {
            for _ in 0..64 {
                if !matches!(hostcalls::dequeue_shared_queue(queue), Ok(Some(_))) {
                    break;
                }
            }
        }
    }

    fn lease_slots(&self) -> u64 {
        self.registry.limits().lease_slots
    }

    /// Tries to become the one worker fetching `key`.
    pub fn acquire_lease(&mut self, key: &str, now_ms: u64, ttl_ms: u64) -> Acquire {
        let slot = lease_key(key, self.lease_slots());
        let (owner, hash) = (self.owner, fnv1a(key));
        let taken = update(&HostStore, &slot, 4, |current| {
            match lease::acquire(current, hash, owner, now_ms, ttl_ms) {
                (outcome, Some(write)) => Ok((outcome, write)),
                (outcome, None) => Err(outcome),
            }
        });
        match taken {
            Ok(outcome) => {
                let holders = self.leases.entry(key.to_string()).or_insert((slot, 0));
                holders.1 += 1;
                outcome
            }
            Err(UpdateError::Refused(outcome)) => outcome,
            // Contended or refused by the host: fetch without a lease.
            Err(_) => Acquire::Collision,
        }
    }

    /// Gives back this worker's lease on `key`, if it holds one.
    pub fn release_lease(&mut self, key: &str) {
        let Some((slot, holders)) = self.leases.remove(key) else {
            return;
        };
        if holders > 1 {
            self.leases.insert(key.to_string(), (slot, holders - 1));
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
    pub fn lease_held(&self, key: &str, now_ms: u64) -> bool {
        let slot = lease_key(key, self.lease_slots());
        let current = HostStore.get(&slot);
        lease::is_held(
            current.as_ref().map(|(b, _)| b.as_slice()),
            fnv1a(key),
            now_ms,
        )
    }

    /// The purge generations an entry records: its service, URL, tenant and tags, as they were
    /// in `started` (the counters when its request started). `None` when a purge has touched
    /// one of those since: the response may be what was purged, so it is not stored. Purges of
    /// other URLs, tenants or tags do not matter.
    pub fn stamp_since(
        &self,
        started: &Generations,
        service_index: usize,
        key: &crate::policy::cache::key::CacheKey,
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

    /// Queues a background refresh (deduplicated by key, bounded).
    pub fn queue_refresh(&mut self, job: RefreshJob) {
        let limit = usize::try_from(self.registry.limits().refresh_queue).unwrap_or(usize::MAX);
        let queued = |j: &RefreshJob| j.key.primary == job.key.primary;
        if self.refresh_queue.len() >= limit
            || self.refresh_queue.iter().any(queued)
            || self.refresh_inflight.values().any(queued)
        {
            return;
        }
        self.refresh_queue.push_back(job);
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
        let slot_bytes =
            usize::try_from(self.registry.limits().l2_slot_bytes()).unwrap_or(usize::MAX);
        if encoded.len() > slot_bytes {
            // Within the L2 byte budget only: this one stays in L1.
            self.metrics.inc(Stat::L2TooLarge);
            return;
        }
        // (cas, bytes the slot held): an empty slot (never written, or the placeholder) is
        // filled by this store.
        let (cas, previous_len) = match HostStore.get(&slot) {
            Some((previous, cas)) => {
                if Entry::decode_key(&previous).is_ok_and(|k| k != entry_key) {
                    // Another key's entry leaves L2 (slots are shared by hash).
                    self.metrics.inc(Stat::L2Eviction);
                }
                (cas, previous.len())
            }
            None => (0, 0),
        };
        match HostStore.set(&slot, &encoded, cas) {
            Ok(()) => {
                self.metrics.inc(Stat::StoreL2);
                if previous_len <= 1 {
                    self.metrics.inc(Stat::L2Entries);
                }
                let grown = i64::try_from(encoded.len()).unwrap_or(0)
                    - i64::try_from(previous_len).unwrap_or(0);
                self.metrics.add(Stat::L2Bytes, grown);
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

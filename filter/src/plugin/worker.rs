//! What one worker (VM) keeps across requests, one field per feature. Root and stream contexts
//! share it; each feature works on its own field (and the lower-level `env`, `tiers`,
//! `leases`, `replies`, `budgets` it needs), never on the whole worker.

use std::cell::{Ref, RefCell, RefMut};
use std::rc::Rc;

use super::breaker::Breakers;
use super::budgets::Budgets;
use super::coalescing::Coalescing;
use super::dedup::state::Dedup;
use super::env::Env;
use super::explain::RunningConfig;
use super::fleet::Fleet;
use super::leases::Leases;
use super::monitor::Monitor;
use super::refresh::Refreshes;
use super::replies::Replies;
use super::tiers::Tiers;
use crate::policy::cache::hot_keys::HotKeys;
use crate::policy::Registry;

pub struct Worker {
    /// Also in every [`WorkerRef`]: configuration and stats need no borrow of the worker.
    pub env: Rc<Env>,
    pub tiers: Tiers,
    pub leases: Leases,
    pub replies: Replies,
    pub budgets: Budgets,
    pub coalescing: Coalescing,
    pub refreshes: Refreshes,
    /// This worker's copy of each service's breaker (one per configured service at most).
    pub breakers: Breakers,
    pub dedup: Dedup,
    pub monitor: Monitor,
    /// The hottest cache keys this worker has seen (`/cache/hot`).
    pub hot_keys: HotKeys,
    /// The fleet tier (Redis through the bridge): its client and this worker's view of it.
    pub fleet: Fleet,
    /// When the purge generations were last re-read.
    pub generations_read_ms: u64,
    /// The configuration it was configured with (set by the root context), which
    /// `<prefix>/explain/config` answers redacted.
    pub running_config: RunningConfig,
}

impl Worker {
    pub fn new(registry: Rc<Registry>, owner: u64) -> Self {
        let limits = registry.limits().clone();
        let env = Rc::new(Env::new(registry, owner));
        Self {
            tiers: Tiers::new(&env),
            leases: Leases::new(owner, limits.lease_slots),
            replies: Replies::default(),
            budgets: Budgets::new(limits.max_paused_bytes),
            coalescing: Coalescing::new(limits.max_waiting_requests),
            refreshes: Refreshes::default(),
            breakers: Breakers::default(),
            dedup: Dedup::default(),
            monitor: Monitor::new(&env.registry),
            hot_keys: HotKeys::new(
                usize::try_from(env.registry.settings().monitoring.hot_keys).unwrap_or(0),
            ),
            fleet: Fleet::new(),
            generations_read_ms: 0,
            running_config: RunningConfig::default(),
            env,
        }
    }
}

/// What a context holds of its worker: the read-only `env` directly, the rest behind a
/// `RefCell` borrowed for as long as one step takes (never across a reply).
#[derive(Clone)]
pub struct WorkerRef {
    pub env: Rc<Env>,
    state: Rc<RefCell<Worker>>,
}

impl WorkerRef {
    pub fn new(worker: Worker) -> Self {
        Self {
            env: Rc::clone(&worker.env),
            state: Rc::new(RefCell::new(worker)),
        }
    }

    pub fn borrow(&self) -> Ref<'_, Worker> {
        self.state.borrow()
    }

    pub fn borrow_mut(&self) -> RefMut<'_, Worker> {
        self.state.borrow_mut()
    }
}

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::coalescing::{answer_deferred, resume_as_leader, settle_waiters, Outcome};
use super::host::{now_millis, now_secs};
use super::http::EdgeHttp;
use super::metrics::Stat;
use super::monitor::{publish, MONITOR_KEY_PREFIX};
use super::refresh::{complete_refresh, start_refreshes};
use super::worker::{L2Read, Worker};
use crate::policy::cache::lease::{Acquire, LEASE_KEY_PREFIX};
use crate::policy::dedup::record::DEDUP_KEY_PREFIX;
use crate::policy::rate_limit::slot::SLOT_KEY_PREFIX;
use crate::policy::Config;

/// How often the root context looks after background work: requests waiting for a leader on
/// another worker (they are answered within this time of its store), background refreshes.
const TICK: Duration = Duration::from_millis(20);

/// One per plugin per worker: owns the parsed configuration and the worker's cache state, and
/// creates the stream contexts.
pub struct EdgeRoot {
    context_id: u32,
    worker: Option<Rc<RefCell<Worker>>>,
}

impl EdgeRoot {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            worker: None,
        }
    }
}

impl Context for EdgeRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let Some(worker) = &self.worker {
            let mut worker = worker.borrow_mut();
            worker.begin_callback();
            if !super::delivery::complete(&mut worker, token, body_size, self.context_id) {
                complete_refresh(&mut worker, token, body_size);
            }
        }
    }
}

impl RootContext for EdgeRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("configuration rejected: config: cannot be read ({status:?})");
                return false;
            }
        };
        let registry = match Config::parse_registry(&bytes) {
            Ok(registry) => Rc::new(registry),
            Err(err) => {
                // Envoy refuses the plugin on `false`; one line names the field and the reason.
                error!("configuration rejected: {err}");
                super::config_status::rejected(&err.to_string());
                return false;
            }
        };
        info!(
            "configured {} service(s), default service {:?}",
            registry.service_count(),
            registry.default_service().name
        );
        let mut worker = Worker::new(Rc::clone(&registry));
        super::config_status::loaded(&worker.metrics);
        worker.root_context_id = self.context_id;
        let monitoring = &registry.settings().monitoring;
        worker
            .metrics
            .set(Stat::L2Slots, registry.limits().l2_slots);
        if registry.caches()
            || registry.deduplicates()
            || registry.limits_rates()
            || registry.breaks()
            || monitoring.enabled
        {
            worker.take_owner_id();
            if registry.caches() {
                worker.precreate_slots(LEASE_KEY_PREFIX, registry.limits().lease_slots);
            }
            if registry.caches() || registry.deduplicates() {
                worker.register_wake_queue();
            }
            if registry.deduplicates() {
                worker.precreate_slots(DEDUP_KEY_PREFIX, registry.limits().dedup_slots);
            }
            if registry.limits_rates() {
                worker.precreate_slots(SLOT_KEY_PREFIX, registry.limits().rate_limit_slots);
            }
            if monitoring.enabled {
                worker.precreate_slots(MONITOR_KEY_PREFIX, monitoring.worker_slots);
            }
            worker.ensure_generations();
            worker.last_generation_refresh_ms = now_millis();
            let _ = hostcalls::set_tick_period(TICK);
        }
        self.worker = Some(Rc::new(RefCell::new(worker)));
        true
    }

    fn on_tick(&mut self) {
        let Some(worker_rc) = &self.worker else {
            return;
        };
        let mut worker = worker_rc.borrow_mut();
        worker.begin_callback();
        let now_ms = now_millis();
        let refresh_every = worker.registry.settings().generation_refresh_ms;
        if now_ms.saturating_sub(worker.last_generation_refresh_ms) >= refresh_every {
            worker.refresh_generations();
            worker.last_generation_refresh_ms = now_ms;
        }
        // Waiters a woken root has not answered yet (the wake queue is unavailable).
        super::delivery::start(&mut worker, self.context_id);
        answer_deferred(&mut worker, self.context_id, now_secs());
        poll_remote_leaders(&mut worker, self.context_id, now_ms);
        start_refreshes(&mut worker, now_ms);
        super::dedup::finish_unfinished(&mut worker);
        super::dedup::poll_waiters(&mut worker, self.context_id, now_ms);
        super::breaker::flush(&mut worker, now_ms);
        let publish_every = worker.registry.settings().monitoring.publish_interval_ms;
        if now_ms.saturating_sub(worker.monitor.last_publish_ms) >= publish_every {
            publish(&mut worker, now_ms, false);
        }
        super::host::flush_cas_counts(&worker.metrics);
    }

    fn on_queue_ready(&mut self, _queue_id: u32) {
        let Some(worker_rc) = &self.worker else {
            return;
        };
        let mut worker = worker_rc.borrow_mut();
        worker.begin_callback();
        worker.woken();
        super::delivery::start(&mut worker, self.context_id);
        answer_deferred(&mut worker, self.context_id, now_secs());
        // An attempt of this worker finished: its waiting duplicates get the result now.
        super::dedup::poll_waiters(&mut worker, self.context_id, now_millis());
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeHttp::new(context_id, self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Requests waiting for a key another worker fetches: while its lease holds they wait; once it
/// is released (or expired) they are answered from L2, or one of them takes the lease and
/// fetches. Requests that waited twice their lease time go to the origin themselves (a slow
/// local leader, a lease that is never released).
fn poll_remote_leaders(worker: &mut Worker, root: u32, now_ms: u64) {
    let now = now_secs();
    // Twice the lease: a remote leader's expired lease is taken over first (see below).
    for key in worker
        .coalescer
        .overdue(now_ms, |w| w.lease_ms.saturating_mul(2))
    {
        settle_waiters(worker, &key, Outcome::Release, root, now);
    }
    for key in worker.coalescer.remote_keys() {
        if worker.lease_held(&key, now_ms) {
            continue;
        }
        if let L2Read::Found(entry) = worker.l2_get(&key) {
            settle_waiters(worker, &key, Outcome::Entry(&entry), root, now);
            continue;
        }
        let lease_ms = worker
            .coalescer
            .first_waiter(&key)
            .map_or(5000, |w| w.lease_ms);
        match worker.acquire_lease(&key, now_ms, lease_ms) {
            Acquire::Acquired => match worker.coalescer.promote(&key) {
                Some(next) => resume_as_leader(next.context_id, root),
                None => worker.release_lease(&key),
            },
            Acquire::HeldElsewhere { .. } => {}
            Acquire::Collision => settle_waiters(worker, &key, Outcome::Release, root, now),
        }
    }
}

//! The root context, one per plugin per worker: parses the configuration, creates the worker's
//! state and the stream contexts, and does the background work of every feature — from the
//! tick, from the wake queue, and for the calls it owns.

use std::rc::Rc;
use std::time::Duration;

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::breaker;
use super::coalescing::{answer_deferred, poll_remote_leaders};
use super::config_status;
use super::dedup::{
    delivery, fleet as dedup_fleet, records::finish_unfinished, waiters::poll_waiters,
};
use super::env::take_owner_id;
use super::explain::RunningConfig;
use super::host::{flush_cas_counts, now_millis, precreate_slots};
use super::metrics::Stat;
use super::monitor::{publish, MONITOR_KEY_PREFIX};
use super::refresh::{complete_refresh, start_refreshes};
use super::stream::EdgeHttp;
use super::worker::{Worker, WorkerRef};
use crate::policy::cache::lease::LEASE_KEY_PREFIX;
use crate::policy::dedup::record::DEDUP_KEY_PREFIX;
use crate::policy::rate_limit::slot::SLOT_KEY_PREFIX;
use crate::policy::{Config, Registry};

/// How often the root context looks after background work: requests waiting for a leader on
/// another worker (they are answered within this time of its store), background refreshes.
const TICK: Duration = Duration::from_millis(20);

pub struct EdgeRoot {
    context_id: u32,
    worker: Option<WorkerRef>,
}

impl EdgeRoot {
    pub fn new(context_id: u32) -> Self {
        Self {
            context_id,
            worker: None,
        }
    }
}

/// Whether the registry uses shared data (then the worker needs an identity and the tick).
fn uses_shared_data(registry: &Registry) -> bool {
    registry.caches()
        || registry.deduplicates()
        || registry.limits_rates()
        || registry.breaks()
        || registry.settings().monitoring.enabled
        || registry.uses_fleet()
}

/// Creates what the registry's features keep in shared data, once per worker.
fn prepare_shared_data(worker: &mut Worker) {
    let registry = Rc::clone(&worker.env.registry);
    let limits = registry.limits();
    if registry.caches() {
        precreate_slots(LEASE_KEY_PREFIX, limits.lease_slots);
    }
    if registry.caches() || registry.deduplicates() || registry.uses_fleet() {
        worker.replies.register_wake_queue(worker.env.owner);
    }
    if registry.deduplicates() {
        precreate_slots(DEDUP_KEY_PREFIX, limits.dedup_slots);
    }
    if registry.limits_rates() {
        precreate_slots(SLOT_KEY_PREFIX, limits.rate_limit_slots);
    }
    let monitoring = &registry.settings().monitoring;
    if monitoring.enabled {
        precreate_slots(MONITOR_KEY_PREFIX, monitoring.worker_slots);
    }
    worker.tiers.ensure_generations();
    worker.generations_read_ms = now_millis();
}

impl Context for EdgeRoot {
    /// The plugin is torn down (a configuration update replaced it): its L1 goes with it, so
    /// its share of the process-wide L1 gauges is taken back (gauges are added to by every
    /// worker; a new VM must not add to what a retired one left).
    fn on_done(&mut self) -> bool {
        if let Some(worker) = &self.worker {
            let w = worker.borrow();
            let held = w.tiers.l1.stats();
            let metrics = &w.env.metrics;
            metrics.flush_deferred();
            metrics.add(Stat::L1Entries, -i64::try_from(held.entries).unwrap_or(0));
            metrics.add(Stat::L1Bytes, -i64::try_from(held.bytes).unwrap_or(0));
        }
        true
    }

    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(worker) = &self.worker else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        w.replies.begin_callback();
        if w.fleet.root_answer(&w.env, token, body_size, now_millis()) {
            if let Some(counters) = w.fleet.counters.take() {
                // A purge made on another replica takes effect here now.
                w.tiers.merge_generations(&counters);
            }
            return;
        }
        let dedup = (&*w.env, &mut w.dedup, &mut w.replies);
        if !delivery::complete(dedup, token, body_size, self.context_id) {
            let tiers = (&*w.env, &mut w.tiers);
            complete_refresh(tiers, &mut w.leases, &mut w.refreshes, token, body_size);
        }
        // A delivery's result may have queued its fleet completion, a refresh its L3 store.
        w.fleet.store_entries(&w.env, &mut w.tiers);
        dedup_fleet::send_results(&w.env, &mut w.dedup, &mut w.fleet);
        w.fleet.flush(&w.env);
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
                config_status::rejected();
                return false;
            }
        };
        info!(
            "configured {} service(s), default service {:?}",
            registry.service_count(),
            registry.default_service().name
        );
        let shared = uses_shared_data(&registry);
        let owner = if shared { take_owner_id() } else { 0 };
        let mut worker = Worker::new(Rc::clone(&registry), owner);
        worker.running_config = RunningConfig::new(bytes);
        config_status::loaded(&worker.env.metrics);
        let l2_slots = registry.limits().l2_slots;
        worker.env.metrics.set(Stat::L2Slots, l2_slots);
        if shared {
            prepare_shared_data(&mut worker);
            let _ = hostcalls::set_tick_period(TICK);
        }
        self.worker = Some(WorkerRef::new(worker));
        true
    }

    fn on_tick(&mut self) {
        let Some(worker) = &self.worker else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        let root = self.context_id;
        w.replies.begin_callback();
        let now_ms = now_millis();
        let settings = w.env.registry.settings();
        let read_generations =
            now_ms.saturating_sub(w.generations_read_ms) >= settings.generation_refresh_ms;
        if read_generations {
            w.tiers.refresh_generations();
            w.generations_read_ms = now_ms;
        }
        if w.env.registry.uses_fleet() {
            let caches = w.env.registry.caches();
            w.fleet
                .sync_generations(&w.env, &mut w.tiers, caches && read_generations);
        } else {
            w.tiers.fleet_purges.clear();
        }
        // Waiters a woken root has not answered yet (the wake queue is unavailable).
        delivery::start((&*w.env, &mut w.dedup, &mut w.replies), root);
        let answering = (&*w.env, &w.tiers, &mut w.replies);
        answer_deferred(answering, &mut w.coalescing, root);
        let answering = (&*w.env, &w.tiers, &mut w.replies);
        poll_remote_leaders(answering, &mut w.leases, &mut w.coalescing, root, now_ms);
        start_refreshes((&*w.env, &w.tiers), &mut w.leases, &mut w.refreshes, now_ms);
        finish_unfinished((&*w.env, &mut w.dedup, &mut w.replies));
        poll_waiters((&*w.env, &mut w.dedup, &mut w.replies), root, now_ms);
        breaker::flush(&w.env, &mut w.breakers, now_ms);
        w.env.metrics.flush_deferred();
        let publish_every = settings.monitoring.publish_interval_ms;
        if now_ms.saturating_sub(w.monitor.last_publish_ms) >= publish_every {
            let l1 = &w.tiers.l1;
            publish(
                (&*w.env, &mut w.breakers),
                &mut w.monitor,
                l1,
                now_ms,
                false,
            );
        }
        if w.env.registry.uses_fleet() {
            w.fleet.probe(&w.env, now_ms);
            w.fleet.store_entries(&w.env, &mut w.tiers);
            dedup_fleet::send_results(&w.env, &mut w.dedup, &mut w.fleet);
            w.fleet.flush(&w.env);
        }
        flush_cas_counts(&w.env.metrics);
    }

    fn on_queue_ready(&mut self, _queue_id: u32) {
        let Some(worker) = &self.worker else {
            return;
        };
        let w = &mut *worker.borrow_mut();
        let root = self.context_id;
        w.replies.begin_callback();
        w.replies.woken();
        delivery::start((&*w.env, &mut w.dedup, &mut w.replies), root);
        answer_deferred((&*w.env, &w.tiers, &mut w.replies), &mut w.coalescing, root);
        // An attempt of this worker finished: its waiting duplicates get the result now.
        poll_waiters((&*w.env, &mut w.dedup, &mut w.replies), root, now_millis());
        dedup_fleet::send_results(&w.env, &mut w.dedup, &mut w.fleet);
        w.fleet.flush(&w.env);
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeHttp::new(context_id, self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

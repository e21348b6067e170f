//! Background refreshes (stale-while-revalidate, refresh-ahead), started from the root
//! context's tick and answered there, so they outlive the request that triggered them. One
//! worker refreshes a key at a time (the lease).

use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::host::{headers, now_secs};
use super::metrics::Stat;
use super::worker::Worker;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    refresh_outcome, tags, RefreshOutcome, RefreshRequest, StaleDefaults,
};
use crate::policy::cache::freshness::{RequestFacts, StorePolicy};
use crate::policy::cache::generations::Generations;
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::lease::Acquire;
use crate::policy::header_list::header;
use crate::policy::CacheSection;

/// How long a background refresh may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(15);

/// A refresh waiting for the next tick.
pub struct RefreshJob {
    pub key: CacheKey,
    pub service_index: usize,
    /// Headers of the refresh request (with the entry's validators).
    pub call_headers: Vec<(String, String)>,
    pub request_headers: Vec<(String, String)>,
    pub request: RequestFacts,
    pub entry: Rc<Entry>,
    pub lease_ms: u64,
    pub request_time: u64,
    /// The purge generations when the refresh started: a refresh that crosses a purge of its
    /// own URL, tenant or tags stores nothing.
    pub generations: Rc<Generations>,
}

pub fn store_policy(section: &CacheSection) -> StorePolicy {
    StorePolicy {
        default_ttl: section.default_ttl_s,
        heuristic: section.heuristic,
        max_ttl: section.max_ttl_s,
        store_set_cookie: section.store_set_cookie,
    }
}

pub fn stale_defaults(section: &CacheSection) -> StaleDefaults {
    StaleDefaults {
        stale_while_revalidate: section.stale_while_revalidate_s,
        stale_if_error: section.stale_if_error_s,
    }
}

/// Starts up to `refreshes_per_tick` queued refreshes.
pub fn start_refreshes(worker: &mut Worker, now_ms: u64) {
    let per_tick = worker.registry.limits().refreshes_per_tick;
    let cluster = worker.registry.settings().upstream_cluster.clone();
    for _ in 0..per_tick {
        let Some(mut job) = worker.refresh_queue.pop_front() else {
            return;
        };
        if let Acquire::HeldElsewhere { .. } =
            worker.acquire_lease(&job.key.primary, now_ms, job.lease_ms)
        {
            continue; // Another worker is refreshing (or fetching) this key.
        }
        job.request_time = now_secs();
        job.generations = Rc::clone(&worker.generations);
        let pairs: Vec<(&str, &str)> = job
            .call_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        match hostcalls::dispatch_http_call(&cluster, pairs, None, vec![], REFRESH_TIMEOUT) {
            Ok(token) => {
                worker.refresh_inflight.insert(token, job);
            }
            Err(_) => worker.release_lease(&job.key.primary),
        }
    }
}

/// The origin answered a background refresh.
pub fn complete_refresh(worker: &mut Worker, token: u32, body_size: usize) {
    let Some(job) = worker.refresh_inflight.remove(&token) else {
        return;
    };
    let registry = Rc::clone(&worker.registry);
    let section = registry
        .service_at(job.service_index)
        .and_then(|s| s.cache.as_ref());
    let response = headers(MapType::HttpCallResponseHeaders);
    let status = header(&response, ":status").and_then(|s| s.parse::<u16>().ok());
    if let (Some(section), Some(status)) = (section, status) {
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let refresh = RefreshRequest {
            old: &job.entry,
            request: &job.request,
            request_headers: &job.request_headers,
            policy: &store_policy(section),
            defaults: stale_defaults(section),
            request_time: job.request_time,
            now: now_secs(),
            max_body: usize::try_from(registry.limits().max_entry_bytes).unwrap_or(usize::MAX),
            generations: Vec::new(),
        };
        let stamp = worker.stamp_since(
            &job.generations,
            job.service_index,
            &job.key,
            &tags(&response, &section.tag_header),
        );
        let unpurged = stamp.is_some();
        let refresh = RefreshRequest {
            generations: stamp.unwrap_or_default(),
            ..refresh
        };
        match refresh_outcome(&refresh, status, &response, body) {
            RefreshOutcome::Refreshed(entry) | RefreshOutcome::Replaced(entry) if unpurged => {
                worker.store(entry, job.key.tenant.as_deref());
                worker.metrics.inc(Stat::Refresh);
            }
            _ => {}
        }
    }
    worker.release_lease(&job.key.primary);
}

//! Background refreshes (stale-while-revalidate, refresh-ahead), started from the root
//! context's tick and answered there, so they outlive the request that triggered them. One
//! worker refreshes a key at a time (the lease).

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use proxy_wasm::types::{BufferType, MapType};

use super::env::Env;
use super::host::{body, call, headers, now_millis, now_secs, status_of};
use super::leases::Leases;
use super::metrics::Stat;
use super::tiers::{FetchedResponse, Kept, Tiers};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::freshness::RequestFacts;
use crate::policy::cache::generations::Generations;
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::lease::Acquire;
use crate::policy::cache::supersede::outdates_stored;

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
    /// Unix milliseconds.
    pub request_time_ms: u64,
    /// The purge generations when the refresh started: a refresh that crosses a purge of its
    /// own URL, tenant or tags stores nothing.
    pub generations: Rc<Generations>,
}

/// Refreshes waiting for the next tick, and those in flight by call token.
#[derive(Default)]
pub struct Refreshes {
    queue: VecDeque<RefreshJob>,
    in_flight: HashMap<u32, RefreshJob>,
}

impl Refreshes {
    /// Queues a background refresh (deduplicated by key, at most `limit` queued).
    pub fn queue(&mut self, job: RefreshJob, limit: u64) {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let queued = |j: &RefreshJob| j.key.primary == job.key.primary;
        if self.queue.len() >= limit
            || self.queue.iter().any(queued)
            || self.in_flight.values().any(queued)
        {
            return;
        }
        self.queue.push_back(job);
    }
}

/// Starts up to `refreshes_per_tick` queued refreshes.
pub fn start_refreshes(
    (env, tiers): (&Env, &Tiers),
    leases: &mut Leases,
    refreshes: &mut Refreshes,
    now_ms: u64,
) {
    let settings = env.registry.settings();
    for _ in 0..env.registry.limits().refreshes_per_tick {
        let Some(mut job) = refreshes.queue.pop_front() else {
            return;
        };
        if let Acquire::HeldElsewhere { .. } =
            leases.acquire(&job.key.primary, now_ms, job.lease_ms)
        {
            continue; // Another worker is refreshing (or fetching) this key.
        }
        if refreshed_elsewhere(env, tiers, &job) {
            leases.release(&job.key.primary);
            continue;
        }
        job.request_time_ms = now_millis();
        job.generations = Rc::clone(&tiers.generations);
        let sent = call(
            &settings.upstream_cluster,
            &job.call_headers,
            None,
            &[],
            REFRESH_TIMEOUT,
        );
        match sent {
            Ok(token) => {
                refreshes.in_flight.insert(token, job);
            }
            Err(_) => leases.release(&job.key.primary),
        }
    }
}

/// Another worker stored a newer copy while this job waited in the queue (a burst of keys
/// going stale at once queues more than a tick starts, and the other worker's lease is gone
/// once its refresh is done): a second fetch would only repeat it. The next hit here finds
/// the fresh copy in L2.
fn refreshed_elsewhere(env: &Env, tiers: &Tiers, job: &RefreshJob) -> bool {
    job.entry.key == job.key.primary
        && tiers
            .l2_stamp(env, &job.key.primary)
            .is_some_and(|(_, stored_ms)| stored_ms > job.entry.response_ms())
}

/// The origin answered a background refresh (`false` when `token` is not one).
pub fn complete_refresh(
    (env, tiers): (&Env, &mut Tiers),
    leases: &mut Leases,
    refreshes: &mut Refreshes,
    token: u32,
    body_size: usize,
) -> bool {
    let Some(job) = refreshes.in_flight.remove(&token) else {
        return false;
    };
    let registry = Rc::clone(&env.registry);
    let section = registry.cache_at(job.service_index);
    let response = headers(MapType::HttpCallResponseHeaders);
    if let (Some(section), Some(status)) = (section, status_of(&response)) {
        let fetched = FetchedResponse {
            service_index: job.service_index,
            key: &job.key,
            started: &job.generations,
            request: &job.request,
            request_headers: &job.request_headers,
            request_time_ms: job.request_time_ms,
            response_time_ms: now_millis(),
            status,
            response_headers: &response,
            body: body(BufferType::HttpCallResponseBody, body_size),
            old: Some(&job.entry),
        };
        let policy = section.store_policy();
        match tiers.store_fetched(env, section, fetched) {
            Kept::Stored(_) => env.metrics.inc(Stat::Refresh),
            // A newer answer that is not stored: the entry being refreshed is outdated.
            Kept::NotStorable
                if outdates_stored(&job.request, status, &response, &policy, now_secs()) =>
            {
                tiers.outdate(env, &job.key);
            }
            _ => {}
        }
    }
    leases.release(&job.key.primary);
    true
}

//! A stream's state: `EdgeHttp`'s fields, and the phases each part of a request moves through
//! (cache, management, dedup). Each phase holds what its next step needs; a step that is not
//! legal in the current phase finds nothing to take and does nothing.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use proxy_wasm::types::Action;

use crate::plugin::breaker::BreakerPass;
use crate::plugin::dedup::state::{Completion, FleetClaim, Queued};
use crate::plugin::host::now_millis;
use crate::plugin::reply::{send, send_json, Reply};
use crate::plugin::tiers::FetchedResponse;
use crate::plugin::worker::{Worker, WorkerRef};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::Forward;
use crate::policy::cache::freshness::RequestFacts;
use crate::policy::cache::generations::Generations;
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::range::{BodyCut, RangeRequest};
use crate::policy::cache::warm::WarmTarget;
use crate::policy::dedup::record::State;
use crate::policy::monitor::outcome::Outcome;
use crate::policy::FailureMode;

pub struct EdgeHttp {
    pub(super) context_id: u32,
    pub(super) worker: Option<WorkerRef>,
    /// The filter answered (a hit, a refusal, a management request). Its own reply passes back
    /// through the response callbacks, which must leave it alone.
    pub(super) answered: bool,
    /// Where the request stands with the cache.
    pub(super) cache: CacheFlow,
    /// The coalescing group this stream leads or waits in (alongside `cache`: a leader may be
    /// forwarded, revalidating or capturing; a waiter is forwarded once released).
    pub(super) group: Option<String>,
    /// Cache URLs an unsafe request invalidates when it succeeds.
    pub(super) invalidation: Option<Invalidation>,
    pub(super) management: Management,
    /// Webhook deduplication of this request.
    pub(super) dedup: Option<DedupPhase>,
    /// `RateLimit-Policy` and `RateLimit` values for the response.
    pub(super) rate_headers: Option<(String, String)>,
    /// The breaker this request passed (its outcome is owed).
    pub(super) breaker: Option<BreakerPass>,
    /// Monitoring of this request (not of management requests, nor with monitoring off).
    pub(super) observed: Option<Observed>,
    /// Bytes of the worker's paused-request budget this stream holds until it ends.
    pub(super) paused_bytes: usize,
    /// The origin's whole response being cut to the client's range (see `ranged.rs`).
    pub(super) cut: Option<BodyCut>,
    /// A miss paused while the fleet's L3 tier is asked (see `fleet_cache.rs`).
    pub(super) l3: Option<Box<L3Wait>>,
}

impl EdgeHttp {
    pub fn new(context_id: u32, worker: Option<WorkerRef>) -> Self {
        Self {
            context_id,
            worker,
            answered: false,
            cache: CacheFlow::Idle,
            group: None,
            invalidation: None,
            management: Management::Idle,
            dedup: None,
            rate_headers: None,
            breaker: None,
            observed: None,
            paused_bytes: 0,
            cut: None,
            l3: None,
        }
    }

    /// Answers this stream itself.
    pub(super) fn reply(
        &mut self,
        status: u16,
        headers: &[(String, String)],
        body: Option<&[u8]>,
    ) -> Action {
        send(status, headers, body);
        self.answered = true;
        Action::Pause
    }

    pub(super) fn reply_json(&mut self, reply: Reply) -> Action {
        send_json(&reply);
        self.answered = true;
        Action::Pause
    }

    /// Takes `bytes` of the worker's paused-request budget for this stream (given back when
    /// it ends); `false` when the budget is spent.
    pub(super) fn hold_paused(&mut self, worker: &mut Worker, bytes: usize) -> bool {
        let held = worker.budgets.reserve_paused(&worker.env.metrics, bytes);
        if held {
            self.paused_bytes += bytes;
        }
        held
    }
}

/// Where a stream stands with the cache. Each phase holds what its next step needs (boxed:
/// the stream moves its phase on every response, and most streams never leave `Idle`).
pub(super) enum CacheFlow {
    /// Nothing to do for the cache (not cached, answered here, or done).
    Idle,
    /// On its way to the origin (or waiting for a leader): its response may be stored.
    Forwarded(Box<Pending>),
    /// Paused while the filter asks the origin whether a stale entry still holds.
    Revalidating(Box<Revalidation>),
    /// The response is storable: its body is copied as it streams to the client.
    Capturing(Box<Capture>),
}

impl CacheFlow {
    /// The current phase; the stream is `Idle` until a new one is set.
    pub fn take(&mut self) -> Self {
        std::mem::replace(self, Self::Idle)
    }
}

/// A cache miss on its way to the origin: what storing its response needs.
pub(super) struct Pending {
    pub service_index: usize,
    pub key: CacheKey,
    pub request_headers: Vec<(String, String)>,
    pub request: RequestFacts,
    /// Unix milliseconds.
    pub request_time_ms: u64,
    /// The purge generations when the request arrived: a response fetched across a purge of
    /// its service, URL, tenant or tags is not stored.
    pub generations: Rc<Generations>,
    /// Why the cache forwarded the request (`Cache-Status: fwd=`).
    pub fwd: Forward,
    pub head: bool,
    /// The client's range when the filter removed it from the request (the origin sends the
    /// whole representation, cut for the client as it streams).
    pub range: RangeRequest,
}

impl Pending {
    /// The origin's answer to this request, as the tiers store it.
    pub(super) fn fetched<'a>(
        &'a self,
        (status, response_headers, body): (u16, &'a [(String, String)], Vec<u8>),
        response_time_ms: u64,
        old: Option<&'a Entry>,
    ) -> FetchedResponse<'a> {
        FetchedResponse {
            service_index: self.service_index,
            key: &self.key,
            started: &self.generations,
            request: &self.request,
            request_headers: &self.request_headers,
            request_time_ms: self.request_time_ms,
            response_time_ms,
            status,
            response_headers,
            body,
            old,
        }
    }
}

/// A storable response whose body is being copied as it streams to the client.
pub(super) struct Capture {
    pub(super) pending: Pending,
    pub(super) status: u16,
    pub(super) response_headers: Vec<(String, String)>,
    /// Unix milliseconds.
    pub(super) response_time_ms: u64,
    pub(super) body: Vec<u8>,
    pub(super) limit: usize,
}

/// Cache URLs an unsafe request invalidates when it succeeds, and the request's origin (for
/// `Location` / `Content-Location`).
pub(super) struct Invalidation {
    pub urls: Vec<String>,
    pub scheme: String,
    pub authority: String,
    /// A POST whose response may be stored as its URL's GET response (see
    /// `policy::cache::post_reuse`): what storing it needs.
    pub post: Option<Box<PostReuse>>,
}

/// A POST that may leave its URL's GET entry: the pending GET store and the request's path.
pub(super) struct PostReuse {
    pub pending: Pending,
    pub path: String,
}

/// A stale entry being revalidated with a request the filter sent itself.
pub(super) struct Revalidation {
    pub(super) pending: Pending,
    pub(super) entry: Entry,
}

/// A miss asking the fleet's L3 tier, or waiting for another replica's fetch of it.
pub(super) struct L3Wait {
    pub(super) pending: Box<Pending>,
    pub(super) step: L3Step,
    /// Past this it goes to the origin itself (the lease it waits on is over by then).
    pub(super) until_ms: u64,
}

/// The call an L3 wait has on its way.
#[derive(Clone, Copy)]
pub(super) enum L3Step {
    /// The lookup script (by id; whole after a `NOSCRIPT`).
    Lookup { by_sha: bool },
    /// A pause in Redis before the next lookup.
    Pause,
}

/// Where a management request stands.
pub(super) enum Management {
    /// Not a management request, or answered.
    Idle,
    /// Its body is being collected (Envoy's buffer filter holds it until complete).
    CollectingBody(BodyFor),
    /// A cache-warming run in progress.
    Warming(Box<WarmRun>),
}

/// Which management endpoint a body is for.
pub(super) enum BodyFor {
    Purge,
    Warm { scheme: String, authority: String },
}

/// Fetches of one warm request: queued, in flight (by call token), and their outcomes.
pub(super) struct WarmRun {
    /// The purge generations when the run started: a fetch that crosses a purge of its own
    /// URL, tenant or tags is not stored.
    pub(super) generations: Rc<Generations>,
    pub(super) queued: VecDeque<WarmTarget>,
    pub(super) in_flight: HashMap<u32, WarmTarget>,
    pub(super) stored: u32,
    pub(super) skipped: u32,
    pub(super) failed: u32,
}

impl WarmRun {
    pub fn new(generations: Rc<Generations>, targets: Vec<WarmTarget>) -> Self {
        Self {
            generations,
            queued: targets.into(),
            in_flight: HashMap::new(),
            stored: 0,
            skipped: 0,
            failed: 0,
        }
    }
}

/// Where a deduplicated request stands.
pub(super) enum DedupPhase {
    /// Its body is being collected (the identity may need it; its digest always does).
    Collecting {
        service_index: usize,
        method: String,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// It is the first attempt and the root context sent it to the origin (see
    /// `dedup/delivery.rs`): the answer arrives as a local reply, whatever this stream does.
    Dispatched,
    /// It is the first attempt (`attempt` in the record): its result completes the record.
    Owner {
        key: String,
        id: String,
        service_index: usize,
        attempt: u64,
    },
    /// Claimed here; its fleet-wide claim (Redis) is on its way.
    FleetClaiming(Box<FleetClaiming>),
    /// A duplicate waiting for the first attempt (the tick answers or releases it).
    Waiting { id: String, service_index: usize },
    /// Its 2xx result is being copied into the record.
    Recording(Recording),
}

/// A first attempt claimed here whose fleet-wide claim (Redis) is on its way: what it goes on
/// with once the answer is in.
pub(super) struct FleetClaiming {
    pub(super) queued: Queued,
    pub(super) claim: FleetClaim,
    pub(super) mode: FailureMode,
    pub(super) retry_after_s: u64,
}

/// A first attempt's replayable result, copied as it streams to the sender.
pub(super) struct Recording {
    pub(super) key: String,
    pub(super) id: String,
    pub(super) attempt: u64,
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) omitted: bool,
    pub(super) limit: usize,
    pub(super) retention_ms: u64,
}

impl Recording {
    /// The record's result; the body only when it was copied whole.
    pub(super) fn completion(self, keep_body: bool) -> Completion {
        let expires_at_ms = now_millis().saturating_add(self.retention_ms);
        let body = (keep_body && !self.omitted).then_some(self.body);
        Completion {
            key: self.key,
            id: self.id,
            attempt: self.attempt,
            result: State::completed(self.status, self.headers, body, expires_at_ms),
        }
    }
}

/// What monitoring records of a request when its stream ends.
pub(super) struct Observed {
    pub(super) service_index: usize,
    pub(super) started_us: u64,
    pub(super) outcome: Outcome,
    /// When the request (or the filter's revalidation) went to the origin.
    pub(super) forwarded_us: Option<u64>,
    pub(super) origin_us: Option<u64>,
    pub(super) tenant: Option<String>,
    /// The edge answered the request itself within its request-headers callback (a hit, a
    /// refusal): no edge-latency sample (see `Metrics::record_request`).
    pub(super) answered_at_once: bool,
}

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::admin;
use super::breaker;
use super::coalescing::{defer_waiters, resume_as_leader, settle_waiters, Outcome, Settled};
use super::dashboard;
use super::dedup::{claim, conflict_headers, finish, next_attempt, replay, slot_for, DedupWaiter};
use super::delivery::{queue as queue_delivery, Delivery, Queued};
use super::host::{headers, headers_checked, now_millis, now_nanos, now_secs};
use super::metrics::Stat;
use super::monitor;
use super::rate_limit::{check, Verdict};
use super::refresh::{stale_defaults, store_policy, RefreshJob};
use super::reply::{send, send_entry};
use super::worker::{L2Read, WaitInfo, Worker, MAX_CAPTURE_BYTES};
use crate::policy::breaker::machine::Admission;
use crate::policy::cache::coalesce::Join;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    append_cache_status, build_entry, evaluate_hit, hit_headers, is_origin_error,
    may_serve_if_error, refresh_outcome, refresh_request_headers, relayed_headers, request_facts,
    response_facts, tags, timing, ttl_left, CacheStatus, Forward, HitDecision, MissKind,
    RefreshOutcome, RefreshRequest, Stored,
};
use crate::policy::cache::freshness::{
    conditional_matches, current_age, request_directs, storability, NotStorable, RequestDirective,
    RequestFacts, Storable,
};
use crate::policy::cache::generations::{Dimension, Generations};
use crate::policy::cache::http_date::parse_http_date;
use crate::policy::cache::key::{cache_key, unkeyed_headers_present, CacheKey, KeyInput};
use crate::policy::cache::lease::Acquire;
use crate::policy::cache::purge_request::MAX_PURGE_BODY;
use crate::policy::cache::warm::{plan_warm, WarmTarget, WARM_CONCURRENCY};
use crate::policy::dedup::identity::{ambiguous_id, identify};
use crate::policy::dedup::record::{Claim, State as DedupState};
use crate::policy::dedup::signature::{decode_secret, verify as verify_signature};
use crate::policy::header_list::{header, header_joined};
use crate::policy::monitor::outcome::Outcome as MonitorOutcome;
use crate::policy::rate_limit::degrade::may_serve_while_limited;
use crate::policy::{
    path_without_query, CacheSection, InFlightMode, Registry, RequestAttributes, Service,
};

/// Names the matched service on the upstream request (a client-sent value is replaced).
pub const SERVICE_HEADER: &str = "x-edge-service";
/// How long a revalidation request to the origin may take.
const REVALIDATION_TIMEOUT: Duration = Duration::from_secs(15);

/// A cache miss on its way to the origin: what storing its response needs.
struct Pending {
    service_index: usize,
    key: CacheKey,
    request_headers: Vec<(String, String)>,
    request: RequestFacts,
    request_time: u64,
    /// The purge generations when the request arrived: a response fetched across a purge of
    /// its service, URL, tenant or tags is not stored.
    generations: Rc<Generations>,
    /// Why the cache forwarded the request (`Cache-Status: fwd=`).
    fwd: Forward,
    head: bool,
}

/// A storable response whose body is being copied as it streams to the client.
struct Capture {
    pending: Pending,
    status: u16,
    response_headers: Vec<(String, String)>,
    storable: Storable,
    response_time: u64,
    body: Vec<u8>,
    limit: usize,
}

/// A stale entry being revalidated with a request the filter sent itself.
struct Revalidation {
    pending: Pending,
    entry: Entry,
}

/// The request attributes the filter reads once per request.
struct Request<'a> {
    headers: &'a [(String, String)],
    /// Header names whose value was not UTF-8 (lossy in `headers`).
    non_utf8: &'a [String],
    method: &'a str,
    path: &'a str,
    authority: &'a str,
    scheme: &'a str,
    service: &'a str,
}

/// What monitoring records of a request when its stream ends.
struct Observed {
    service_index: usize,
    started_us: u64,
    outcome: MonitorOutcome,
    /// When the request (or the filter's revalidation) went to the origin.
    forwarded_us: Option<u64>,
    origin_us: Option<u64>,
    tenant: Option<String>,
}

impl Request<'_> {
    /// The request's cache key under `service`'s cache section.
    fn cache_key(
        &self,
        service: &Service,
        section: &CacheSection,
    ) -> Result<CacheKey, &'static str> {
        cache_key(
            section,
            &KeyInput {
                service: &service.name,
                scheme: self.scheme,
                authority: self.authority,
                path: self.path,
                headers: self.headers,
                non_utf8: self.non_utf8,
            },
        )
    }
}

/// One per HTTP stream.
pub struct EdgeHttp {
    context_id: u32,
    worker: Option<Rc<RefCell<Worker>>>,
    /// The filter answered (a hit or a management request). Its own reply passes back through
    /// the response callbacks, which must leave it alone.
    answered: bool,
    pending: Option<Pending>,
    capture: Option<Capture>,
    revalidation: Option<Revalidation>,
    /// The coalescing group this stream leads or waits in.
    group: Option<String>,
    /// Cache URLs an unsafe request invalidates when it succeeds.
    invalidate: Option<Vec<String>>,
    /// Request scheme and authority, for `Location` invalidation.
    origin_of_request: Option<(String, String)>,
    /// A management request whose body is being collected.
    admin_body: Option<AdminBody>,
    /// A cache-warming run in progress.
    warm: Option<WarmRun>,
    /// Webhook deduplication of this request.
    dedup: Option<DedupPhase>,
    /// `RateLimit-Policy` and `RateLimit` values for the response.
    rate_headers: Option<(String, String)>,
    /// The breaker this request passed: (service index, is a probe, start ms).
    breaker: Option<(usize, bool, u64)>,
    /// Monitoring of this request (not of management requests, nor with monitoring off).
    observed: Option<Observed>,
    /// Bytes of the worker's paused-request budget this stream holds until it ends.
    paused_bytes: usize,
}

/// Where a deduplicated request stands.
enum DedupPhase {
    /// Its body is being collected (the identity may need it; its digest always does).
    Collecting {
        service_index: usize,
        method: String,
        path: String,
        headers: Vec<(String, String)>,
    },
    /// It is the first attempt and the root context sent it to the origin (see
    /// `delivery.rs`): the answer arrives as a local reply, whatever this stream does.
    Dispatched,
    /// It is the first attempt (`attempt` in the record): its result completes the record.
    Owner {
        key: String,
        id: String,
        service_index: usize,
        attempt: u64,
    },
    /// A duplicate waiting for the first attempt (the tick answers or releases it).
    Waiting { id: String, service_index: usize },
    /// Its 2xx result is being copied into the record.
    Recording {
        key: String,
        id: String,
        attempt: u64,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        omitted: bool,
        limit: usize,
        retention_ms: u64,
    },
}

/// Management endpoints that only read (token or allowed address needed).
enum ReadEndpoint {
    Metrics,
    CacheStats,
    Dashboard,
}

impl ReadEndpoint {
    fn of(endpoint: &str) -> Option<Self> {
        match endpoint {
            "/metrics" => Some(Self::Metrics),
            "/cache/stats" => Some(Self::CacheStats),
            "/dashboard" => Some(Self::Dashboard),
            _ => None,
        }
    }
}

/// Which management endpoint a body is for.
enum AdminBody {
    Purge,
    Warm { scheme: String, authority: String },
}

/// Fetches of one warm request: queued, in flight (by call token), and their outcomes.
#[derive(Default)]
struct WarmRun {
    /// The purge generations when the run started: a fetch that crosses a purge of its own
    /// URL, tenant or tags is not stored.
    generations: Rc<Generations>,
    queued: std::collections::VecDeque<WarmTarget>,
    in_flight: std::collections::HashMap<u32, WarmTarget>,
    stored: u32,
    skipped: u32,
    failed: u32,
}

impl EdgeHttp {
    pub fn new(context_id: u32, worker: Option<Rc<RefCell<Worker>>>) -> Self {
        Self {
            context_id,
            worker,
            answered: false,
            pending: None,
            capture: None,
            revalidation: None,
            group: None,
            invalidate: None,
            origin_of_request: None,
            admin_body: None,
            warm: None,
            dedup: None,
            rate_headers: None,
            breaker: None,
            observed: None,
            paused_bytes: 0,
        }
    }

    /// Takes `bytes` of the worker's paused-request budget for this stream (given back when
    /// it ends); `false` when the budget is spent.
    fn hold_paused(&mut self, worker: &mut Worker, bytes: usize) -> bool {
        let held = worker.reserve_paused(bytes);
        if held {
            self.paused_bytes += bytes;
        }
        held
    }

    /// Notes how the request is being answered.
    fn observe(&mut self, outcome: MonitorOutcome) {
        if let Some(observed) = &mut self.observed {
            observed.outcome = outcome;
        }
    }

    /// Notes that the request goes to the origin now (origin latency counts from here).
    fn observe_forwarded(&mut self) {
        if let Some(observed) = &mut self.observed {
            observed.forwarded_us = Some(now_nanos() / 1000);
        }
    }

    /// Notes that the origin answered (its latency is measured).
    fn observe_origin_answer(&mut self) {
        if let Some(observed) = &mut self.observed {
            let since = observed.forwarded_us.unwrap_or(observed.started_us);
            observed.origin_us = Some((now_nanos() / 1000).saturating_sub(since));
        }
    }

    /// Notes the request's tenant (the first one found: the rate limiter's, else the cache's).
    fn observe_tenant(&mut self, tenant: Option<&str>) {
        if let (Some(observed), Some(tenant)) = (&mut self.observed, tenant) {
            if observed.tenant.is_none() && tenant != "-" {
                observed.tenant = Some(tenant.to_string());
            }
        }
    }

    fn reply(&mut self, status: u16, headers: &[(String, String)], body: Option<&[u8]>) -> Action {
        send(status, headers, body);
        self.answered = true;
        Action::Pause
    }

    fn reply_json(&mut self, (status, body): admin::Reply) -> Action {
        let headers = [("content-type".to_string(), "application/json".to_string())];
        self.reply(status, &headers, Some(body.as_bytes()))
    }

    fn serve(
        &mut self,
        entry: &Entry,
        age: u64,
        not_modified: bool,
        head: bool,
        status: &str,
    ) -> Action {
        if not_modified {
            if let Some(worker) = &self.worker {
                worker.borrow().metrics.inc(Stat::NotModified);
            }
        }
        send_entry(entry, age, not_modified, head, status);
        self.answered = true;
        Action::Pause
    }

    fn on_management(
        &mut self,
        worker: &Rc<RefCell<Worker>>,
        registry: &Registry,
        request: &Request<'_>,
        end_of_stream: bool,
    ) -> Option<Action> {
        let prefix = &registry.settings().admin.path_prefix;
        let endpoint = path_without_query(request.path).strip_prefix(prefix.as_str());
        if endpoint == Some("/health") && matches!(request.method, "GET" | "HEAD") {
            let reply = super::health::health(&mut worker.borrow_mut(), now_millis());
            return Some(self.reply_json(reply));
        }
        if let Some(read) = endpoint.and_then(ReadEndpoint::of) {
            if let Err((status, body)) = admin::authorize(registry, request.headers) {
                if matches!(read, ReadEndpoint::Dashboard) {
                    let login = dashboard::LOGIN.as_bytes();
                    return Some(self.reply(status, &dashboard::headers(), Some(login)));
                }
                return Some(self.reply_json((status, body)));
            }
            if !matches!(request.method, "GET" | "HEAD") {
                return Some(self.reply_json(admin::error(405, "use GET")));
            }
            let now_ms = now_millis();
            let reply = match read {
                ReadEndpoint::Metrics => monitor::metrics(&mut worker.borrow_mut(), now_ms),
                ReadEndpoint::CacheStats => monitor::cache_stats(&mut worker.borrow_mut(), now_ms),
                ReadEndpoint::Dashboard => {
                    let headers = dashboard::headers();
                    return Some(self.reply(200, &headers, Some(dashboard::PAGE.as_bytes())));
                }
            };
            return Some(self.reply_json(reply));
        }
        let kind = match endpoint {
            Some("/cache/purge") => AdminBody::Purge,
            Some("/cache/warm") => AdminBody::Warm {
                scheme: request.scheme.to_string(),
                authority: request.authority.to_string(),
            },
            _ if request.method == "PURGE" => AdminBody::Purge,
            _ => return None,
        };
        if let Err(refusal) = admin::authorize(registry, request.headers) {
            return Some(self.reply_json(refusal));
        }
        if request.method == "PURGE" {
            let reply = admin::purge_url(
                &mut worker.borrow_mut(),
                request.scheme,
                request.authority,
                request.path,
            );
            return Some(self.reply_json(reply));
        }
        if request.method != "POST" {
            return Some(self.reply_json((405, r#"{"error":"use POST"}"#.to_string())));
        }
        if end_of_stream {
            return Some(
                self.reply_json((400, r#"{"error":"a JSON body is required"}"#.to_string())),
            );
        }
        // Envoy delivers no body to a filter that paused the headers, so the headers go on and
        // the buffer filter after this one holds them until the body is complete; the reply is
        // sent then, and nothing reaches the origin. The token goes no further in any case.
        for name in ["x-edge-admin-token", "authorization"] {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
        }
        self.admin_body = Some(kind);
        Some(Action::Continue)
    }

    fn lookup(
        &mut self,
        worker_rc: &Rc<RefCell<Worker>>,
        service: &Service,
        section: &CacheSection,
        key: CacheKey,
        request: &Request<'_>,
    ) -> Action {
        let facts = request_facts(request.method, request.headers);
        let head = request.method == "HEAD";
        let now = now_secs();
        let mut worker = worker_rc.borrow_mut();
        if request_directs(&facts.cache_control, facts.pragma_no_cache, 0, 0)
            == RequestDirective::Bypass
        {
            worker.metrics.inc(Stat::Bypass);
            return Action::Continue;
        }
        let name = worker.registry.settings().cache_status_name.clone();
        let generations = Rc::clone(&worker.generations);
        let pending = |fwd| Pending {
            service_index: service.index,
            key: key.clone(),
            request_headers: request.headers.to_vec(),
            request: facts.clone(),
            request_time: now,
            generations: Rc::clone(&generations),
            fwd,
            head,
        };
        let mut fwd = Forward::UriMiss;
        let mut stale = None;
        // L1 first (no shared data on this path), then L2 — also when L1 held an entry that is
        // purged or of another variant: another worker may have stored a current one.
        for tier in [Stat::L1Hit, Stat::L2Hit] {
            let (miss, entry) = if tier == Stat::L1Hit {
                let before = worker.l1.stats();
                let from_l1 = worker.l1.get(&key.primary, now);
                worker.track_l1(before);
                (Stat::L1Miss, from_l1)
            } else {
                let from_l2 = match worker.l2_get(&key.primary) {
                    L2Read::Found(entry) => Some(Rc::new(entry)),
                    L2Read::Corrupt => {
                        worker.metrics.inc(Stat::Corrupt);
                        None
                    }
                    L2Read::Absent => None,
                };
                (Stat::L2Miss, from_l2)
            };
            let Some(entry) = entry else {
                worker.metrics.inc(miss);
                continue;
            };
            match evaluate_hit(&entry, request.headers, &facts, &worker.generations, now) {
                decision @ (HitDecision::Serve { age, not_modified }
                | HitDecision::ServeStale { age, not_modified }) => {
                    let stale = matches!(decision, HitDecision::ServeStale { .. });
                    worker.metrics.inc(tier);
                    if tier == Stat::L2Hit {
                        worker.insert_l1((*entry).clone(), key.tenant.as_deref());
                    }
                    // A stale answer (stale-while-revalidate) always refreshes in the background;
                    // a fresh one when it is hot and about to expire (refresh-ahead).
                    let refresh = if stale {
                        worker.metrics.inc(Stat::StaleServed);
                        true
                    } else {
                        let hits = worker.l1.record_hit(&key.primary);
                        section.refresh_ahead.as_ref().is_some_and(|ahead| {
                            let left = entry.freshness_lifetime.saturating_sub(age);
                            let threshold = entry
                                .freshness_lifetime
                                .saturating_mul(ahead.before_expiry_percent)
                                / 100;
                            hits >= ahead.min_hits && left <= threshold
                        })
                    };
                    if refresh {
                        let job = self.refresh_job(
                            service,
                            section,
                            &key,
                            request,
                            &facts,
                            Rc::clone(&entry),
                        );
                        worker.queue_refresh(job);
                    }
                    drop(worker);
                    self.observe(match (stale, tier) {
                        (true, _) => MonitorOutcome::Stale,
                        (false, Stat::L1Hit) => MonitorOutcome::HitL1,
                        _ => MonitorOutcome::HitL2,
                    });
                    let status = CacheStatus {
                        hit: true,
                        ttl: Some(ttl_left(&entry, age)),
                        key: section.debug.then_some(key.primary.as_str()),
                        detail: stale.then_some("stale-while-revalidate"),
                        ..CacheStatus::default()
                    }
                    .render(&name);
                    return self.serve(&entry, age, not_modified, head, &status);
                }
                HitDecision::Revalidate => {
                    // Another worker may already have stored a fresh copy in L2.
                    if stale.is_none() {
                        stale = Some(entry);
                    }
                    fwd = Forward::Stale;
                }
                HitDecision::Miss(kind) => {
                    worker.metrics.inc(miss);
                    if tier == Stat::L1Hit {
                        worker.remove_l1(&key.primary);
                    }
                    fwd = match kind {
                        MissKind::VaryMismatch => Forward::VaryMiss,
                        MissKind::Purged => Forward::Miss,
                    };
                }
            }
        }
        // Going to the origin: one request per key, across workers, when the service coalesces.
        // A waiter keeps two copies of its request headers (to answer it, to go on as leader).
        let held = 2 * header_bytes(request.headers);
        if section.coalesce && !head && self.hold_paused(&mut worker, held) {
            let wait = WaitInfo {
                head,
                request_headers: request.headers.to_vec(),
                request: facts.clone(),
                debug: section.debug,
                lease_ms: section.lease_ms,
            };
            let now_ms = now_millis();
            match worker
                .coalescer
                .join(&key.primary, self.context_id, now_ms, wait)
            {
                Join::Wait => {
                    self.group = Some(key.primary.clone());
                    self.pending = Some(pending(fwd));
                    drop(worker);
                    self.observe(MonitorOutcome::Collapsed);
                    return Action::Pause;
                }
                Join::Lead => {
                    self.group = Some(key.primary.clone());
                    if let Acquire::HeldElsewhere { .. } =
                        worker.acquire_lease(&key.primary, now_ms, section.lease_ms)
                    {
                        let wait = WaitInfo {
                            head,
                            request_headers: request.headers.to_vec(),
                            request: facts.clone(),
                            debug: section.debug,
                            lease_ms: section.lease_ms,
                        };
                        if worker
                            .coalescer
                            .wait_remote(&key.primary, self.context_id, now_ms, wait)
                            == Join::Wait
                        {
                            self.pending = Some(pending(fwd));
                            drop(worker);
                            self.observe(MonitorOutcome::Collapsed);
                            return Action::Pause;
                        }
                        self.group = None;
                    }
                }
                Join::Full => {}
            }
        }
        drop(worker);
        self.observe(MonitorOutcome::Miss);
        match stale {
            Some(entry) => {
                self.revalidate((*entry).clone(), pending(Forward::Stale), section, request)
            }
            None => {
                worker_rc.borrow().metrics.inc(Stat::Miss);
                self.pending = Some(pending(fwd));
                Action::Continue
            }
        }
    }

    /// Caching for a request to `service`: lookup for GET and HEAD, invalidation for unsafe
    /// methods.
    fn route(
        &mut self,
        worker_rc: &Rc<RefCell<Worker>>,
        service: &Service,
        request: &Request<'_>,
    ) -> Action {
        let Some(section) = &service.cache else {
            return Action::Continue;
        };
        match (request.method, request.cache_key(service, section)) {
            ("GET" | "HEAD", Ok(key)) => {
                self.observe_tenant(key.tenant.as_deref());
                // What the origin answers a cacheable request may only depend on what is keyed.
                for name in unkeyed_headers_present(section, request.headers) {
                    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
                }
                self.lookup(worker_rc, service, section, key, request)
            }
            ("POST" | "PUT" | "PATCH" | "DELETE", Ok(key)) => {
                self.invalidate = Some(vec![key.url]);
                self.origin_of_request =
                    Some((request.scheme.to_string(), request.authority.to_string()));
                Action::Continue
            }
            (_, Err(_)) => {
                worker_rc.borrow().metrics.inc(Stat::Bypass);
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    /// The whole request is here: first attempt, duplicate, or another body under a used id.
    /// `trailers`: the request's trailers when they ended it (relayed with the delivery).
    fn decide_dedup(&mut self, body: &[u8], trailers: Vec<(String, String)>) -> Action {
        let (
            Some(DedupPhase::Collecting {
                service_index,
                method,
                path,
                headers,
            }),
            Some(worker_rc),
        ) = (self.dedup.take(), self.worker.clone())
        else {
            return Action::Continue;
        };
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let Some(section) = registry
            .service_at(service_index)
            .and_then(|s| s.dedup.as_ref())
        else {
            return Action::Continue;
        };
        if let Some(signature) = &section.signature {
            let key = decode_secret(&signature.secret).unwrap_or_default();
            let verdict = verify_signature(
                &key,
                header(&headers, "webhook-id"),
                header(&headers, "webhook-timestamp"),
                header(&headers, "webhook-signature"),
                body,
                now_secs(),
                signature.tolerance_s,
            );
            if verdict.is_err() {
                worker_rc.borrow().metrics.inc(Stat::DedupSignatureRejected);
                self.observe(MonitorOutcome::Refused);
                return self.reply_json((
                    401,
                    r#"{"error":"invalid or missing webhook signature"}"#.to_string(),
                ));
            }
        }
        if ambiguous_id(section, &headers) {
            worker_rc.borrow().metrics.inc(Stat::DedupMismatch);
            self.observe(MonitorOutcome::Refused);
            return self.reply_json((
                400,
                r#"{"error":"the delivery id is given more than once with different values"}"#
                    .to_string(),
            ));
        }
        // No identity: the request passes untouched.
        let Some(identity) = identify(section, &method, &path, &headers, body) else {
            return Action::Continue;
        };
        let now_ms = now_millis();
        let mut worker = worker_rc.borrow_mut();
        let key = slot_for(&worker, &identity.id, now_ms);
        let attempt = next_attempt(&mut worker);
        match claim(
            &key,
            &identity.id,
            identity.body_digest,
            attempt,
            now_ms,
            section.in_flight_timeout_ms,
        ) {
            Claim::Forward => {
                worker.metrics.inc(Stat::DedupForwarded);
                if let Some(observed) = &mut self.observed {
                    observed.forwarded_us = Some(now_nanos() / 1000);
                }
                let delivery = Delivery {
                    context_id: self.context_id,
                    key: key.clone(),
                    id: identity.id.clone(),
                    attempt,
                    service_index,
                };
                let queued = Queued {
                    delivery,
                    headers: headers.clone(),
                    body: body.to_vec(),
                    trailers,
                    timeout_ms: section.in_flight_timeout_ms,
                };
                if queue_delivery(&mut worker, queued) {
                    // The root context owns the origin call: its answer completes the record
                    // and is relayed to this stream.
                    self.dedup = Some(DedupPhase::Dispatched);
                    return Action::Pause;
                }
                self.dedup = Some(DedupPhase::Owner {
                    key,
                    id: identity.id,
                    service_index,
                    attempt,
                });
                Action::Continue
            }
            Claim::Replay(record) => {
                worker.metrics.inc(Stat::DedupReplayed);
                drop(worker);
                self.observe(MonitorOutcome::DedupReplay);
                replay(&record);
                self.answered = true;
                Action::Pause
            }
            Claim::Mismatch => {
                worker.metrics.inc(Stat::DedupMismatch);
                drop(worker);
                self.observe(MonitorOutcome::Refused);
                self.reply_json((
                    422,
                    r#"{"error":"this identity was already used with a different body"}"#
                        .to_string(),
                ))
            }
            Claim::InFlight { .. } => {
                let limit =
                    usize::try_from(registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
                // A waiter keeps its body too (the edge sends it if the waiter takes over).
                if section.in_flight == InFlightMode::Conflict
                    || worker.dedup_waiters.len() >= limit
                    || !self.hold_paused(&mut worker, body.len())
                {
                    worker.metrics.inc(Stat::DedupConflict);
                    drop(worker);
                    self.observe(MonitorOutcome::Refused);
                    send(
                        409,
                        &conflict_headers(section.retry_after_s),
                        Some(br#"{"error":"the first delivery is still in progress"}"#),
                    );
                    self.answered = true;
                    return Action::Pause;
                }
                worker.metrics.inc(Stat::DedupWaited);
                if let Some(observed) = &mut self.observed {
                    observed.outcome = MonitorOutcome::DedupReplay;
                }
                worker.dedup_waiters.push(DedupWaiter {
                    context_id: self.context_id,
                    key: key.clone(),
                    id: identity.id.clone(),
                    digest: identity.body_digest,
                    since_ms: now_ms,
                    timeout_ms: section.in_flight_timeout_ms,
                    service_index,
                    headers,
                    body: body.to_vec(),
                    trailers,
                });
                self.dedup = Some(DedupPhase::Waiting {
                    id: identity.id,
                    service_index,
                });
                Action::Pause
            }
        }
    }

    /// The origin answered a first attempt: keep a replayable result, or release the record.
    fn on_dedup_response(
        &mut self,
        status: u16,
        response: &[(String, String)],
        end_of_stream: bool,
    ) {
        let (Some(phase), Some(worker_rc)) = (self.dedup.take(), self.worker.clone()) else {
            return;
        };
        let (key, id, service_index, attempt) = match phase {
            DedupPhase::Owner {
                key,
                id,
                service_index,
                attempt,
            } => (key, id, service_index, attempt),
            DedupPhase::Waiting {
                id, service_index, ..
            } => {
                // Only a waiter the tick let through owns the record now (in the slot it took).
                let Some((key, attempt)) = worker_rc
                    .borrow_mut()
                    .dedup_taken_over
                    .remove(&self.context_id)
                else {
                    return;
                };
                (key, id, service_index, attempt)
            }
            other => {
                self.dedup = Some(other);
                return;
            }
        };
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let Some(section) = registry
            .service_at(service_index)
            .and_then(|s| s.dedup.as_ref())
        else {
            return;
        };
        if !section.replays(status) {
            finish(
                &mut worker_rc.borrow_mut(),
                &key,
                &id,
                attempt,
                DedupState::Released,
            );
            return;
        }
        self.dedup = Some(DedupPhase::Recording {
            key,
            id,
            attempt,
            status,
            headers: relayed_headers(response),
            body: Vec::new(),
            omitted: false,
            limit: usize::try_from(section.max_response_bytes).unwrap_or(usize::MAX),
            retention_ms: section.retention_s.saturating_mul(1000),
        });
        if end_of_stream {
            self.finish_dedup();
        }
    }

    fn finish_dedup(&mut self) {
        let (
            Some(DedupPhase::Recording {
                key,
                id,
                attempt,
                status,
                headers,
                body,
                omitted,
                retention_ms,
                ..
            }),
            Some(worker_rc),
        ) = (self.dedup.take(), self.worker.clone())
        else {
            return;
        };
        let expires_at_ms = now_millis().saturating_add(retention_ms);
        let result =
            DedupState::completed(status, headers, (!omitted).then_some(body), expires_at_ms);
        finish(&mut worker_rc.borrow_mut(), &key, &id, attempt, result);
    }

    /// Answers a GET from a stored entry when the origin must not be asked (a rate-limited
    /// tenant, an open breaker). `status` gives the Cache-Status member; its `ttl` is filled in.
    /// `max_stale_s`: the entry must be usable without the origin, stale by at most this many
    /// seconds (a limited tenant); `None`: any stored entry, fresh or stale (an open breaker).
    #[allow(clippy::too_many_arguments)]
    fn serve_stored(
        &mut self,
        worker_rc: &Rc<RefCell<Worker>>,
        service: &Service,
        request: &Request<'_>,
        status: CacheStatus<'_>,
        extra_headers: &[(String, String)],
        counter: Stat,
        max_stale_s: Option<u64>,
    ) -> bool {
        let Some(section) = &service.cache else {
            return false;
        };
        let Ok(key) = request.cache_key(service, section) else {
            return false;
        };
        let now = now_secs();
        let mut worker = worker_rc.borrow_mut();
        let entry = match worker.l1.get(&key.primary, now) {
            Some(entry) => Some(entry),
            None => match worker.l2_get(&key.primary) {
                L2Read::Found(entry) => Some(Rc::new(entry)),
                _ => None,
            },
        };
        let Some(entry) = entry else {
            return false;
        };
        let facts = request_facts(request.method, request.headers);
        let usable = match max_stale_s {
            Some(bound) => may_serve_while_limited(
                &entry,
                request.headers,
                &facts,
                &worker.generations,
                now,
                bound,
            ),
            None => !matches!(
                evaluate_hit(&entry, request.headers, &facts, &worker.generations, now),
                HitDecision::Miss(_)
            ),
        };
        if !usable {
            return false;
        }
        worker.metrics.inc(counter);
        let name = worker.registry.settings().cache_status_name.clone();
        drop(worker);
        let age = current_age(&timing(&entry), now);
        let cache_status = CacheStatus {
            ttl: Some(ttl_left(&entry, age)),
            ..status
        }
        .render(&name);
        let mut headers = hit_headers(&entry, age, &cache_status);
        headers.extend(extra_headers.iter().cloned());
        let body = (request.method != "HEAD").then_some(entry.body.as_slice());
        self.reply(entry.status, &headers, body);
        true
    }

    fn refresh_job(
        &self,
        service: &Service,
        section: &CacheSection,
        key: &CacheKey,
        request: &Request<'_>,
        facts: &RequestFacts,
        entry: Rc<Entry>,
    ) -> RefreshJob {
        let unkeyed: Vec<&str> = unkeyed_headers_present(section, request.headers).collect();
        RefreshJob {
            key: key.clone(),
            service_index: service.index,
            call_headers: refresh_request_headers(
                request.headers,
                &unkeyed,
                (SERVICE_HEADER, &service.name),
                Some(&entry),
            ),
            request_headers: request.headers.to_vec(),
            request: facts.clone(),
            entry,
            lease_ms: section.lease_ms,
            request_time: 0,
            generations: Rc::default(),
        }
    }

    /// Asks the origin whether a stale entry still holds, with the entry's validators.
    fn revalidate(
        &mut self,
        entry: Entry,
        pending: Pending,
        section: &CacheSection,
        request: &Request<'_>,
    ) -> Action {
        let Some(worker) = &self.worker else {
            return Action::Continue;
        };
        let cluster = worker.borrow().registry.settings().upstream_cluster.clone();
        self.observe_forwarded();
        let unkeyed: Vec<&str> = unkeyed_headers_present(section, request.headers).collect();
        let call = refresh_request_headers(
            request.headers,
            &unkeyed,
            (SERVICE_HEADER, request.service),
            Some(&entry),
        );
        let pairs: Vec<(&str, &str)> = call.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        match hostcalls::dispatch_http_call(&cluster, pairs, None, vec![], REVALIDATION_TIMEOUT) {
            Ok(_) => {
                self.revalidation = Some(Revalidation { pending, entry });
                Action::Pause
            }
            Err(status) => {
                warn!(
                    "revalidation via cluster {cluster:?} refused ({status:?}); forwarding instead"
                );
                self.pending = Some(pending);
                Action::Continue
            }
        }
    }

    /// This stream led a coalescing group and is done: answer or release its waiters.
    /// Not from a filter callback (see [`settle_waiters`]).
    fn settle_group(&mut self, outcome: Outcome<'_>) {
        let (Some(key), Some(worker_rc)) = (self.group.take(), self.worker.clone()) else {
            return;
        };
        let mut worker = worker_rc.borrow_mut();
        if worker.coalescer.is_leader(&key, self.context_id) {
            settle_waiters(&mut worker, &key, outcome, self.context_id, now_secs());
            worker.release_lease(&key);
        }
    }

    /// [`Self::settle_group`] from a response callback: answers go out from the root context.
    fn settle_group_later(&mut self, outcome: Outcome<'_>) {
        let (Some(key), Some(worker_rc)) = (self.group.take(), self.worker.clone()) else {
            return;
        };
        let mut worker = worker_rc.borrow_mut();
        if worker.coalescer.is_leader(&key, self.context_id) {
            let settled = Settled::of(outcome);
            defer_waiters(&mut worker, &key, settled, self.context_id, now_secs());
            worker.release_lease(&key);
        }
    }

    fn finish_capture(&mut self) {
        let (Some(capture), Some(worker_rc)) = (self.capture.take(), self.worker.clone()) else {
            return;
        };
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let Some(section) = registry
            .service_at(capture.pending.service_index)
            .and_then(|s| s.cache.as_ref())
        else {
            return;
        };
        {
            let mut worker = worker_rc.borrow_mut();
            worker.capture_bytes = worker.capture_bytes.saturating_sub(capture.body.len());
        }
        let facts = response_facts(capture.status, &capture.response_headers);
        let entry_tags = tags(&capture.response_headers, &section.tag_header);
        let Some(stamp) = worker_rc.borrow().stamp_since(
            &capture.pending.generations,
            capture.pending.service_index,
            &capture.pending.key,
            &entry_tags,
        ) else {
            // A purge of this entry happened while it was on its way: it may be what was purged.
            self.settle_group_later(Outcome::Release);
            return;
        };
        let entry = build_entry(
            Stored {
                key: &capture.pending.key.primary,
                status: capture.status,
                response_headers: &capture.response_headers,
                request_headers: &capture.pending.request_headers,
                body: capture.body,
                request_time: capture.pending.request_time,
                response_time: capture.response_time,
                generations: stamp,
            },
            &facts,
            &capture.storable,
        )
        .map(|entry| stale_defaults(section).apply(entry));
        if let Some(entry) = &entry {
            worker_rc
                .borrow_mut()
                .store(entry.clone(), capture.pending.key.tenant.as_deref());
        }
        self.settle_group_later(entry.as_ref().map_or(Outcome::Release, Outcome::Entry));
    }

    fn invalidate_after_success(&mut self, status: u16) {
        let (Some(mut urls), Some(worker_rc)) = (self.invalidate.take(), self.worker.clone())
        else {
            return;
        };
        if !(200..400).contains(&status) {
            return;
        }
        let registry = Rc::clone(&worker_rc.borrow().registry);
        if let Some((scheme, authority)) = &self.origin_of_request {
            let response = headers(MapType::HttpResponseHeaders);
            for name in ["location", "content-location"] {
                let target = header(&response, name)
                    .and_then(|value| same_origin_path(value, scheme, authority));
                if let Some(url) =
                    target.and_then(|path| admin::cache_url(&registry, scheme, authority, &path))
                {
                    urls.push(url);
                }
            }
        }
        let mut worker = worker_rc.borrow_mut();
        for url in &urls {
            if worker.purge(Dimension::Url(url)) {
                worker.metrics.inc(Stat::Invalidation);
            }
        }
    }

    /// Starts queued warm fetches up to the concurrency bound; replies once all are done.
    fn continue_warm(&mut self) -> Action {
        let Some(worker_rc) = self.worker.clone() else {
            return Action::Continue;
        };
        let cluster = worker_rc
            .borrow()
            .registry
            .settings()
            .upstream_cluster
            .clone();
        let Some(warm) = &mut self.warm else {
            return Action::Continue;
        };
        while warm.in_flight.len() < WARM_CONCURRENCY {
            let Some(target) = warm.queued.pop_front() else {
                break;
            };
            let pairs: Vec<(&str, &str)> = target
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            match hostcalls::dispatch_http_call(&cluster, pairs, None, vec![], REVALIDATION_TIMEOUT)
            {
                Ok(token) => {
                    warm.in_flight.insert(token, target);
                }
                Err(_) => warm.failed += 1,
            }
        }
        if warm.in_flight.is_empty() && warm.queued.is_empty() {
            let body = serde_json::json!({
                "stored": warm.stored,
                "skipped": warm.skipped,
                "failed": warm.failed,
            })
            .to_string();
            self.warm = None;
            return self.reply_json((200, body));
        }
        Action::Pause
    }

    /// A warm fetch came back: store it if it may be stored, count it, go on.
    fn on_warmed(&mut self, token: u32, body_size: usize) {
        let (Some(worker_rc), Some(warm)) = (self.worker.clone(), self.warm.as_mut()) else {
            return;
        };
        let Some(target) = warm.in_flight.remove(&token) else {
            return;
        };
        let response = headers(MapType::HttpCallResponseHeaders);
        let status = header(&response, ":status").and_then(|s| s.parse::<u16>().ok());
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let section = registry
            .service_at(target.service_index)
            .and_then(|s| s.cache.as_ref());
        match (status, section) {
            (Some(status), Some(section)) if status < 500 => {
                let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                let now = now_secs();
                let request = request_facts("GET", &target.headers);
                let facts = response_facts(status, &response);
                let storable = storability(&request, &facts, &store_policy(section), now);
                let limit =
                    usize::try_from(registry.limits().max_entry_bytes).unwrap_or(usize::MAX);
                let mut worker = worker_rc.borrow_mut();
                let entry_tags = tags(&response, &section.tag_header);
                let stamp = worker.stamp_since(
                    &warm.generations,
                    target.service_index,
                    &target.key,
                    &entry_tags,
                );
                let entry = stamp.filter(|_| body.len() <= limit).and_then(|stamp| {
                    build_entry(
                        Stored {
                            key: &target.key.primary,
                            status,
                            response_headers: &response,
                            request_headers: &target.headers,
                            body,
                            request_time: now,
                            response_time: now,
                            generations: stamp,
                        },
                        &facts,
                        &storable,
                    )
                });
                match entry {
                    Some(entry) => {
                        worker.store(
                            stale_defaults(section).apply(entry),
                            target.key.tenant.as_deref(),
                        );
                        warm.stored += 1;
                    }
                    None => warm.skipped += 1,
                }
            }
            _ => warm.failed += 1,
        }
        self.continue_warm();
    }

    /// The origin answered (or failed) the revalidation this stream sent.
    fn on_revalidated(&mut self, revalidation: Revalidation, body_size: usize) {
        let Some(worker_rc) = self.worker.clone() else {
            return;
        };
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let Some(section) = registry
            .service_at(revalidation.pending.service_index)
            .and_then(|s| s.cache.as_ref())
        else {
            let _ = hostcalls::resume_http_request();
            return;
        };
        let name = registry.settings().cache_status_name.clone();
        let response = headers(MapType::HttpCallResponseHeaders);
        let status = header(&response, ":status").and_then(|s| s.parse::<u16>().ok());
        let now = now_secs();
        self.observe_origin_answer();
        let pending = &revalidation.pending;
        let old = &revalidation.entry;
        let age = current_age(&timing(old), now);
        // The origin failed: a stale entry within its stale-if-error window stands in.
        if status.is_none_or(is_origin_error) && may_serve_if_error(old, age) {
            worker_rc.borrow().metrics.inc(Stat::StaleIfError);
            self.observe(MonitorOutcome::Stale);
            let cache_status = CacheStatus {
                fwd: Some(Forward::Stale),
                fwd_status: status,
                ttl: Some(ttl_left(old, age)),
                detail: Some("stale-if-error"),
                key: section.debug.then_some(pending.key.primary.as_str()),
                ..CacheStatus::default()
            }
            .render(&name);
            self.serve(
                old,
                age,
                client_not_modified(&pending.request_headers, old),
                pending.head,
                &cache_status,
            );
            self.settle_group(Outcome::StaleIfError(old));
            return;
        }
        let Some(status) = status else {
            // Unreachable, and the entry may not stand in: the client's own request goes to the
            // origin (and gets Envoy's 503/504 if it is down).
            self.settle_group(Outcome::Release);
            self.pending = Some(revalidation.pending);
            let _ = hostcalls::resume_http_request();
            return;
        };
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let refresh = RefreshRequest {
            old,
            request: &pending.request,
            request_headers: &pending.request_headers,
            policy: &store_policy(section),
            defaults: stale_defaults(section),
            request_time: pending.request_time,
            now,
            max_body: usize::try_from(registry.limits().max_entry_bytes).unwrap_or(usize::MAX),
            generations: Vec::new(),
        };
        let stamp = worker_rc.borrow().stamp_since(
            &pending.generations,
            pending.service_index,
            &pending.key,
            &tags(&response, &section.tag_header),
        );
        let unpurged = stamp.is_some();
        let refresh = RefreshRequest {
            generations: stamp.unwrap_or_default(),
            ..refresh
        };
        let outcome = refresh_outcome(&refresh, status, &response, body.clone());
        if status == 304 {
            worker_rc.borrow().metrics.inc(Stat::Revalidated);
        }
        let (entry, stored) = match outcome {
            RefreshOutcome::Refreshed(entry) | RefreshOutcome::Replaced(entry) if unpurged => {
                worker_rc
                    .borrow_mut()
                    .store(entry.clone(), pending.key.tenant.as_deref());
                (Some(entry), true)
            }
            // A 304 whose headers forbid storing: the stored body is still the valid answer.
            RefreshOutcome::NotStored if status == 304 => {
                worker_rc.borrow_mut().remove_l1(&pending.key.primary);
                (Some(old.clone()), false)
            }
            // Fetched across a purge: answer with it, but do not keep it.
            RefreshOutcome::Refreshed(entry) | RefreshOutcome::Replaced(entry) => {
                (Some(entry), false)
            }
            RefreshOutcome::NotStored => (None, false),
        };
        match &entry {
            Some(entry) => {
                let age = current_age(&timing(entry), now);
                let cache_status = CacheStatus {
                    fwd: Some(Forward::Stale),
                    fwd_status: Some(status),
                    stored,
                    ttl: Some(ttl_left(entry, age)),
                    key: section.debug.then_some(pending.key.primary.as_str()),
                    ..CacheStatus::default()
                }
                .render(&name);
                self.serve(
                    entry,
                    age,
                    client_not_modified(&pending.request_headers, entry),
                    pending.head,
                    &cache_status,
                );
            }
            None => {
                // Relay the origin's answer as it is.
                let member = CacheStatus {
                    fwd: Some(Forward::Stale),
                    fwd_status: Some(status),
                    key: section.debug.then_some(pending.key.primary.as_str()),
                    ..CacheStatus::default()
                }
                .render(&name);
                let mut relayed = relayed_headers(&response);
                let existing = header_joined(&relayed, "cache-status");
                relayed.retain(|(n, _)| !n.eq_ignore_ascii_case("cache-status"));
                relayed.push((
                    "cache-status".to_string(),
                    append_cache_status(existing.as_deref(), &member),
                ));
                let head = pending.head;
                self.reply(status, &relayed, (!head).then_some(body.as_slice()));
            }
        }
        self.settle_group(entry.as_ref().map_or(Outcome::Release, Outcome::Entry));
    }
}

/// Whether a request's own conditionals match `entry` (then it gets a 304).
fn client_not_modified(request_headers: &[(String, String)], entry: &Entry) -> bool {
    conditional_matches(
        header(request_headers, "if-none-match"),
        header(request_headers, "if-modified-since").and_then(parse_http_date),
        entry.etag.as_deref(),
        entry.last_modified,
    )
}

/// Bytes a copy of a header list holds.
fn header_bytes(headers: &[(String, String)]) -> usize {
    headers.iter().map(|(n, v)| n.len() + v.len()).sum()
}

/// `Location`/`Content-Location` as a path, when it points at the request's own origin.
fn same_origin_path(value: &str, scheme: &str, authority: &str) -> Option<String> {
    if value.starts_with('/') && !value.starts_with("//") {
        return Some(value.to_string());
    }
    let rest = value.strip_prefix(scheme)?.strip_prefix("://")?;
    let path = rest.strip_prefix(authority)?;
    if path.is_empty() {
        return Some("/".to_string());
    }
    path.starts_with('/').then(|| path.to_string())
}

impl Context for EdgeHttp {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let Some(worker) = &self.worker {
            worker.borrow_mut().begin_callback();
        }
        if self.warm.is_some() {
            self.on_warmed(token, body_size);
        } else if let Some(revalidation) = self.revalidation.take() {
            self.on_revalidated(revalidation, body_size);
        }
    }

    fn on_done(&mut self) -> bool {
        let Some(worker_rc) = self.worker.clone() else {
            return true;
        };
        let mut worker = worker_rc.borrow_mut();
        worker.answered.remove(&self.context_id);
        worker.paused_bytes = worker.paused_bytes.saturating_sub(self.paused_bytes);
        if let Some(capture) = self.capture.take() {
            worker.capture_bytes = worker.capture_bytes.saturating_sub(capture.body.len());
        }
        // A probe whose stream ended before any response (client gone, reset): its permit
        // goes back at once, or the breaker would wait for the permits to expire.
        if let Some((service_index, true, _)) = self.breaker.take() {
            breaker::abandon_probe(&mut worker, service_index);
        }
        match self.dedup.take() {
            // The client went away (or the stream was reset) after the delivery went to the
            // origin, which may well have processed it: the record is not released (that would
            // send the sender's retry to the origin again). It stays in flight until
            // `in_flight_timeout_ms`; duplicates meanwhile wait or get 409, as for any attempt
            // in flight. A taken-over waiter is such an attempt too.
            Some(DedupPhase::Owner { .. }) => {}
            Some(DedupPhase::Waiting { .. }) => {
                worker
                    .dedup_waiters
                    .retain(|w| w.context_id != self.context_id);
                worker.dedup_taken_over.remove(&self.context_id);
            }
            // The origin answered with a replayable status and the stream ended before its
            // body did: the delivery was processed, so that result is kept (without a body).
            Some(DedupPhase::Recording {
                key,
                id,
                attempt,
                status,
                headers,
                retention_ms,
                ..
            }) => {
                let expires_at_ms = now_millis().saturating_add(retention_ms);
                let result = DedupState::completed(status, headers, None, expires_at_ms);
                finish(&mut worker, &key, &id, attempt, result);
            }
            _ => {}
        }
        if self.group.is_none() {
            return true;
        }
        // A leader that ends without settling its group (client gone, stream reset): the oldest
        // waiter takes over and goes to the origin itself.
        if let Some(key) = worker.coalescer.leave(self.context_id) {
            match worker.coalescer.promote(&key) {
                Some(next) => resume_as_leader(next.context_id, self.context_id),
                None => worker.release_lease(&key),
            }
        }
        true
    }
}

impl HttpContext for EdgeHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(worker_rc) = self.worker.clone() else {
            return Action::Continue;
        };
        let (request_headers, non_utf8) = headers_checked(MapType::HttpRequestHeaders);
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let method = header(&request_headers, ":method").unwrap_or_default();
        let path = header(&request_headers, ":path").unwrap_or_default();
        let authority = header(&request_headers, ":authority").unwrap_or_default();
        let scheme = header(&request_headers, ":scheme").unwrap_or("http");
        let service = registry.match_request(&RequestAttributes {
            authority,
            path,
            method,
        });
        let request = Request {
            headers: &request_headers,
            non_utf8: &non_utf8,
            method,
            path,
            authority,
            scheme,
            service: &service.name,
        };
        if let Some(action) = self.on_management(&worker_rc, &registry, &request, end_of_stream) {
            return action;
        }
        if worker_rc.borrow().monitor.enabled {
            self.observed = Some(Observed {
                service_index: service.index,
                started_us: now_nanos() / 1000,
                outcome: MonitorOutcome::Pass,
                forwarded_us: None,
                origin_us: None,
                tenant: None,
            });
        }
        if let Some(section) = &service.rate_limit {
            let verdict = check(
                &worker_rc.borrow(),
                &service.name,
                section,
                method,
                path,
                &request_headers,
                now_millis(),
            );
            match verdict {
                Verdict::Admit { fields, tenant } => {
                    self.rate_headers = fields;
                    self.observe_tenant(Some(&tenant));
                }
                Verdict::Refuse(body) => {
                    self.observe(MonitorOutcome::Refused);
                    return self.reply_json((400, body));
                }
                Verdict::Limit {
                    tenant,
                    headers,
                    retry_after_s,
                } => {
                    self.observe_tenant(Some(&tenant));
                    self.observe(MonitorOutcome::RateLimited);
                    let degrade =
                        section.serve_stale_when_limited && matches!(method, "GET" | "HEAD");
                    let limited = CacheStatus {
                        hit: true,
                        detail: Some("rate-limited"),
                        ..CacheStatus::default()
                    };
                    let extra: Vec<(String, String)> = headers
                        .iter()
                        .filter(|(n, _)| n != "retry-after")
                        .cloned()
                        .collect();
                    if degrade
                        && self.serve_stored(
                            &worker_rc,
                            service,
                            &request,
                            limited,
                            &extra,
                            Stat::RateDegraded,
                            Some(section.max_stale_when_limited_s),
                        )
                    {
                        return Action::Pause;
                    }
                    let mut headers = headers;
                    headers.push(("content-type".to_string(), "application/json".to_string()));
                    let body = serde_json::json!({
                        "error": "rate limited",
                        "service": service.name,
                        "tenant": tenant,
                        "retry_after_s": retry_after_s,
                    })
                    .to_string();
                    return self.reply(429, &headers, Some(body.as_bytes()));
                }
            }
        }
        if service.breaker.is_some() {
            let now_ms = now_millis();
            let admission = breaker::check(&mut worker_rc.borrow_mut(), service.index, now_ms);
            match admission {
                Admission::Pass => self.breaker = Some((service.index, false, now_ms)),
                Admission::Probe => self.breaker = Some((service.index, true, now_ms)),
                Admission::Reject { retry_after_ms } => {
                    worker_rc.borrow().metrics.inc(Stat::BreakerRejected);
                    self.observe(MonitorOutcome::BreakerOpen);
                    let stale = CacheStatus {
                        fwd: Some(Forward::Stale),
                        detail: Some("circuit-open"),
                        ..CacheStatus::default()
                    };
                    if matches!(method, "GET" | "HEAD")
                        && self.serve_stored(
                            &worker_rc,
                            service,
                            &request,
                            stale,
                            &[],
                            Stat::BreakerStaleServed,
                            None,
                        )
                    {
                        return Action::Pause;
                    }
                    let retry = retry_after_ms.div_ceil(1000).max(1);
                    let headers = [
                        ("content-type".to_string(), "application/json".to_string()),
                        ("retry-after".to_string(), retry.to_string()),
                    ];
                    let body = serde_json::json!({
                        "error": "circuit open",
                        "service": service.name,
                        "retry_after_s": retry,
                    })
                    .to_string();
                    return self.reply(503, &headers, Some(body.as_bytes()));
                }
            }
        }
        let mut action = self.route(&worker_rc, service, &request);
        if service.dedup.is_some() && !matches!(method, "GET" | "HEAD") && !self.answered {
            let held = header_bytes(&request_headers);
            if !self.hold_paused(&mut worker_rc.borrow_mut(), held) {
                // Past the paused-request budget: the sender retries (a delivery is never
                // forwarded undeduplicated).
                let headers = [
                    ("content-type".to_string(), "application/json".to_string()),
                    ("retry-after".to_string(), "1".to_string()),
                ];
                let body = br#"{"error":"the edge is holding too many requests, retry"}"#;
                return self.reply(503, &headers, Some(body));
            }
            self.dedup = Some(DedupPhase::Collecting {
                service_index: service.index,
                method: method.to_string(),
                path: path.to_string(),
                headers: request_headers.clone(),
            });
            if end_of_stream {
                action = self.decide_dedup(&[], Vec::new());
            }
        }
        let collecting = matches!(self.dedup, Some(DedupPhase::Collecting { .. }));
        if matches!(action, Action::Continue) && !self.answered && !collecting {
            self.observe_forwarded();
        }
        if !self.answered {
            // Failing to tag is not worth failing the request: the request still goes through.
            let _ = hostcalls::set_map_value(
                MapType::HttpRequestHeaders,
                SERVICE_HEADER,
                Some(&service.name),
            );
        }
        action
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        if self.admin_body.take().is_some() {
            return self.reply_json((
                400,
                r#"{"error":"management requests take no trailers"}"#.to_string(),
            ));
        }
        if matches!(self.dedup, Some(DedupPhase::Collecting { .. })) {
            // Trailers end the request (HTTP/2): the body callbacks never saw end_of_stream,
            // so the decision is made here, on the body Envoy buffered while they paused
            // (the whole body). Nothing reached the origin yet.
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, usize::MAX)
                .ok()
                .flatten()
                .unwrap_or_default();
            return self.decide_dedup(&body, headers(MapType::HttpRequestTrailers));
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if matches!(self.dedup, Some(DedupPhase::Collecting { .. })) {
            // The buffer filter after this one holds the request; nothing reached the origin.
            if !end_of_stream {
                return Action::Pause;
            }
            let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            return self.decide_dedup(&body, Vec::new());
        }
        if self.admin_body.is_none() {
            return Action::Continue;
        }
        if body_size > MAX_PURGE_BODY {
            self.admin_body = None;
            return self.reply_json((
                413,
                r#"{"error":"management request body too large"}"#.to_string(),
            ));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let (Some(kind), Some(worker_rc)) = (self.admin_body.take(), self.worker.clone()) else {
            return Action::Continue;
        };
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        match kind {
            AdminBody::Purge => {
                let reply = admin::purge_request(&mut worker_rc.borrow_mut(), &body);
                self.reply_json(reply)
            }
            AdminBody::Warm { scheme, authority } => {
                let registry = Rc::clone(&worker_rc.borrow().registry);
                match plan_warm(&registry, &scheme, &authority, &body) {
                    Err(reason) => self.reply_json(admin::error(400, &reason)),
                    Ok(targets) => {
                        let generations = Rc::clone(&worker_rc.borrow().generations);
                        self.warm = Some(WarmRun {
                            generations,
                            queued: targets.into(),
                            ..WarmRun::default()
                        });
                        self.continue_warm()
                    }
                }
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(worker_rc) = self.worker.clone() else {
            return Action::Continue;
        };
        if let Some((policy, state)) = self.rate_headers.take() {
            let _ = hostcalls::set_map_value(
                MapType::HttpResponseHeaders,
                "ratelimit-policy",
                Some(&policy),
            );
            let _ =
                hostcalls::set_map_value(MapType::HttpResponseHeaders, "ratelimit", Some(&state));
        }
        let answered_here =
            self.answered || worker_rc.borrow_mut().answered.remove(&self.context_id);
        if let Some((service_index, probe, started_ms)) = self.breaker.take() {
            let mut worker = worker_rc.borrow_mut();
            if answered_here {
                // Answered without the origin: no outcome; a probe gives its permit back.
                if probe {
                    breaker::abandon_probe(&mut worker, service_index);
                }
            } else {
                let status = headers(MapType::HttpResponseHeaders)
                    .iter()
                    .find(|(n, _)| n == ":status")
                    .and_then(|(_, v)| v.parse::<u16>().ok())
                    .unwrap_or(0);
                let now_ms = now_millis();
                let config = worker
                    .registry
                    .service_at(service_index)
                    .and_then(|s| s.breaker.clone());
                let failed = config.is_some_and(|c| {
                    c.is_failure(status)
                        || c.slow_ms
                            .is_some_and(|slow| now_ms.saturating_sub(started_ms) > slow)
                });
                breaker::outcome(&mut worker, service_index, failed, probe, now_ms);
            }
        }
        if let Some(observed) = &mut self.observed {
            observed.outcome = match (answered_here, observed.outcome) {
                // Released waiters went to the origin themselves.
                (false, MonitorOutcome::Collapsed) => MonitorOutcome::Miss,
                (false, MonitorOutcome::DedupReplay) => MonitorOutcome::Pass,
                // A waiting duplicate that was answered with a conflict, not a replay.
                (true, MonitorOutcome::DedupReplay)
                    if matches!(
                        header(&headers(MapType::HttpResponseHeaders), ":status"),
                        Some("409" | "422")
                    ) =>
                {
                    MonitorOutcome::Refused
                }
                (_, other) => other,
            };
        }
        if !answered_here {
            self.observe_origin_answer();
        }
        if answered_here {
            // Our own reply (or one another stream sent for us): nothing to store or tag.
            self.pending = None;
            self.dedup = None;
            return Action::Continue;
        }
        let response = headers(MapType::HttpResponseHeaders);
        let status = header(&response, ":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        self.invalidate_after_success(status);
        if self.dedup.is_some() {
            self.on_dedup_response(status, &response, end_of_stream);
        }
        let Some(pending) = self.pending.take() else {
            return Action::Continue;
        };
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let Some(section) = registry
            .service_at(pending.service_index)
            .and_then(|s| s.cache.as_ref())
        else {
            return Action::Continue;
        };
        let now = now_secs();
        let facts = response_facts(status, &response);
        let storable = if pending.head {
            Storable::No(NotStorable::Method)
        } else {
            storability(&pending.request, &facts, &store_policy(section), now)
        };
        let limit = usize::try_from(registry.limits().max_entry_bytes).unwrap_or(usize::MAX);
        let length =
            header(&response, "content-length").and_then(|l| l.trim().parse::<usize>().ok());
        let fits = length.is_none_or(|l| l <= limit);
        if matches!(storable, Storable::Yes { .. }) && !fits {
            worker_rc.borrow().metrics.inc(Stat::TooLarge);
        }
        let capture = matches!(storable, Storable::Yes { .. }) && fits;
        let member = CacheStatus {
            fwd: Some(pending.fwd),
            stored: capture && (length.is_some() || end_of_stream),
            key: section.debug.then_some(pending.key.primary.as_str()),
            ..CacheStatus::default()
        }
        .render(&registry.settings().cache_status_name);
        let value =
            append_cache_status(header_joined(&response, "cache-status").as_deref(), &member);
        let _ =
            hostcalls::set_map_value(MapType::HttpResponseHeaders, "cache-status", Some(&value));
        if capture {
            self.capture = Some(Capture {
                pending,
                status,
                response_headers: response,
                storable,
                response_time: now,
                body: Vec::new(),
                limit,
            });
            if end_of_stream {
                self.finish_capture();
            }
        } else {
            // Nothing will be stored: whoever waits for this key goes to the origin itself.
            self.settle_group_later(Outcome::Release);
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if let Some(DedupPhase::Recording {
            body,
            omitted,
            limit,
            ..
        }) = &mut self.dedup
        {
            if body_size > 0 && !*omitted {
                let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                if body.len().saturating_add(chunk.len()) > *limit {
                    // Too large to replay whole: duplicates get the status and headers only.
                    *omitted = true;
                    body.clear();
                } else {
                    body.extend_from_slice(&chunk);
                }
            }
            if end_of_stream {
                self.finish_dedup();
            }
        }
        let Some(capture) = &mut self.capture else {
            return Action::Continue;
        };
        if body_size > 0 {
            // Each chunk passes on as it comes (Continue); we keep a bounded copy to store.
            let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            let worker_rc = self.worker.clone();
            let within_budget = worker_rc.as_ref().is_some_and(|w| {
                let mut worker = w.borrow_mut();
                let fits = worker.capture_bytes.saturating_add(chunk.len()) <= MAX_CAPTURE_BYTES;
                if fits {
                    worker.capture_bytes += chunk.len();
                }
                fits
            });
            if !within_budget || capture.body.len().saturating_add(chunk.len()) > capture.limit {
                let held = capture.body.len() + if within_budget { chunk.len() } else { 0 };
                self.capture = None;
                if let Some(worker) = &worker_rc {
                    let mut worker = worker.borrow_mut();
                    worker.capture_bytes = worker.capture_bytes.saturating_sub(held);
                    worker.metrics.inc(Stat::TooLarge);
                }
                self.settle_group_later(Outcome::Release);
                return Action::Continue;
            }
            capture.body.extend_from_slice(&chunk);
        }
        if end_of_stream {
            self.finish_capture();
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        self.finish_dedup();
        self.finish_capture();
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(observed), Some(worker_rc)) = (self.observed.take(), &self.worker) else {
            return;
        };
        let now_us = now_nanos() / 1000;
        let edge_us = now_us.saturating_sub(observed.started_us);
        let mut worker = worker_rc.borrow_mut();
        worker.metrics.record_request(
            observed.service_index,
            observed.outcome,
            edge_us,
            observed.origin_us,
        );
        worker.monitor.record(
            observed.service_index,
            observed.outcome,
            (edge_us, observed.origin_us),
            observed.tenant.as_deref(),
            now_us / 1000,
        );
    }
}

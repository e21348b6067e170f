use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::warn;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use super::admin;
use super::host::{headers, now_secs};
use super::metrics::Stat;
use super::worker::{L2Read, Worker};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    append_cache_status, build_entry, evaluate_hit, header, header_joined, hit_headers,
    merge_headers, not_modified_headers, refresh_entry, relayed_headers, request_facts,
    response_facts, tags, timing, ttl_left, CacheStatus, HitDecision, MissKind, Stored,
};
use crate::policy::cache::freshness::{
    conditional_matches, current_age, request_directs, storability, RequestDirective, RequestFacts,
    Storable, StorePolicy,
};
use crate::policy::cache::generations::Dimension;
use crate::policy::cache::http_date::{format_http_date, parse_http_date};
use crate::policy::cache::key::{cache_key, unkeyed_headers_present, CacheKey, KeyInput};
use crate::policy::cache::purge_request::MAX_PURGE_BODY;
use crate::policy::{path_without_query, CacheSection, Registry, RequestAttributes, Service};

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
    /// Purge generations of service, tenant and URL when the request arrived.
    stamp: Vec<u32>,
    /// Why the cache forwarded the request (`Cache-Status: fwd=`).
    fwd: &'static str,
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
    /// Cache URLs an unsafe request invalidates when it succeeds.
    invalidate: Option<Vec<String>>,
    /// Request scheme and authority, for `Location` invalidation.
    origin_of_request: Option<(String, String)>,
    /// Body of a purge API request being collected.
    purge_body: bool,
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
            invalidate: None,
            origin_of_request: None,
            purge_body: false,
        }
    }

    /// Answers the request from the filter.
    fn reply(&mut self, status: u16, headers: &[(String, String)], body: Option<&[u8]>) -> Action {
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        if hostcalls::send_http_response(u32::from(status), pairs, body).is_err() {
            warn!(
                "context {}: local reply refused by the host",
                self.context_id
            );
        }
        self.answered = true;
        Action::Pause
    }

    fn reply_json(&mut self, (status, body): admin::Reply) -> Action {
        let headers = [("content-type".to_string(), "application/json".to_string())];
        self.reply(status, &headers, Some(body.as_bytes()))
    }

    /// Serves a stored entry (or a 304 for it).
    fn serve(
        &mut self,
        entry: &Entry,
        age: u64,
        not_modified: bool,
        head: bool,
        status: CacheStatus<'_>,
        name: &str,
    ) -> Action {
        let cache_status = status.render(name);
        if not_modified {
            if let Some(worker) = &self.worker {
                worker.borrow().metrics.inc(Stat::NotModified);
            }
            return self.reply(304, &not_modified_headers(entry, age, &cache_status), None);
        }
        let body = (!head).then_some(entry.body.as_slice());
        self.reply(entry.status, &hit_headers(entry, age, &cache_status), body)
    }

    fn on_management(
        &mut self,
        worker: &Rc<RefCell<Worker>>,
        registry: &Registry,
        request: &Request<'_>,
        end_of_stream: bool,
    ) -> Option<Action> {
        let purge_path = format!("{}/cache/purge", registry.settings().admin.path_prefix);
        let is_purge_api = path_without_query(request.path) == purge_path;
        if request.method != "PURGE" && !is_purge_api {
            return None;
        }
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
        self.purge_body = true;
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
        let mut dimensions = vec![Dimension::Service(service.index), Dimension::Url(&key.url)];
        if let Some(tenant) = &key.tenant {
            dimensions.push(Dimension::Tenant(tenant));
        }
        let stamp = worker.generations.stamp(&dimensions);
        let pending = |fwd| Pending {
            service_index: service.index,
            key: key.clone(),
            request_headers: request.headers.to_vec(),
            request: facts.clone(),
            request_time: now,
            stamp: stamp.clone(),
            fwd,
            head,
        };
        let mut fwd = "uri-miss";
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
                HitDecision::Serve { age, not_modified } => {
                    worker.metrics.inc(tier);
                    if tier == Stat::L2Hit {
                        worker.insert_l1((*entry).clone(), key.tenant.as_deref());
                    }
                    drop(worker);
                    let status = CacheStatus {
                        hit: true,
                        ttl: Some(ttl_left(&entry, age)),
                        key: section.debug.then_some(key.primary.as_str()),
                        ..CacheStatus::default()
                    };
                    return self.serve(&entry, age, not_modified, head, status, &name);
                }
                HitDecision::Revalidate => {
                    drop(worker);
                    return self.revalidate((*entry).clone(), pending("stale"), request);
                }
                HitDecision::Miss(kind) => {
                    worker.metrics.inc(miss);
                    if tier == Stat::L1Hit {
                        worker.remove_l1(&key.primary);
                    }
                    fwd = match kind {
                        MissKind::VaryMismatch => "vary-miss",
                        MissKind::Purged => "miss",
                    };
                }
            }
        }
        worker.metrics.inc(Stat::Miss);
        self.pending = Some(pending(fwd));
        Action::Continue
    }

    /// Asks the origin whether a stale entry still holds, with the entry's validators.
    fn revalidate(&mut self, entry: Entry, pending: Pending, request: &Request<'_>) -> Action {
        let Some(worker) = &self.worker else {
            return Action::Continue;
        };
        let cluster = worker.borrow().registry.settings().upstream_cluster.clone();
        const DROPPED: [&str; 8] = [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "content-length",
            "upgrade",
            "te",
            "if-none-match",
            "if-modified-since",
        ];
        let section = self.worker.as_ref().and_then(|w| {
            w.borrow()
                .registry
                .service_at(pending.service_index)
                .and_then(|s| s.cache.clone())
        });
        let unkeyed: Vec<&str> = section
            .as_ref()
            .map(|s| unkeyed_headers_present(s, request.headers).collect())
            .unwrap_or_default();
        let mut call: Vec<(String, String)> = request
            .headers
            .iter()
            .filter(|(n, _)| !DROPPED.iter().any(|d| n.eq_ignore_ascii_case(d)) && n != ":method")
            .filter(|(n, _)| !n.eq_ignore_ascii_case(SERVICE_HEADER))
            .filter(|(n, _)| !unkeyed.iter().any(|u| n.eq_ignore_ascii_case(u)))
            .cloned()
            .collect();
        call.push((":method".to_string(), "GET".to_string()));
        call.push((SERVICE_HEADER.to_string(), request.service.to_string()));
        if let Some(etag) = &entry.etag {
            call.push(("if-none-match".to_string(), etag.clone()));
        }
        if let Some(last_modified) = entry.last_modified {
            call.push((
                "if-modified-since".to_string(),
                format_http_date(last_modified),
            ));
        }
        let pairs: Vec<(&str, &str)> = call.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        match hostcalls::dispatch_http_call(&cluster, pairs, None, vec![], REVALIDATION_TIMEOUT) {
            Ok(_) => {
                self.revalidation = Some(Revalidation { pending, entry });
                Action::Pause
            }
            Err(status) => {
                // A wrong cluster name: every stale hit would log this, so only once per worker.
                warn!(
                    "revalidation via cluster {cluster:?} refused ({status:?}); forwarding instead"
                );
                self.pending = Some(pending);
                Action::Continue
            }
        }
    }

    fn finish_capture(&mut self) {
        let (Some(capture), Some(worker_rc)) = (self.capture.take(), self.worker.clone()) else {
            return;
        };
        let mut worker = worker_rc.borrow_mut();
        let registry = Rc::clone(&worker.registry);
        let Some(section) = registry
            .service_at(capture.pending.service_index)
            .and_then(|s| s.cache.as_ref())
        else {
            return;
        };
        let facts = response_facts(capture.status, &capture.response_headers);
        let entry_tags = tags(&capture.response_headers, &section.tag_header);
        let tag_dimensions: Vec<Dimension<'_>> =
            entry_tags.iter().map(|t| Dimension::Tag(t)).collect();
        let mut stamp = capture.pending.stamp.clone();
        stamp.extend(worker.generations.stamp(&tag_dimensions));
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
        );
        if let Some(entry) = entry {
            worker.store(entry, capture.pending.key.tenant.as_deref());
        }
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

/// The request attributes the filter reads once per request.
struct Request<'a> {
    headers: &'a [(String, String)],
    method: &'a str,
    path: &'a str,
    authority: &'a str,
    scheme: &'a str,
    service: &'a str,
}

fn store_policy(section: &CacheSection) -> StorePolicy {
    StorePolicy {
        default_ttl: section.default_ttl_s,
        heuristic: section.heuristic,
        max_ttl: section.max_ttl_s,
        store_set_cookie: section.store_set_cookie,
    }
}

impl Context for EdgeHttp {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let (Some(revalidation), Some(worker_rc)) = (self.revalidation.take(), self.worker.clone())
        else {
            return;
        };
        let response = headers(MapType::HttpCallResponseHeaders);
        let Some(status) = header(&response, ":status").and_then(|s| s.parse::<u16>().ok()) else {
            // The origin could not be reached by our request: let the client's go instead.
            self.pending = Some(revalidation.pending);
            let _ = hostcalls::resume_http_request();
            return;
        };
        let now = now_secs();
        let registry = Rc::clone(&worker_rc.borrow().registry);
        let Some(section) = registry
            .service_at(revalidation.pending.service_index)
            .and_then(|s| s.cache.as_ref())
        else {
            let _ = hostcalls::resume_http_request();
            return;
        };
        let name = registry.settings().cache_status_name.clone();
        let pending = &revalidation.pending;
        if status == 304 {
            let merged = merge_headers(&revalidation.entry.headers, &response);
            let facts = response_facts(revalidation.entry.status, &merged);
            let storable = storability(&pending.request, &facts, &store_policy(section), now);
            let refreshed = refresh_entry(
                &revalidation.entry,
                &response,
                &facts,
                &storable,
                pending.request_time,
                now,
            );
            let stored = refreshed.is_some();
            let entry = refreshed.unwrap_or(revalidation.entry.clone());
            {
                let mut worker = worker_rc.borrow_mut();
                worker.metrics.inc(Stat::Revalidated);
                if stored {
                    worker.store(entry.clone(), pending.key.tenant.as_deref());
                } else {
                    worker.remove_l1(&pending.key.primary);
                }
            }
            let age = current_age(&timing(&entry), now);
            let not_modified = conditional_matches(
                header(&pending.request_headers, "if-none-match"),
                header(&pending.request_headers, "if-modified-since").and_then(parse_http_date),
                entry.etag.as_deref(),
                entry.last_modified,
            );
            let status = CacheStatus {
                fwd: Some("stale"),
                fwd_status: Some(304),
                stored,
                ttl: Some(ttl_left(&entry, age)),
                key: section.debug.then_some(pending.key.primary.as_str()),
                ..CacheStatus::default()
            };
            self.serve(&entry, age, not_modified, pending.head, status, &name);
            return;
        }
        let facts = response_facts(status, &response);
        let storable = storability(&pending.request, &facts, &store_policy(section), now);
        let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let limit = usize::try_from(registry.limits().max_entry_bytes).unwrap_or(usize::MAX);
        let entry = if body.len() <= limit {
            build_entry(
                Stored {
                    key: &pending.key.primary,
                    status,
                    response_headers: &response,
                    request_headers: &pending.request_headers,
                    body: body.clone(),
                    request_time: pending.request_time,
                    response_time: now,
                    generations: pending.stamp.clone(),
                },
                &facts,
                &storable,
            )
        } else {
            None
        };
        let stored = entry.is_some();
        if let Some(entry) = entry {
            worker_rc
                .borrow_mut()
                .store(entry, pending.key.tenant.as_deref());
        }
        let member = CacheStatus {
            fwd: Some("stale"),
            fwd_status: Some(status),
            stored,
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

impl HttpContext for EdgeHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(worker_rc) = self.worker.clone() else {
            return Action::Continue;
        };
        let request_headers = headers(MapType::HttpRequestHeaders);
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
            method,
            path,
            authority,
            scheme,
            service: &service.name,
        };
        if let Some(action) = self.on_management(&worker_rc, &registry, &request, end_of_stream) {
            return action;
        }
        // Failing to tag is not worth failing the request: the request still goes through.
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            SERVICE_HEADER,
            Some(&service.name),
        );
        let Some(section) = &service.cache else {
            return Action::Continue;
        };
        let lookup_header = |name: &str| header_joined(&request_headers, name);
        let key = cache_key(
            section,
            &KeyInput {
                service: &service.name,
                scheme,
                authority,
                path,
                header: &lookup_header,
            },
        );
        match (method, key) {
            ("GET" | "HEAD", Ok(key)) => {
                // What the origin answers a cacheable request may only depend on what is keyed.
                for name in unkeyed_headers_present(section, &request_headers) {
                    let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
                }
                self.lookup(&worker_rc, service, section, key, &request)
            }
            ("POST" | "PUT" | "PATCH" | "DELETE", Ok(key)) => {
                self.invalidate = Some(vec![key.url]);
                self.origin_of_request = Some((scheme.to_string(), authority.to_string()));
                Action::Continue
            }
            (_, Err(_)) => {
                worker_rc.borrow().metrics.inc(Stat::Bypass);
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.purge_body {
            return Action::Continue;
        }
        if body_size > MAX_PURGE_BODY {
            self.purge_body = false;
            return self.reply_json((
                413,
                r#"{"error":"purge request body too large"}"#.to_string(),
            ));
        }
        if !end_of_stream {
            return Action::Pause;
        }
        self.purge_body = false;
        let body = hostcalls::get_buffer(BufferType::HttpRequestBody, 0, body_size)
            .ok()
            .flatten()
            .unwrap_or_default();
        let Some(worker_rc) = self.worker.clone() else {
            return Action::Continue;
        };
        let reply = admin::purge_request(&mut worker_rc.borrow_mut(), &body);
        self.reply_json(reply)
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        let response = headers(MapType::HttpResponseHeaders);
        let status = header(&response, ":status")
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        self.invalidate_after_success(status);
        let (Some(pending), Some(worker_rc)) = (self.pending.take(), self.worker.clone()) else {
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
            Storable::No("method")
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
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(capture) = &mut self.capture else {
            return Action::Continue;
        };
        if body_size > 0 {
            // Each chunk passes on as it comes (Continue); we keep a bounded copy to store.
            let chunk = hostcalls::get_buffer(BufferType::HttpResponseBody, 0, body_size)
                .ok()
                .flatten()
                .unwrap_or_default();
            if capture.body.len().saturating_add(chunk.len()) > capture.limit {
                self.capture = None;
                if let Some(worker) = &self.worker {
                    worker.borrow().metrics.inc(Stat::TooLarge);
                }
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
        self.finish_capture();
        Action::Continue
    }
}

//! A request replayed through the filter's decisions, in the filter's order: service, rate
//! limit, breaker, cache (key, lookup, storability, freshness, `Cache-Status`), dedup. Each
//! step calls the policy function the filter calls and names the configuration field behind
//! the decision.

use edge_filter::policy::breaker::machine::{breaker_key, Breaker};
use edge_filter::policy::cache::capture::capture_decision;
use edge_filter::policy::cache::encoding::cache_negotiates;
use edge_filter::policy::cache::exchange::{
    append_cache_status, evaluate_hit, fetched_entry, request_facts, response_facts_for, timing,
    ttl_left, CacheStatus, Fetch, FetchedEntry, Forward, HitDecision, MissKind,
};
use edge_filter::policy::cache::freshness::{
    current_age, freshness_rule, request_directs, storability, RequestDirective, Storable,
};
use edge_filter::policy::cache::generations::Generations;
use edge_filter::policy::cache::key::{cache_key, unkeyed_headers_present, CacheKey, KeyInput};
use edge_filter::policy::config_redact::REDACTED_SECRET;
use edge_filter::policy::dedup::identity::{ambiguous_id, identify};
use edge_filter::policy::dedup::signature::{decode_secret, verify, SignatureError};
use edge_filter::policy::header_list::{borrowed, header, header_joined, owned, RequestHeaders};
use edge_filter::policy::rate_limit::slot::{identity, slot_key};
use edge_filter::policy::rate_limit::verdict::{check, LimitedRequest, Verdict};
use edge_filter::policy::{
    CacheSection, Config, DedupSection, Limits, MissingTenant, RateLimitSection, Registry,
    RequestAttributes, Service, SignatureConfig, TenantConfig,
};
use serde::Serialize;

use crate::input::{check_request, parse_header_lines, split_url, without_fragment, TraceRequest};
use crate::store::FreshStore;
use crate::summary::{describe_match, key_template, service_field};

/// One decision: what the filter does at this stage, and the field that drove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    /// `service`, `rate_limit`, `breaker`, `cache`, `cache_key`, `storable`, `freshness`,
    /// `stale`, `cache_status`, `again`, `dedup`.
    pub stage: String,
    pub decision: String,
    /// The configuration field (path as in validation errors), or the HTTP field, behind it.
    pub field: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// The full key (as `Cache-Status: key=` shows it with `debug`).
    pub primary: String,
    pub tenant: Option<String>,
    /// Scheme, authority, path and the normalised query.
    pub url: String,
    /// The key headers and their values.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// `None` when the configuration is refused (see `config_error`).
    pub service: Option<String>,
    pub config_error: Option<String>,
    pub steps: Vec<Step>,
    /// Status the filter answers with itself (400, 429, …); `None`: the request goes on.
    pub local_reply: Option<u16>,
    /// The response's `Cache-Status` as the filter sets it (`None`: it sets none).
    pub cache_status: Option<String>,
    pub key: Option<KeyView>,
    /// The `Cache-Status` of the same request sent `again_after_s` later, if asked.
    pub cache_status_again: Option<String>,
    /// A request the trace refuses to explain (a header line that is not `name: value`, a
    /// method that is not a token, a status outside 100..=599): nothing is traced.
    pub input_error: Option<String>,
    /// The outcome in a line: `forwarded to the origin`, `answered here with 429`, or a reply
    /// that depends on what the trace cannot check (a webhook signature with a redacted secret).
    pub headline: String,
}

impl Trace {
    fn empty() -> Self {
        Trace {
            service: None,
            config_error: None,
            steps: Vec::new(),
            local_reply: None,
            cache_status: None,
            key: None,
            cache_status_again: None,
            input_error: None,
            headline: String::new(),
        }
    }
}

const FORWARDED: &str = "forwarded to the origin";

struct Tracer<'a> {
    config: &'a Config,
    registry: &'a Registry,
    service: &'a Service,
    field: String,
    steps: Vec<Step>,
}

impl Tracer<'_> {
    fn step(&mut self, stage: &str, field: impl Into<String>, decision: impl Into<String>) {
        self.steps.push(Step {
            stage: stage.to_string(),
            decision: decision.into(),
            field: field.into(),
        });
    }

    fn f(&self, rest: &str) -> String {
        format!("{}.{rest}", self.field)
    }
}

/// Replays `request` through the filter's decisions under `config` (its JSON text).
pub fn trace(config: &str, request: &TraceRequest) -> Trace {
    let config = match Config::parse(config.as_bytes()) {
        Ok(config) => config,
        Err(err) => {
            return Trace {
                config_error: Some(err.to_string()),
                headline: "invalid configuration".to_string(),
                ..Trace::empty()
            }
        }
    };
    if let Err(err) = check_request(request) {
        return Trace {
            headline: format!("not traced: {err}"),
            input_error: Some(err),
            ..Trace::empty()
        };
    }
    let registry = Registry::new(&config);
    let mut headers = parse_header_lines(&request.headers);
    let (url, fragment) = without_fragment(&request.url);
    let (scheme, authority, path) = split_url(url, &headers);
    let method = if request.method.trim().is_empty() {
        "GET".to_string()
    } else {
        request.method.trim().to_ascii_uppercase()
    };
    headers.retain(|(n, _)| !n.starts_with(':'));
    let mut all = vec![
        (":method".to_string(), method.clone()),
        (":path".to_string(), path.clone()),
        (":authority".to_string(), authority.clone()),
        (":scheme".to_string(), scheme.clone()),
    ];
    all.extend(headers);
    let service = registry.match_request(&RequestAttributes {
        authority: &authority,
        path: &path,
        method: &method,
    });
    let mut t = Tracer {
        config: &config,
        registry: &registry,
        service,
        field: service_field(&config, service.index),
        steps: Vec::new(),
    };
    if let Some(fragment) = fragment {
        t.step(
            "request",
            "url",
            format!(
                "the fragment #{fragment} is dropped: browsers and curl never send it (traced: {url})"
            ),
        );
    }
    explain_match(&mut t, &method, &path);
    let mut out = Trace {
        service: Some(service.name.clone()),
        headline: FORWARDED.to_string(),
        ..Trace::empty()
    };
    let all = borrowed(&all);
    let req = Req {
        method: &method,
        path: &path,
        scheme: &scheme,
        authority: &authority,
        headers: &all,
    };
    if let Some(section) = &service.rate_limit {
        if let Some(status) = rate_limit(&mut t, section, &req) {
            out.local_reply = Some(status);
            out.headline = format!("answered here with {status}");
            out.steps = t.steps;
            return out;
        }
    }
    breaker(&mut t, request);
    if let Some(section) = &service.cache {
        cache(&mut t, section, &req, request, &mut out);
    } else {
        let field = t.f("cache");
        t.step(
            "cache",
            field,
            "no cache section: the request goes to the origin, nothing is stored, no Cache-Status",
        );
    }
    if let Some(after) = request.again_after_s {
        if !t.steps.iter().any(|s| s.stage == "again") {
            let (field, why) = if service.cache.is_none() {
                (
                    t.f("cache"),
                    "the service has no cache section, nothing is stored",
                )
            } else if request.response.is_none() {
                ("response".to_string(), "no origin response is given (its status and headers), so nothing is known to be stored")
            } else {
                (
                    t.f("cache"),
                    "the response is not stored (see above): it goes to the origin again",
                )
            };
            t.step(
                "again",
                field,
                format!("the same request {after} s later: no stored response to evaluate: {why}"),
            );
        }
    }
    if let Some(section) = &service.dedup {
        match dedup(&mut t, section, &req, request) {
            Reply::Forward => {}
            Reply::Local(status) => {
                out.local_reply = Some(status);
                out.headline = format!("answered here with {status}");
            }
            Reply::Unless(status, condition) => {
                out.headline =
                    format!("answered here with {status} unless {condition}; then {FORWARDED}");
            }
        }
    }
    out.steps = t.steps;
    out
}

/// What the filter does with a request the trace cannot fully decide.
enum Reply {
    Forward,
    Local(u16),
    /// This status unless the condition holds (which the trace cannot check).
    Unless(u16, String),
}

struct Req<'a> {
    method: &'a str,
    path: &'a str,
    scheme: &'a str,
    authority: &'a str,
    headers: &'a RequestHeaders<'a>,
}

fn explain_match(t: &mut Tracer<'_>, method: &str, path: &str) {
    let skipped: Vec<String> = t
        .config
        .services
        .iter()
        .take(t.service.index)
        .map(|s| s.name.clone())
        .collect();
    let tried = if skipped.is_empty() {
        String::new()
    } else {
        format!(
            " (not {}: their match sections refuse it)",
            skipped.join(", ")
        )
    };
    let index = t.service.index;
    let (field, why) = match t.config.services.get(index) {
        Some(s) => (
            format!("services[{index}].match"),
            format!(
                "{method} {path} matches {}: {}{tried}",
                t.service.name,
                describe_match(Some(&s.match_))
            ),
        ),
        None => (
            "default_service".to_string(),
            format!(
                "{method} {path} matches no service{tried}: the default service {}",
                t.service.name
            ),
        ),
    };
    t.step("service", field, why);
}

fn tenant_field(tenant: &TenantConfig) -> &'static str {
    if tenant.header.is_some() {
        "header"
    } else if tenant.query.is_some() {
        "query"
    } else {
        "path_segment"
    }
}

/// The rate limiter on an empty store (a freshly started edge): `Some(status)` when it answers.
fn rate_limit(t: &mut Tracer<'_>, section: &RateLimitSection, req: &Req<'_>) -> Option<u16> {
    let limited = LimitedRequest {
        service: &t.service.name,
        method: req.method,
        path: req.path,
        headers: req.headers,
    };
    let limits: &Limits = t.registry.limits();
    let verdict = check(
        &FreshStore::default(),
        section,
        limits,
        &limited,
        0,
        &mut |_| {},
    );
    let tenant_source = format!("rate_limit.tenant.{}", tenant_field(&section.tenant));
    let tenant = match &verdict {
        Verdict::Admit { tenant, .. } | Verdict::Limit { tenant, .. } => tenant.clone(),
        Verdict::Refuse(body) => {
            let field = if section.missing_tenant == MissingTenant::Reject
                && body.contains("needs a tenant")
            {
                t.f("rate_limit.missing_tenant")
            } else {
                t.f(&tenant_source)
            };
            t.step("rate_limit", field, format!("refused with 400: {body}"));
            return Some(400);
        }
    };
    let named = (tenant != "-").then_some(tenant.as_str());
    let who = identity(&t.service.name, named);
    let slot = slot_key(&who, limits.rate_limit_slots);
    let limit = section.limit_for(named);
    let limit_field = match named.filter(|n| section.overrides.contains_key(*n)) {
        Some(n) => t.f(&format!("rate_limit.overrides.{n}")),
        None => t.f("rate_limit.requests_per_second"),
    };
    let cost = section.cost_of(req.method);
    let cost_field = if section.cost.contains_key(req.method) {
        t.f(&format!("rate_limit.cost.{}", req.method))
    } else {
        t.f("rate_limit.cost")
    };
    let bucket = match named {
        Some(tenant) => format!("tenant {tenant} (from {})", t.f(&tenant_source)),
        None => "the anonymous bucket (no tenant id)".to_string(),
    };
    t.step(
        "rate_limit",
        t.f(&tenant_source),
        format!(
            "bucket of {bucket}: identity \"{}\" in shared-data slot {slot} (limits.rate_limit_slots = {})",
            who.replace('\n', "\\n"),
            limits.rate_limit_slots
        ),
    );
    t.step(
        "rate_limit",
        limit_field,
        format!(
            "limit {} requests/s, burst {}",
            limit.requests_per_second, limit.burst
        ),
    );
    let (decision, status) = match verdict {
        Verdict::Admit { .. } => (
            format!("costs {cost} token(s); a full bucket admits it (the first request on a fresh edge)"),
            None,
        ),
        _ => (
            format!("costs {cost} token(s), more than the burst holds: 429"),
            Some(429),
        ),
    };
    t.step("rate_limit", cost_field, decision);
    status
}

fn breaker(t: &mut Tracer<'_>, request: &TraceRequest) {
    let Some(section) = &t.service.breaker else {
        let field = t.f("breaker");
        t.step(
            "breaker",
            field,
            "no breaker: origin failures never refuse requests",
        );
        return;
    };
    let key = breaker_key(&t.service.name);
    // A fresh edge's breaker: what shared data holds before any request (nothing).
    let fresh = Breaker::decode(None);
    let threshold = fresh.threshold(section) * 100.0;
    t.step(
        "breaker",
        t.f("breaker"),
        format!(
            "counts for the breaker {key}: closed on a fresh edge; trips above {threshold:.0}% failures of at least {} requests in {} s (adaptive between min_failure_rate {:.0}% and max_failure_rate {:.0}%), open {} ms the first time",
            section.min_requests,
            section.window_s,
            section.min_failure_rate * 100.0,
            section.max_failure_rate * 100.0,
            section.open_base_ms
        ),
    );
    if let Some(response) = &request.response {
        let failed = section.is_failure(response.status);
        let field = t.f("breaker.failure_statuses");
        t.step(
            "breaker",
            field,
            format!(
                "the origin's {} counts as a {}",
                response.status,
                if failed { "failure" } else { "success" }
            ),
        );
    }
}

fn key_view(section: &CacheSection, key: &CacheKey, headers: &RequestHeaders) -> KeyView {
    KeyView {
        primary: key.primary.clone(),
        tenant: key.tenant.clone(),
        url: key.url.clone(),
        headers: section
            .key
            .headers
            .iter()
            .map(|name| {
                let value = header(headers, name).unwrap_or_default().to_string();
                (name.clone(), value)
            })
            .collect(),
    }
}

fn cache(
    t: &mut Tracer<'_>,
    section: &CacheSection,
    req: &Req<'_>,
    request: &TraceRequest,
    out: &mut Trace,
) {
    let key = cache_key(
        section,
        &KeyInput {
            service: &t.service.name,
            scheme: req.scheme,
            authority: req.authority,
            path: req.path,
            headers: req.headers,
            non_utf8: &[],
        },
    );
    let key = match (req.method, key) {
        (_, Err(reason)) => {
            let field = match reason {
                r if r.ends_with("-tenant") => t.f("cache.tenant"),
                r if r.contains("key-header") => t.f("cache.key.headers"),
                "ambiguous-query" => t.f("cache.key.query"),
                "bad-authority" => ":authority".to_string(),
                _ => ":path".to_string(),
            };
            t.step(
                "cache",
                field,
                format!("bypass ({reason}): no key can be derived safely, the request goes to the origin uncached, no Cache-Status"),
            );
            return;
        }
        ("GET" | "HEAD", Ok(key)) => key,
        ("POST" | "PUT" | "PATCH" | "DELETE", Ok(key)) => {
            t.step(
                "cache",
                t.f("cache"),
                format!(
                    "{} is unsafe: after a 2xx or 3xx answer, entries for {} are invalidated (and its Location / Content-Location)",
                    req.method, key.url
                ),
            );
            return;
        }
        (_, Ok(_)) => {
            t.step(
                "cache",
                ":method",
                format!("{} is never cached", req.method),
            );
            return;
        }
    };
    let view = key_view(section, &key, req.headers);
    t.step(
        "cache_key",
        t.f("cache.tenant"),
        match &key.tenant {
            Some(tenant) => format!("tenant {tenant}: its own key namespace"),
            None if section.tenant.is_some() => {
                "no tenant id in the request: the shared namespace".to_string()
            }
            None => "no tenant section: one namespace for everyone".to_string(),
        },
    );
    t.step(
        "cache_key",
        t.f("cache.key.query"),
        format!("normalised URL {}", key.url),
    );
    if !section.key.headers.is_empty() {
        let pairs: Vec<String> = view
            .headers
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect();
        t.step(
            "cache_key",
            t.f("cache.key.headers"),
            format!("key headers {}", pairs.join(", ")),
        );
    }
    let unkeyed: Vec<&str> = unkeyed_headers_present(section, req.headers).collect();
    if !unkeyed.is_empty() {
        t.step(
            "cache_key",
            t.f("cache.key.headers"),
            format!(
                "removed before the origin (not keyed, could poison the cache): {}",
                unkeyed.join(", ")
            ),
        );
    }
    t.step(
        "cache_key",
        t.f("cache"),
        format!(
            "key \"{}\" ({})",
            key.primary.replace('\n', "|"),
            key_template(&t.service.name, section)
        ),
    );
    out.key = Some(view);
    let facts = request_facts(req.method, req.headers);
    if request_directs(&facts.cache_control, facts.pragma_no_cache, 0, 0)
        == RequestDirective::Bypass
    {
        t.step(
            "cache",
            "cache-control (request)",
            "bypass: the request says no-store; no Cache-Status",
        );
        return;
    }
    t.step(
        "cache",
        t.f("cache"),
        "lookup in L1 then L2: nothing stored yet (a fresh edge): fwd=uri-miss, to the origin",
    );
    if section.coalesce && req.method == "GET" {
        t.step(
            "cache",
            t.f("cache.coalesce"),
            format!(
                "concurrent misses for this key become one origin request, across workers (a lease of {} ms, {})",
                section.lease_ms,
                t.f("cache.lease_ms")
            ),
        );
    }
    if cache_negotiates(section) && header(req.headers, "accept-encoding").is_some() {
        t.step(
            "cache",
            t.f("cache.key.headers"),
            "accept-encoding removed before the origin: it sends the identity body, the cache encodes it per client (unless accept-encoding is a key header)",
        );
    }
    let name = t.registry.settings().cache_status_name.clone();
    let debug_key = section.debug.then_some(key.primary.as_str());
    let Some(response) = &request.response else {
        let status = CacheStatus {
            fwd: Some(Forward::UriMiss),
            key: debug_key,
            ..CacheStatus::default()
        }
        .render(&name);
        t.step(
            "cache_status",
            "cache_status_name",
            format!("{status} (give the origin's response to see whether it is stored)"),
        );
        out.cache_status = Some(status);
        return;
    };
    let response_headers = parse_header_lines(&response.headers);
    let now = request.now.unwrap_or_else(|| {
        header(&response_headers, "date")
            .and_then(edge_filter::policy::cache::http_date::parse_http_date)
            .unwrap_or(0)
    });
    let targeted = section.targeted_cache_control.as_deref();
    let rfacts = response_facts_for(response.status, &response_headers, targeted);
    let policy = section.store_policy();
    let storable = if req.method == "HEAD" {
        t.step(
            "storable",
            ":method",
            "HEAD: the response has no body to store",
        );
        None
    } else {
        Some(storability(&facts, &rfacts, &policy, now))
    };
    let limit = t.registry.limits().max_entry_bytes;
    // Envoy and the host send a Content-Length; the body's size stands in for a missing one.
    let length = header(&response_headers, "content-length")
        .and_then(|l| l.trim().parse::<u64>().ok())
        .or(response.body_bytes);
    let decision = capture_decision(
        matches!(storable, Some(Storable::Yes { .. })),
        length.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
        usize::try_from(limit).unwrap_or(usize::MAX),
        length == Some(0),
    );
    let stored = decision.stored;
    match &storable {
        Some(Storable::No(reason)) => {
            let field = match reason.as_str() {
                "set-cookie" => t.f("cache.store_set_cookie"),
                "method" => ":method".to_string(),
                "authorization" => "authorization (request)".to_string(),
                "vary-star" => "vary".to_string(),
                "status" => ":status".to_string(),
                "no-freshness" => t.f("cache.default_ttl_s"),
                _ => "cache-control".to_string(),
            };
            t.step(
                "storable",
                field,
                format!("not stored: {}", not_storable_words(reason.as_str())),
            );
        }
        Some(Storable::Yes {
            freshness_lifetime,
            must_revalidate,
            stale_while_revalidate,
            stale_if_error,
        }) => {
            if decision.capture {
                let announced = if stored {
                    ""
                } else {
                    " (no Content-Length: stored once the body has streamed, but Cache-Status cannot say so yet)"
                };
                t.step(
                    "storable",
                    t.f("cache"),
                    format!(
                        "stored: a shared cache may keep this {} response{announced}",
                        response.status
                    ),
                );
            } else {
                t.step(
                    "storable",
                    "limits.max_entry_bytes",
                    format!(
                        "not stored: {} bytes is more than limits.max_entry_bytes ({limit})",
                        length.unwrap_or(0)
                    ),
                );
            }
            freshness(
                t,
                section,
                (&rfacts, &policy, now),
                *freshness_lifetime,
                *must_revalidate,
            );
            let defaults = section.stale_defaults();
            let window =
                |own: Option<u64>, default: Option<u64>, directive: &str, field: &str| match (
                    own, default,
                ) {
                    (Some(s), _) => (
                        format!("{s} s ({directive} in the response)"),
                        "cache-control".to_string(),
                    ),
                    (None, Some(s)) => (format!("{s} s (the service's default)"), t.f(field)),
                    (None, None) => ("none".to_string(), t.f(field)),
                };
            let (w, wf) = window(
                *stale_while_revalidate,
                defaults.stale_while_revalidate,
                "stale-while-revalidate",
                "cache.stale_while_revalidate_s",
            );
            let (e, ef) = window(
                *stale_if_error,
                defaults.stale_if_error,
                "stale-if-error",
                "cache.stale_if_error_s",
            );
            let blocked = if *must_revalidate {
                " — but must-revalidate (or s-maxage/no-cache) forbids serving it stale"
            } else {
                ""
            };
            t.step(
                "stale",
                wf,
                format!("stale-while-revalidate window: {w}{blocked}"),
            );
            t.step("stale", ef, format!("stale-if-error window: {e}{blocked}"));
        }
        None => {}
    }
    let member = CacheStatus {
        fwd: Some(Forward::UriMiss),
        stored,
        key: debug_key,
        ..CacheStatus::default()
    }
    .render(&name);
    let value = append_cache_status(
        header_joined(&response_headers, "cache-status").as_deref(),
        &member,
    );
    t.step(
        "cache_status",
        "cache_status_name",
        format!("Cache-Status: {value}"),
    );
    out.cache_status = Some(value);
    if let (Some(after), true) = (request.again_after_s, decision.capture) {
        again(
            t,
            section,
            req,
            (response, &response_headers),
            (&key, &name),
            now,
            after,
            out,
        );
    }
}

fn not_storable_words(reason: &str) -> &'static str {
    match reason {
        "method" => "only GET responses are stored",
        "no-store" => "Cache-Control: no-store (request or response)",
        "status" => "this status is not stored without explicit freshness (or never)",
        "private" => "Cache-Control: private",
        "authorization" => "the request has Authorization and the response does not allow sharing it (public, s-maxage, must-revalidate)",
        "set-cookie" => "the response sets a cookie and cache.store_set_cookie is off",
        "vary-star" => "Vary: *",
        "no-freshness" => "no max-age, s-maxage, Expires, cache.default_ttl_s, nor Last-Modified for a heuristic",
        _ => "not storable",
    }
}

fn freshness(
    t: &mut Tracer<'_>,
    section: &CacheSection,
    (rfacts, policy, now): (
        &edge_filter::policy::cache::freshness::ResponseFacts,
        &edge_filter::policy::cache::freshness::StorePolicy,
        u64,
    ),
    lifetime: u64,
    must_revalidate: bool,
) {
    let rule = freshness_rule(rfacts, policy, now);
    let (field, how) = match rule {
        Some((rule, raw)) => {
            let field = match rule.as_str() {
                "default-ttl" => t.f("cache.default_ttl_s"),
                "heuristic" => t.f("cache.heuristic"),
                "expires" | "invalid-expires" => "expires".to_string(),
                _ => section
                    .targeted_cache_control
                    .clone()
                    .unwrap_or_else(|| "cache-control".to_string()),
            };
            let capped = if raw > lifetime && lifetime == section.max_ttl_s {
                format!(", capped at {} s by {}", lifetime, t.f("cache.max_ttl_s"))
            } else if raw != lifetime {
                " — no-cache: stored, but revalidated before every use".to_string()
            } else {
                String::new()
            };
            (field, format!("{raw} s from {}{capped}", rule.as_str()))
        }
        None => ("cache-control".to_string(), "0 s".to_string()),
    };
    let revalidate = if must_revalidate {
        "; must be revalidated once stale"
    } else {
        ""
    };
    t.step(
        "freshness",
        field,
        format!("fresh for {lifetime} s: {how}{revalidate}"),
    );
}

#[allow(clippy::too_many_arguments)]
fn again(
    t: &mut Tracer<'_>,
    section: &CacheSection,
    req: &Req<'_>,
    (response, response_headers): (&crate::input::OriginResponse, &[(String, String)]),
    (key, name): (&CacheKey, &str),
    now: u64,
    after: u64,
    out: &mut Trace,
) {
    let facts = request_facts(req.method, req.headers);
    let policy = section.store_policy();
    let generations = Generations::default();
    let body = vec![0; usize::try_from(response.body_bytes.unwrap_or(0)).unwrap_or(0)];
    let request_headers = owned(req.headers);
    let fetch = Fetch {
        key: &key.primary,
        old: None,
        request: &facts,
        request_headers: &request_headers,
        policy: &policy,
        defaults: section.stale_defaults(),
        request_time_ms: now.saturating_mul(1000),
        response_time_ms: now.saturating_mul(1000),
        max_body: usize::MAX,
        generations: generations.stamp(&[]),
    };
    let FetchedEntry::Replaced(entry) =
        fetched_entry(&fetch, response.status, response_headers, body)
    else {
        return;
    };
    let later_ms = now.saturating_add(after).saturating_mul(1000);
    let debug_key = section.debug.then_some(key.primary.as_str());
    let (status, words) = match evaluate_hit(&entry, req.headers, &facts, &generations, later_ms) {
        HitDecision::Serve { age, .. } => (
            CacheStatus { hit: true, ttl: Some(ttl_left(&entry, age)), key: debug_key, ..CacheStatus::default() },
            format!("a hit, {age} s old"),
        ),
        HitDecision::ServeStale { age, .. } => (
            CacheStatus { hit: true, ttl: Some(ttl_left(&entry, age)), key: debug_key, detail: Some("stale-while-revalidate"), ..CacheStatus::default() },
            format!("stale ({age} s old) but within stale-while-revalidate: served, refreshed in the background"),
        ),
        HitDecision::Revalidate => {
            // The origin is asked with the entry's validators; it is assumed to answer with the
            // same response again, which replaces the entry (or is relayed when not storable).
            let revalidation = Fetch {
                old: Some(&entry),
                request_time_ms: later_ms,
                response_time_ms: later_ms,
                ..fetch
            };
            let body = vec![0; usize::try_from(response.body_bytes.unwrap_or(0)).unwrap_or(0)];
            let replaced = match fetched_entry(&revalidation, response.status, response_headers, body) {
                FetchedEntry::Replaced(new) | FetchedEntry::Refreshed(new) => {
                    let age = current_age(&timing(&new), later_ms);
                    Some(ttl_left(&new, age))
                }
                FetchedEntry::NotStored => None,
            };
            (
                CacheStatus {
                    fwd: Some(Forward::Stale),
                    fwd_status: Some(response.status),
                    stored: replaced.is_some(),
                    ttl: replaced,
                    key: debug_key,
                    ..CacheStatus::default()
                },
                "stale (or the request asks to revalidate): the origin is asked with the entry's validators; answering with the same response again, it replaces the entry".to_string(),
            )
        }
        HitDecision::Miss(MissKind::VaryMismatch) => (
            CacheStatus { fwd: Some(Forward::VaryMiss), key: debug_key, ..CacheStatus::default() },
            "another variant (Vary)".to_string(),
        ),
        HitDecision::Miss(MissKind::Purged) => (
            CacheStatus { fwd: Some(Forward::Miss), key: debug_key, ..CacheStatus::default() },
            "purged".to_string(),
        ),
    };
    let rendered = status.render(name);
    t.step(
        "again",
        t.f("cache"),
        format!("the same request {after} s later: {words}; Cache-Status: {rendered}"),
    );
    out.cache_status_again = Some(rendered);
}

/// Dedup for a delivery (not GET/HEAD): the signature check, its identity, or the refusal.
fn dedup(
    t: &mut Tracer<'_>,
    section: &DedupSection,
    req: &Req<'_>,
    request: &TraceRequest,
) -> Reply {
    let body = request.body.as_bytes();
    if matches!(req.method, "GET" | "HEAD") {
        let field = t.f("dedup");
        t.step(
            "dedup",
            field,
            format!("{} is not deduplicated (reads never are)", req.method),
        );
        return Reply::Forward;
    }
    let mut unless = None;
    if let Some(signature) = &section.signature {
        match check_signature(t, signature, req, body, request.now) {
            Reply::Forward => {}
            Reply::Local(status) => return Reply::Local(status),
            reply @ Reply::Unless(..) => unless = Some(reply),
        }
    }
    if ambiguous_id(section, req.headers) {
        t.step(
            "dedup",
            t.f("dedup.identity"),
            "refused with 400: an id header came twice with different values",
        );
        return Reply::Local(400);
    }
    match identify(section, req.method, req.path, req.headers, body) {
        Some(id) => {
            t.step(
                "dedup",
                t.f("dedup.identity"),
                format!(
                    "identity {}: the first delivery goes to the origin; a duplicate within {} s ({}) gets its result replayed",
                    id.id,
                    section.retention_s,
                    t.f("dedup.retention_s")
                ),
            );
        }
        None => {
            t.step(
                "dedup",
                t.f("dedup.identity"),
                "no identity source applies: the request passes undeduplicated",
            );
        }
    }
    unless.unwrap_or(Reply::Forward)
}

/// The webhook signature as the filter checks it (`policy::dedup::signature::verify`, 401 when
/// it fails). With the real secret the trace verifies it; `now` unknown, the signature is
/// checked at the delivery's own timestamp and the tolerance is stated. With the redacted
/// placeholder secret (the page served by the edge) only missing headers are decided.
fn check_signature(
    t: &mut Tracer<'_>,
    signature: &SignatureConfig,
    req: &Req<'_>,
    body: &[u8],
    now: Option<u64>,
) -> Reply {
    let field = t.f("dedup.signature");
    let names = ["webhook-id", "webhook-timestamp", "webhook-signature"];
    let [id, timestamp, signed] = names.map(|name| header(req.headers, name));
    let missing: Vec<&str> = names
        .iter()
        .zip([id, timestamp, signed])
        .filter_map(|(name, value)| value.is_none().then_some(*name))
        .collect();
    if !missing.is_empty() {
        t.step(
            "dedup",
            field,
            format!(
                "refused with 401: a signed delivery needs webhook-id, webhook-timestamp and webhook-signature; missing: {}",
                missing.join(", ")
            ),
        );
        return Reply::Local(401);
    }
    let key = (signature.secret != REDACTED_SECRET)
        .then(|| decode_secret(&signature.secret))
        .flatten();
    let Some(key) = key else {
        t.step(
            "dedup",
            field,
            "401 unless the webhook signature verifies: the secret is redacted here, so the trace does not check it",
        );
        return Reply::Unless(
            401,
            "the webhook signature verifies (not checked: the secret is redacted)".to_string(),
        );
    };
    let sent = timestamp.and_then(|ts| ts.trim().parse::<u64>().ok());
    let at = now.or(sent).unwrap_or(0);
    let tolerance = signature.tolerance_s;
    let verdict = verify(&key, id, timestamp, signed, body, at, tolerance);
    let refusal = match verdict {
        Ok(()) => {
            let when = match (now, sent) {
                (Some(now), _) => format!("at {now}, within {tolerance} s of webhook-timestamp"),
                (None, Some(sent)) => format!(
                    "the edge still refuses it (401) unless it arrives within {tolerance} s of webhook-timestamp {sent} ({}.tolerance_s)",
                    field
                ),
                (None, None) => String::new(),
            };
            t.step(
                "dedup",
                field,
                format!("the webhook signature verifies; {when}"),
            );
            return Reply::Forward;
        }
        Err(SignatureError::Missing) => {
            "webhook-id, webhook-timestamp or webhook-signature is missing"
        }
        Err(SignatureError::BadTimestamp) => "webhook-timestamp is not Unix seconds",
        Err(SignatureError::Expired) => "webhook-timestamp is further from now than the tolerance",
        Err(SignatureError::Invalid) => {
            "no v1 signature in webhook-signature matches the body under the secret"
        }
    };
    t.step("dedup", field, format!("refused with 401: {refusal}"));
    Reply::Local(401)
}

//! From HTTP messages to cache decisions: facts from headers, whether a stored entry may answer
//! a request, the headers a hit carries, and the entry a response becomes.

use super::cache_control::CacheControl;
use super::encoding::{encodable, names_variant, negotiate, variant_etag, Coding};
use super::entry::Entry;
use super::freshness::{
    current_age, is_fresh, request_directs, RequestDirective, RequestFacts, ResponseFacts,
    Storable, Timing, Vary,
};
use super::generations::{Generations, MAX_TAGS_PER_ENTRY};
use super::http_date::parse_http_date;
use super::reply_block::ReplyBlock;
use super::variants::{is_index, selecting_value, selects};
use crate::policy::decimal::push_decimal;
use crate::policy::header_list::{header, header_joined, header_members, HeaderPair, Headers};

fn has_pragma_no_cache(headers: &[impl HeaderPair]) -> bool {
    header_members(headers, "pragma").any(|d| d.eq_ignore_ascii_case("no-cache"))
}

pub fn request_facts(method: &str, headers: &[impl HeaderPair]) -> RequestFacts {
    RequestFacts {
        method: method.to_string(),
        cache_control: CacheControl::parse(
            &header_joined(headers, "cache-control").unwrap_or_default(),
        ),
        pragma_no_cache: has_pragma_no_cache(headers),
        has_authorization: header(headers, "authorization").is_some(),
    }
}

/// Facts of a response; a `206` with one byte range counts as the `200` it is part of (it may be
/// stored as a partial entry, see `range.rs`).
pub fn response_facts(status: u16, headers: &Headers) -> ResponseFacts {
    response_facts_for(status, headers, None)
}

/// [`response_facts`] for a service obeying the targeted field `targeted` (RFC 9213) ahead of
/// `CDN-Cache-Control`: a valid one replaces `Cache-Control`, `Expires` and `Pragma`.
pub fn response_facts_for(status: u16, headers: &Headers, targeted: Option<&str>) -> ResponseFacts {
    let facts = ResponseFacts {
        status: super::range::storable_status(status, headers),
        cache_control: CacheControl::parse(
            &header_joined(headers, "cache-control").unwrap_or_default(),
        ),
        date: header(headers, "date").and_then(parse_http_date),
        expires: header(headers, "expires").map(parse_http_date),
        last_modified: header(headers, "last-modified").and_then(parse_http_date),
        age: header(headers, "age").map(super::age::parse_age),
        has_set_cookie: header(headers, "set-cookie").is_some(),
        vary: Vary::parse(header_joined(headers, "vary").as_deref()),
        etag: header(headers, "etag").map(str::to_string),
        pragma_no_cache: has_pragma_no_cache(headers),
    };
    match super::targeted::select(headers, targeted) {
        Some(cache_control) => ResponseFacts {
            cache_control,
            expires: None,
            pragma_no_cache: false,
            ..facts
        },
        None => facts,
    }
}

/// Why a stored entry did not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissKind {
    /// A purge or an unsafe request invalidated it.
    Purged,
    /// It was stored for other values of the headers its response varies on.
    VaryMismatch,
}

/// What a stored entry can do for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitDecision {
    /// Answer from the entry (with 304 when the request's conditionals match).
    Serve {
        age: u64,
        not_modified: bool,
    },
    /// Stale, but within its stale-while-revalidate window: answer now, refresh in the
    /// background.
    ServeStale {
        age: u64,
        not_modified: bool,
    },
    /// Ask the origin whether the entry is still good (stale, or the request asks so).
    Revalidate,
    Miss(MissKind),
}

/// Whether `entry` may answer a request with these headers at `now_ms` (Unix milliseconds;
/// RFC 9111 §4).
pub fn evaluate_hit(
    entry: &Entry,
    request_headers: &[impl HeaderPair],
    request: &RequestFacts,
    generations: &Generations,
    now_ms: u64,
) -> HitDecision {
    if !generations.is_current(&entry.generations) {
        return HitDecision::Miss(MissKind::Purged);
    }
    // A vary index is no answer; a variant answers the requests that select it.
    if is_index(entry) || !selects(&entry.vary, request_headers) {
        return HitDecision::Miss(MissKind::VaryMismatch);
    }
    let age = current_age(&timing(entry), now_ms);
    let directive = request_directs(
        &request.cache_control,
        request.pragma_no_cache,
        entry.freshness_lifetime,
        age,
    );
    if directive != RequestDirective::Normal
        && !super::immutable::answers_reload(entry, request, age)
    {
        return HitDecision::Revalidate;
    }
    let not_modified = entry_not_modified(entry, request_headers);
    if is_fresh(entry.freshness_lifetime, age) {
        return HitDecision::Serve { age, not_modified };
    }
    if stale_window_open(entry, age, entry.stale_while_revalidate) {
        return HitDecision::ServeStale { age, not_modified };
    }
    HitDecision::Revalidate
}

/// Whether a request's own conditionals match `entry` (then it gets a `304`). `If-None-Match`
/// is compared (weakly) with the validator of the representation this request would get: the
/// weak validator of its coding when the entry answers it encoded, else the stored one.
pub fn entry_not_modified(entry: &Entry, request_headers: &[impl HeaderPair]) -> bool {
    let if_none_match = header(request_headers, "if-none-match");
    let coding = if_none_match.and_then(|_| answer_coding(entry, request_headers));
    if let (Some(coding), Some(inm)) = (coding, if_none_match) {
        let any = inm.split(',').any(|member| member.trim() == "*");
        return any
            || entry
                .etag
                .as_deref()
                .is_some_and(|etag| names_variant(inm, etag, &[coding]));
    }
    super::conditional::not_modified(request_headers, entry)
}

/// Whether a stale entry is stale by at most `window_s` seconds (the rate limiter's
/// `max_stale_when_limited_s` bound); `must-revalidate`, `proxy-revalidate`, `s-maxage` and
/// `no-cache` forbid serving it stale (RFC 9111 §4.2.4). RFC 5861 windows use
/// [`stale_window_open`], which ends one second earlier.
pub fn within_stale_window(entry: &Entry, age_s: u64, window_s: Option<u64>) -> bool {
    let staleness = age_s.saturating_sub(entry.freshness_lifetime);
    !entry.must_revalidate && window_s.is_some_and(|window_s| staleness <= window_s)
}

/// Whether a stale entry is still within a stale-while-revalidate or stale-if-error window of
/// `window_s` seconds: the window opens when the entry becomes stale and is over `window_s`
/// seconds later (like freshness: fresh while the age is below the lifetime).
pub fn stale_window_open(entry: &Entry, age_s: u64, window_s: Option<u64>) -> bool {
    let staleness = age_s.saturating_sub(entry.freshness_lifetime);
    !entry.must_revalidate && window_s.is_some_and(|window_s| staleness < window_s)
}

/// Whether the entry may answer instead of an origin failure (stale-if-error).
pub fn may_serve_if_error(entry: &Entry, age_s: u64) -> bool {
    is_fresh(entry.freshness_lifetime, age_s)
        || stale_window_open(entry, age_s, entry.stale_if_error)
}

pub fn timing(entry: &Entry) -> Timing {
    Timing {
        request_time: entry.request_time,
        request_subsec_ms: entry.request_subsec_ms,
        response_time: entry.response_time,
        response_subsec_ms: entry.response_subsec_ms,
        date: entry.date,
        age_header: entry.age_header,
    }
}

/// Seconds of freshness left (negative when stale), for `Cache-Status: ttl=`.
pub fn ttl_left(entry: &Entry, age_s: u64) -> i64 {
    let lifetime = i64::try_from(entry.freshness_lifetime).unwrap_or(i64::MAX);
    let age_s = i64::try_from(age_s).unwrap_or(i64::MAX);
    lifetime.saturating_sub(age_s)
}

/// Headers that describe one connection, never a stored response (RFC 9110 §7.6.1), plus those
/// the cache recomputes or must never replay.
const NOT_STORED: [&str; 14] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "content-length",
    "age",
    "set-cookie",
    "cache-status",
    "x-envoy-upstream-service-time",
];

/// The response headers worth storing.
pub fn stored_headers(headers: &Headers) -> Vec<(String, String)> {
    let connection_listed: Vec<String> = header_joined(headers, "connection")
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !name.starts_with(':')
                && !NOT_STORED.contains(&name.as_str())
                && !connection_listed.contains(&name)
        })
        .cloned()
        .collect()
}

/// Origin response headers relayed to the client in a reply the filter sends itself (after a
/// revalidation): framing headers go, everything else — `Set-Cookie` included — stays.
pub fn relayed_headers(headers: &Headers) -> Vec<(String, String)> {
    const FRAMING: [&str; 5] = [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
    ];
    headers
        .iter()
        .filter(|(name, _)| {
            !name.starts_with(':') && !FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f))
        })
        .cloned()
        .collect()
}

/// Appends this cache's member to an existing `Cache-Status` list (RFC 9211 §2).
pub fn append_cache_status(existing: Option<&str>, member: &str) -> String {
    match existing {
        Some(existing) if !existing.trim().is_empty() => format!("{existing}, {member}"),
        _ => member.to_string(),
    }
}

/// The content coding an answer from `entry` uses for a request with these headers (`None`:
/// identity), of those the entry holds.
pub fn answer_coding(entry: &Entry, request_headers: &[impl HeaderPair]) -> Option<Coding> {
    if entry.encoded.is_empty() {
        return None;
    }
    let available: Vec<Coding> = entry.encoded.iter().map(|(c, _)| *c).collect();
    negotiate(
        header_joined(request_headers, "accept-encoding").as_deref(),
        &available,
    )
}

/// Whether a header list's `Vary` already covers `Accept-Encoding` (by name, or `*`).
fn lists_accept_encoding(headers: &Headers) -> bool {
    header_members(headers, "vary").any(|n| n == "*" || n.eq_ignore_ascii_case("accept-encoding"))
}

/// Whether an identity answer from `entry` must add `Vary: Accept-Encoding` to its stored
/// headers.
fn adds_vary_accept_encoding(entry: &Entry) -> bool {
    varies_by_coding(entry) && !lists_accept_encoding(&entry.headers)
}

/// The headers of a whole identity answer from `entry`, as stored (minus `Accept-Ranges` and
/// `Content-Range` for a 200, which gets its own `Accept-Ranges: bytes`); `adds_vary` tells
/// whether `Vary: Accept-Encoding` must follow. Made on the first such answer, then reused.
pub fn identity_reply(entry: &Entry) -> &ReplyBlock {
    entry.identity_reply.get_or_init(|| {
        let skip: &[&str] = if entry.status == 200 {
            &["accept-ranges", "content-range"]
        } else {
            &[]
        };
        ReplyBlock::new(&entry.headers, skip, adds_vary_accept_encoding(entry))
    })
}

/// Whether answers from `entry` depend on `Accept-Encoding` (it has, or may get, encoded bodies).
pub fn varies_by_coding(entry: &Entry) -> bool {
    !entry.encoded.is_empty() || encodable(&entry.headers, &entry.body)
}

/// The body an answer in `coding` sends.
pub fn answer_body(entry: &Entry, coding: Option<Coding>) -> &[u8] {
    coding
        .and_then(|c| entry.encoded.iter().find(|(e, _)| *e == c))
        .map_or(entry.body.as_slice(), |(_, bytes)| bytes.as_slice())
}

/// An entry with encoded bodies varies by `Accept-Encoding`; an encoded answer says its coding
/// and carries its own weak validator (the identity body keeps the stored one).
fn describe_coding(headers: &mut Vec<(String, String)>, entry: &Entry, coding: Option<Coding>) {
    if !varies_by_coding(entry) {
        return;
    }
    if !lists_accept_encoding(headers) {
        headers.push(("vary".to_string(), "accept-encoding".to_string()));
    }
    let Some(coding) = coding else {
        return;
    };
    headers.retain(|(n, _)| {
        !n.eq_ignore_ascii_case("content-length") && !n.eq_ignore_ascii_case("content-encoding")
    });
    headers.push(("content-encoding".to_string(), coding.as_str().to_string()));
    if let Some(etag) = &entry.etag {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("etag"));
        headers.push(("etag".to_string(), variant_etag(etag, coding)));
    }
}

/// Headers of a response served from `entry` in `coding`.
pub fn hit_headers(
    entry: &Entry,
    coding: Option<Coding>,
    age_s: u64,
    cache_status: &str,
) -> Vec<(String, String)> {
    let mut headers = entry.headers.clone();
    describe_coding(&mut headers, entry, coding);
    headers.push(("age".to_string(), age_s.to_string()));
    headers.push(("cache-status".to_string(), cache_status.to_string()));
    headers
}

/// Headers of a 304 served from `entry` (RFC 9110 §15.4.5).
pub fn not_modified_headers(
    entry: &Entry,
    coding: Option<Coding>,
    age_s: u64,
    cache_status: &str,
) -> Vec<(String, String)> {
    const KEPT: [&str; 6] = [
        "cache-control",
        "content-location",
        "date",
        "etag",
        "expires",
        "vary",
    ];
    let mut headers: Vec<(String, String)> = entry
        .headers
        .iter()
        .filter(|(n, _)| KEPT.iter().any(|k| n.eq_ignore_ascii_case(k)))
        .cloned()
        .collect();
    describe_coding(&mut headers, entry, coding);
    headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"));
    headers.push(("age".to_string(), age_s.to_string()));
    headers.push(("cache-status".to_string(), cache_status.to_string()));
    headers
}

/// Why the cache forwarded a request (RFC 9211 `Cache-Status: fwd=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// No stored response for the key.
    UriMiss,
    /// A stored response for the key, but of another variant (`Vary`).
    VaryMiss,
    /// A stored response that may not answer (purged).
    Miss,
    /// A stored response that is stale (or must be revalidated).
    Stale,
}

impl Forward {
    /// The `fwd` parameter's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Forward::UriMiss => "uri-miss",
            Forward::VaryMiss => "vary-miss",
            Forward::Miss => "miss",
            Forward::Stale => "stale",
        }
    }
}

/// An RFC 9211 `Cache-Status` member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStatus<'a> {
    pub hit: bool,
    pub fwd: Option<Forward>,
    pub fwd_status: Option<u16>,
    pub stored: bool,
    /// Answered from another request's response (coalescing).
    pub collapsed: bool,
    pub ttl: Option<i64>,
    /// Why a stale entry answered (`stale-while-revalidate`, `stale-if-error`).
    pub detail: Option<&'static str>,
    /// Only when the service has `debug` on.
    pub key: Option<&'a str>,
}

impl CacheStatus<'_> {
    pub fn render(&self, cache_name: &str) -> String {
        let mut out = String::with_capacity(cache_name.len() + 48);
        out.push_str(cache_name);
        if self.hit {
            out.push_str("; hit");
        }
        if let Some(fwd) = self.fwd {
            out.push_str("; fwd=");
            out.push_str(fwd.as_str());
        }
        if let Some(status) = self.fwd_status {
            out.push_str("; fwd-status=");
            push_decimal(&mut out, i64::from(status));
        }
        if self.stored {
            out.push_str("; stored");
        }
        if self.collapsed {
            out.push_str("; collapsed");
        }
        if let Some(ttl) = self.ttl {
            out.push_str("; ttl=");
            push_decimal(&mut out, ttl);
        }
        if let Some(detail) = self.detail {
            out.push_str("; detail=");
            out.push_str(detail);
        }
        if let Some(key) = self.key {
            // An sf-string: printable ASCII, with `"` and `\` escaped.
            out.push_str("; key=\"");
            for c in key.chars().map(|c| if c == '\n' { '|' } else { c }) {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                if (' '..='~').contains(&c) {
                    out.push(c);
                }
            }
            out.push('"');
        }
        out
    }
}

/// Tags from the configured tag header (comma or space separated), at most
/// [`MAX_TAGS_PER_ENTRY`].
pub fn tags(headers: &Headers, tag_header: &str) -> Vec<String> {
    header_joined(headers, tag_header)
        .map(|value| {
            value
                .split([',', ' '])
                .filter(|t| !t.is_empty())
                .take(MAX_TAGS_PER_ENTRY)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Everything about one exchange an entry is built from.
pub struct Stored<'a> {
    pub key: &'a str,
    pub status: u16,
    pub response_headers: &'a Headers,
    pub request_headers: &'a Headers,
    pub body: Vec<u8>,
    /// Unix milliseconds.
    pub request_time_ms: u64,
    /// Unix milliseconds.
    pub response_time_ms: u64,
    pub generations: Vec<u32>,
}

/// Unix milliseconds as (seconds, milliseconds past that second), as entries keep times.
pub fn split_millis(ms: u64) -> (u64, u16) {
    (ms / 1000, u16::try_from(ms % 1000).unwrap_or(0))
}

/// Stale windows an entry gets when its response names none (per-service defaults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StaleDefaults {
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
}

impl StaleDefaults {
    /// Fills the windows the response did not set.
    pub fn apply(&self, mut entry: Entry) -> Entry {
        entry.stale_while_revalidate = entry.stale_while_revalidate.or(self.stale_while_revalidate);
        entry.stale_if_error = entry.stale_if_error.or(self.stale_if_error);
        entry
    }
}

/// An entry with the freshness `storable` gives it; `None` when `storable` says no.
fn with_freshness(entry: Entry, storable: &Storable) -> Option<Entry> {
    let Storable::Yes {
        freshness_lifetime,
        must_revalidate,
        stale_while_revalidate,
        stale_if_error,
    } = *storable
    else {
        return None;
    };
    Some(Entry {
        freshness_lifetime,
        must_revalidate,
        stale_while_revalidate,
        stale_if_error,
        ..entry
    })
}

/// The entry a storable response becomes; `None` when `storable` says no.
pub fn build_entry(
    stored: Stored<'_>,
    facts: &ResponseFacts,
    storable: &Storable,
) -> Option<Entry> {
    if !matches!(storable, Storable::Yes { .. }) {
        return None;
    }
    // An identity body answers every client (the cache encodes it per request), so it does
    // not vary by `Accept-Encoding` here whatever the origin says.
    let identity = header(stored.response_headers, "content-encoding")
        .is_none_or(|v| v.trim().is_empty() || v.trim().eq_ignore_ascii_case("identity"));
    let vary = match &facts.vary {
        Vary::Headers(names) => names
            .iter()
            .filter(|name| !(identity && name.as_str() == "accept-encoding"))
            .map(|name| (name.clone(), selecting_value(stored.request_headers, name)))
            .collect(),
        _ => Vec::new(),
    };
    let (request_time, request_subsec_ms) = split_millis(stored.request_time_ms);
    let (response_time, response_subsec_ms) = split_millis(stored.response_time_ms);
    let entry = Entry {
        key: stored.key.to_string(),
        status: stored.status,
        headers: stored_headers(stored.response_headers),
        body: stored.body,
        request_time,
        response_time,
        request_subsec_ms,
        response_subsec_ms,
        date: facts.date,
        age_header: facts.age,
        freshness_lifetime: 0,
        must_revalidate: false,
        stale_while_revalidate: None,
        stale_if_error: None,
        etag: facts.etag.clone(),
        last_modified: facts.last_modified,
        vary,
        generations: stored.generations,
        hits: 0,
        encoded: Vec::new(),
        identity_reply: Default::default(),
    };
    with_freshness(entry, storable)
}

/// Fields a `304` never changes on a stored response (RFC 9111 §3.2): they describe the stored
/// body's bytes (its length, coding and range), which the `304` does not resend.
const NOT_UPDATED: [&str; 4] = [
    "content-length",
    "content-encoding",
    "content-range",
    "transfer-encoding",
];

/// Stored headers updated with those a `304` carries (RFC 9111 §3.2).
pub fn merge_headers(stored: &Headers, update: &Headers) -> Vec<(String, String)> {
    let mut headers = stored.to_vec();
    let updates = stored_headers(update)
        .into_iter()
        .filter(|(name, _)| !NOT_UPDATED.iter().any(|n| name.eq_ignore_ascii_case(n)));
    for (name, value) in updates {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        headers.push((name, value));
    }
    headers
}

/// The entry after a `304` from the origin: new timing and freshness, headers updated with the
/// ones the 304 carries (RFC 9111 §4.3.4). `facts` and `storable` describe the merged headers
/// with the stored status (a 304 itself is never storable).
pub fn refresh_entry(
    entry: &Entry,
    not_modified_headers: &Headers,
    facts: &ResponseFacts,
    storable: &Storable,
    request_time_ms: u64,
    response_time_ms: u64,
) -> Option<Entry> {
    if !matches!(storable, Storable::Yes { .. }) {
        return None;
    }
    let (request_time, request_subsec_ms) = split_millis(request_time_ms);
    let (response_time, response_subsec_ms) = split_millis(response_time_ms);
    let refreshed = Entry {
        headers: merge_headers(&entry.headers, not_modified_headers),
        request_time,
        response_time,
        request_subsec_ms,
        response_subsec_ms,
        date: facts.date,
        age_header: facts.age,
        etag: facts.etag.clone().or_else(|| entry.etag.clone()),
        last_modified: facts.last_modified.or(entry.last_modified),
        ..entry.clone()
    };
    with_freshness(refreshed, storable)
}

/// Until when an entry is worth keeping: its freshness, its stale windows, and — when it has
/// validators — one more lifetime (at least a minute) in which it can be revalidated cheaply.
pub fn keep_until(entry: &Entry) -> u64 {
    let stale_window = entry
        .stale_while_revalidate
        .unwrap_or(0)
        .max(entry.stale_if_error.unwrap_or(0));
    let revalidation = if entry.etag.is_some() || entry.last_modified.is_some() {
        entry.freshness_lifetime.max(60)
    } else {
        0
    };
    entry
        .response_time
        .saturating_add(entry.freshness_lifetime)
        .saturating_add(stale_window.max(revalidation))
}

/// Headers of a request the filter sends the origin itself (revalidation, background refresh):
/// the client's request minus framing, conditionals, ranges (the cache keeps whole
/// representations), `Accept-Encoding` (the cache stores the identity body and encodes it
/// itself) and unkeyed poisoning headers, as a GET, with the stored validators.
pub fn refresh_request_headers(
    request_headers: &[impl HeaderPair],
    unkeyed: &[&str],
    service_header: (&str, &str),
    validators: Option<&Entry>,
) -> Vec<(String, String)> {
    const DROPPED: [&str; 12] = [
        "accept-encoding",
        "range",
        "if-range",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "te",
        "if-none-match",
        "if-modified-since",
        ":method",
    ];
    let mut headers: Vec<(String, String)> = request_headers
        .iter()
        .filter(|pair| {
            let n = pair.name();
            !DROPPED.iter().any(|d| n.eq_ignore_ascii_case(d))
                && !unkeyed.iter().any(|u| n.eq_ignore_ascii_case(u))
                && !n.eq_ignore_ascii_case(service_header.0)
        })
        .map(|pair| (pair.name().to_string(), pair.value().to_string()))
        .collect();
    headers.push((":method".to_string(), "GET".to_string()));
    headers.push((service_header.0.to_string(), service_header.1.to_string()));
    if let Some(entry) = validators {
        if let Some(etag) = &entry.etag {
            headers.push(("if-none-match".to_string(), etag.clone()));
        }
        if let Some(last_modified) = entry.last_modified {
            headers.push((
                "if-modified-since".to_string(),
                super::http_date::format_http_date(last_modified),
            ));
        }
    }
    headers
}

/// What a response fetched from the origin (a miss, a warm fetch, a revalidation) leaves in
/// the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchedEntry {
    /// `304` to a revalidation: the stored entry holds, with new freshness.
    Refreshed(Entry),
    /// A storable response (a new one, or one replacing the stored entry).
    Replaced(Entry),
    /// Nothing to store (an error, `no-store`, too large, …).
    NotStored,
}

/// Everything about a fetch besides the origin's answer.
pub struct Fetch<'a> {
    /// The cache key the entry is stored under.
    pub key: &'a str,
    /// The stored entry being revalidated, if any (a `304` refreshes it).
    pub old: Option<&'a Entry>,
    pub request: &'a RequestFacts,
    pub request_headers: &'a Headers,
    pub policy: &'a super::freshness::StorePolicy,
    pub defaults: StaleDefaults,
    /// Unix milliseconds.
    pub request_time_ms: u64,
    /// When the response arrived (Unix milliseconds); freshness is judged at this time.
    pub response_time_ms: u64,
    pub max_body: usize,
    /// Purge generations the entry is stored under (its own tags included).
    pub generations: Vec<u32>,
}

/// The entry an origin's answer leaves in the cache.
pub fn fetched_entry(
    fetch: &Fetch<'_>,
    status: u16,
    headers: &Headers,
    body: Vec<u8>,
) -> FetchedEntry {
    let request_time_ms = if fetch.policy.count_response_delay {
        fetch.request_time_ms
    } else {
        fetch.response_time_ms
    };
    if let (304, Some(old)) = (status, fetch.old) {
        let merged = merge_headers(&old.headers, headers);
        let facts = response_facts_for(old.status, &merged, fetch.policy.targeted.as_deref());
        let storable = super::freshness::storability(
            fetch.request,
            &facts,
            fetch.policy,
            fetch.response_time_ms / 1000,
        );
        return match refresh_entry(
            old,
            headers,
            &facts,
            &storable,
            request_time_ms,
            fetch.response_time_ms,
        ) {
            Some(entry) => FetchedEntry::Refreshed(fetch.defaults.apply(entry)),
            None => FetchedEntry::NotStored,
        };
    }
    if body.len() > fetch.max_body {
        return FetchedEntry::NotStored;
    }
    let facts = response_facts_for(status, headers, fetch.policy.targeted.as_deref());
    let storable = super::freshness::storability(
        fetch.request,
        &facts,
        fetch.policy,
        fetch.response_time_ms / 1000,
    );
    let stored = Stored {
        key: fetch.key,
        status,
        response_headers: headers,
        request_headers: fetch.request_headers,
        body,
        request_time_ms,
        response_time_ms: fetch.response_time_ms,
        generations: fetch.generations.clone(),
    };
    match build_entry(stored, &facts, &storable) {
        Some(entry) => FetchedEntry::Replaced(fetch.defaults.apply(entry)),
        None => FetchedEntry::NotStored,
    }
}

/// Origin statuses a stale entry may stand in for (stale-if-error, RFC 5861).
pub fn is_origin_error(status: u16) -> bool {
    matches!(status, 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::policy::header_list::owned as h;

    fn entry() -> Entry {
        Entry {
            key: "k".into(),
            status: 200,
            headers: h(&[("content-type", "application/json"), ("etag", "\"v1\"")]),
            body: b"{}".to_vec(),
            request_time: 1000,
            response_time: 1000,
            date: Some(1000),
            freshness_lifetime: 60,
            etag: Some("\"v1\"".into()),
            vary: vec![("accept-language".into(), "en".into())],
            generations: Generations::default().stamp(&[]),
            ..Default::default()
        }
    }

    #[test]
    fn fresh_entry_serves_and_conditionals_get_304() {
        let gens = Generations::default();
        let req = h(&[("accept-language", "en")]);
        let facts = request_facts("GET", &req);
        assert_eq!(
            evaluate_hit(&entry(), &req, &facts, &gens, 1010 * 1000),
            HitDecision::Serve {
                age: 10,
                not_modified: false
            }
        );
        let conditional = h(&[("accept-language", "en"), ("if-none-match", "W/\"v1\"")]);
        assert_eq!(
            evaluate_hit(
                &entry(),
                &conditional,
                &request_facts("GET", &conditional),
                &gens,
                1010 * 1000
            ),
            HitDecision::Serve {
                age: 10,
                not_modified: true
            }
        );
    }

    #[test]
    fn stale_vary_mismatch_and_no_cache() {
        let gens = Generations::default();
        let req = h(&[("accept-language", "en")]);
        assert_eq!(
            evaluate_hit(
                &entry(),
                &req,
                &request_facts("GET", &req),
                &gens,
                1060 * 1000
            ),
            HitDecision::Revalidate
        );
        let de = h(&[("accept-language", "de")]);
        assert_eq!(
            evaluate_hit(
                &entry(),
                &de,
                &request_facts("GET", &de),
                &gens,
                1010 * 1000
            ),
            HitDecision::Miss(MissKind::VaryMismatch)
        );
        let no_cache = h(&[("accept-language", "en"), ("cache-control", "no-cache")]);
        assert_eq!(
            evaluate_hit(
                &entry(),
                &no_cache,
                &request_facts("GET", &no_cache),
                &gens,
                1010 * 1000
            ),
            HitDecision::Revalidate
        );
    }

    #[test]
    fn stale_windows() {
        let gens = Generations::default();
        let req = h(&[("accept-language", "en")]);
        let facts = request_facts("GET", &req);
        let mut e = entry();
        e.stale_while_revalidate = Some(30);
        e.stale_if_error = Some(300);
        assert_eq!(
            evaluate_hit(&e, &req, &facts, &gens, 1070 * 1000),
            HitDecision::ServeStale {
                age: 70,
                not_modified: false
            }
        );
        assert_eq!(
            evaluate_hit(&e, &req, &facts, &gens, 1089 * 1000),
            HitDecision::ServeStale {
                age: 89,
                not_modified: false
            },
            "the window's last second"
        );
        for now in [1090, 1091] {
            assert_eq!(
                evaluate_hit(&e, &req, &facts, &gens, now * 1000),
                HitDecision::Revalidate,
                "past the window"
            );
        }
        assert!(may_serve_if_error(&e, 350));
        assert!(may_serve_if_error(&e, 359));
        assert!(!may_serve_if_error(&e, 360));
        assert!(!may_serve_if_error(&e, 361));
        e.must_revalidate = true;
        assert_eq!(
            evaluate_hit(&e, &req, &facts, &gens, 1070 * 1000),
            HitDecision::Revalidate,
            "must-revalidate forbids stale"
        );
        assert!(!may_serve_if_error(&e, 100));
        let defaults = StaleDefaults {
            stale_while_revalidate: Some(5),
            stale_if_error: None,
        };
        assert_eq!(defaults.apply(entry()).stale_while_revalidate, Some(5));
    }

    #[test]
    fn hop_by_hop_and_cookies_are_not_stored() {
        let stored = stored_headers(&h(&[
            (":status", "200"),
            ("connection", "x-private"),
            ("x-private", "1"),
            ("transfer-encoding", "chunked"),
            ("set-cookie", "a=b"),
            ("content-type", "text/plain"),
        ]));
        assert_eq!(stored, h(&[("content-type", "text/plain")]));
    }

    #[test]
    fn cache_status_renders_rfc9211() {
        let status = CacheStatus {
            hit: true,
            ttl: Some(42),
            ..CacheStatus::default()
        };
        assert_eq!(status.render("edge"), "edge; hit; ttl=42");
        let status = CacheStatus {
            fwd: Some(Forward::UriMiss),
            stored: true,
            key: Some("v1\na\"b"),
            ..CacheStatus::default()
        };
        assert_eq!(
            status.render("edge"),
            "edge; fwd=uri-miss; stored; key=\"v1|a\\\"b\""
        );
    }

    #[test]
    fn refresh_updates_headers_and_timing() {
        let facts = response_facts(
            304,
            &h(&[("cache-control", "max-age=120"), ("etag", "\"v1\"")]),
        );
        let storable = Storable::Yes {
            freshness_lifetime: 120,
            must_revalidate: false,
            stale_while_revalidate: None,
            stale_if_error: None,
        };
        let refreshed = refresh_entry(
            &entry(),
            &h(&[("cache-control", "max-age=120")]),
            &facts,
            &storable,
            1_999_900,
            2_000_250,
        )
        .unwrap();
        assert_eq!(refreshed.freshness_lifetime, 120);
        assert_eq!(refreshed.response_time, 2000);
        assert_eq!(refreshed.response_subsec_ms, 250);
        assert_eq!(
            (refreshed.request_time, refreshed.request_subsec_ms),
            (1999, 900)
        );
        assert_eq!(
            header(&refreshed.headers, "cache-control"),
            Some("max-age=120")
        );
        assert_eq!(refreshed.body, b"{}");
    }

    #[test]
    fn a_304_never_updates_the_body_description() {
        let stored = h(&[("content-encoding", "br"), ("content-type", "text/plain")]);
        let update = h(&[
            ("content-length", "0"),
            ("content-encoding", "gzip"),
            ("content-range", "bytes 0-0/1"),
            ("transfer-encoding", "chunked"),
            ("Content-Type", "text/html"),
        ]);
        assert_eq!(
            merge_headers(&stored, &update),
            h(&[("content-encoding", "br"), ("Content-Type", "text/html")])
        );
    }

    #[test]
    fn forward_reasons_read_as_before() {
        for (fwd, text) in [
            (Forward::UriMiss, "uri-miss"),
            (Forward::VaryMiss, "vary-miss"),
            (Forward::Miss, "miss"),
            (Forward::Stale, "stale"),
        ] {
            assert_eq!(fwd.as_str(), text);
        }
    }
}

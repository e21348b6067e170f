//! Freshness and storability for a *shared* cache (RFC 9111), plus conditional-request
//! evaluation (RFC 9110 §13). Pure functions over pre-parsed facts; times are unix seconds and
//! all arithmetic saturates.

use super::cache_control::CacheControl;
use super::status::{self, heuristically_cacheable};

/// A response's `Vary` header field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vary {
    /// Absent, or naming no field.
    None,
    /// Lower-case field names, sorted, without duplicates.
    Headers(Vec<String>),
    /// `Vary: *`: the response can never be matched by a later request.
    Star,
}

impl Vary {
    /// Parses all `Vary` field lines joined with `","` (`None` when the header is absent).
    pub fn parse(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Vary::None;
        };
        let mut names: Vec<String> = Vec::new();
        for name in value.split(',').map(|n| n.trim_matches([' ', '\t'])) {
            if name.is_empty() {
                continue;
            }
            if name == "*" {
                return Vary::Star;
            }
            // Sorted insertion (lists are short) dedups too, and costs less wasm than a sort.
            let name = name.to_ascii_lowercase();
            if let Err(at) = names.binary_search(&name) {
                names.insert(at, name);
            }
        }
        if names.is_empty() {
            return Vary::None;
        }
        Vary::Headers(names)
    }
}

/// What storability needs to know about the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestFacts {
    pub method: String,
    pub cache_control: CacheControl,
    pub pragma_no_cache: bool,
    pub has_authorization: bool,
}

/// What storability needs to know about the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseFacts {
    pub status: u16,
    pub cache_control: CacheControl,
    pub date: Option<u64>,
    /// `Some(None)`: the header is present but invalid, which means "already expired".
    pub expires: Option<Option<u64>>,
    pub last_modified: Option<u64>,
    pub age: Option<u64>,
    pub has_set_cookie: bool,
    pub vary: Vary,
    pub etag: Option<String>,
    pub pragma_no_cache: bool,
}

/// The operator's storage policy for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePolicy {
    /// Lifetime for responses without explicit freshness information.
    pub default_ttl: Option<u64>,
    /// Use the Last-Modified heuristic (10%) when there is no explicit freshness.
    pub heuristic: bool,
    /// Upper bound on any freshness lifetime.
    pub max_ttl: u64,
    /// Store responses carrying `Set-Cookie` (the cookie is stored and replayed).
    pub store_set_cookie: bool,
    /// The operator's own targeted cache-control field (RFC 9213), obeyed ahead of
    /// `CDN-Cache-Control`.
    pub targeted: Option<String>,
    /// The response delay (request sent to response received) counts toward the age
    /// (RFC 9111 §4.2.3); off, a response is stored as if requested when it arrived.
    pub count_response_delay: bool,
}

/// Whether and how a response may be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storable {
    Yes {
        freshness_lifetime: u64,
        must_revalidate: bool,
        stale_while_revalidate: Option<u64>,
        stale_if_error: Option<u64>,
    },
    No(NotStorable),
}

/// Why a response may not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    /// Not a GET (or a HEAD, whose response has no body to store).
    Method,
    /// `Cache-Control: no-store` on the request or the response.
    NoStore,
    /// A status not cacheable by default without explicit freshness, one never stored (see
    /// [`status`]), or `must-understand` with a status this cache does not understand.
    Status,
    /// `Cache-Control: private`.
    Private,
    /// A request with `Authorization` and a response that does not allow sharing it.
    Authorization,
    /// `Set-Cookie` on a service that does not store it.
    SetCookie,
    /// `Vary: *`.
    VaryStar,
    /// Neither explicit nor heuristic freshness.
    NoFreshness,
}

impl NotStorable {
    /// Short reason for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::NoStore => "no-store",
            NotStorable::Status => "status",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
        }
    }
}

/// Decides whether a shared cache may store `response` to `request`, and for how long it is
/// fresh. `now_s` stands in for a missing `Date`.
pub fn storability(
    request: &RequestFacts,
    response: &ResponseFacts,
    policy: &StorePolicy,
    now_s: u64,
) -> Storable {
    let cc = &response.cache_control;
    if request.method != "GET" {
        return Storable::No(NotStorable::Method);
    }
    // must-understand: only statuses this cache understands, and for them no-store is ignored.
    if cc.must_understand && !status::understood(response.status) {
        return Storable::No(NotStorable::Status);
    }
    if request.cache_control.no_store || (cc.no_store && !cc.must_understand) {
        return Storable::No(NotStorable::NoStore);
    }
    let explicit = cc.s_maxage.is_some() || cc.max_age.is_some() || response.expires.is_some();
    if !status::storable_status(response.status, explicit) {
        return Storable::No(NotStorable::Status);
    }
    if cc.private {
        return Storable::No(NotStorable::Private);
    }
    if request.has_authorization && !(cc.public || cc.s_maxage.is_some() || cc.must_revalidate) {
        return Storable::No(NotStorable::Authorization);
    }
    if response.has_set_cookie && !policy.store_set_cookie {
        return Storable::No(NotStorable::SetCookie);
    }
    if response.vary == Vary::Star {
        return Storable::No(NotStorable::VaryStar);
    }

    // A response `Pragma: no-cache` counts only when Cache-Control says nothing.
    let no_cache = cc.no_cache || (response.pragma_no_cache && *cc == CacheControl::default());
    let must_revalidate =
        no_cache || cc.must_revalidate || cc.proxy_revalidate || cc.s_maxage.is_some();
    let freshness_lifetime = if no_cache {
        Some(0)
    } else {
        freshness_lifetime(response, policy, now_s)
    };
    match freshness_lifetime {
        None => Storable::No(NotStorable::NoFreshness),
        Some(lifetime) => Storable::Yes {
            freshness_lifetime: lifetime.min(policy.max_ttl),
            must_revalidate,
            stale_while_revalidate: cc.stale_while_revalidate,
            stale_if_error: cc.stale_if_error,
        },
    }
}

/// RFC 9111 §4.2.1 for a shared cache, then the policy's default and heuristic (§4.2.2).
fn freshness_lifetime(response: &ResponseFacts, policy: &StorePolicy, now_s: u64) -> Option<u64> {
    freshness_rule(response, policy, now_s).map(|(_, lifetime)| lifetime)
}

/// Which rule gave a response its freshness lifetime (the explainer names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreshnessRule {
    SMaxage,
    MaxAge,
    Expires,
    /// An `Expires` that is not a valid date: already expired.
    InvalidExpires,
    /// The service's `default_ttl_s`.
    DefaultTtl,
    /// 10% of the time since `Last-Modified`.
    Heuristic,
}

impl FreshnessRule {
    pub fn as_str(self) -> &'static str {
        match self {
            FreshnessRule::SMaxage => "s-maxage",
            FreshnessRule::MaxAge => "max-age",
            FreshnessRule::Expires => "expires",
            FreshnessRule::InvalidExpires => "invalid-expires",
            FreshnessRule::DefaultTtl => "default-ttl",
            FreshnessRule::Heuristic => "heuristic",
        }
    }
}

/// The freshness lifetime before `max_ttl` and `no-cache` apply, and the rule that gave it:
/// RFC 9111 §4.2.1 for a shared cache, then the policy's default and heuristic (§4.2.2).
pub fn freshness_rule(
    response: &ResponseFacts,
    policy: &StorePolicy,
    now_s: u64,
) -> Option<(FreshnessRule, u64)> {
    let cc = &response.cache_control;
    let date = response.date.unwrap_or(now_s);
    if let Some(s) = cc.s_maxage {
        return Some((FreshnessRule::SMaxage, s));
    }
    if let Some(m) = cc.max_age {
        return Some((FreshnessRule::MaxAge, m));
    }
    match response.expires {
        Some(Some(expires)) => return Some((FreshnessRule::Expires, expires.saturating_sub(date))),
        Some(None) => return Some((FreshnessRule::InvalidExpires, 0)),
        None => {}
    }
    if let Some(ttl) = policy.default_ttl {
        return Some((FreshnessRule::DefaultTtl, ttl));
    }
    if policy.heuristic && heuristically_cacheable(response.status) {
        if let Some(lm) = response.last_modified {
            return Some((FreshnessRule::Heuristic, date.saturating_sub(lm) / 10));
        }
    }
    None
}

/// When a response was requested and received, and what it said about its age (ages in
/// seconds, times as Unix seconds plus the milliseconds past that second).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub request_time: u64,
    pub request_subsec_ms: u16,
    pub response_time: u64,
    pub response_subsec_ms: u16,
    pub date: Option<u64>,
    pub age_header: Option<u64>,
}

/// RFC 9111 §4.2.3: the age in whole seconds of a stored response at `now_ms` (Unix
/// milliseconds). The response delay and the resident time are counted to the millisecond, so
/// a one-second lifetime lasts a second wherever in a second the response arrived. `Date` has
/// whole seconds: a response dated `T` was sent at some time in `[T, T + 1)`, so the apparent
/// age is the least age that allows (from `T + 0.999`). Read as `T` itself, a response sent at
/// `T + 0.95` that arrives 150 ms later would be a second old on arrival, and a one-second
/// `max-age` stale at once. A `Date` in the future (clock skew) gives an apparent age of 0; a
/// missing `Date` or `Age` counts as none; `now_ms` before the response time gives no resident
/// time.
pub fn current_age(timing: &Timing, now_ms: u64) -> u64 {
    let millis = |s: u64, subsec: u16| s.saturating_mul(1000).saturating_add(u64::from(subsec));
    let request_ms = millis(timing.request_time, timing.request_subsec_ms);
    let response_ms = millis(timing.response_time, timing.response_subsec_ms);
    let apparent_age_ms = timing
        .date
        .map_or(0, |date| response_ms.saturating_sub(millis(date, 999)));
    let response_delay_ms = response_ms.saturating_sub(request_ms);
    let corrected_age_value_ms =
        millis(timing.age_header.unwrap_or(0), 0).saturating_add(response_delay_ms);
    let corrected_initial_age_ms = apparent_age_ms.max(corrected_age_value_ms);
    let resident_time_ms = now_ms.saturating_sub(response_ms);
    match corrected_initial_age_ms.checked_add(resident_time_ms) {
        Some(age_ms) if age_ms != u64::MAX => age_ms / 1000,
        _ => u64::MAX,
    }
}

/// RFC 9111 §4.2: fresh while the lifetime exceeds the age.
pub fn is_fresh(freshness_lifetime_s: u64, age_s: u64) -> bool {
    freshness_lifetime_s > age_s
}

/// What a request's directives ask of a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestDirective {
    /// The entry may be served if it is fresh (see [`is_fresh`]).
    Normal,
    /// The entry must be validated with the origin before use.
    Revalidate,
    /// Neither serve from nor store into the cache.
    Bypass,
}

/// RFC 9111 §5.2.1: request `no-store` bypasses; `no-cache`, `max-age=0`, `Pragma: no-cache`
/// without Cache-Control directives, `max-age` exceeded or `min-fresh` not met require
/// revalidation. Staleness itself is checked by [`is_fresh`]; serving stale for `max-stale` is
/// never done here.
pub fn request_directs(
    request: &CacheControl,
    pragma_no_cache: bool,
    freshness_lifetime_s: u64,
    age_s: u64,
) -> RequestDirective {
    if request.no_store {
        return RequestDirective::Bypass;
    }
    if request.no_cache || (pragma_no_cache && *request == CacheControl::default()) {
        return RequestDirective::Revalidate;
    }
    if let Some(max_age) = request.max_age {
        if max_age == 0 || age_s > max_age {
            return RequestDirective::Revalidate;
        }
    }
    if let Some(min_fresh) = request.min_fresh {
        if freshness_lifetime_s.saturating_sub(age_s) < min_fresh {
            return RequestDirective::Revalidate;
        }
    }
    RequestDirective::Normal
}

/// RFC 9110 §13.1.1/§13.1.3/§13.2.2: whether the cache may answer a conditional GET with 304.
/// `If-None-Match` (weak comparison, a list of tags, `*` matching any stored entry) takes
/// precedence; `If-Modified-Since` is only looked at without it, and matches when the entry's
/// Last-Modified is not after it (no Last-Modified: no match).
pub fn conditional_matches(
    if_none_match: Option<&str>,
    if_modified_since: Option<u64>,
    etag: Option<&str>,
    last_modified: Option<u64>,
) -> bool {
    if let Some(inm) = if_none_match {
        let stored = etag.map(opaque_tag);
        return EntityTags::new(inm).any(|tag| match tag {
            "*" => true,
            tag => stored.is_some_and(|s| !s.is_empty() && s == opaque_tag(tag)),
        });
    }
    match (if_modified_since, last_modified) {
        (Some(ims), Some(lm)) => lm <= ims,
        _ => false,
    }
}

/// The opaque part of an entity-tag for weak comparison: `W/` and the quotes removed.
fn opaque_tag(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(tag)
}

/// Iterator over the members of an `If-None-Match` list (entity-tags may contain commas
/// inside their quotes). Yields each member as written (`W/"x"`, `"x"`, `*`, or an unquoted
/// token from a sloppy client).
struct EntityTags<'a> {
    rest: &'a str,
}

impl<'a> EntityTags<'a> {
    fn new(value: &'a str) -> Self {
        EntityTags { rest: value }
    }
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let s = self.rest.trim_start_matches([',', ' ', '\t']);
        if s.is_empty() {
            self.rest = s;
            return None;
        }
        let body = s.strip_prefix("W/").unwrap_or(s);
        let prefix_len = s.len().saturating_sub(body.len());
        let end = match body.strip_prefix('"') {
            // Quoted: up to and including the closing quote (or the end).
            Some(q) => q
                .find('"')
                .map_or(s.len(), |i| prefix_len.saturating_add(i).saturating_add(2)),
            None => s.find(',').unwrap_or(s.len()),
        };
        let tag = s.get(..end).unwrap_or(s).trim();
        self.rest = s.get(end..).unwrap_or("");
        Some(tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000;

    fn req() -> RequestFacts {
        RequestFacts {
            method: "GET".to_string(),
            cache_control: CacheControl::default(),
            pragma_no_cache: false,
            has_authorization: false,
        }
    }

    fn resp(cc: &str) -> ResponseFacts {
        ResponseFacts {
            status: 200,
            cache_control: CacheControl::parse(cc),
            date: Some(NOW),
            expires: None,
            last_modified: None,
            age: None,
            has_set_cookie: false,
            vary: Vary::None,
            etag: None,
            pragma_no_cache: false,
        }
    }

    fn policy() -> StorePolicy {
        StorePolicy {
            default_ttl: None,
            heuristic: false,
            max_ttl: 86_400,
            store_set_cookie: false,
            targeted: None,
            count_response_delay: true,
        }
    }

    fn yes(lifetime: u64, must_revalidate: bool) -> Storable {
        Storable::Yes {
            freshness_lifetime: lifetime,
            must_revalidate,
            stale_while_revalidate: None,
            stale_if_error: None,
        }
    }

    fn lifetime(s: Storable) -> u64 {
        match s {
            Storable::Yes {
                freshness_lifetime, ..
            } => freshness_lifetime,
            Storable::No(r) => panic!("not storable: {}", r.as_str()),
        }
    }

    #[test]
    fn freshness_rule_names_the_rule_that_gave_the_lifetime() {
        let p = policy();
        let rule = |r: &ResponseFacts, p: &StorePolicy| freshness_rule(r, p, NOW);
        assert_eq!(
            rule(&resp("s-maxage=5, max-age=9"), &p),
            Some((FreshnessRule::SMaxage, 5))
        );
        assert_eq!(
            rule(&resp("max-age=9"), &p),
            Some((FreshnessRule::MaxAge, 9))
        );
        let expires = ResponseFacts {
            expires: Some(Some(NOW + 30)),
            ..resp("")
        };
        assert_eq!(rule(&expires, &p), Some((FreshnessRule::Expires, 30)));
        let invalid = ResponseFacts {
            expires: Some(None),
            ..resp("")
        };
        assert_eq!(rule(&invalid, &p), Some((FreshnessRule::InvalidExpires, 0)));
        assert_eq!(rule(&resp(""), &p), None);
        let defaulted = StorePolicy {
            default_ttl: Some(7),
            ..policy()
        };
        assert_eq!(
            rule(&resp(""), &defaulted),
            Some((FreshnessRule::DefaultTtl, 7))
        );
        let heuristic = StorePolicy {
            heuristic: true,
            ..policy()
        };
        let modified = ResponseFacts {
            last_modified: Some(NOW - 1000),
            ..resp("")
        };
        assert_eq!(
            rule(&modified, &heuristic),
            Some((FreshnessRule::Heuristic, 100))
        );
        // The lifetime storability gives is the rule's, capped by max_ttl.
        assert_eq!(
            lifetime(storability(&req(), &resp("max-age=9"), &p, NOW)),
            9
        );
    }

    #[test]
    fn vary_parse() {
        assert_eq!(Vary::parse(None), Vary::None);
        assert_eq!(Vary::parse(Some("")), Vary::None);
        assert_eq!(Vary::parse(Some(" , ,")), Vary::None);
        assert_eq!(Vary::parse(Some("*")), Vary::Star);
        assert_eq!(Vary::parse(Some("Accept, *")), Vary::Star);
        assert_eq!(
            Vary::parse(Some("Accept-Encoding, accept,ACCEPT-ENCODING ,\tOrigin")),
            Vary::Headers(vec![
                "accept".to_string(),
                "accept-encoding".to_string(),
                "origin".to_string()
            ])
        );
    }

    #[test]
    fn only_get() {
        for m in ["HEAD", "POST", "PUT", "get", ""] {
            let mut r = req();
            r.method = m.to_string();
            assert_eq!(
                storability(&r, &resp("max-age=60"), &policy(), NOW),
                Storable::No(NotStorable::Method)
            );
        }
        assert_eq!(
            storability(&req(), &resp("max-age=60"), &policy(), NOW),
            yes(60, false)
        );
    }

    #[test]
    fn statuses() {
        for s in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            let mut r = resp("");
            r.status = s;
            r.last_modified = Some(NOW - 1000);
            let p = StorePolicy {
                heuristic: true,
                ..policy()
            };
            assert_eq!(storability(&req(), &r, &p, NOW), yes(100, false), "{s}");
        }
        for s in [302, 307] {
            let mut r = resp("");
            r.status = s;
            r.last_modified = Some(NOW - 1000);
            let p = StorePolicy {
                heuristic: true,
                default_ttl: Some(5),
                ..policy()
            };
            assert_eq!(
                storability(&req(), &r, &p, NOW),
                Storable::No(NotStorable::Status)
            );
            r.cache_control = CacheControl::parse("max-age=30");
            assert_eq!(storability(&req(), &r, &p, NOW), yes(30, false));
            r.cache_control = CacheControl::parse("s-maxage=40");
            assert_eq!(storability(&req(), &r, &p, NOW), yes(40, true));
            r.cache_control = CacheControl::default();
            r.expires = Some(Some(NOW + 50));
            assert_eq!(storability(&req(), &r, &p, NOW), yes(50, false));
        }
        for s in [100, 101, 103, 206, 304, 400, 413, 431, 0, 999] {
            let mut r = resp("public, max-age=60");
            r.status = s;
            assert_eq!(
                storability(&req(), &r, &policy(), NOW),
                Storable::No(NotStorable::Status),
                "{s}"
            );
        }
        // Any other final status with explicit freshness (RFC 9111 §3); without it, no
        // heuristic or default lifetime applies to them.
        for s in [500, 502, 503, 504, 201, 202, 299, 303, 403, 499, 599] {
            let mut r = resp("public, max-age=60");
            r.status = s;
            assert_eq!(
                storability(&req(), &r, &policy(), NOW),
                yes(60, false),
                "{s}"
            );
            let mut r = resp("");
            r.status = s;
            r.last_modified = Some(NOW - 1000);
            let p = StorePolicy {
                heuristic: true,
                default_ttl: Some(5),
                ..policy()
            };
            assert_eq!(
                storability(&req(), &r, &p, NOW),
                Storable::No(NotStorable::Status),
                "{s}"
            );
        }
    }

    #[test]
    fn must_understand() {
        // An understood status: stored, no-store ignored.
        for s in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            let mut r = resp("no-store, must-understand, max-age=60");
            r.status = s;
            assert_eq!(
                storability(&req(), &r, &policy(), NOW),
                yes(60, false),
                "{s}"
            );
        }
        // Not understood: never stored, even with explicit freshness and no no-store.
        for s in [299, 302, 500] {
            let mut r = resp("must-understand, max-age=60");
            r.status = s;
            assert_eq!(
                storability(&req(), &r, &policy(), NOW),
                Storable::No(NotStorable::Status),
                "{s}"
            );
        }
        // The request's no-store still counts; so do private and the rest.
        let mut r = req();
        r.cache_control = CacheControl::parse("no-store");
        assert_eq!(
            storability(
                &r,
                &resp("no-store, must-understand, max-age=60"),
                &policy(),
                NOW
            ),
            Storable::No(NotStorable::NoStore)
        );
        assert_eq!(
            storability(
                &req(),
                &resp("private, must-understand, max-age=60"),
                &policy(),
                NOW
            ),
            Storable::No(NotStorable::Private)
        );
    }

    #[test]
    fn no_store_and_private() {
        assert_eq!(
            storability(&req(), &resp("no-store, max-age=60"), &policy(), NOW),
            Storable::No(NotStorable::NoStore)
        );
        let mut r = req();
        r.cache_control = CacheControl::parse("no-store");
        assert_eq!(
            storability(&r, &resp("max-age=60"), &policy(), NOW),
            Storable::No(NotStorable::NoStore)
        );
        assert_eq!(
            storability(&req(), &resp("private, max-age=60"), &policy(), NOW),
            Storable::No(NotStorable::Private)
        );
        assert_eq!(
            storability(&req(), &resp("private=\"x\", s-maxage=60"), &policy(), NOW),
            Storable::No(NotStorable::Private)
        );
        // Request no-cache / Pragma do not prevent storing.
        let mut r = req();
        r.cache_control = CacheControl::parse("no-cache");
        r.pragma_no_cache = true;
        assert_eq!(
            storability(&r, &resp("max-age=60"), &policy(), NOW),
            yes(60, false)
        );
    }

    #[test]
    fn authorization() {
        let mut r = req();
        r.has_authorization = true;
        assert_eq!(
            storability(&r, &resp("max-age=60"), &policy(), NOW),
            Storable::No(NotStorable::Authorization)
        );
        assert_eq!(
            storability(&r, &resp("public, max-age=60"), &policy(), NOW),
            yes(60, false)
        );
        assert_eq!(
            storability(&r, &resp("s-maxage=60"), &policy(), NOW),
            yes(60, true)
        );
        assert_eq!(
            storability(&r, &resp("must-revalidate, max-age=60"), &policy(), NOW),
            yes(60, true)
        );
    }

    #[test]
    fn set_cookie_and_vary() {
        let mut r = resp("max-age=60");
        r.has_set_cookie = true;
        assert_eq!(
            storability(&req(), &r, &policy(), NOW),
            Storable::No(NotStorable::SetCookie)
        );
        let p = StorePolicy {
            store_set_cookie: true,
            ..policy()
        };
        assert_eq!(storability(&req(), &r, &p, NOW), yes(60, false));

        let mut r = resp("max-age=60");
        r.vary = Vary::parse(Some("Accept, *"));
        assert_eq!(
            storability(&req(), &r, &policy(), NOW),
            Storable::No(NotStorable::VaryStar)
        );
        r.vary = Vary::parse(Some("Accept-Encoding"));
        assert_eq!(storability(&req(), &r, &policy(), NOW), yes(60, false));
    }

    #[test]
    fn lifetime_precedence() {
        let mut r = resp("max-age=100, s-maxage=200");
        r.expires = Some(Some(NOW + 300));
        let p = StorePolicy {
            default_ttl: Some(400),
            heuristic: true,
            ..policy()
        };
        r.last_modified = Some(NOW - 5000);
        assert_eq!(storability(&req(), &r, &p, NOW), yes(200, true));
        r.cache_control = CacheControl::parse("max-age=100");
        assert_eq!(storability(&req(), &r, &p, NOW), yes(100, false));
        r.cache_control = CacheControl::default();
        assert_eq!(storability(&req(), &r, &p, NOW), yes(300, false));
        r.expires = None;
        assert_eq!(storability(&req(), &r, &p, NOW), yes(400, false));
        let p = StorePolicy {
            default_ttl: None,
            ..p
        };
        assert_eq!(storability(&req(), &r, &p, NOW), yes(500, false));
        let p = StorePolicy {
            heuristic: false,
            ..p
        };
        assert_eq!(
            storability(&req(), &r, &p, NOW),
            Storable::No(NotStorable::NoFreshness)
        );
        // Heuristic without Last-Modified: nothing to go on.
        let p = StorePolicy {
            heuristic: true,
            ..p
        };
        r.last_modified = None;
        assert_eq!(
            storability(&req(), &r, &p, NOW),
            Storable::No(NotStorable::NoFreshness)
        );
    }

    #[test]
    fn expires_arithmetic() {
        // Expires − Date, not Expires − now.
        let mut r = resp("");
        r.date = Some(NOW - 1000);
        r.expires = Some(Some(NOW));
        assert_eq!(lifetime(storability(&req(), &r, &policy(), NOW)), 1000);
        // Date missing → now.
        r.date = None;
        r.expires = Some(Some(NOW + 77));
        assert_eq!(lifetime(storability(&req(), &r, &policy(), NOW)), 77);
        // Expires in the past → 0 (stored, stale: revalidate on use).
        r.expires = Some(Some(NOW - 77));
        assert_eq!(lifetime(storability(&req(), &r, &policy(), NOW)), 0);
        // Invalid Expires ("0", "-1") → already expired, even with a default TTL.
        r.expires = Some(None);
        let p = StorePolicy {
            default_ttl: Some(600),
            ..policy()
        };
        assert_eq!(storability(&req(), &r, &p, NOW), yes(0, false));
        // max-age overrides Expires (RFC 9111 §5.3).
        r.cache_control = CacheControl::parse("max-age=9");
        assert_eq!(lifetime(storability(&req(), &r, &p, NOW)), 9);
    }

    #[test]
    fn heuristic() {
        let p = StorePolicy {
            heuristic: true,
            ..policy()
        };
        let mut r = resp("");
        r.last_modified = Some(NOW - 36_000);
        assert_eq!(lifetime(storability(&req(), &r, &p, NOW)), 3_600);
        // Date missing → now.
        r.date = None;
        assert_eq!(lifetime(storability(&req(), &r, &p, NOW + 10_000)), 4_600);
        // Last-Modified after Date → 0.
        r.date = Some(NOW);
        r.last_modified = Some(NOW + 50);
        assert_eq!(lifetime(storability(&req(), &r, &p, NOW)), 0);
        // Capped by max_ttl.
        r.last_modified = Some(0);
        assert_eq!(lifetime(storability(&req(), &r, &p, NOW)), 86_400);
    }

    #[test]
    fn max_ttl_caps_everything() {
        let p = StorePolicy {
            max_ttl: 30,
            default_ttl: Some(60),
            ..policy()
        };
        assert_eq!(
            lifetime(storability(&req(), &resp("s-maxage=99"), &p, NOW)),
            30
        );
        assert_eq!(
            lifetime(storability(&req(), &resp("max-age=99"), &p, NOW)),
            30
        );
        assert_eq!(lifetime(storability(&req(), &resp(""), &p, NOW)), 30);
        assert_eq!(
            lifetime(storability(&req(), &resp("max-age=10"), &p, NOW)),
            10
        );
        let p = StorePolicy { max_ttl: 0, ..p };
        assert_eq!(
            lifetime(storability(&req(), &resp("max-age=10"), &p, NOW)),
            0
        );
    }

    #[test]
    fn no_cache_response() {
        assert_eq!(
            storability(&req(), &resp("no-cache, max-age=600"), &policy(), NOW),
            yes(0, true)
        );
        assert_eq!(
            storability(&req(), &resp("no-cache=\"set-cookie\""), &policy(), NOW),
            yes(0, true)
        );
        // Response Pragma: no-cache counts only without Cache-Control directives.
        let mut r = resp("");
        r.pragma_no_cache = true;
        assert_eq!(storability(&req(), &r, &policy(), NOW), yes(0, true));
        r.cache_control = CacheControl::parse("max-age=5");
        assert_eq!(storability(&req(), &r, &policy(), NOW), yes(5, false));
    }

    #[test]
    fn revalidate_flags_and_stale_extensions() {
        assert_eq!(
            storability(&req(), &resp("max-age=5, proxy-revalidate"), &policy(), NOW),
            yes(5, true)
        );
        assert_eq!(
            storability(
                &req(),
                &resp("max-age=5, stale-while-revalidate=30, stale-if-error=86400"),
                &policy(),
                NOW
            ),
            Storable::Yes {
                freshness_lifetime: 5,
                must_revalidate: false,
                stale_while_revalidate: Some(30),
                stale_if_error: Some(86_400),
            }
        );
    }

    #[test]
    fn a_date_in_the_second_before_arrival_is_not_a_second_of_age() {
        // Sent at 1000.9 (Date: 1000), requested at 1000.8, arrived at 1001.05: 250 ms old.
        let t = Timing {
            request_time: 1000,
            request_subsec_ms: 800,
            response_time: 1001,
            response_subsec_ms: 50,
            date: Some(1000),
            age_header: None,
        };
        assert_eq!(current_age(&t, 1_001_050), 0);
        assert!(is_fresh(1, current_age(&t, 1_001_799)));
        assert!(!is_fresh(1, current_age(&t, 1_001_800)));
        // Dated two seconds before it arrived: at least a second old on arrival.
        let t = Timing {
            date: Some(999),
            ..t
        };
        assert_eq!(current_age(&t, 1_001_050), 1);
    }

    #[test]
    fn age_rfc_9111() {
        // Plain: received at 1000, Date 1000, no Age, now 1060 → 60.
        let t = Timing {
            request_time: 995,
            response_time: 1000,
            date: Some(1000),
            age_header: None,
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 1060 * 1000), 65); // response_delay 5 counts
                                                      // Age header + delay beats apparent age.
        let t = Timing {
            request_time: 990,
            response_time: 1000,
            date: Some(995),
            age_header: Some(100),
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 1000 * 1000), 110);
        // Apparent age beats a small Age: sent by 700.999 at the latest, 299.001 s before it
        // arrived.
        let t = Timing {
            request_time: 1000,
            response_time: 1000,
            date: Some(700),
            age_header: Some(10),
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 1050 * 1000), 349);
        assert_eq!(current_age(&t, 1050 * 1000 + 998), 349);
        assert_eq!(current_age(&t, 1050 * 1000 + 999), 350);
        // Date in the future (origin clock ahead): apparent age 0, Age still used.
        let t = Timing {
            request_time: 1000,
            response_time: 1000,
            date: Some(5000),
            age_header: Some(7),
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 1003 * 1000), 10);
        // No Date, no Age.
        let t = Timing {
            request_time: 1000,
            response_time: 1002,
            date: None,
            age_header: None,
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 1010 * 1000), 10);
        // Our clock went backwards: no resident time, no negative.
        assert_eq!(current_age(&t, 900 * 1000), 2);
        // request_time after response_time: no delay.
        let t = Timing {
            request_time: 2000,
            response_time: 1000,
            date: None,
            age_header: None,
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 1000 * 1000), 0);
        // Saturation.
        let t = Timing {
            request_time: 0,
            response_time: u64::MAX,
            date: Some(0),
            age_header: Some(u64::MAX),
            ..Timing::default()
        };
        assert_eq!(current_age(&t, u64::MAX), u64::MAX);
    }

    #[test]
    fn ages_count_milliseconds() {
        // Asked at 10.950, answered at 11.100: 150 ms old on arrival, not a whole second.
        let t = Timing {
            request_time: 10,
            request_subsec_ms: 950,
            response_time: 11,
            response_subsec_ms: 100,
            ..Timing::default()
        };
        assert_eq!(current_age(&t, 11_100), 0);
        // A one-second lifetime lasts until 11.950 (age 0.999 s), not until 12.000.
        assert_eq!(current_age(&t, 11_949), 0);
        assert!(is_fresh(1, current_age(&t, 11_949)));
        assert_eq!(current_age(&t, 11_950), 1);
        assert!(!is_fresh(1, current_age(&t, 11_950)));
        // Stored late in a second: fresh for a whole second, not for the rest of that second.
        let late = Timing {
            request_time: 20,
            request_subsec_ms: 900,
            response_time: 20,
            response_subsec_ms: 900,
            ..Timing::default()
        };
        assert!(is_fresh(1, current_age(&late, 21_500)));
        // Date has whole seconds: it is compared with the whole second of arrival.
        let dated = Timing {
            date: Some(20),
            ..late
        };
        assert_eq!(current_age(&dated, 21_500), 0);
    }

    #[test]
    fn freshness_boundary() {
        assert!(is_fresh(60, 59));
        assert!(!is_fresh(60, 60));
        assert!(!is_fresh(0, 0));
        assert!(is_fresh(u64::MAX, 0));
    }

    #[test]
    fn request_directives() {
        let d = |cc: &str, pragma: bool, lifetime: u64, age: u64| {
            request_directs(&CacheControl::parse(cc), pragma, lifetime, age)
        };
        use RequestDirective::*;
        assert_eq!(d("", false, 60, 10), Normal);
        assert_eq!(d("no-store", false, 60, 10), Bypass);
        assert_eq!(d("no-store, max-age=100", false, 60, 10), Bypass);
        assert_eq!(d("no-cache", false, 60, 10), Revalidate);
        assert_eq!(d("max-age=0", false, 60, 0), Revalidate);
        assert_eq!(d("max-age=junk", false, 60, 0), Revalidate);
        assert_eq!(d("", true, 60, 10), Revalidate);
        // Pragma ignored when Cache-Control has directives (RFC 9111 §5.4).
        assert_eq!(d("max-age=30", true, 60, 10), Normal);
        assert_eq!(d("max-age=30", false, 60, 30), Normal);
        assert_eq!(d("max-age=30", false, 60, 31), Revalidate);
        assert_eq!(d("min-fresh=20", false, 60, 40), Normal);
        assert_eq!(d("min-fresh=20", false, 60, 41), Revalidate);
        assert_eq!(d("min-fresh=20", false, 60, 100), Revalidate);
        // max-stale never makes a stale entry servable here, and doesn't force revalidation.
        assert_eq!(d("max-stale", false, 60, 10), Normal);
        assert_eq!(d("only-if-cached", false, 60, 10), Normal);
    }

    #[test]
    fn conditionals() {
        let etag = Some("\"abc\"");
        let weak = Some("W/\"abc\"");
        // Strong and weak tags compare weakly.
        assert!(conditional_matches(Some("\"abc\""), None, etag, None));
        assert!(conditional_matches(Some("W/\"abc\""), None, etag, None));
        assert!(conditional_matches(Some("\"abc\""), None, weak, None));
        assert!(!conditional_matches(Some("\"abd\""), None, etag, None));
        // Lists, whitespace, commas inside tags.
        assert!(conditional_matches(
            Some("\"x\", W/\"y\" ,\"abc\""),
            None,
            etag,
            None
        ));
        assert!(conditional_matches(
            Some("\"a,b\""),
            None,
            Some("\"a,b\""),
            None
        ));
        assert!(!conditional_matches(
            Some("\"a,b\""),
            None,
            Some("\"a\""),
            None
        ));
        assert!(!conditional_matches(Some("\"x\", \"y\""), None, etag, None));
        // `*` matches any stored entry, with or without an ETag.
        assert!(conditional_matches(Some("*"), None, None, None));
        assert!(conditional_matches(Some(" * "), None, etag, None));
        // No stored ETag: no tag matches.
        assert!(!conditional_matches(Some("\"abc\""), None, None, Some(0)));
        assert!(!conditional_matches(Some("\"\""), None, Some("\"\""), None));
        // If-None-Match takes precedence over If-Modified-Since (RFC 9110 §13.2.2).
        assert!(!conditional_matches(
            Some("\"nope\""),
            Some(2000),
            etag,
            Some(1000)
        ));
        assert!(conditional_matches(
            Some("\"abc\""),
            Some(500),
            etag,
            Some(1000)
        ));
        // If-Modified-Since alone.
        assert!(conditional_matches(None, Some(1000), etag, Some(1000)));
        assert!(conditional_matches(None, Some(1001), etag, Some(1000)));
        assert!(!conditional_matches(None, Some(999), etag, Some(1000)));
        assert!(!conditional_matches(None, Some(1000), etag, None));
        assert!(!conditional_matches(None, None, etag, Some(1000)));
        // Sloppy unquoted tags still compare.
        assert!(conditional_matches(Some("abc"), None, etag, None));
    }

    #[test]
    fn garbage_never_panics() {
        let nasty =
            "W/\"a,b\", *,W/\"\u{e9}\u{1F600}\",,\"unterminated, W/W/\"\"\" ,\t*x, no-cache=\"";
        let chars: Vec<(usize, char)> = nasty.char_indices().collect();
        for (i, &(start, _)) in chars.iter().enumerate() {
            for &(end, _) in chars.iter().skip(i) {
                let s = &nasty[start..end];
                let _ = conditional_matches(Some(s), None, Some(s), None);
                let _ = conditional_matches(Some(s), None, Some("\"a,b\""), None);
                let _ = Vary::parse(Some(s));
                let r = ResponseFacts {
                    cache_control: CacheControl::parse(s),
                    vary: Vary::parse(Some(s)),
                    etag: Some(s.to_string()),
                    ..resp("")
                };
                let _ = storability(&req(), &r, &policy(), NOW);
                let _ = request_directs(&CacheControl::parse(s), true, 5, u64::MAX);
            }
        }
        let extreme = ResponseFacts {
            date: Some(0),
            expires: Some(Some(u64::MAX)),
            last_modified: Some(u64::MAX),
            age: Some(u64::MAX),
            ..resp("")
        };
        let p = StorePolicy {
            heuristic: true,
            max_ttl: u64::MAX,
            ..policy()
        };
        assert_eq!(
            lifetime(storability(&req(), &extreme, &p, u64::MAX)),
            u64::MAX
        );
    }

    #[test]
    fn reasons_read_as_before() {
        let reasons = [
            (NotStorable::Method, "method"),
            (NotStorable::NoStore, "no-store"),
            (NotStorable::Status, "status"),
            (NotStorable::Private, "private"),
            (NotStorable::Authorization, "authorization"),
            (NotStorable::SetCookie, "set-cookie"),
            (NotStorable::VaryStar, "vary-star"),
            (NotStorable::NoFreshness, "no-freshness"),
        ];
        for (reason, text) in reasons {
            assert_eq!(reason.as_str(), text);
        }
    }
}

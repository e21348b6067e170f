//! Which response statuses a shared cache may store (RFC 9111 §3, RFC 9110 §15.1).
//!
//! - Heuristically cacheable statuses may be stored without explicit freshness (then the
//!   service's `default_ttl_s` or the `Last-Modified` heuristic gives them a lifetime).
//! - Any other final status may be stored when the response gives explicit freshness
//!   (`max-age`, `s-maxage`, `Expires`), except `206` and `304` (not complete responses) and
//!   the errors that describe the request rather than the resource (`400`, `411`, `413`,
//!   `417`, `431`): a client provoking one with input that is not part of the key (an
//!   over-long header, a bad `Content-Length`) would otherwise poison the key for everyone.
//! - `must-understand` limits storing to the statuses this cache implements the caching rules
//!   of ([`understood`]); for those it overrides `no-store` (RFC 9111 §5.2.2.3).

/// Statuses cacheable by default (RFC 9110 §15.1): heuristic freshness may apply to them.
pub fn heuristically_cacheable(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Statuses whose caching requirements this cache implements, for `must-understand`.
pub fn understood(status: u16) -> bool {
    matches!(
        status,
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Whether a response with `status` may be stored; `explicit`: it has explicit freshness.
pub fn storable_status(status: u16, explicit: bool) -> bool {
    if heuristically_cacheable(status) {
        return true;
    }
    let describes_request = matches!(status, 400 | 411 | 413 | 417 | 431);
    explicit && (200..=599).contains(&status) && !matches!(status, 206 | 304) && !describes_request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cacheable_statuses_need_no_explicit_freshness() {
        for s in [200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501] {
            assert!(storable_status(s, false), "{s}");
            assert!(storable_status(s, true), "{s}");
        }
        for s in [201, 302, 307, 303, 500, 503, 299, 599] {
            assert!(!storable_status(s, false), "{s}");
        }
    }

    #[test]
    fn explicit_freshness_stores_any_final_status() {
        for s in [
            201, 202, 299, 302, 303, 307, 401, 403, 409, 499, 500, 502, 503, 504, 599,
        ] {
            assert!(storable_status(s, true), "{s}");
        }
        for s in [
            0, 100, 101, 103, 199, 206, 304, 400, 411, 413, 417, 431, 600, 999,
        ] {
            assert!(!storable_status(s, true), "{s}");
        }
    }

    #[test]
    fn understood_statuses() {
        assert!(understood(206) && understood(200) && understood(501));
        for s in [201, 299, 302, 307, 500, 599] {
            assert!(!understood(s), "{s}");
        }
    }
}

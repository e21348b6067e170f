//! The cache's tenant: which namespace a request's entries live in.
//!
//! A tenant id is taken only when it is unambiguous — one header value, one query parameter,
//! or one path segment, in the bytes the client sent. Anything else (a header sent twice, a
//! value over [`MAX_TENANT_LEN`] bytes, control characters, bytes that are not UTF-8, an empty
//! id, a parameter an origin could also read under another spelling) is an error and the
//! request bypasses the cache: quietly treating it as "no tenant" would share the anonymous
//! namespace, and cutting or decoding it would merge different tenants.

use super::query::{canonical, may_match, Param};
use crate::policy::header_list::RequestHeaders;
use crate::policy::TenantConfig;

use crate::policy::tenant_id::tenant_id;
/// Longest tenant id (bytes); a longer one bypasses the cache.
pub use crate::policy::tenant_id::MAX_TENANT_ID_LEN as MAX_TENANT_LEN;

/// Why a request's tenant id cannot be used.
pub const INVALID_TENANT: &str = "invalid-tenant";
/// The tenant header or parameter came more than once.
pub const REPEATED_TENANT: &str = "repeated-tenant";

/// A request's header values as the cache reads them.
pub struct HeaderView<'a> {
    /// (lower-case name, value) pairs; a repeated header once per value.
    pub headers: &'a RequestHeaders<'a>,
    /// Names whose value was not valid UTF-8 (their text in `headers` is lossy).
    pub non_utf8: &'a [&'a str],
}

/// One header's value, when it came exactly once and as UTF-8.
pub enum Single<'a> {
    Absent,
    One(&'a str),
    Repeated,
    NotUtf8,
}

impl<'a> HeaderView<'a> {
    pub fn single(&self, name: &str) -> Single<'a> {
        // One pass: `x_location_id` beside (or instead of) `x-location-id` counts as a
        // repetition (an origin may read either).
        let mut found = None;
        for &(n, value) in self.headers {
            if n.len() != name.len() {
                continue;
            }
            if !n.eq_ignore_ascii_case(name) {
                if super::key::same_header_name(n, name) {
                    return Single::Repeated;
                }
                continue;
            }
            if found.is_some() {
                return Single::Repeated;
            }
            found = Some(value);
        }
        let Some(first) = found else {
            return Single::Absent;
        };
        if self.non_utf8.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            return Single::NotUtf8;
        }
        Single::One(first)
    }
}

fn valid(id: &str) -> Result<String, &'static str> {
    tenant_id(id.as_bytes().to_vec()).map_err(|_| INVALID_TENANT)
}

/// The request's tenant id for the cache: `Ok(None)` when it names none, an error when what
/// it names cannot be used safely. `path` is the path without its query (already checked by
/// the key), `query` its parsed parameters.
pub fn cache_tenant(
    tenant: &TenantConfig,
    path: &str,
    query: &[Param],
    headers: &HeaderView<'_>,
) -> Result<Option<String>, &'static str> {
    if let Some(name) = &tenant.header {
        return match headers.single(name) {
            Single::Absent => Ok(None),
            Single::One(value) => valid(value).map(Some),
            Single::Repeated => Err(REPEATED_TENANT),
            Single::NotUtf8 => Err(INVALID_TENANT),
        };
    }
    if let Some(name) = &tenant.query {
        let name = canonical(name).map_err(|_| INVALID_TENANT)?;
        let mut found = None;
        for param in query {
            if param.name == name {
                if found.is_some() {
                    return Err(REPEATED_TENANT);
                }
                found = Some(param.value.as_deref().unwrap_or_default());
            } else if may_match(std::slice::from_ref(&name), &param.name) {
                // `LOCATION=` or `location[]=` next to (or instead of) `location=`: an origin
                // may read either as the tenant.
                return Err(REPEATED_TENANT);
            }
        }
        return found.map(valid).transpose();
    }
    let Some(index) = tenant
        .path_segment
        .and_then(|index| usize::try_from(index).ok())
    else {
        return Ok(None);
    };
    match path.split('/').nth(index) {
        None | Some("") => Ok(None),
        Some(segment) => valid(&canonical(segment).map_err(|_| INVALID_TENANT)?).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::query::parse;

    fn header_tenant() -> TenantConfig {
        TenantConfig {
            header: Some("x-location-id".into()),
            ..TenantConfig::default()
        }
    }

    fn with_headers(
        pairs: &[(&str, &str)],
        non_utf8: &[&str],
    ) -> Result<Option<String>, &'static str> {
        cache_tenant(
            &header_tenant(),
            "/a",
            &[],
            &HeaderView {
                headers: pairs,
                non_utf8,
            },
        )
    }

    #[test]
    fn header_ids_are_taken_only_when_unambiguous() {
        assert_eq!(with_headers(&[], &[]), Ok(None));
        assert_eq!(
            with_headers(&[("x-location-id", "loc-1")], &[]),
            Ok(Some("loc-1".into()))
        );
        let long = "a".repeat(MAX_TENANT_LEN + 1);
        let exact = "a".repeat(MAX_TENANT_LEN);
        assert_eq!(
            with_headers(&[("x-location-id", &long)], &[]),
            Err(INVALID_TENANT)
        );
        assert_eq!(
            with_headers(&[("x-location-id", &exact)], &[]),
            Ok(Some(exact.clone()))
        );
        for bad in ["", "a\u{1}b", "a\u{7f}"] {
            assert_eq!(
                with_headers(&[("x-location-id", bad)], &[]),
                Err(INVALID_TENANT),
                "{bad:?}"
            );
        }
        assert_eq!(
            with_headers(&[("x-location-id", "\u{fffd}")], &["x-location-id"]),
            Err(INVALID_TENANT)
        );
        assert_eq!(
            with_headers(&[("x-location-id", "a"), ("x-location-id", "b")], &[]),
            Err(REPEATED_TENANT)
        );
    }

    #[test]
    fn query_ids_are_read_like_the_origin_reads_them() {
        let config = TenantConfig {
            query: Some("location".into()),
            ..TenantConfig::default()
        };
        let view = HeaderView {
            headers: &[],
            non_utf8: &[],
        };
        let tenant = |query: &str| cache_tenant(&config, "/p", &parse(query).unwrap(), &view);
        assert_eq!(tenant("x=1"), Ok(None));
        assert_eq!(tenant("location=l7&x=1"), Ok(Some("l7".into())));
        assert_eq!(tenant("%6Cocation=l%37"), Ok(Some("l7".into())));
        assert_eq!(tenant("location=l7&location=l8"), Err(REPEATED_TENANT));
        assert_eq!(tenant("%6cocation=l8&location=l7"), Err(REPEATED_TENANT));
        assert_eq!(tenant("LOCATION=l8&location=l7"), Err(REPEATED_TENANT));
        assert_eq!(tenant("LOCATION=l8"), Err(REPEATED_TENANT));
        assert_eq!(tenant("location="), Err(INVALID_TENANT));
        assert_eq!(tenant("location"), Err(INVALID_TENANT));
    }

    #[test]
    fn path_ids_are_canonical_segments() {
        let config = TenantConfig {
            path_segment: Some(3),
            ..TenantConfig::default()
        };
        let view = HeaderView {
            headers: &[],
            non_utf8: &[],
        };
        let tenant = |path: &str| cache_tenant(&config, path, &[], &view);
        assert_eq!(tenant("/api/v1/acme/leads"), Ok(Some("acme".into())));
        assert_eq!(tenant("/api/v1/%61cme/leads"), Ok(Some("acme".into())));
        assert_eq!(tenant("/api/v1"), Ok(None));
        assert_eq!(tenant("/api/v1/"), Ok(None));
    }
}

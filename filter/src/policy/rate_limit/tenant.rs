//! Which tenant a rate-limited request is counted against, read strictly: a tenant id that
//! could name two buckets (a repeated header or parameter with different values, a percent-
//! encoded spelling, bytes that are not UTF-8) is refused rather than guessed, so a client can
//! neither open itself a new bucket nor land in another tenant's.

use crate::policy::header_list::HeaderPair;
use crate::policy::TenantConfig;

pub use crate::policy::tenant_id::MAX_TENANT_ID_LEN;
use crate::policy::tenant_id::{tenant_id, IdError};

/// Why a request's tenant id is refused (`400`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantError {
    /// The header or query parameter appears more than once with different values.
    Conflicting,
    /// Longer than [`MAX_TENANT_ID_LEN`] bytes.
    TooLong,
    /// Not UTF-8, a broken percent-escape, or a control character, whitespace or comma.
    Invalid,
}

impl TenantError {
    pub fn message(self) -> &'static str {
        match self {
            TenantError::Conflicting => {
                "the tenant id is given more than once with different values"
            }
            TenantError::TooLong => "the tenant id is longer than 128 bytes",
            TenantError::Invalid => {
                "the tenant id is not UTF-8 or holds a control character, whitespace or comma"
            }
        }
    }
}

/// The request's tenant id from its header, query parameter or path segment; `Ok(None)` when it
/// names none (absent or empty). Query parameters and path segments are percent-decoded (names
/// too), so `%61cme` and `acme` are one tenant. Header values arrive with invalid UTF-8 replaced
/// by U+FFFD, so that character is refused: two different byte strings never become one id.
pub fn tenant_of(
    tenant: &TenantConfig,
    full_path: &str,
    headers: &[impl HeaderPair],
) -> Result<Option<String>, TenantError> {
    let (path, query) = match full_path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (full_path, None),
    };
    let value = if let Some(name) = &tenant.header {
        // `x_location_id` would be another spelling of the same header for some origins.
        if headers.iter().map(HeaderPair::name).any(|n| {
            !n.eq_ignore_ascii_case(name) && crate::policy::cache::key::same_header_name(n, name)
        }) {
            return Err(TenantError::Conflicting);
        }
        let values = headers
            .iter()
            .filter(|pair| pair.name().eq_ignore_ascii_case(name))
            .map(|pair| pair.value().as_bytes().to_vec());
        one_value(values)?
    } else if let Some(name) = &tenant.query {
        let mut values = Vec::new();
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            if percent_decode(n)? == name.as_bytes() {
                values.push(percent_decode(v)?);
            }
        }
        one_value(values.into_iter())?
    } else {
        let index = tenant
            .path_segment
            .and_then(|segment| usize::try_from(segment).ok());
        match index.and_then(|index| path.split('/').nth(index)) {
            Some(segment) => Some(percent_decode(segment)?),
            None => None,
        }
    };
    match value {
        None => Ok(None),
        Some(bytes) if bytes.is_empty() => Ok(None),
        Some(bytes) => validate(bytes).map(Some),
    }
}

/// The single value of a header or parameter; repeats must agree byte for byte.
fn one_value(mut values: impl Iterator<Item = Vec<u8>>) -> Result<Option<Vec<u8>>, TenantError> {
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.any(|other| other != first) {
        return Err(TenantError::Conflicting);
    }
    Ok(Some(first))
}

fn validate(bytes: Vec<u8>) -> Result<String, TenantError> {
    tenant_id(bytes).map_err(|err| match err {
        IdError::TooLong => TenantError::TooLong,
        IdError::Invalid => TenantError::Invalid,
    })
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// `%XX` escapes decoded (a `%` without two hex digits is refused); `+` stays `+`.
fn percent_decode(text: &str) -> Result<Vec<u8>, TenantError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        if byte != b'%' {
            out.push(byte);
            continue;
        }
        let high = bytes.next().and_then(hex);
        let low = bytes.next().and_then(hex);
        match (high, low) {
            (Some(high), Some(low)) => out.push(high << 4 | low),
            _ => return Err(TenantError::Invalid),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn by_header() -> TenantConfig {
        TenantConfig {
            header: Some("x-tenant".into()),
            ..TenantConfig::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn from_header(values: &[&str]) -> Result<Option<String>, TenantError> {
        let pairs: Vec<(&str, &str)> = values.iter().map(|v| ("x-tenant", *v)).collect();
        tenant_of(&by_header(), "/", &headers(&pairs))
    }

    #[test]
    fn one_header_value_or_none() {
        assert_eq!(from_header(&["acme"]), Ok(Some("acme".into())));
        assert_eq!(from_header(&[]), Ok(None));
        assert_eq!(from_header(&[""]), Ok(None));
        let upper = headers(&[("X-Tenant", "acme")]);
        assert_eq!(
            tenant_of(&by_header(), "/", &upper),
            Ok(Some("acme".into()))
        );
        assert_eq!(from_header(&["lieu-é"]), Ok(Some("lieu-é".into())));
    }

    #[test]
    fn repeated_headers_must_agree() {
        assert_eq!(from_header(&["acme", "acme"]), Ok(Some("acme".into())));
        assert_eq!(
            from_header(&["acme", "other"]),
            Err(TenantError::Conflicting)
        );
        assert_eq!(from_header(&["acme", ""]), Err(TenantError::Conflicting));
        // What a proxy that joins repeats would pass on.
        assert_eq!(from_header(&["acme, other"]), Err(TenantError::Invalid));
        assert_eq!(from_header(&["acme,other"]), Err(TenantError::Invalid));
    }

    #[test]
    fn over_long_and_invalid_ids_are_refused() {
        let longest = "t".repeat(MAX_TENANT_ID_LEN);
        assert_eq!(from_header(&[&longest]), Ok(Some(longest.clone())));
        assert_eq!(
            from_header(&[&format!("{longest}x")]),
            Err(TenantError::TooLong)
        );
        for bad in ["a\u{7f}b", "a\tb", "a b", "\u{fffd}", "x\u{fffd}y"] {
            assert_eq!(from_header(&[bad]), Err(TenantError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn query_parameters_are_decoded_and_must_agree() {
        let by_query = TenantConfig {
            query: Some("tenant".into()),
            ..TenantConfig::default()
        };
        let of = |path: &str| tenant_of(&by_query, path, crate::policy::header_list::NO_HEADERS);
        assert_eq!(of("/x?tenant=acme"), Ok(Some("acme".into())));
        assert_eq!(of("/x?%74enant=%61cme"), Ok(Some("acme".into())));
        assert_eq!(of("/x?tenant=acme&tenant=%61cme"), Ok(Some("acme".into())));
        assert_eq!(of("/x?tenant=acme&tenant=b"), Err(TenantError::Conflicting));
        assert_eq!(of("/x?tenant=%ff"), Err(TenantError::Invalid));
        assert_eq!(of("/x?tenant=%4"), Err(TenantError::Invalid));
        assert_eq!(of("/x?tenant=a%2Cb"), Err(TenantError::Invalid));
        assert_eq!(of("/x?tenant="), Ok(None));
        assert_eq!(of("/x?other=1"), Ok(None));
        assert_eq!(of("/x"), Ok(None));
    }

    #[test]
    fn path_segments_are_decoded() {
        let by_segment = TenantConfig {
            path_segment: Some(3),
            ..TenantConfig::default()
        };
        let of = |path: &str| tenant_of(&by_segment, path, crate::policy::header_list::NO_HEADERS);
        assert_eq!(of("/api/v1/acme/leads?x=1"), Ok(Some("acme".into())));
        assert_eq!(of("/api/v1/%61cme/leads"), Ok(Some("acme".into())));
        assert_eq!(of("/api/v1//leads"), Ok(None));
        assert_eq!(of("/api/v1"), Ok(None));
        assert_eq!(of("/api/v1/a%00b"), Err(TenantError::Invalid));
    }
}

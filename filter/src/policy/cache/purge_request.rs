//! The body of `POST <admin prefix>/cache/purge`: exactly one of tenant, service, tag, url.

use serde::Deserialize;

/// What a purge request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeTarget {
    Tenant(String),
    Service(String),
    Tag(String),
    /// An absolute URL (`http://host/path?query`).
    Url(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    tenant: Option<String>,
    service: Option<String>,
    tag: Option<String>,
    url: Option<String>,
}

/// Largest purge request body accepted.
pub const MAX_PURGE_BODY: usize = 16 * 1024;

pub fn parse_purge_request(body: &[u8]) -> Result<PurgeTarget, String> {
    let body: Body = serde_json::from_slice(body).map_err(|err| format!("invalid JSON: {err}"))?;
    let mut targets = [
        body.tenant.map(PurgeTarget::Tenant),
        body.service.map(PurgeTarget::Service),
        body.tag.map(PurgeTarget::Tag),
        body.url.map(PurgeTarget::Url),
    ]
    .into_iter()
    .flatten();
    match (targets.next(), targets.next()) {
        (Some(target), None) => match &target {
            PurgeTarget::Tenant(v)
            | PurgeTarget::Service(v)
            | PurgeTarget::Tag(v)
            | PurgeTarget::Url(v)
                if v.is_empty() =>
            {
                Err("the purge target must not be empty".to_string())
            }
            _ => Ok(target),
        },
        _ => Err("give exactly one of \"tenant\", \"service\", \"tag\", \"url\"".to_string()),
    }
}

/// `http://host/path?q` → (scheme, authority, path-with-query).
pub fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let (authority, path) = match rest.find('/') {
        Some(slash) => (rest.get(..slash)?, rest.get(slash..)?),
        None => (rest, "/"),
    };
    (!authority.is_empty()).then_some((scheme, authority, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_target_exactly() {
        assert_eq!(
            parse_purge_request(br#"{"tenant": "loc-1"}"#),
            Ok(PurgeTarget::Tenant("loc-1".into()))
        );
        assert_eq!(
            parse_purge_request(br#"{"tag": "p7"}"#),
            Ok(PurgeTarget::Tag("p7".into()))
        );
        assert!(parse_purge_request(br#"{"tag": "a", "tenant": "b"}"#).is_err());
        assert!(parse_purge_request(br#"{}"#).is_err());
        assert!(parse_purge_request(br#"{"tag": ""}"#).is_err());
        assert!(parse_purge_request(br#"{"everything": true}"#).is_err());
        assert!(parse_purge_request(b"not json").is_err());
    }

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://a.example/x?y=1"),
            Some(("http", "a.example", "/x?y=1"))
        );
        assert_eq!(
            split_url("https://a.example"),
            Some(("https", "a.example", "/"))
        );
        assert_eq!(split_url("ftp://a/x"), None);
        assert_eq!(split_url("/relative"), None);
    }
}

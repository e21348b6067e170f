//! A delivery's identity: a sender-given id (`webhook-id`, `Idempotency-Key`, a configured
//! header) or, for senders without one, a SHA-256 of method, path and body. The body digest is
//! always taken too, so a reused id with another body is caught.

use sha2::{Digest, Sha256};

use crate::policy::header_list::{header, HeaderPair};
use crate::policy::DedupSection;

/// Longest sender-given id accepted (longer ones fall through to the next source).
pub const MAX_ID_LEN: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `<source>:<value>`, e.g. `webhook-id:msg_1` or `body:<hex>`; compared whole.
    pub id: String,
    pub body_digest: [u8; 32],
}

/// The identity of a request, or `None` when no configured source yields one.
pub fn identify(
    section: &DedupSection,
    method: &str,
    path: &str,
    headers: &[impl HeaderPair],
    body: &[u8],
) -> Option<Identity> {
    let body_digest: [u8; 32] = Sha256::digest(body).into();
    for source in &section.identity {
        if source == "body" {
            let mut hasher = Sha256::new();
            hasher.update(method.as_bytes());
            hasher.update(b"\n");
            hasher.update(path.as_bytes());
            hasher.update(b"\n");
            hasher.update(body);
            let digest: [u8; 32] = hasher.finalize().into();
            return Some(Identity {
                id: format!("body:{}", hex(&digest)),
                body_digest,
            });
        }
        if let Some(value) = header(headers, source)
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= MAX_ID_LEN)
        {
            return Some(Identity {
                id: format!("{source}:{value}"),
                body_digest,
            });
        }
    }
    None
}

/// Whether an id header the identity reads came more than once with different values (an
/// origin may read either; the request is refused rather than guessed).
pub fn ambiguous_id(section: &DedupSection, headers: &[impl HeaderPair]) -> bool {
    section
        .identity
        .iter()
        .filter(|s| *s != "body")
        .any(|source| {
            let mut values = headers
                .iter()
                .filter(|pair| crate::policy::cache::key::same_header_name(pair.name(), source))
                .map(|pair| pair.value().trim());
            values
                .next()
                .is_some_and(|first| values.any(|other| other != first))
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(identity: &[&str]) -> DedupSection {
        serde_json::from_value(serde_json::json!({ "identity": identity })).unwrap()
    }

    use crate::policy::header_list::owned as h;

    #[test]
    fn repeated_ids_that_disagree_are_ambiguous() {
        let s = section(&["webhook-id", "body"]);
        assert!(ambiguous_id(
            &s,
            &h(&[("webhook-id", "a"), ("webhook-id", "b")])
        ));
        assert!(ambiguous_id(
            &s,
            &h(&[("webhook-id", "a"), ("webhook_id", "b")])
        ));
        assert!(!ambiguous_id(
            &s,
            &h(&[("webhook-id", "a"), ("webhook-id", "a")])
        ));
        assert!(!ambiguous_id(&s, &h(&[("webhook-id", "a")])));
    }

    #[test]
    fn sources_in_order() {
        let s = section(&["webhook-id", "idempotency-key", "body"]);
        let both = h(&[("webhook-id", "msg_1"), ("idempotency-key", "k")]);
        assert_eq!(
            identify(&s, "POST", "/h", &both, b"x").unwrap().id,
            "webhook-id:msg_1"
        );
        let key = h(&[("idempotency-key", "k")]);
        assert_eq!(
            identify(&s, "POST", "/h", &key, b"x").unwrap().id,
            "idempotency-key:k"
        );
        let none = identify(
            &s,
            "POST",
            "/h",
            crate::policy::header_list::NO_HEADERS,
            b"x",
        )
        .unwrap();
        assert!(none.id.starts_with("body:"));
        let no_headers = crate::policy::header_list::NO_HEADERS;
        let other = identify(&s, "POST", "/other", no_headers, b"x").unwrap();
        assert_ne!(none.id, other.id);
        assert_eq!(none.body_digest, other.body_digest);
    }

    #[test]
    fn no_source_means_no_identity() {
        let s = section(&["webhook-id"]);
        assert_eq!(
            identify(
                &s,
                "POST",
                "/h",
                crate::policy::header_list::NO_HEADERS,
                b"x"
            ),
            None
        );
        let long = "x".repeat(300);
        assert_eq!(
            identify(&s, "POST", "/h", &h(&[("webhook-id", &long)]), b"x"),
            None
        );
    }
}

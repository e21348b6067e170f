//! Standard Webhooks signatures: `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64 secret after `whsec_`, and a
//! timestamp within a tolerance (replays of old deliveries are refused).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// `webhook-id`, `webhook-timestamp` or `webhook-signature` is missing.
    Missing,
    BadTimestamp,
    /// The timestamp is outside the tolerance.
    Expired,
    /// No `v1` signature matches.
    Invalid,
}

/// The key bytes of a `whsec_<base64>` secret (or of a bare base64 secret).
pub fn decode_secret(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).ok().filter(|key| !key.is_empty())
}

fn mac(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac)
}

/// The `webhook-signature` value a sender computes (for senders and tests).
pub fn sign(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let tag = mac(key, id, timestamp, body)
        .map(|m| m.finalize().into_bytes().to_vec())
        .unwrap_or_default();
    format!("v1,{}", STANDARD.encode(tag))
}

/// Checks a delivery's signature (constant-time comparison) and timestamp.
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now_s: u64,
    tolerance_s: u64,
) -> Result<(), SignatureError> {
    let (Some(id), Some(timestamp), Some(signatures)) = (id, timestamp, signatures) else {
        return Err(SignatureError::Missing);
    };
    let sent: u64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    if sent.abs_diff(now_s) > tolerance_s {
        return Err(SignatureError::Expired);
    }
    let matches = signatures
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .any(|candidate| {
            let Ok(tag) = STANDARD.decode(candidate) else {
                return false;
            };
            mac(key, id, timestamp, body).is_some_and(|m| m.verify_slice(&tag).is_ok())
        });
    if matches {
        Ok(())
    } else {
        Err(SignatureError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn round_trip_and_refusals() {
        let key = decode_secret(SECRET).unwrap();
        let signature = sign(&key, "msg_1", "1700000000", b"{}");
        assert!(signature.starts_with("v1,"));
        let check = |id, ts, sig: &str, body: &[u8], now| {
            verify(&key, Some(id), Some(ts), Some(sig), body, now, 300)
        };
        assert_eq!(
            check("msg_1", "1700000000", &signature, b"{}", 1_700_000_100),
            Ok(())
        );
        let listed = format!("v1,AAAA {signature}");
        assert_eq!(
            check("msg_1", "1700000000", &listed, b"{}", 1_700_000_000),
            Ok(()),
            "any listed signature"
        );
        assert_eq!(
            check("msg_1", "1700000000", &signature, b"{ }", 1_700_000_000),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check("msg_2", "1700000000", &signature, b"{}", 1_700_000_000),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            check("msg_1", "1700000000", &signature, b"{}", 1_700_000_301),
            Err(SignatureError::Expired)
        );
        assert_eq!(
            check("msg_1", "soon", &signature, b"{}", 1_700_000_000),
            Err(SignatureError::BadTimestamp)
        );
        assert_eq!(
            verify(&key, None, Some("1"), Some("v1,x"), b"", 1, 300),
            Err(SignatureError::Missing)
        );
        assert_eq!(decode_secret("whsec_"), None);
    }
}

//! The running configuration as the explainer page shows it (`<admin prefix>/explain/config`):
//! the JSON the filter was configured with, its secrets replaced by placeholders that still
//! validate, so the page (and `edge-ctl explain --config`) accept it as it is.

use serde_json::Value;

/// What `admin.token` becomes: a valid token (16+ characters, no spaces) that is no secret.
pub const REDACTED_TOKEN: &str = "redacted-admin-token";
/// What a `signature.secret` becomes: `whsec_` and the base64 of `redacted-signing-secret`
/// (23 bytes, so it validates as a signing secret).
pub const REDACTED_SECRET: &str = "whsec_cmVkYWN0ZWQtc2lnbmluZy1zZWNyZXQ=";

/// The configuration with its secrets redacted, pretty-printed, and the field paths redacted
/// (`admin.token`, `services[2].dedup.signature.secret`). `None` when `bytes` are no JSON
/// object (a configuration the filter accepted always is one).
pub fn redacted_config(bytes: &[u8]) -> Option<(String, Vec<String>)> {
    let mut config: Value = serde_json::from_slice(bytes).ok()?;
    let root = config.as_object_mut()?;
    let mut redacted = Vec::new();
    if let Some(token) = root
        .get_mut("admin")
        .and_then(|admin| admin.get_mut("token"))
        .filter(|token| token.is_string())
    {
        *token = Value::from(REDACTED_TOKEN);
        redacted.push("admin.token".to_string());
    }
    for (name, value) in root.iter_mut() {
        redact_secrets(value, name, &mut redacted);
    }
    let text = serde_json::to_string_pretty(&config).ok()?;
    Some((text, redacted))
}

/// Replaces every `signature.secret` string under `value` (at `path`).
fn redact_secrets(value: &mut Value, path: &str, redacted: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if path == "signature" || path.ends_with(".signature") {
                if let Some(secret) = map.get_mut("secret").filter(|s| s.is_string()) {
                    *secret = Value::from(REDACTED_SECRET);
                    redacted.push(format!("{path}.secret"));
                }
            }
            for (name, inner) in map.iter_mut() {
                redact_secrets(inner, &format!("{path}.{name}"), redacted);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter_mut().enumerate() {
                redact_secrets(inner, &format!("{path}[{index}]"), redacted);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::dedup::signature::decode_secret;
    use crate::policy::Config;

    const CONFIG: &str = r#"{
        "services": [
            {"name": "leads", "match": {"path_prefix": "/leads/"}, "cache": {}},
            {"name": "hooks", "match": {"path_exact": "/hooks"},
             "dedup": {"signature": {"secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1"}}}
        ],
        "default_service": {"name": "rest"},
        "admin": {"token": "the-real-admin-token-123", "allow_addresses": ["127.0.0.1"]}
    }"#;

    #[test]
    fn secrets_are_replaced_by_placeholders_that_validate() {
        assert!(Config::parse(CONFIG.as_bytes()).is_ok());
        let (text, redacted) = redacted_config(CONFIG.as_bytes()).unwrap();
        assert!(!text.contains("the-real-admin-token-123"), "{text}");
        assert!(!text.contains("c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1"), "{text}");
        assert_eq!(
            redacted,
            ["admin.token", "services[1].dedup.signature.secret"]
        );
        assert!(text.contains(REDACTED_TOKEN) && text.contains(REDACTED_SECRET));
        let config = Config::parse(text.as_bytes()).unwrap();
        assert_eq!(config.services.len(), 2);
        assert_eq!(config.admin.allow_addresses, ["127.0.0.1"]);
        assert!(decode_secret(REDACTED_SECRET).is_some_and(|key| key.len() >= 16));
    }

    #[test]
    fn a_configuration_without_secrets_is_unchanged_but_for_layout() {
        let plain = r#"{"services": [{"name": "a", "match": {"path_prefix": "/"}}]}"#;
        let (text, redacted) = redacted_config(plain.as_bytes()).unwrap();
        assert!(redacted.is_empty());
        let before: Value = serde_json::from_str(plain).unwrap();
        let after: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(before, after);
        assert_eq!(redacted_config(b"[1]"), None);
        assert_eq!(redacted_config(b"not json"), None);
    }

    #[test]
    fn a_secret_in_the_default_service_is_redacted_too() {
        let config = r#"{"default_service": {"name": "d", "dedup": {"signature": {"secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1"}}}}"#;
        let (text, redacted) = redacted_config(config.as_bytes()).unwrap();
        assert_eq!(redacted, ["default_service.dedup.signature.secret"]);
        assert!(!text.contains("c2VjcmV0"));
    }
}

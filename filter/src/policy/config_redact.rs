//! The running configuration as the explainer page shows it (`<admin prefix>/explain/config`):
//! the JSON the filter was configured with, its secrets replaced by placeholders that still
//! validate, so the page (and `edge-ctl explain --config`) accept it as it is.

use serde_json::Value;

/// What `admin.token` becomes: a valid token (16+ characters, no spaces) that is no secret.
pub const REDACTED_TOKEN: &str = "redacted-admin-token";
/// What a `signature.secret` becomes: `whsec_` and the base64 of `redacted-signing-secret`
/// (23 bytes, so it validates as a signing secret).
pub const REDACTED_SECRET: &str = "whsec_cmVkYWN0ZWQtc2lnbmluZy1zZWNyZXQ=";

/// The configuration with its secrets redacted, and the field paths redacted (`admin.token`,
/// `services[2].dedup.signature.secret`). As the operator wrote it (layout, key order) when
/// replacing the secrets' text gives exactly the redacted configuration; else pretty-printed
/// from the redacted value (a secret written with escapes, say). `None` when `bytes` are no
/// JSON object (a configuration the filter accepted always is one).
pub fn redacted_config(bytes: &[u8]) -> Option<(String, Vec<String>)> {
    let mut config: Value = serde_json::from_slice(bytes).ok()?;
    let root = config.as_object_mut()?;
    let mut found = Vec::new();
    if let Some(token) = root
        .get_mut("admin")
        .and_then(|admin| admin.get_mut("token"))
    {
        replace(token, REDACTED_TOKEN, "admin.token".to_string(), &mut found);
    }
    for (name, value) in root.iter_mut() {
        redact_secrets(value, name, &mut found);
    }
    let as_written = std::str::from_utf8(bytes).ok().map(|text| {
        found.iter().fold(text.to_string(), |text, secret| {
            text.replace(&secret.written, &secret.placeholder)
        })
    });
    let text = match as_written {
        Some(text)
            if serde_json::from_slice::<Value>(text.as_bytes())
                .ok()
                .as_ref()
                == Some(&config) =>
        {
            text
        }
        _ => serde_json::to_string_pretty(&config).ok()?,
    };
    Some((text, found.into_iter().map(|secret| secret.path).collect()))
}

/// A secret replaced: where, its JSON text, the placeholder's.
struct Found {
    path: String,
    written: String,
    placeholder: String,
}

fn replace(value: &mut Value, placeholder: &str, path: String, found: &mut Vec<Found>) {
    if !value.is_string() {
        return;
    }
    let written = value.to_string();
    *value = Value::from(placeholder);
    found.push(Found {
        path,
        written,
        placeholder: value.to_string(),
    });
}

/// Replaces every `signature.secret` string under `value` (at `path`).
fn redact_secrets(value: &mut Value, path: &str, found: &mut Vec<Found>) {
    match value {
        Value::Object(map) => {
            if path == "signature" || path.ends_with(".signature") {
                if let Some(secret) = map.get_mut("secret") {
                    replace(secret, REDACTED_SECRET, format!("{path}.secret"), found);
                }
            }
            for (name, inner) in map.iter_mut() {
                redact_secrets(inner, &format!("{path}.{name}"), found);
            }
        }
        Value::Array(items) => {
            for (index, inner) in items.iter_mut().enumerate() {
                redact_secrets(inner, &format!("{path}[{index}]"), found);
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
    fn the_text_stays_as_written_but_for_the_secrets() {
        let (text, _) = redacted_config(CONFIG.as_bytes()).unwrap();
        let expected = CONFIG
            .replace("the-real-admin-token-123", REDACTED_TOKEN)
            .replace("whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1", REDACTED_SECRET);
        assert_eq!(text, expected, "layout and key order kept");
        let plain = r#"{"services": [{"name": "a", "match": {"path_prefix": "/"}}]}"#;
        let (text, redacted) = redacted_config(plain.as_bytes()).unwrap();
        assert!(redacted.is_empty());
        assert_eq!(text, plain);
        assert_eq!(redacted_config(b"[1]"), None);
        assert_eq!(redacted_config(b"not json"), None);
    }

    #[test]
    fn a_secret_written_with_escapes_is_redacted_all_the_same() {
        // `\u0061` is `a`: the written text is not the secret's JSON text, so the value is
        // printed anew from the redacted configuration.
        let escaped = r#"{"admin": {"token": "the-re\u0061l-admin-token-123"}}"#;
        let (text, redacted) = redacted_config(escaped.as_bytes()).unwrap();
        assert_eq!(redacted, ["admin.token"]);
        assert!(
            !text.contains("admin-token-123") && text.contains(REDACTED_TOKEN),
            "{text}"
        );
        // The token's text also elsewhere (as a name): the replaced text would differ from the
        // redacted configuration, so it is printed anew, the name kept.
        let twice = r#"{"admin": {"token": "same-text-as-a-name-1"}, "services": [{"name": "same-text-as-a-name-1", "match": {}}]}"#;
        let (text, _) = redacted_config(twice.as_bytes()).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["admin"]["token"], REDACTED_TOKEN);
        assert_eq!(value["services"][0]["name"], "same-text-as-a-name-1");
    }

    #[test]
    fn a_secret_in_the_default_service_is_redacted_too() {
        let config = r#"{"default_service": {"name": "d", "dedup": {"signature": {"secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1"}}}}"#;
        let (text, redacted) = redacted_config(config.as_bytes()).unwrap();
        assert_eq!(redacted, ["default_service.dedup.signature.secret"]);
        assert!(!text.contains("c2VjcmV0"));
    }
}

//! The one error a configuration is refused with: the field path and the reason.

use std::fmt;

/// Why a plugin configuration was refused: the field path (`services[2].match.path_prefix`)
/// and the reason, so an operator can find the mistake from one log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Maps a JSON decoding error to the field it happened at.
    pub(crate) fn from_json(err: serde_path_to_error::Error<serde_json::Error>) -> Self {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let path = if path == "." || path.is_empty() {
            "config".to_string()
        } else {
            path
        };
        // serde_json appends " at line L column C"; keep the reason and give the place once.
        let message = inner.to_string();
        let reason = match message.rfind(" at line ") {
            Some(cut) if inner.line() > 0 => message.get(..cut).unwrap_or(&message).to_string(),
            _ => message,
        };
        let reason = without_values(&reason);
        let reason = if inner.line() > 0 {
            format!(
                "{reason} (line {}, column {})",
                inner.line(),
                inner.column()
            )
        } else {
            reason
        };
        Self { path, reason }
    }
}

/// A decoding error's reason without a long value it found: the value may be a secret written
/// in the wrong place (a token as a string where an object belongs), and refusals are logged,
/// shown by `/health` and kept in `update_refused`. `invalid type: string "whsec_…", expected
/// struct X` becomes `invalid type: string, expected struct X`; the same for `invalid value`
/// and `unknown variant`. Values of up to [`QUOTED_VALUE_MAX`] characters stay (`unknown
/// variant `maybe``, `integer `-1``): no secret is that short (an admin token has at least 16).
/// Field names stay: they name the mistake.
/// The longest value a refusal quotes (with its quotes or backticks).
pub const QUOTED_VALUE_MAX: usize = 12;

fn without_values(reason: &str) -> String {
    const KINDS: [&str; 3] = ["invalid type: ", "invalid value: ", "unknown variant"];
    let Some((at, kind)) = KINDS
        .iter()
        .find_map(|kind| reason.find(kind).map(|at| (at, *kind)))
    else {
        return reason.to_string();
    };
    let Some(expected) = reason.rfind(", expected ") else {
        return reason.to_string();
    };
    let found_from = at + kind.len();
    // Keep the kind of value (`string`, `integer`, `floating point`, …), drop the value.
    let found = reason.get(found_from..expected).unwrap_or_default();
    let what = [
        "string",
        "integer",
        "floating point",
        "boolean",
        "char",
        "byte array",
    ]
    .into_iter()
    .find(|what| found.starts_with(what))
    .unwrap_or_else(|| found.trim_start());
    let value = if kind == "unknown variant" {
        found.trim()
    } else {
        found.get(what.len()..).unwrap_or_default().trim()
    };
    if value.chars().count() <= QUOTED_VALUE_MAX {
        return reason.to_string();
    }
    let what = if kind == "unknown variant" { "" } else { what };
    let mut out = String::with_capacity(reason.len());
    out.push_str(reason.get(..found_from).unwrap_or_default());
    out.push_str(what);
    out.push_str(reason.get(expected..).unwrap_or_default());
    out
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(json: &str) -> String {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Signature {
            secret: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Mode {
            Open,
            Closed,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Config {
            signature: Option<Signature>,
            token: Option<String>,
            mode: Option<Mode>,
            count: Option<u8>,
        }
        let mut deserializer = serde_json::Deserializer::from_str(json);
        let result: Result<Config, _> = serde_path_to_error::deserialize(&mut deserializer);
        ConfigError::from_json(result.expect_err("refused")).to_string()
    }

    #[test]
    fn a_misplaced_secret_is_never_quoted() {
        for (json, kept) in [
            (
                r#"{"signature": "whsec_TOPSECRET"}"#,
                "signature: invalid type: string, expected struct Signature",
            ),
            (
                r#"{"token": 123456789012345}"#,
                "token: invalid type: integer, expected a string",
            ),
            (
                r#"{"mode": "TOPSECRET-0123456789"}"#,
                "mode: unknown variant, expected `Open` or `Closed`",
            ),
            (
                r#"{"count": 123456789012345}"#,
                "count: invalid value: integer, expected u8",
            ),
            (
                r#"{"signature": "TOPSECRET, expected a \"quote\""}"#,
                "signature: invalid type: string, expected struct Signature",
            ),
        ] {
            let message = refusal(json);
            assert!(!message.contains("TOPSECRET"), "{message}");
            assert!(!message.contains("123456789012345"), "{message}");
            assert!(message.starts_with(kept), "{message}");
        }
        // Short values stay: they help, and no secret is that short.
        assert!(refusal(r#"{"mode": "maybe"}"#).starts_with("mode: unknown variant `maybe`"));
        assert!(refusal(r#"{"count": -1}"#).starts_with("count: invalid value: integer `-1`"));
        assert!(refusal(r#"{"signature": "abc"}"#)
            .starts_with(r#"signature: invalid type: string "abc""#));
    }
}

//! Per-service feature sections. Each later feature fills its own section; until a feature
//! exists its section is refused, so nobody believes a feature is on when it is not.

use serde::Deserialize;

/// Adaptive circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakerSection {}

/// Refuses feature sections whose feature this build does not have yet.
pub(crate) fn refuse_unbuilt(
    path: &str,
    breaker: Option<&BreakerSection>,
) -> Result<(), crate::policy::ConfigError> {
    let present = [("breaker", breaker.is_some())];
    match present.iter().find(|(_, is_set)| *is_set) {
        Some((name, _)) => Err(crate::policy::ConfigError::new(
            format!("{path}.{name}"),
            "this feature is not available in this build yet; remove the section",
        )),
        None => Ok(()),
    }
}

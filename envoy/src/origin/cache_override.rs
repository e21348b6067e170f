//! `--cache-control ENDPOINT:VALUE`: another `Cache-Control` for a cacheable endpoint's answers
//! (its 200s and 304s), e.g. `leads:max-age=1, stale-while-revalidate=5` for a workload where
//! entries go stale every second.

use axum::http::HeaderValue;

use super::endpoint::Endpoint;

/// The endpoints whose answers carry a cache policy (the others always say `no-store`).
pub const CACHEABLE: [Endpoint; 3] = [Endpoint::Coaching, Endpoint::Leads, Endpoint::Properties];

/// Checks an override: a cacheable endpoint's name (or `*` for all of them) and a value that is
/// a valid, non-empty header value.
pub fn check_cache_control(target: &str, value: &str) -> Result<(), String> {
    if target != "*" && !CACHEABLE.iter().any(|e| e.name() == target) {
        let names: Vec<&str> = CACHEABLE.iter().map(|e| e.name()).collect();
        return Err(format!(
            "cache-control target must be one of {} or *, got {target:?}",
            names.join(", ")
        ));
    }
    if value.trim().is_empty() || HeaderValue::from_str(value).is_err() {
        return Err(format!(
            "cache-control for {target}: not a header value: {value:?}"
        ));
    }
    Ok(())
}

/// Parses `ENDPOINT:VALUE` (the value as written, trimmed).
pub fn parse_cache_control_flag(s: &str) -> Result<(String, String), String> {
    let (target, value) = s
        .split_once(':')
        .ok_or_else(|| format!("cache-control {s:?}: expected ENDPOINT:VALUE"))?;
    let (target, value) = (target.trim(), value.trim());
    check_cache_control(target, value)?;
    Ok((target.to_string(), value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            parse_cache_control_flag("leads:max-age=1, stale-while-revalidate=5"),
            Ok((
                "leads".to_string(),
                "max-age=1, stale-while-revalidate=5".to_string()
            ))
        );
        assert!(parse_cache_control_flag("*:no-cache").is_ok());
        for bad in [
            "leads",
            "leads:",
            "health:max-age=1",
            "webhooks:max-age=1",
            "nope:max-age=1",
            "leads:max-age=1\nx-injected: 1",
        ] {
            assert!(parse_cache_control_flag(bad).is_err(), "accepted {bad:?}");
        }
    }
}

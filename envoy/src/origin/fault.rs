//! Fault settings for one endpoint and the `--fault` flag syntax.

use serde::Serialize;

use super::endpoint::Endpoint;

/// The largest `extra_latency_ms` accepted (one hour).
pub const MAX_EXTRA_LATENCY_MS: u64 = 3_600_000;

/// Faults injected into one endpoint's answers. The default injects nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Fault {
    /// Share of requests (0..=1) answered `503` with a JSON error.
    pub error_rate: f64,
    /// Added to every request's delay, on top of the scaled baseline (not scaled itself).
    pub extra_latency_ms: u64,
    /// Share of requests (0..=1) whose connection is closed without an answer.
    pub reset_rate: f64,
}

impl Fault {
    /// Checks that the rates are within `0..=1` and the extra latency is sane.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("error_rate", self.error_rate),
            ("reset_rate", self.reset_rate),
        ] {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must be between 0 and 1, got {v}"));
            }
        }
        if self.extra_latency_ms > MAX_EXTRA_LATENCY_MS {
            return Err(format!(
                "extra_latency_ms must be at most {MAX_EXTRA_LATENCY_MS}, got {}",
                self.extra_latency_ms
            ));
        }
        Ok(())
    }
}

/// Checks an endpoint name for a fault setting: one of the endpoint names, or `*` for all.
pub fn check_fault_target(name: &str) -> Result<(), String> {
    if name == "*" || Endpoint::from_name(name).is_some() {
        Ok(())
    } else {
        let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.name()).collect();
        Err(format!(
            "unknown endpoint {name:?} (expected one of {}, or *)",
            names.join(", ")
        ))
    }
}

/// Parses `ENDPOINT:key=value[,key=value...]`, keys `error_rate`, `extra_latency_ms`,
/// `reset_rate` (each at most once; unset keys stay 0). `ENDPOINT` is an endpoint name or
/// `*` for all of them, and is returned as written.
pub fn parse_fault_flag(s: &str) -> Result<(String, Fault), String> {
    let (endpoint, settings) = s
        .split_once(':')
        .ok_or_else(|| format!("fault {s:?}: expected ENDPOINT:key=value[,key=value...]"))?;
    let endpoint = endpoint.trim();
    check_fault_target(endpoint).map_err(|e| format!("fault {s:?}: {e}"))?;
    if settings.trim().is_empty() {
        return Err(format!("fault {s:?}: no settings after {endpoint}:"));
    }
    let mut fault = Fault::default();
    let mut seen: Vec<&str> = Vec::new();
    for item in settings.split(',') {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("fault {s:?}: expected key=value, got {item:?}"))?;
        let (key, value) = (key.trim(), value.trim());
        if seen.contains(&key) {
            return Err(format!("fault {s:?}: {key} given twice"));
        }
        let bad = |what: &str| format!("fault {s:?}: {key} must be {what}, got {value:?}");
        match key {
            "error_rate" => {
                fault.error_rate = value.parse().map_err(|_| bad("a number in 0..1"))?;
            }
            "reset_rate" => {
                fault.reset_rate = value.parse().map_err(|_| bad("a number in 0..1"))?;
            }
            "extra_latency_ms" => {
                fault.extra_latency_ms = value
                    .parse()
                    .map_err(|_| bad("a whole number of milliseconds"))?;
            }
            _ => {
                return Err(format!(
                    "fault {s:?}: unknown key {key:?} (expected error_rate, extra_latency_ms or reset_rate)"
                ))
            }
        }
        seen.push(key);
    }
    fault.validate().map_err(|e| format!("fault {s:?}: {e}"))?;
    Ok((endpoint.to_string(), fault))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_spec() {
        let (ep, f) =
            parse_fault_flag("leads:error_rate=0.5,extra_latency_ms=100,reset_rate=0.1").unwrap();
        assert_eq!(ep, "leads");
        assert_eq!(
            f,
            Fault {
                error_rate: 0.5,
                extra_latency_ms: 100,
                reset_rate: 0.1
            }
        );
    }

    #[test]
    fn parses_partial_spec_star_and_spaces() {
        let (ep, f) = parse_fault_flag("*:extra_latency_ms=250").unwrap();
        assert_eq!(ep, "*");
        assert_eq!(
            f,
            Fault {
                extra_latency_ms: 250,
                ..Fault::default()
            }
        );
        let (ep, f) = parse_fault_flag("webhooks: reset_rate = 1 , error_rate=0").unwrap();
        assert_eq!(ep, "webhooks");
        assert_eq!(f.reset_rate, 1.0);
        assert_eq!(f.error_rate, 0.0);
    }

    #[test]
    fn rejects_bad_specs() {
        for bad in [
            "",
            "leads",
            "leads:",
            "nope:error_rate=0.5",
            ":error_rate=0.5",
            "leads:error_rate",
            "leads:error_rate=",
            "leads:error_rate=abc",
            "leads:error_rate=1.5",
            "leads:error_rate=-0.1",
            "leads:error_rate=NaN",
            "leads:reset_rate=2",
            "leads:extra_latency_ms=-5",
            "leads:extra_latency_ms=1.5",
            "leads:extra_latency_ms=99999999",
            "leads:colour=blue",
            "leads:error_rate=0.1,error_rate=0.2",
            "leads:error_rate=0.1,",
        ] {
            assert!(parse_fault_flag(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn validate_bounds() {
        assert!(Fault::default().validate().is_ok());
        let f = Fault {
            error_rate: 1.0,
            extra_latency_ms: MAX_EXTRA_LATENCY_MS,
            reset_rate: 1.0,
        };
        assert!(f.validate().is_ok());
        let f = Fault {
            error_rate: f64::INFINITY,
            ..Fault::default()
        };
        assert!(f.validate().is_err());
    }
}

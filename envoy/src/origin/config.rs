//! How a demo origin starts: latency scale and initial faults.

use super::cache_override::check_cache_control;
use super::fault::{check_fault_target, Fault};

/// The largest `latency_scale` accepted.
pub const MAX_LATENCY_SCALE: f64 = 1_000.0;

/// Start-up settings of a demo origin.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginConfig {
    /// Multiplies every endpoint's baseline latency (0 = no baseline delay; default 1).
    pub latency_scale: f64,
    /// Initial faults by endpoint name (or `*` for all), applied in order.
    pub faults: Vec<(String, Fault)>,
    /// `Cache-Control` overrides by cacheable endpoint name (or `*`), applied in order.
    pub cache_control: Vec<(String, String)>,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            latency_scale: 1.0,
            faults: Vec::new(),
            cache_control: Vec::new(),
        }
    }
}

impl OriginConfig {
    /// Checks the scale and every fault.
    pub fn validate(&self) -> Result<(), String> {
        check_latency_scale(self.latency_scale)?;
        for (endpoint, fault) in &self.faults {
            check_fault_target(endpoint)?;
            fault
                .validate()
                .map_err(|e| format!("fault for {endpoint}: {e}"))?;
        }
        for (target, value) in &self.cache_control {
            check_cache_control(target, value)?;
        }
        Ok(())
    }
}

/// A latency scale must be finite and within `0..=MAX_LATENCY_SCALE`.
pub fn check_latency_scale(scale: f64) -> Result<(), String> {
    if scale.is_finite() && (0.0..=MAX_LATENCY_SCALE).contains(&scale) {
        Ok(())
    } else {
        Err(format!(
            "latency scale must be between 0 and {MAX_LATENCY_SCALE}, got {scale}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_validation() {
        let c = OriginConfig::default();
        assert_eq!(c.latency_scale, 1.0);
        assert!(c.faults.is_empty());
        assert!(c.validate().is_ok());
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e9] {
            let c = OriginConfig {
                latency_scale: bad,
                ..OriginConfig::default()
            };
            assert!(c.validate().is_err(), "accepted scale {bad}");
        }
        let c = OriginConfig {
            latency_scale: 0.0,
            faults: vec![("bogus".into(), Fault::default())],
            ..OriginConfig::default()
        };
        assert!(c.validate().is_err());
        let c = OriginConfig {
            latency_scale: 0.0,
            faults: vec![(
                "*".into(),
                Fault {
                    error_rate: 0.5,
                    ..Fault::default()
                },
            )],
            ..OriginConfig::default()
        };
        assert!(c.validate().is_ok());
        let c = OriginConfig {
            cache_control: vec![("health".into(), "max-age=1".into())],
            ..OriginConfig::default()
        };
        assert!(c.validate().is_err());
    }
}

//! The demo platform's endpoints: their names, slow baselines and cache policies.

use std::time::Duration;

/// One of the services the demo origin stands in for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /webhooks/ghl`
    Webhooks,
    /// `GET /api/v1/coaching/{lead}`
    Coaching,
    /// `GET /api/v1/leads/{id}`
    Leads,
    /// `GET /api/v1/properties?city=..`
    Properties,
    /// `GET /health`
    Health,
}

impl Endpoint {
    /// Every endpoint, in a fixed order (the order of [`Endpoint::index`]).
    pub const ALL: [Endpoint; 5] = [
        Endpoint::Webhooks,
        Endpoint::Coaching,
        Endpoint::Leads,
        Endpoint::Properties,
        Endpoint::Health,
    ];

    /// The name used in flags, JSON and the `x-origin-endpoint` header.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Webhooks => "webhooks",
            Endpoint::Coaching => "coaching",
            Endpoint::Leads => "leads",
            Endpoint::Properties => "properties",
            Endpoint::Health => "health",
        }
    }

    /// The endpoint with that name, if any.
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// Position in [`Endpoint::ALL`], for per-endpoint tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The slow baseline the real service shows, before `latency_scale`.
    pub fn baseline(self) -> Duration {
        Duration::from_millis(match self {
            Endpoint::Webhooks => 400,
            Endpoint::Coaching => 45,
            Endpoint::Leads => 150,
            Endpoint::Properties => 50,
            Endpoint::Health => 0,
        })
    }

    /// The `Cache-Control` the endpoint answers with.
    pub fn cache_control(self) -> &'static str {
        match self {
            Endpoint::Webhooks | Endpoint::Health => "no-store",
            Endpoint::Coaching => "public, max-age=30",
            Endpoint::Leads => "public, max-age=60",
            Endpoint::Properties => "public, max-age=120",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_index_matches_order() {
        for (i, e) in Endpoint::ALL.into_iter().enumerate() {
            assert_eq!(Endpoint::from_name(e.name()), Some(e));
            assert_eq!(e.index(), i);
        }
        assert_eq!(Endpoint::from_name("nope"), None);
        assert_eq!(Endpoint::from_name("*"), None);
    }
}

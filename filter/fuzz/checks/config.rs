//! The plugin configuration (JSON from the operator): parsing never panics; a refusal names a
//! field path and a reason; an accepted configuration compiles into a registry that holds every
//! service under its index, matches any request, and whose limits drive the breaker, the rate
//! limiter and the cache key without a panic.

use std::collections::BTreeMap;

use edge_filter::policy::breaker::machine::{open_period_ms, record, Breaker, Outcomes};
use edge_filter::policy::cache::key::{cache_key, KeyInput};
use edge_filter::policy::rate_limit::slot::take;
use edge_filter::policy::{Config, RequestAttributes, Service};

pub fn check(data: &[u8]) {
    let parsed = Config::parse(data);
    let registry = Config::parse_registry(data);
    let config = match parsed {
        Err(error) => {
            assert!(!error.path.is_empty(), "refusal without a field path");
            assert!(!error.reason.is_empty(), "refusal without a reason");
            assert_eq!(
                error.to_string(),
                format!("{}: {}", error.path, error.reason)
            );
            assert_eq!(
                registry.err(),
                Some(error),
                "parse and parse_registry agree"
            );
            return;
        }
        Ok(config) => config,
    };
    assert!(
        registry.is_ok(),
        "parse accepted what parse_registry refused"
    );
    let Ok(registry) = registry else {
        return;
    };
    assert_eq!(Config::parse(data).as_ref(), Ok(&config), "deterministic");
    let mut longer = data.to_vec();
    longer.extend_from_slice(b" x");
    assert!(
        Config::parse(&longer).is_err(),
        "trailing characters accepted"
    );

    // Every service under its index, then the default service; names unique.
    assert_eq!(registry.service_count(), config.services.len());
    let mut names = BTreeMap::new();
    for (index, service) in config.services.iter().enumerate() {
        let compiled = registry.service_at(index);
        assert!(compiled.is_some_and(|s| s.name == service.name && s.index == index));
        assert!(
            names.insert(service.name.clone(), index).is_none(),
            "duplicate name"
        );
    }
    let default = registry.service_at(config.services.len());
    assert!(default.is_some_and(|s| s.name == config.default_service.name));
    assert!(!names.contains_key(&config.default_service.name));
    assert!(registry.service_at(config.services.len() + 1).is_none());

    for (authority, path, method) in [
        ("", "", ""),
        ("api.example.com", "/api/v1/leads/7?x=1", "GET"),
        ("API.EXAMPLE.COM:8080", "/", "POST"),
        ("h", "//?#", "DELETE"),
    ] {
        let service = registry.match_request(&RequestAttributes {
            authority,
            path,
            method,
        });
        assert!(registry
            .service_at(service.index)
            .is_some_and(|s| s.name == service.name));
    }

    for index in 0..=config.services.len() {
        if let Some(service) = registry.service_at(index) {
            exercise(service);
        }
    }
}

/// Drives the features a service configures with extreme inputs.
fn exercise(service: &Service) {
    if let Some(breaker) = &service.breaker {
        for trips in [0, 1, 2, 31, 64, u32::MAX] {
            for seed in [0, 1, u64::MAX] {
                let period = open_period_ms(breaker, trips, seed);
                assert!(period >= 1);
            }
        }
        let heavy = Outcomes {
            successes: u32::MAX,
            failures: u32::MAX,
        };
        for now in [0, 1 << 40, u64::MAX] {
            let tripped = record(&Breaker::default(), breaker, heavy, now, now);
            let _ = record(&tripped, breaker, heavy, now, now);
        }
    }
    if let Some(rate_limit) = &service.rate_limit {
        let mut tenants: Vec<Option<&str>> = rate_limit
            .overrides
            .keys()
            .map(|t| Some(t.as_str()))
            .collect();
        tenants.push(None);
        for tenant in tenants {
            let limit = rate_limit.limit_for(tenant);
            for method in ["GET", "POST", "X"] {
                let cost = rate_limit.cost_of(method);
                let (first, state) = take(None, "t", limit, cost, 0, 4);
                assert!(first.decision().remaining <= limit.burst);
                for now in [0, 1, u64::MAX] {
                    let _ = take(Some(&state), "t", limit, cost, now, 4);
                }
            }
        }
    }
    if let Some(cache) = &service.cache {
        let headers: Vec<(String, String)> = cache
            .key
            .headers
            .iter()
            .map(|name| (name.clone(), format!("{name}-value")))
            .collect();
        for path in ["/", "/a?b=1&a=2", "/api/v1/t1/x?t=1&utm_source=y"] {
            let _ = cache_key(
                cache,
                &KeyInput {
                    service: &service.name,
                    scheme: "http",
                    authority: "example.com",
                    path,
                    headers: &edge_filter::policy::header_list::borrowed(&headers),
                    non_utf8: &[],
                },
            );
        }
    }
}

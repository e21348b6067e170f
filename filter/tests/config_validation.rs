//! Every way a configuration is refused, with the exact message an operator reads in Envoy's log.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use edge_filter::policy::{Config, Limits, RequestAttributes};

fn error(json: &str) -> String {
    Config::parse(json.as_bytes())
        .map(|_| ())
        .expect_err("configuration should be refused")
        .to_string()
}

#[test]
fn an_empty_object_means_defaults() {
    let config = Config::parse(b"{}").unwrap();
    assert!(config.services.is_empty());
    assert_eq!(config.default_service.name, "default");
    assert_eq!(config.limits, Limits::default());
    assert_eq!(Config::parse(b" \n{ }\n").unwrap(), config);
}

#[test]
fn a_configuration_over_one_mebibyte_is_refused() {
    let mut big = "{}".to_string();
    big.push_str(&" ".repeat((1 << 20) - 2));
    assert!(Config::parse(big.as_bytes()).is_ok());
    big.push(' ');
    assert_eq!(
        error(&big),
        "config: 1048577 bytes, at most 1048576 are allowed"
    );
}

#[test]
fn an_empty_or_whitespace_or_bom_only_configuration_is_refused() {
    let empty = "config: empty (write {} for all defaults)";
    assert_eq!(error(""), empty);
    assert_eq!(error("  \n\t\r\n"), empty);
    assert_eq!(error("\u{feff}"), empty);
    assert_eq!(error("\u{feff}  \n"), empty);
    assert_eq!(
        error("\u{feff}{}"),
        "config: starts with a UTF-8 byte order mark (BOM); save the file without it"
    );
}

#[test]
fn full_example_parses() {
    let config = Config::parse(
        br#"{
            "services": [
                {"name": "leads", "match": {"path_prefix": "/api/v1/leads/", "methods": ["GET", "HEAD"]}},
                {"name": "webhooks", "match": {"authority": "hooks.example.com", "path_exact": "/webhooks/ghl"}}
            ],
            "default_service": {"name": "passthrough"},
            "limits": {"l1_max_entries": 500, "l1_max_bytes": 1048576, "l2_slots": 1024, "max_entry_bytes": 65536}
        }"#,
    )
    .unwrap();
    assert_eq!(config.services.len(), 2);
    assert_eq!(
        config.services[1].match_.path_exact.as_deref(),
        Some("/webhooks/ghl")
    );
    assert_eq!(config.limits.l2_slots, 1024);
}

#[test]
fn unknown_field() {
    assert_eq!(
        error(r#"{"services": [{"name": "a", "match": {"path_prefix": "/"}, "ttl": 5}]}"#),
        "services[0].ttl: unknown field `ttl`, expected one of `name`, `match`, `cache`, \
         `dedup`, `rate_limit`, `breaker`, `latency_target_ms`, `fleet` (line 1, column 64)"
    );
    assert_eq!(
        error(r#"{"limit": {}}"#),
        "limit: unknown field `limit`, expected one of `services`, `default_service`, `limits`, \
         `admin`, `monitoring`, `upstream_cluster`, `cache_status_name`, `generation_refresh_ms`, \
         `fleet_bridge`, `update_refused` (line 1, column 8)"
    );
}

#[test]
fn wrong_type() {
    assert_eq!(
        error(r#"{"services": [{"name": "a", "match": {"path_prefix": 3}}]}"#),
        "services[0].match.path_prefix: invalid type: integer `3`, expected a string \
         (line 1, column 54)"
    );
    assert_eq!(
        error(r#"{"limits": {"l2_slots": "many"}}"#),
        "limits.l2_slots: invalid type: string \"many\", expected u64 (line 1, column 30)"
    );
    assert_eq!(error("[]"), "config: must be a JSON object");
    assert_eq!(error("42"), "config: must be a JSON object");
}

#[test]
fn not_json() {
    assert_eq!(
        error(r#"{"services": [}"#),
        "services[0]: expected value (line 1, column 15)"
    );
    assert_eq!(
        error("{} {}"),
        "config: trailing characters: trailing characters at line 1 column 4"
    );
}

#[test]
fn missing_required_fields() {
    assert_eq!(
        error(r#"{"services": [{"match": {"path_prefix": "/"}}]}"#),
        "services[0]: missing field `name` (line 1, column 45)"
    );
    assert_eq!(
        error(r#"{"services": [{"name": "a"}]}"#),
        "services[0]: missing field `match` (line 1, column 27)"
    );
}

#[test]
fn empty_service_name() {
    assert_eq!(
        error(r#"{"services": [{"name": "", "match": {"path_prefix": "/"}}]}"#),
        "services[0].name: must not be empty"
    );
    assert_eq!(
        error(r#"{"default_service": {"name": ""}}"#),
        "default_service.name: must not be empty"
    );
}

#[test]
fn service_name_characters_and_length() {
    assert_eq!(
        error(r#"{"services": [{"name": "my service", "match": {"path_prefix": "/"}}]}"#),
        "services[0].name: contains ' '; use only letters, digits, '-', '_' and '.'"
    );
    let long = "x".repeat(65);
    assert_eq!(
        error(&format!(
            r#"{{"services": [{{"name": "{long}", "match": {{"path_prefix": "/"}}}}]}}"#
        )),
        "services[0].name: is 65 bytes long, at most 64 are allowed"
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        error(
            r#"{"services": [
                {"name": "a", "match": {"path_prefix": "/a"}},
                {"name": "b", "match": {"path_prefix": "/b"}},
                {"name": "a", "match": {"path_prefix": "/c"}}]}"#
        ),
        "services[2].name: duplicate service name \"a\" (already used by services[0])"
    );
    assert_eq!(
        error(r#"{"services": [{"name": "default", "match": {"path_prefix": "/"}}]}"#),
        "default_service.name: duplicate service name \"default\" (already used by services[0])"
    );
}

#[test]
fn invalid_match() {
    let cases = [
        (r#"{"path_prefix": "api"}"#, "services[0].match.path_prefix: must start with '/'"),
        (r#"{"path_exact": "health"}"#, "services[0].match.path_exact: must start with '/'"),
        (
            r#"{"path_exact": "/a?b=1"}"#,
            "services[0].match.path_exact: must not contain '?' or '#' (the query string is not matched)",
        ),
        (
            r#"{"path_prefix": "/a", "path_exact": "/a"}"#,
            "services[0].match: path_prefix and path_exact are mutually exclusive",
        ),
        (
            r#"{}"#,
            "services[0].match: must name at least one of authority, path_prefix, path_exact, \
             methods (unmatched traffic goes to default_service)",
        ),
        (
            r#"{"authority": ""}"#,
            "services[0].match.authority: must be a host name with an optional port",
        ),
        (
            r#"{"authority": "a.example.com/x"}"#,
            "services[0].match.authority: must be a host name with an optional port",
        ),
        (
            r#"{"methods": []}"#,
            "services[0].match.methods: must list at least one method (leave the field out to \
             match every method)",
        ),
        (
            r#"{"methods": ["GET", "post"]}"#,
            "services[0].match.methods[1]: \"post\" is not an upper-case HTTP method",
        ),
    ];
    for (matcher, expected) in cases {
        let json = format!(r#"{{"services": [{{"name": "s", "match": {matcher}}}]}}"#);
        assert_eq!(error(&json), expected, "for match {matcher}");
    }
}

#[test]
fn out_of_range_limits() {
    let cases = [
        (
            r#"{"l1_max_entries": 0}"#,
            "limits.l1_max_entries: 0 is out of range, must be between 1 and 1000000",
        ),
        (
            r#"{"l1_max_bytes": 1024}"#,
            "limits.l1_max_bytes: 1024 is out of range, must be between 65536 and 536870912",
        ),
        (
            r#"{"l2_slots": 2000000}"#,
            "limits.l2_slots: 2000000 is out of range, must be between 1 and 1048576",
        ),
        (
            r#"{"max_entry_bytes": 0}"#,
            "limits.max_entry_bytes: 0 is out of range, must be between 1 and 16777216",
        ),
        (
            r#"{"l1_max_bytes": 65536, "max_entry_bytes": 65537}"#,
            "limits.max_entry_bytes: 65537 is larger than limits.l1_max_bytes (65536)",
        ),
        (
            r#"{"l2_slots": -1}"#,
            "limits.l2_slots: invalid value: integer `-1`, expected u64 (line 1, column 26)",
        ),
    ];
    for (limits, expected) in cases {
        assert_eq!(
            error(&format!(r#"{{"limits": {limits}}}"#)),
            expected,
            "for limits {limits}"
        );
    }
}

#[test]
fn breaker_section_is_validated() {
    let cases = [
        (r#"{"min_failure_rate": 0.9, "max_failure_rate": 0.5}"#, "services[0].breaker.min_failure_rate: failure rates must be in (0, 1] with min_failure_rate ≤ max_failure_rate"),
        (r#"{"open_base_ms": 5000, "open_max_ms": 1000}"#, "services[0].breaker.open_max_ms: must not be below open_base_ms"),
        (r#"{"half_open_probes": 0}"#, "services[0].breaker.half_open_probes: 0 is out of range, must be between 1 and 1000"),
        (r#"{"failure_statuses": [42]}"#, "services[0].breaker.failure_statuses[0]: 42 is not an HTTP status"),
    ];
    for (breaker, expected) in cases {
        let json = format!(
            r#"{{"services": [{{"name": "s", "match": {{"path_prefix": "/"}}, "breaker": {breaker}}}]}}"#
        );
        assert_eq!(error(&json), expected, "for breaker {breaker}");
    }
    assert!(Config::parse(
        br#"{"services": [{"name": "s", "match": {"path_prefix": "/"}, "breaker": {}}]}"#
    )
    .is_ok());
}

#[test]
fn cache_section_is_validated() {
    let cases = [
        (r#"{"default_ttl_s": 100, "max_ttl_s": 50}"#, "services[0].cache.default_ttl_s: 100 is larger than max_ttl_s (50)"),
        (r#"{"max_ttl_s": 0}"#, "services[0].cache.max_ttl_s: 0 is out of range, must be between 1 and 31536000 (a year)"),
        (r#"{"key": {"query_allow": ["a"]}}"#, "services[0].cache.key.query_allow: only applies with \"query\": \"allow\""),
        (r#"{"key": {"query": "allow"}}"#, "services[0].cache.key.query_allow: must list at least one parameter with \"query\": \"allow\" (or use \"none\")"),
        (r#"{"key": {"query_deny": ["a=b"]}}"#, "services[0].cache.key.query_deny[0]: \"a=b\" is not a parameter name (a trailing '*' matches a prefix)"),
        (r#"{"key": {"headers": ["Accept"]}}"#, "services[0].cache.key.headers[0]: \"Accept\" is not a lower-case header name"),
        (r#"{"tenant": {}}"#, "services[0].cache.tenant: must name exactly one of header, query, path_segment"),
        (r#"{"tenant": {"header": "x-a", "query": "b"}}"#, "services[0].cache.tenant: must name exactly one of header, query, path_segment"),
        (r#"{"tenant": {"path_segment": 0}}"#, "services[0].cache.tenant.path_segment: segments count from 1"),
        (r#"{"max_variants": 0}"#, "services[0].cache.max_variants: 0 is out of range, must be between 1 and 64"),
        (r#"{"max_variants": 65}"#, "services[0].cache.max_variants: 65 is out of range, must be between 1 and 64"),
        (r#"{"key": {"query": "some"}}"#, "services[0].cache.key.query: unknown variant `some`, expected one of `all`, `allow`, `none` (line 1, column 92)"),
        (r#"{"targeted_cache_control": "Edge-Cache-Control"}"#, "services[0].cache.targeted_cache_control: \"Edge-Cache-Control\" is not a lower-case header name"),
        (r#"{"targeted_cache_control": ""}"#, "services[0].cache.targeted_cache_control: \"\" is not a lower-case header name"),
        (r#"{"targeted_cache_control": "edge cache"}"#, "services[0].cache.targeted_cache_control: \"edge cache\" is not a lower-case header name"),
        (r#"{"targeted_cache_control": "cache-control"}"#, "services[0].cache.targeted_cache_control: must name a targeted field, not cache-control itself"),
    ];
    for (cache, expected) in cases {
        let json = format!(
            r#"{{"services": [{{"name": "s", "match": {{"path_prefix": "/"}}, "cache": {cache}}}]}}"#
        );
        assert_eq!(error(&json), expected, "for cache {cache}");
    }
    assert!(Config::parse(
        br#"{"services": [{"name": "s", "match": {"path_prefix": "/"}, "cache": {}}]}"#
    )
    .is_ok());
    assert!(Config::parse(
        br#"{"services": [{"name": "s", "match": {"path_prefix": "/"},
             "cache": {"targeted_cache_control": "edge-cache-control"}}]}"#
    )
    .is_ok());
}

#[test]
fn dedup_section_is_validated() {
    let cases = [
        (r#"{"identity": []}"#, "services[0].dedup.identity: must name at least one source"),
        (r#"{"identity": ["Webhook-Id"]}"#, "services[0].dedup.identity[0]: \"Webhook-Id\" is neither \"body\" nor a lower-case header name"),
        (r#"{"retention_s": 0}"#, "services[0].dedup.retention_s: 0 is out of range, must be between 1 and 2592000"),
        (r#"{"replay_statuses": [99]}"#, "services[0].dedup.replay_statuses[0]: 99 is not a final HTTP status"),
        (r#"{"signature": {"secret": "whsec_c2hvcnQ="}}"#, "services[0].dedup.signature.secret: must be whsec_ followed by base64 of at least 16 bytes"),
        (r#"{"in_flight": "maybe"}"#, "services[0].dedup.in_flight: unknown variant `maybe`, expected `wait` or `conflict` (line 1, column 89)"),
    ];
    for (dedup, expected) in cases {
        let json = format!(
            r#"{{"services": [{{"name": "s", "match": {{"path_prefix": "/"}}, "dedup": {dedup}}}]}}"#
        );
        assert_eq!(error(&json), expected, "for dedup {dedup}");
    }
    assert!(Config::parse(
        br#"{"services": [{"name": "s", "match": {"path_prefix": "/"}, "dedup": {}}]}"#
    )
    .is_ok());
}

#[test]
fn rate_limit_section_is_validated() {
    let base = r#""tenant": {"header": "x-location-id"}, "requests_per_second": 100, "burst": 20"#;
    let cases = [
        (r#"{"requests_per_second": 1, "burst": 1}"#.to_string(), "services[0].rate_limit: missing field `tenant` (line 1, column 111)"),
        (format!("{{{base}, \"cost\": {{\"post\": 2}}}}"), "services[0].rate_limit.cost.post: is not an upper-case HTTP method"),
        (r#"{"tenant": {"header": "x"}, "requests_per_second": 0, "burst": 1}"#.to_string(), "services[0].rate_limit.requests_per_second: 0 is out of range, must be above 0 and at most 1000000"),
        (format!("{{{base}, \"overrides\": {{\"big\": {{\"requests_per_second\": 5, \"burst\": 0}}}}}}"), "services[0].rate_limit.overrides.big.burst: 0 is out of range, must be between 1 and 10000000"),
        (format!("{{{base}, \"mode\": \"dry\"}}"), "services[0].rate_limit.mode: unknown variant `dry`, expected `enforce` or `shadow` (line 1, column 167)"),
    ];
    for (rate_limit, expected) in cases {
        let json = format!(
            r#"{{"services": [{{"name": "s", "match": {{"path_prefix": "/"}}, "rate_limit": {rate_limit}}}]}}"#
        );
        assert_eq!(error(&json), expected, "for rate_limit {rate_limit}");
    }
    let ok = format!(
        r#"{{"services": [{{"name": "s", "match": {{"path_prefix": "/"}}, "rate_limit": {{{base}, "requests_per_second": 0.5}}}}]}}"#
    );
    assert!(Config::parse(ok.as_bytes()).is_err(), "duplicate field");
}

#[test]
fn global_settings_are_validated() {
    assert_eq!(
        error(r#"{"admin": {"token": "short"}}"#),
        "admin.token: must be at least 16 characters without spaces"
    );
    assert_eq!(
        error(r#"{"admin": {"path_prefix": "/api/"}}"#),
        "admin.path_prefix: must start with '/' and not end with '/'"
    );
    assert_eq!(
        error(r#"{"upstream_cluster": ""}"#),
        "upstream_cluster: must not be empty"
    );
    assert_eq!(
        error(r#"{"generation_refresh_ms": 5}"#),
        "generation_refresh_ms: 5 is out of range, must be between 10 and 60000"
    );
    assert_eq!(
        error(r#"{"limits": {"l1_tenant_share_percent": 0}}"#),
        "limits.l1_tenant_share_percent: 0 is out of range, must be between 1 and 100"
    );
    let debug = format!(
        "{:?}",
        Config::parse(br#"{"admin": {"token": "0123456789abcdef-secret"}}"#).unwrap()
    );
    assert!(
        !debug.contains("secret"),
        "the admin token never shows in Debug output: {debug}"
    );
}

#[test]
fn too_many_services() {
    let services: Vec<String> = (0..257)
        .map(|i| format!(r#"{{"name": "s{i}", "match": {{"path_prefix": "/{i}"}}}}"#))
        .collect();
    assert_eq!(
        error(&format!(r#"{{"services": [{}]}}"#, services.join(","))),
        "services: 257 services given, at most 256 are allowed"
    );
}

#[test]
fn first_matching_service_wins_and_unmatched_goes_to_default() {
    let registry = Config::parse_registry(
        br#"{"services": [
            {"name": "leads-get", "match": {"path_prefix": "/api/v1/leads/", "methods": ["GET"]}},
            {"name": "api", "match": {"path_prefix": "/api/"}},
            {"name": "hooks", "match": {"authority": "hooks.example.com"}}
        ], "default_service": {"name": "other"}}"#,
    )
    .unwrap();
    let name = |authority, path, method| {
        registry
            .match_request(&RequestAttributes {
                authority,
                path,
                method,
            })
            .name
            .clone()
    };
    assert_eq!(name("x", "/api/v1/leads/7", "GET"), "leads-get");
    assert_eq!(name("x", "/api/v1/leads/7", "DELETE"), "api");
    assert_eq!(
        name("hooks.example.com:443", "/webhooks/ghl", "POST"),
        "hooks"
    );
    assert_eq!(name("x", "/", "GET"), "other");
    assert_eq!(name("", "", ""), "other");
}

#[test]
fn service_names_must_make_distinct_stat_labels() {
    assert_eq!(
        error(
            r#"{"services": [{"name": "a.b", "match": {"path_prefix": "/x"}},
                             {"name": "a_b", "match": {"path_prefix": "/y"}}]}"#
        ),
        r#"services[1].name: "a_b" and "a.b" (services[0]) would share the stats label "a_b""#
    );
    assert_eq!(
        error(r#"{"default_service": {"name": "outcome"}}"#),
        r#"default_service.name: "outcome" is reserved (stat tag names: service, outcome, stage)"#
    );
    assert!(
        Config::parse(br#"{"services": [{"name": "api.v2", "match": {"path_prefix": "/"}}]}"#)
            .is_ok()
    );
}

//! The hottest-keys table behind `GET <prefix>/cache/hot` (for `edge-ctl warm-cache --hot`):
//! the busiest keys with the tenant header a warm request needs, bounded by
//! `monitoring.hot_keys`, behind the admin token.

use proxy_wasm_host::test_support::as_tenant as get;
use proxy_wasm_host::{Host, Reply, Request, VmId};
use serde_json::Value;

const TOKEN: &str = "hot-keys-token-0123456789";

fn setup(hot_keys: u64) -> (Host, VmId) {
    let mut host = Host::new();
    host.origin(|_| Reply::ok("x".repeat(100)).header("cache-control", "max-age=60"));
    let config = format!(
        r#"{{"services": [
            {{"name": "leads", "match": {{"path_prefix": "/api/v1/leads/"}},
              "cache": {{"tenant": {{"header": "x-location-id"}}}}}},
            {{"name": "open", "match": {{"path_prefix": "/open/"}}, "cache": {{}}}},
            {{"name": "paged", "match": {{"path_prefix": "/paged/"}},
              "cache": {{"key": {{"query": "allow", "query_allow": ["page"]}}}}}}],
           "admin": {{"token": "{TOKEN}"}},
           "monitoring": {{"hot_keys": {hot_keys}}}}}"#
    );
    let vm = host.start_vm(&config).unwrap();
    (host, vm)
}

fn hot(host: &mut Host, vm: VmId, query: &str) -> Value {
    let response = host.request(
        vm,
        Request::get(&format!("/api/v1/performance/cache/hot{query}"))
            .header("x-edge-admin-token", TOKEN),
    );
    assert_eq!(response.status, 200, "{}", response.body_text());
    serde_json::from_str(&response.body_text()).unwrap()
}

#[test]
fn the_busiest_keys_come_with_their_tenant_header_within_the_bound() {
    // Space-Saving keeps every key with more than lookups / capacity (33 / 8) lookups.
    let (mut host, vm) = setup(8);
    for _ in 0..6 {
        host.request(vm, get("/api/v1/leads/1", "loc-1"));
    }
    for _ in 0..5 {
        host.request(vm, get("/api/v1/leads/1", "loc-2"));
    }
    for _ in 0..2 {
        host.request(vm, Request::get("/open/a?x=1"));
    }
    for n in 0..20 {
        host.request(vm, get(&format!("/api/v1/leads/tail-{n}"), "loc-3"));
    }
    let answer = hot(&mut host, vm, "?limit=2");
    assert_eq!(answer["worker_only"], true);
    let keys = answer["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["path"], "/api/v1/leads/1");
    assert_eq!(keys[0]["service"], "leads");
    assert_eq!(keys[0]["headers"]["x-location-id"], "loc-1");
    assert_eq!(keys[0]["count"], 6);
    assert_eq!(keys[1]["headers"]["x-location-id"], "loc-2");
    assert_eq!(keys[1]["count"], 5);
    // Never more rows than `monitoring.hot_keys`, whatever the limit asked.
    assert_eq!(
        hot(&mut host, vm, "?limit=100")["keys"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    // Behind the token.
    let refused = host.request(vm, Request::get("/api/v1/performance/cache/hot"));
    assert_eq!(refused.status, 401);
}

#[test]
fn a_table_of_zero_rows_keeps_nothing() {
    let (mut host, vm) = setup(0);
    host.request(vm, get("/api/v1/leads/1", "loc-1"));
    assert_eq!(hot(&mut host, vm, "")["keys"], serde_json::json!([]));
}

#[test]
fn rows_are_the_cache_keys_normalised_url_never_the_raw_query() {
    let (mut host, vm) = setup(8);
    for (n, secret) in ["SECRET1", "SECRET2", "SECRET3"].iter().enumerate() {
        let path = format!("/paged/list?api_key={secret}&page=2&_={n}");
        assert_eq!(host.request(vm, Request::get(&path)).status, 200);
    }
    let table = hot(&mut host, vm, "");
    assert!(!table.to_string().contains("SECRET"), "{table}");
    let keys = table["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{table}");
    assert_eq!(keys[0]["path"], "/paged/list?page=2");
    assert_eq!(keys[0]["count"], 3);
}

#[test]
fn a_limit_that_is_not_a_whole_number_from_one_is_refused() {
    let (mut host, vm) = setup(8);
    for bad in ["-1", "abc", "0", "12345678901234567890"] {
        let response = host.request(
            vm,
            Request::get(&format!("/api/v1/performance/cache/hot?limit={bad}"))
                .header("x-edge-admin-token", TOKEN),
        );
        assert_eq!(response.status, 400, "limit={bad}");
        assert!(
            response.body_text().contains("limit: "),
            "{}",
            response.body_text()
        );
    }
}

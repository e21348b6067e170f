//! Where an L1 hit's fuel goes: runs the release filter in the host, sends a miss and two
//! hits of `/api/v1/leads/42` (a 7,200-byte JSON body), then prints the fuel spent between
//! the crossings of one more hit — guest code between two host calls, or a callback between
//! the host calling in and it returning. Markers of your own (`hostcalls::get_log_level()`)
//! split a stretch further.
//!
//! `cargo run -p proxy-wasm-host --example hit_fuel` (after the test command's wasm build).

use proxy_wasm_host::{Host, Reply, Request};

const CONFIG: &str = r#"{
    "services": [{"name": "leads", "match": {"path_prefix": "/api/v1/leads/"}, "cache": {}}],
    "default_service": {"name": "default"}
}"#;

fn main() {
    let mut host = Host::new();
    host.origin(|_| {
        Reply::ok("{\"lead\": 42}".repeat(600))
            .header("content-type", "application/json")
            .header("cache-control", "public, max-age=60")
            .header("etag", "\"32304963ed1ea527\"")
    });
    let vm = host
        .start_vm(CONFIG)
        .unwrap_or_else(|err| panic!("the filter did not start: {err:?}"));
    let request = || {
        Request::get("/api/v1/leads/42")
            .header("user-agent", "wrk")
            .header("accept", "*/*")
    };
    for _ in 0..3 {
        host.request(vm, request());
    }
    let (start_fuel, start_calls) = (host.fuel_used(vm), host.host_calls(vm));
    host.trace_crossings(vm);
    let hit = host.request(vm, request());
    let crossings = host.take_crossings(vm);
    println!(
        "one L1 hit ({}): {} fuel, {} host calls",
        hit.header("cache-status").unwrap_or_default(),
        host.fuel_used(vm) - start_fuel,
        host.host_calls(vm) - start_calls
    );
    let mut last = start_fuel;
    for (index, crossing) in crossings.iter().enumerate() {
        let spent = crossing.fuel_used - last;
        last = crossing.fuel_used;
        if spent == 0 {
            continue;
        }
        let what = if crossing.calls_host {
            "then a host call"
        } else {
            "then another crossing"
        };
        println!("  #{index:<3} {spent:>6} fuel, {what}");
    }
}

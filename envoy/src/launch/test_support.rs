//! What the real-Envoy tests share: a stack on free loopback ports, and the demo origin's
//! counters.

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};

use super::error::LaunchError;
use super::http_client::{http_request, HttpResponse};
use super::options::{FleetOption, LaunchOptions};
use super::ports::free_port;
use super::stack::Stack;

/// Holds the tests of one test binary that measure counts or timings over several processes
/// to one at a time (a test that panicked does not poison it for the next).
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Launch options for a test: free ports, 2 workers, the demo origin at `latency_scale`, the
/// plugin configuration inline (tests of live reload set `static_config: false`).
pub fn test_options(latency_scale: f64) -> LaunchOptions {
    let port = || free_port().unwrap_or_else(|err| panic!("no free port: {err}"));
    LaunchOptions {
        listen: port(),
        admin: port(),
        workers: 2,
        origin_latency_scale: latency_scale,
        static_config: true,
        ..LaunchOptions::default()
    }
}

/// Times a test stack is started on new ports when one was taken in the meantime.
const PORT_ATTEMPTS: usize = 5;

/// Envoy + filter + demo origin for a test, with `plugin_config` (or the shipped example).
/// A port picked as free can be taken before Envoy binds it (the tests' own client connections
/// use ephemeral ports too): then it starts again on other ports.
pub fn test_stack(plugin_config: Option<&str>, latency_scale: f64) -> Stack {
    test_stack_with(plugin_config, latency_scale, |_| {})
}

/// [`test_stack`] with `workers` Envoy worker threads (1 makes every request meet the same VM).
pub fn test_stack_with_workers(
    plugin_config: Option<&str>,
    latency_scale: f64,
    workers: u32,
) -> Stack {
    test_stack_with(plugin_config, latency_scale, |options| {
        options.workers = workers
    })
}

/// [`test_stack`] with the options changed by `adjust` (workers, another upstream, …) before
/// it starts.
pub fn test_stack_with(
    plugin_config: Option<&str>,
    latency_scale: f64,
    adjust: impl Fn(&mut LaunchOptions),
) -> Stack {
    let mut last_error = None;
    for _ in 0..PORT_ATTEMPTS {
        let mut options = test_options(latency_scale);
        adjust(&mut options);
        let started = match plugin_config {
            Some(config) => Stack::start_with_plugin_config(&options, config),
            None => Stack::start(&options),
        };
        match started {
            Ok(stack) => return stack,
            Err(err @ LaunchError::AddressInUse { .. }) => last_error = Some(err),
            Err(err) => panic!("{err}"),
        }
    }
    match last_error {
        Some(err) => panic!("{err}"),
        None => panic!("no attempt to start a stack"),
    }
}

/// The response's `Cache-Status`, empty when it has none.
pub fn cache_status(response: &HttpResponse) -> &str {
    response.header("cache-status").unwrap_or_default()
}

/// Envoy's `/stats` lines whose names match `filter` (a regular expression).
pub fn admin_stats(admin: SocketAddr, filter: &str) -> String {
    http_request(admin, "GET", &format!("/stats?filter={filter}"), &[], b"")
        .unwrap_or_else(|err| panic!("stats: {err}"))
        .text()
}

/// The filter's counter `name` (`wasmcustom.<name>` in Envoy's stats), 0 while it is absent.
pub fn wasm_counter(admin: SocketAddr, name: &str) -> u64 {
    admin_stats(admin, &format!("{name}$"))
        .lines()
        .find_map(|line| line.strip_prefix(&format!("wasmcustom.{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Requests the demo origin served for one endpoint (`leads`, `coaching`, …).
pub fn origin_requests(origin: SocketAddr, endpoint: &str) -> u64 {
    let stats = http_request(origin, "GET", "/__origin/stats", &[], b"")
        .unwrap_or_else(|err| panic!("origin stats: {err}"));
    let stats: serde_json::Value =
        serde_json::from_slice(&stats.body).unwrap_or_else(|err| panic!("origin stats: {err}"));
    stats["requests"][endpoint].as_u64().unwrap_or(0)
}

/// Sets a demo-origin fault (`POST /__origin/faults` with `fault`, a JSON object such as
/// `{"endpoint": "coaching", "error_rate": 1.0}`); panics unless the origin accepts it.
pub fn set_origin_fault(origin: SocketAddr, fault: &str) {
    let response = http_request(
        origin,
        "POST",
        "/__origin/faults",
        &[("content-type", "application/json")],
        fault.as_bytes(),
    )
    .unwrap_or_else(|err| panic!("origin faults: {err}"));
    assert_eq!(response.status, 200, "origin refused fault {fault}");
}

/// [`test_stack`] in front of a [`TestOrigin`](super::TestOrigin) instead of the demo origin.
pub fn test_stack_before(origin: &super::TestOrigin, plugin_config: &str, workers: u32) -> Stack {
    let upstream = super::Upstream::External {
        host: "127.0.0.1".into(),
        port: origin.addr().port(),
    };
    test_stack_with(Some(plugin_config), 0.0, |options| {
        options.upstream = upstream.clone();
        options.workers = workers;
    })
}

/// [`test_stack`] with `workers` workers whose `fleet_bridge` cluster points at `bridge` (a
/// [`FleetTier`](super::FleetTier) the test started and shares between replicas), in front of
/// `origin` (another replica's demo origin) or of its own demo origin.
pub fn test_fleet_stack(
    plugin_config: &str,
    latency_scale: f64,
    workers: u32,
    bridge: SocketAddr,
    origin: Option<SocketAddr>,
) -> Stack {
    test_stack_with(Some(plugin_config), latency_scale, |options| {
        options.workers = workers;
        if let Some(origin) = origin {
            options.upstream = super::Upstream::External {
                host: origin.ip().to_string(),
                port: origin.port(),
            };
        }
        options.fleet = FleetOption::Bridge {
            host: bridge.ip().to_string(),
            port: bridge.port(),
        };
    })
}

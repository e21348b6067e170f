//! Helpers the scenario tests share: a counter's value, the `Cache-Status` of a response, an
//! origin that counts its calls, a request of one tenant.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::{Host, Reply, Request, Response, UpstreamRequest};

/// A metric's value, 0 when the filter has not defined it (yet).
pub fn metric(host: &Host, name: &str) -> u64 {
    host.metric(name).map_or(0, |m| m.value)
}

/// A counter the filter moves on every answer (the per-service outcomes, `edge.cache.l1.hit`,
/// `edge.cache.l2.hit`): it sums those in the VM and hands them to Envoy on its 20 ms tick, so
/// the clock moves one tick first.
pub fn counted(host: &mut Host, name: &str) -> u64 {
    host.advance(Duration::from_millis(20));
    metric(host, name)
}

/// The response's `Cache-Status` header, empty when it has none.
pub fn cache_status(response: &Response) -> String {
    response.header("cache-status").unwrap_or_default()
}

/// Installs an origin answering with `respond(request, n)` for its `n`-th call (from 1), and
/// returns the call count.
pub fn counting_origin(
    host: &mut Host,
    respond: impl Fn(&UpstreamRequest, u32) -> Reply + 'static,
) -> Rc<Cell<u32>> {
    let count = Rc::new(Cell::new(0));
    let seen = Rc::clone(&count);
    host.origin(move |request| {
        seen.set(seen.get() + 1);
        respond(request, seen.get())
    });
    count
}

/// `GET path` as `tenant` (the `x-location-id` header the test configurations key tenants by).
pub fn as_tenant(path: &str, tenant: &str) -> Request {
    Request::get(path).header("x-location-id", tenant)
}

//! The simulated origin: seeded latency and faults per service, and what it saw (deliveries
//! that succeeded, so a later copy reaching it is a dedup violation).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::op::Rng;
use crate::message::{Reply, UpstreamRequest};

#[derive(Default)]
pub struct OriginState {
    pub fragile_down: bool,
    /// Delivery ids the origin processed successfully.
    pub delivered: HashMap<String, u32>,
    /// A delivery that reached the origin after it had succeeded once: (id, at ms).
    pub duplicates: Vec<String>,
    pub calls: u64,
    counter: u64,
}

pub type SharedOrigin = Rc<RefCell<OriginState>>;

/// The origin's answer to one request.
pub fn answer(state: &SharedOrigin, rng: &mut Rng, request: &UpstreamRequest) -> Reply {
    let mut state = state.borrow_mut();
    state.calls += 1;
    state.counter += 1;
    let n = state.counter;
    let path = request.path();
    if path.starts_with("/hooks") {
        let id = request.header("webhook-id").unwrap_or_default();
        if state.delivered.contains_key(&id) {
            state.duplicates.push(id.clone());
        }
        let delay = rng.below(600);
        return match rng.below(100) {
            0..=5 => Reply::status(503).body("busy").delay_ms(delay),
            6..=8 => Reply::reset().delay_ms(delay),
            _ => {
                *state.delivered.entry(id.clone()).or_default() += 1;
                Reply::ok(format!("accepted {id} #{n}"))
                    .header("content-type", "text/plain")
                    .delay_ms(delay)
            }
        };
    }
    if path.starts_with("/fragile/") {
        let delay = rng.below(2500);
        return if state.fragile_down {
            Reply::status(503).body("down").delay_ms(delay)
        } else {
            Reply::ok("fine").delay_ms(delay)
        };
    }
    if path.starts_with("/limited/") {
        return Reply::ok("ok");
    }
    // Pages: the body names the tenant it was made for.
    let tenant = request.header("x-tenant").unwrap_or_default();
    let delay = rng.below(400);
    match rng.below(100) {
        0..=3 => Reply::status(503).body("busy").delay_ms(delay),
        4..=5 => Reply::reset().delay_ms(delay),
        _ => Reply::ok(format!("tenant={tenant};path={path};n={n}"))
            .header("cache-control", "max-age=30, stale-while-revalidate=10")
            .delay_ms(delay),
    }
}

//! Runs one schedule against the real filter in the host and checks the invariants after
//! every step.

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use super::invariant::{Violation, MEMORY_BOUND, STREAM_BOUND_MS};
use super::op::{tenant_id, Op, Rng, WORKERS};
use super::origin::{answer, OriginState, SharedOrigin};
use crate::host::{Host, StreamRef, VmId};
use crate::message::Request;

/// Every feature on, small tables (so slots collide), the breaker quick to open and probe.
pub const SIM_CONFIG: &str = r#"{
    "services": [
        {"name": "pages", "match": {"path_prefix": "/pages/"},
         "cache": {"tenant": {"header": "x-tenant"}}},
        {"name": "hooks", "match": {"path_prefix": "/hooks"}, "dedup": {}},
        {"name": "limited", "match": {"path_prefix": "/limited/"},
         "rate_limit": {"tenant": {"header": "x-tenant"}, "requests_per_second": 5, "burst": 10,
                        "on_contention": "deny"}},
        {"name": "fragile", "match": {"path_prefix": "/fragile/"},
         "breaker": {"min_requests": 5, "open_base_ms": 1000, "open_max_ms": 8000,
                     "jitter_percent": 0, "half_open_probes": 1, "close_after_successes": 1,
                     "probe_timeout_ms": 5000}}
    ],
    "admin": {"token": "sim-admin-token-0001"},
    "limits": {"l2_slots": 512, "lease_slots": 64, "dedup_slots": 64, "rate_limit_slots": 4}
}"#;

const RATE: u64 = 5;
const BURST: u64 = 10;

/// What a run did.
#[derive(Debug, Default)]
pub struct Report {
    pub steps: usize,
    pub requests: u64,
    pub origin_calls: u64,
    pub host_ms: u64,
    pub violation: Option<Violation>,
}

enum Kind {
    Page { tenant: Option<String> },
    Limited { tenant: u8 },
    Probe { vm: VmId, path: String },
    Other,
}

struct Tracked {
    stream: StreamRef,
    sent_ms: u64,
    kind: Kind,
}

struct Sim {
    host: Host,
    vms: Vec<VmId>,
    origin: SharedOrigin,
    open: Vec<Tracked>,
    admitted: HashMap<u8, (u64, u64, u64)>,
    probes: u32,
    report: Report,
}

/// Runs `ops` with origin randomness from `seed`; stops at the first broken invariant.
pub fn run(seed: u64, ops: &[Op]) -> Report {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut sim = Sim::start(seed);
        let violation = sim.play(ops);
        sim.report.violation = violation;
        sim.report.host_ms = sim.now_ms();
        sim.report.origin_calls = sim.origin.borrow().calls;
        sim.report
    }));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Report {
            violation: Some(Violation::Trap(message)),
            ..Report::default()
        }
    })
}

impl Sim {
    fn start(seed: u64) -> Self {
        let mut host = Host::new();
        host.set_echo_logs(false);
        let origin: SharedOrigin = Rc::new(RefCell::new(OriginState::default()));
        let state = Rc::clone(&origin);
        let mut rng = Rng::new(seed ^ 0x5eed_0419);
        host.origin(move |request| answer(&state, &mut rng, request));
        // `SIM_LEGACY_CONFIG=1`: without the fields older filters reject, to replay a schedule
        // against a build from before them (a fix reverted).
        let config = if std::env::var_os("SIM_LEGACY_CONFIG").is_some() {
            SIM_CONFIG.replace(",\n                     \"probe_timeout_ms\": 5000", "")
        } else {
            SIM_CONFIG.to_string()
        };
        let vms = host.start_vms(WORKERS, &config);
        Self {
            host,
            vms,
            origin,
            open: Vec::new(),
            admitted: HashMap::new(),
            probes: 0,
            report: Report::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.host.now_ns() / 1_000_000
    }

    fn play(&mut self, ops: &[Op]) -> Option<Violation> {
        for op in ops {
            self.step(op);
            self.report.steps += 1;
            if let Some(violation) = self.check() {
                return Some(violation);
            }
        }
        self.drain()
    }

    fn vm(&self, index: usize) -> VmId {
        self.vms[index % self.vms.len()]
    }

    fn send(&mut self, vm: usize, request: Request, kind: Kind) {
        let stream = self.host.send(self.vm(vm), request);
        self.report.requests += 1;
        let sent_ms = self.now_ms();
        self.open.push(Tracked {
            stream,
            sent_ms,
            kind,
        });
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Get { vm, page, tenant } => {
                let tenant = tenant_id(tenant);
                let mut request = Request::get(&format!("/pages/{page}"));
                if let Some(t) = &tenant {
                    request = request.header("x-tenant", t);
                }
                self.send(vm, request, Kind::Page { tenant });
            }
            Op::Probe { vm } => {
                self.probes += 1;
                let path = format!("/pages/probe-{}", self.probes);
                let kind = Kind::Probe {
                    vm: self.vm(vm),
                    path: path.clone(),
                };
                self.send(vm, Request::get(&path), kind);
            }
            Op::Write { vm, page, tenant } => {
                let mut request = Request::post(&format!("/pages/{page}"), "{}")
                    .header("content-type", "application/json");
                if let Some(t) = tenant_id(tenant) {
                    request = request.header("x-tenant", &t);
                }
                self.send(vm, request, Kind::Other);
            }
            Op::Purge { vm, page } => {
                let request = Request::new("PURGE", &format!("/pages/{page}"))
                    .header("x-edge-admin-token", "sim-admin-token-0001");
                self.send(vm, request, Kind::Other);
            }
            Op::Delivery {
                vm,
                id,
                chunks,
                trailer,
            } => {
                let body = format!("{{\"delivery\":{id},\"payload\":\"{}\"}}", "x".repeat(64));
                let size = body.len().div_ceil(usize::from(chunks.max(1)));
                let parts: Vec<Vec<u8>> =
                    body.as_bytes().chunks(size).map(<[u8]>::to_vec).collect();
                let mut request = Request::post("/hooks", Vec::new())
                    .header("webhook-id", &format!("d{id}"))
                    .header("content-type", "application/json")
                    .chunks(parts);
                if trailer {
                    request = request.trailer("x-checksum", "1");
                }
                self.send(vm, request, Kind::Other);
            }
            Op::Limited { vm, tenant } => {
                let mut request = Request::get("/limited/x");
                if let Some(t) = tenant_id(tenant) {
                    request = request.header("x-tenant", &t);
                }
                self.send(vm, request, Kind::Limited { tenant });
            }
            Op::Fragile { vm } => self.send(vm, Request::get("/fragile/x"), Kind::Other),
            Op::FragileDown(down) => self.origin.borrow_mut().fragile_down = down,
            Op::HangUp { pick } => {
                let open: Vec<usize> = (0..self.open.len())
                    .filter(|&i| self.host.is_open(self.open[i].stream))
                    .collect();
                if !open.is_empty() {
                    let index = open[usize::from(pick) % open.len()];
                    let tracked = self.open.remove(index);
                    self.host.hang_up(tracked.stream);
                    if let Kind::Limited { tenant } = tracked.kind {
                        // Still open, so it was admitted.
                        self.count_admitted(tenant, tracked.sent_ms);
                    }
                }
            }
            Op::Advance { ms } => self.host.advance(Duration::from_millis(u64::from(ms))),
            Op::LoseCasRaces { count } => self.host.fail_next_cas_writes(u32::from(count)),
        }
    }

    fn count_admitted(&mut self, tenant: u8, at_ms: u64) {
        let entry = self.admitted.entry(tenant).or_insert((0, at_ms, at_ms));
        entry.0 += 1;
        entry.1 = entry.1.min(at_ms);
        entry.2 = entry.2.max(at_ms);
    }

    /// The invariants that hold after every step.
    fn check(&mut self) -> Option<Violation> {
        if let Some(id) = self.origin.borrow().duplicates.first() {
            return Some(Violation::DuplicateDelivery(id.clone()));
        }
        let now = self.now_ms();
        let mut index = 0;
        while index < self.open.len() {
            let stream = self.open[index].stream;
            if let Some(response) = self.host.response(stream) {
                let tracked = self.open.remove(index);
                if let Some(violation) = self.finished(tracked, &response, now) {
                    return Some(violation);
                }
                continue;
            }
            if !self.host.is_open(stream) {
                self.open.remove(index);
                continue;
            }
            let age = now.saturating_sub(self.open[index].sent_ms);
            if age > STREAM_BOUND_MS {
                return Some(Violation::StreamStuck {
                    vm: stream.vm.0,
                    context_id: stream.context_id,
                    ms: age,
                });
            }
            index += 1;
        }
        for vm in self.vms.clone() {
            let bytes = self.host.memory_bytes(vm);
            if bytes > MEMORY_BOUND {
                return Some(Violation::Memory { vm: vm.0, bytes });
            }
        }
        self.rate_bound()
    }

    fn finished(
        &mut self,
        tracked: Tracked,
        response: &crate::message::Response,
        now: u64,
    ) -> Option<Violation> {
        match tracked.kind {
            Kind::Page { tenant } if response.status == 200 => {
                let body = response.body_text();
                let got = body
                    .strip_prefix("tenant=")
                    .and_then(|rest| rest.split(';').next())
                    .unwrap_or_default();
                let asked = tenant.unwrap_or_default();
                (got != asked).then(|| Violation::CrossTenant {
                    asked,
                    got: got.to_string(),
                })
            }
            Kind::Limited { tenant } if !matches!(response.status, 429 | 400) => {
                self.count_admitted(tenant, tracked.sent_ms);
                None
            }
            Kind::Probe { vm, path } if response.status == 200 => {
                let status = response.header("cache-status").unwrap_or_default();
                // Stored, and still fresh now (max-age=30): the next request must hit.
                if !status.contains("stored") || now.saturating_sub(tracked.sent_ms) > 25_000 {
                    return None;
                }
                let again = self.host.request(vm, Request::get(&path));
                self.report.requests += 1;
                let cache_status = again.header("cache-status").unwrap_or_default();
                (!cache_status.contains("hit"))
                    .then_some(Violation::StoredNotServed { path, cache_status })
            }
            _ => None,
        }
    }

    fn rate_bound(&self) -> Option<Violation> {
        self.admitted
            .iter()
            .find_map(|(&tenant, &(admitted, first, last))| {
                let bound = RATE * (last - first).div_ceil(1000) + BURST;
                (admitted > bound).then_some(Violation::RateExceeded {
                    tenant,
                    admitted,
                    bound,
                })
            })
    }

    /// After the schedule: everything in flight ends, and the breaker closes once its origin is
    /// healthy.
    fn drain(&mut self) -> Option<Violation> {
        self.origin.borrow_mut().fragile_down = false;
        for _ in 0..(STREAM_BOUND_MS / 10_000) {
            self.host.advance(Duration::from_secs(10));
            if let Some(violation) = self.check() {
                return Some(violation);
            }
        }
        if let Some(stuck) = self.open.iter().find(|t| self.host.is_open(t.stream)) {
            return Some(Violation::StreamStuck {
                vm: stuck.stream.vm.0,
                context_id: stuck.stream.context_id,
                ms: self.now_ms().saturating_sub(stuck.sent_ms),
            });
        }
        let mut successes = 0;
        for attempt in 0..40 {
            let vm = self.vm(attempt);
            let response = self.host.request(vm, Request::get("/fragile/x"));
            successes = if response.status == 200 {
                successes + 1
            } else {
                0
            };
            if successes >= 3 {
                return None;
            }
            self.host.advance(Duration::from_millis(500));
        }
        Some(Violation::BreakerStuck)
    }
}

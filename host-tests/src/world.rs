use std::collections::BTreeSet;
use std::time::Duration;

use crate::message::{Reply, UpstreamRequest};
use crate::metrics::Metrics;
use crate::shared_data::SharedData;
use crate::shared_queues::SharedQueues;

/// A function that answers upstream requests (the route's origin and `dispatch_http_call`s).
pub(crate) type OriginHandler = Box<dyn FnMut(&UpstreamRequest) -> Reply>;

/// Something the host does later, at a clock time.
pub(crate) enum EventKind {
    /// The origin's answer to a stream's upstream request.
    UpstreamReply { stream: u32, reply: Reply },
    /// The answer to a `dispatch_http_call`.
    HttpCallReply {
        context_id: u32,
        token: u32,
        reply: Reply,
    },
    /// A shared queue got data: call `proxy_on_queue_ready` on its owner.
    QueueReady { context_id: u32, queue_id: u32 },
}

pub(crate) struct Event {
    pub at_ns: u64,
    pub seq: u64,
    pub vm: usize,
    pub kind: EventKind,
}

/// What all VMs of one host (one Envoy process) share.
pub(crate) struct World {
    pub now_ns: u64,
    /// How far every clock read moves the clock (time passing inside callbacks); 0 by default.
    pub clock_step_per_read_ns: u64,
    pub shared_data: SharedData,
    pub queues: SharedQueues,
    pub metrics: Metrics,
    pub origin: OriginHandler,
    pub origin_calls: Vec<UpstreamRequest>,
    pub events: Vec<Event>,
    next_seq: u64,
    /// Clusters `dispatch_http_call` may name.
    pub clusters: BTreeSet<String>,
    /// The route timeout for streams' upstream requests.
    pub route_timeout: Duration,
    /// `proxy_get_shared_data` calls so far (tests prove hot paths stay off shared data).
    pub shared_reads: u64,
    /// Conditional shared-data writes still to refuse with CasMismatch (simulated races).
    pub cas_failures: u32,
}

/// 2027-01-15T08:00:00Z, so wall-clock code sees a plausible date.
const START_NS: u64 = 1_800_000_000 * 1_000_000_000;

impl World {
    pub fn new() -> Self {
        Self {
            now_ns: START_NS,
            clock_step_per_read_ns: 0,
            shared_data: SharedData::default(),
            queues: SharedQueues::default(),
            metrics: Metrics::default(),
            origin: Box::new(|_| {
                Reply::ok("hello from the origin").header("content-type", "text/plain")
            }),
            origin_calls: Vec::new(),
            events: Vec::new(),
            next_seq: 0,
            clusters: ["origin".to_string()].into_iter().collect(),
            route_timeout: Duration::from_secs(15),
            shared_reads: 0,
            cas_failures: 0,
        }
    }

    pub fn schedule(&mut self, after: Duration, vm: usize, kind: EventKind) {
        let at_ns = self.now_ns.saturating_add(after.as_nanos() as u64);
        self.next_seq += 1;
        self.events.push(Event {
            at_ns,
            seq: self.next_seq,
            vm,
            kind,
        });
    }

    /// Removes and returns the earliest event due at or before `until_ns`.
    pub fn pop_due(&mut self, until_ns: u64) -> Option<Event> {
        let index = self
            .events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.at_ns <= until_ns)
            .min_by_key(|(_, e)| (e.at_ns, e.seq))
            .map(|(i, _)| i)?;
        Some(self.events.swap_remove(index))
    }

    pub fn next_event_at(&self) -> Option<u64> {
        self.events.iter().map(|e| e.at_ns).min()
    }

    /// Records an upstream request and asks the origin script for its answer.
    pub fn call_origin(&mut self, request: UpstreamRequest) -> Reply {
        let reply = (self.origin)(&request);
        self.origin_calls.push(request);
        reply
    }
}

//! What one worker keeps for deduplication between callbacks.

use std::collections::HashMap;

use crate::policy::dedup::record::State;

/// A duplicate paused until the first attempt's result is known.
pub struct DedupWaiter {
    pub context_id: u32,
    pub key: String,
    pub id: String,
    pub digest: [u8; 32],
    pub since_ms: u64,
    pub timeout_ms: u64,
    pub service_index: usize,
    /// The request, for the edge to send if this waiter takes over (see `delivery.rs`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

/// A delivery at the origin: its record and the stream that sent it.
pub struct Delivery {
    pub context_id: u32,
    pub key: String,
    pub id: String,
    pub attempt: u64,
    pub service_index: usize,
}

/// A delivery waiting for the root context to send it.
pub struct Queued {
    pub delivery: Delivery,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub timeout_ms: u64,
}

/// An attempt's result, to record in its slot (kept until a tick writes it when its first
/// write lost every race).
pub struct Completion {
    pub key: String,
    pub id: String,
    pub attempt: u64,
    pub result: State,
}

/// A first attempt's claim of the fleet-wide record (in Redis), kept until its result
/// completes or releases it there.
pub struct FleetClaim {
    pub key: Vec<u8>,
    /// The value the attempt claimed the record with (its owner token).
    pub claim: Vec<u8>,
    pub digest: [u8; 32],
    pub retention_ms: u64,
}

#[derive(Default)]
pub struct Dedup {
    /// Duplicates waiting for a first attempt's result (bounded by `max_waiting_requests`).
    pub waiters: Vec<DedupWaiter>,
    /// Waiters the tick let through as the new first attempt: their record's key and attempt.
    pub taken_over: HashMap<u32, (String, u64)>,
    /// First attempts of deliveries at the origin, by the root context's call token.
    pub deliveries: HashMap<u32, Delivery>,
    /// Deliveries waiting for the root context to send them.
    pub delivery_queue: Vec<Queued>,
    /// Dedup results whose write lost every race, written again on the tick.
    pub unfinished: Vec<Completion>,
    /// Attempts this worker has started at the origin (see `records::next_attempt`).
    pub attempts: u64,
    /// Fleet-wide claims of this worker's first attempts, by attempt.
    pub fleet_claims: HashMap<u64, FleetClaim>,
    /// Results of those attempts for the root context to write to the fleet tier (`None`:
    /// release the claim).
    pub fleet_results: Vec<(FleetClaim, String, Option<State>)>,
}

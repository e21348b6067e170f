//! First attempts of deduplicated deliveries, sent to the origin as calls the root context
//! owns: the origin's answer completes the record even when the sender hung up meanwhile (a
//! call a stream makes, or the router's request, dies with the stream), so the sender's retry
//! is answered from that result instead of reaching the origin again.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::dedup::{finish, json_headers};
use super::host::{headers, now_millis};
use super::http::SERVICE_HEADER;
use super::reply::send;
use super::worker::Worker;
use crate::policy::cache::exchange::relayed_headers;
use crate::policy::dedup::record::State;
use crate::policy::header_list::header;

/// A delivery at the origin: its record and the stream that sent it.
pub struct Delivery {
    pub context_id: u32,
    pub key: String,
    pub id: String,
    pub attempt: u64,
    pub service_index: usize,
}

/// Request headers that describe the connection, not the request: the call has its own.
const CONNECTION_HEADERS: [&str; 7] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "content-length",
    "proxy-connection",
];

/// A delivery waiting for the root context to send it.
pub struct Queued {
    pub delivery: Delivery,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub timeout_ms: u64,
}

/// Hands a delivery to the root context, which sends it at once (woken through the worker's
/// queue; the SDK routes a call's answer to the context that was running when it was made, so
/// the call must be made from the root). `false` when too many are queued or at the origin
/// already: the stream then forwards the request itself.
pub fn queue(worker: &mut Worker, queued: Queued) -> bool {
    let limit =
        usize::try_from(worker.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
    if worker.wake_queue.is_none() || worker.deliveries.len() + worker.delivery_queue.len() >= limit
    {
        return false;
    }
    worker.delivery_queue.push(queued);
    worker.wake_root();
    true
}

/// Sends the queued deliveries (from the root context). One the host refuses is released and
/// its sender told to retry.
pub fn start(worker: &mut Worker, root: u32) {
    if worker.delivery_queue.is_empty() {
        return;
    }
    let cluster = worker.registry.settings().upstream_cluster.clone();
    for queued in std::mem::take(&mut worker.delivery_queue) {
        let service = worker
            .registry
            .service_at(queued.delivery.service_index)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let mut call: Vec<(&str, &str)> = queued
            .headers
            .iter()
            .filter(|(name, _)| {
                !CONNECTION_HEADERS
                    .iter()
                    .any(|c| name.eq_ignore_ascii_case(c))
                    && !name.eq_ignore_ascii_case(SERVICE_HEADER)
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        call.push((SERVICE_HEADER, &service));
        let sent = hostcalls::dispatch_http_call(
            &cluster,
            call,
            Some(&queued.body),
            queued
                .trailers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            Duration::from_millis(queued.timeout_ms),
        );
        match sent {
            Ok(token) => {
                worker.deliveries.insert(token, queued.delivery);
            }
            Err(_) => answer(worker, queued.delivery, None, &[], &[], root),
        }
    }
}

/// The origin answered a delivery (on the root context): the record gets the result (or is
/// released when the origin failed), and the sender, if still there, gets the origin's answer.
/// `false` when `token` is not a delivery.
pub fn complete(worker: &mut Worker, token: u32, body_size: usize, root: u32) -> bool {
    let Some(delivery) = worker.deliveries.remove(&token) else {
        return false;
    };
    let response = headers(MapType::HttpCallResponseHeaders);
    let status = header(&response, ":status").and_then(|s| s.parse::<u16>().ok());
    let body = hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size)
        .ok()
        .flatten()
        .unwrap_or_default();
    answer(worker, delivery, status, &response, &body, root);
    true
}

/// Records the origin's answer to `delivery` (released when the origin failed or could not be
/// reached) and relays it to the sender if it is still there.
fn answer(
    worker: &mut Worker,
    delivery: Delivery,
    status: Option<u16>,
    response: &[(String, String)],
    body: &[u8],
    root: u32,
) {
    let relayed = relayed_headers(response);
    let section = worker
        .registry
        .service_at(delivery.service_index)
        .and_then(|s| s.dedup.clone());
    let result = match (status, &section) {
        (Some(status), Some(section)) if section.replays(status) => {
            let limit = usize::try_from(section.max_response_bytes).unwrap_or(usize::MAX);
            let omitted = body.len() > limit;
            let expires_at_ms =
                now_millis().saturating_add(section.retention_s.saturating_mul(1000));
            let kept = (!omitted).then(|| body.to_vec());
            State::completed(status, relayed.clone(), kept, expires_at_ms)
        }
        // The origin failed (or could not be reached): the next attempt goes to it again.
        _ => State::Released,
    };
    finish(
        worker,
        &delivery.key,
        &delivery.id,
        delivery.attempt,
        result,
    );
    if hostcalls::set_effective_context(delivery.context_id).is_ok() {
        match status {
            Some(status) => send(status, &relayed, Some(body)),
            None => {
                let mut reply = json_headers();
                reply.push(("retry-after".to_string(), "1".to_string()));
                send(
                    503,
                    &reply,
                    Some(br#"{"error":"the origin could not be reached"}"#),
                );
            }
        }
        worker.answered.insert(delivery.context_id);
    }
    let _ = hostcalls::set_effective_context(root);
}

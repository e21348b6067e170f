//! First attempts of deduplicated deliveries, sent to the origin as calls the root context
//! owns: the origin's answer completes the record even when the sender hung up meanwhile (a
//! call a stream makes, or the router's request, dies with the stream), so the sender's retry
//! is answered from that result instead of reaching the origin again.

use std::time::Duration;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::records::finish;
use super::state::{Completion, Dedup, Delivery, Queued};
use crate::plugin::env::Env;
use crate::plugin::host::{body, call, headers, now_millis, status_of, SERVICE_HEADER};
use crate::plugin::replies::Replies;
use crate::plugin::reply::{retry_headers, send};
use crate::policy::cache::exchange::relayed_headers;
use crate::policy::dedup::record::State;

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

/// Hands a delivery to the root context, which sends it at once (woken through the worker's
/// queue; the SDK routes a call's answer to the context that was running when it was made, so
/// the call must be made from the root). `false` when too many are queued or at the origin
/// already: the stream then forwards the request itself.
pub fn queue((env, dedup, replies): (&Env, &mut Dedup, &mut Replies), queued: Queued) -> bool {
    let limit = usize::try_from(env.registry.limits().max_waiting_requests).unwrap_or(usize::MAX);
    if !replies.can_wake() || dedup.deliveries.len() + dedup.delivery_queue.len() >= limit {
        return false;
    }
    dedup.delivery_queue.push(queued);
    replies.wake_root();
    true
}

/// Sends the queued deliveries (from the root context). One the host refuses is released and
/// its sender told to retry.
pub fn start((env, dedup, replies): (&Env, &mut Dedup, &mut Replies), root: u32) {
    if dedup.delivery_queue.is_empty() {
        return;
    }
    let cluster = &env.registry.settings().upstream_cluster;
    for queued in std::mem::take(&mut dedup.delivery_queue) {
        let service = env
            .registry
            .service_at(queued.delivery.service_index)
            .map(|s| s.name.clone())
            .unwrap_or_default();
        let mut call_headers: Vec<(String, String)> = queued
            .headers
            .into_iter()
            .filter(|(name, _)| {
                !CONNECTION_HEADERS
                    .iter()
                    .any(|c| name.eq_ignore_ascii_case(c))
                    && !name.eq_ignore_ascii_case(SERVICE_HEADER)
            })
            .collect();
        call_headers.push((SERVICE_HEADER.to_string(), service));
        let timeout = Duration::from_millis(queued.timeout_ms);
        match call(
            cluster,
            &call_headers,
            Some(&queued.body),
            &queued.trailers,
            timeout,
        ) {
            Ok(token) => {
                dedup.deliveries.insert(token, queued.delivery);
            }
            Err(_) => answer((env, dedup, replies), queued.delivery, None, &[], &[], root),
        }
    }
}

/// The origin answered a delivery (on the root context): the record gets the result (or is
/// released when the origin failed), and the sender, if still there, gets the origin's answer.
/// `false` when `token` is not a delivery.
pub fn complete(
    (env, dedup, replies): (&Env, &mut Dedup, &mut Replies),
    token: u32,
    body_size: usize,
    root: u32,
) -> bool {
    let Some(delivery) = dedup.deliveries.remove(&token) else {
        return false;
    };
    let response = headers(MapType::HttpCallResponseHeaders);
    let status = status_of(&response);
    let body = body(BufferType::HttpCallResponseBody, body_size);
    answer(
        (env, dedup, replies),
        delivery,
        status,
        &response,
        &body,
        root,
    );
    true
}

/// Records the origin's answer to `delivery` (released when the origin failed or could not be
/// reached) and relays it to the sender if it is still there.
fn answer(
    (env, dedup, replies): (&Env, &mut Dedup, &mut Replies),
    delivery: Delivery,
    status: Option<u16>,
    response: &[(String, String)],
    body: &[u8],
    root: u32,
) {
    let relayed = relayed_headers(response);
    let section = env.registry.dedup_at(delivery.service_index);
    let result = match (status, section) {
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
    let completion = Completion {
        key: delivery.key,
        id: delivery.id,
        attempt: delivery.attempt,
        result,
    };
    finish((env, dedup, replies), completion);
    if hostcalls::set_effective_context(delivery.context_id).is_ok() {
        match status {
            Some(status) => send(status, &relayed, Some(body)),
            None => send(
                503,
                &retry_headers(1),
                Some(br#"{"error":"the origin could not be reached"}"#),
            ),
        }
        replies.mark_answered(delivery.context_id);
    }
    let _ = hostcalls::set_effective_context(root);
}

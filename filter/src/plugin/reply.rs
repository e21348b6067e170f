//! Local replies: the filter answering a request itself, from a stored entry or with JSON.

use log::warn;
use proxy_wasm::hostcalls;
use serde_json::json;

use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{hit_headers, not_modified_headers};
use crate::policy::cache::range::RangeRequest;

/// A JSON reply: status and body.
pub type Reply = (u16, String);

/// `{"error": message}` with `status`.
pub fn json_error(status: u16, message: &str) -> Reply {
    (status, json!({ "error": message }).to_string())
}

/// `Content-Type: application/json`.
pub fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".to_string(), "application/json".to_string())]
}

/// JSON headers with `Retry-After`.
pub fn retry_headers(retry_after_s: u64) -> Vec<(String, String)> {
    let mut headers = json_headers();
    headers.push(("retry-after".to_string(), retry_after_s.to_string()));
    headers
}

/// Sends a reply on the current effective context.
pub fn send(status: u16, headers: &[(String, String)], body: Option<&[u8]>) {
    let pairs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    if hostcalls::send_http_response(u32::from(status), pairs, body).is_err() {
        warn!("a local reply was refused by the host");
    }
}

/// Sends a JSON reply on the current effective context.
pub fn send_json((status, body): &Reply) {
    send(*status, &json_headers(), Some(body.as_bytes()));
}

/// Answers from a stored entry: a 304 when the request's conditionals match it (they win over
/// `Range`), else the bytes `range` asks for (206, 416, or the whole entry).
pub fn send_entry(
    entry: &Entry,
    age: u64,
    not_modified: bool,
    head: bool,
    range: &RangeRequest,
    cache_status: &str,
) {
    if not_modified {
        send(304, &not_modified_headers(entry, age, cache_status), None);
    } else {
        let answer = range.answer(entry, hit_headers(entry, age, cache_status));
        send(
            answer.status,
            &answer.headers,
            (!head).then_some(answer.body),
        );
    }
}

//! Local replies: the filter answering a request itself, from a stored entry or with JSON.

use log::warn;
use serde_json::json;

use super::host::{send_local_reply, send_local_reply_block};
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::{
    answer_body, answer_coding, entry_not_modified, hit_headers, identity_reply,
    not_modified_headers, varies_by_coding,
};
use crate::policy::cache::range::RangeRequest;
use crate::policy::header_list::RequestHeaders;

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
    if !send_local_reply(status, headers, &[], &[], body) {
        warn!("a local reply was refused by the host");
    }
}

/// Sends a JSON reply on the current effective context.
pub fn send_json((status, body): &Reply) {
    send(*status, &json_headers(), Some(body.as_bytes()));
}

/// The common hit: the whole identity body with the stored headers as they are, plus `Vary`
/// (when the entry may be encoded), `Age`, `Cache-Status` and, for a 200, `Accept-Ranges` —
/// the headers [`hit_headers`] and a whole-representation range answer give, without copying
/// the stored list.
fn send_whole_identity(entry: &Entry, answer: &EntryAnswer<'_>) {
    let block = identity_reply(entry);
    let age = answer.age.to_string();
    let mut extra: Vec<(&str, &str)> = Vec::with_capacity(4);
    if block.adds_vary {
        extra.push(("vary", "accept-encoding"));
    }
    extra.push(("age", &age));
    extra.push(("cache-status", answer.cache_status));
    if entry.status == 200 {
        extra.push(("accept-ranges", "bytes"));
    }
    let body = (!answer.head).then_some(entry.body.as_slice());
    if !send_local_reply_block(entry.status, block, &extra, body) {
        warn!("a local reply was refused by the host");
    }
}

/// How an answer from a stored entry goes out.
pub struct EntryAnswer<'a> {
    pub age: u64,
    /// The request's conditionals match: `304` (it wins over `Range`).
    pub not_modified: bool,
    pub head: bool,
    pub cache_status: &'a str,
    /// The request's headers (`Accept-Encoding` picks the body's coding).
    pub request_headers: &'a RequestHeaders<'a>,
    /// The byte range the request asks for.
    pub range: &'a RangeRequest,
}

impl<'a> EntryAnswer<'a> {
    /// How `entry` answers a request with these headers: `304` when its conditionals match.
    pub fn for_request(
        entry: &Entry,
        (request_headers, head): (&'a RequestHeaders<'a>, bool),
        range: &'a RangeRequest,
        age: u64,
        cache_status: &'a str,
    ) -> Self {
        Self {
            age,
            not_modified: entry_not_modified(entry, request_headers),
            head,
            cache_status,
            request_headers,
            range,
        }
    }
}

/// Answers from a stored entry: a 304 when the request's conditionals match it, else the
/// whole representation in the coding the request prefers of those the entry holds, or the
/// identity bytes a `Range` asks for (206, 416).
pub fn send_entry(entry: &Entry, answer: &EntryAnswer<'_>) {
    let range = answer.range.for_codings(|| varies_by_coding(entry));
    let coding = if range.is_partial() {
        None
    } else {
        answer_coding(entry, answer.request_headers)
    };
    let (age, status) = (answer.age, answer.cache_status);
    if !answer.not_modified && coding.is_none() && !range.is_partial() && entry.status != 206 {
        send_whole_identity(entry, answer);
        return;
    }
    if answer.not_modified {
        send(304, &not_modified_headers(entry, coding, age, status), None);
    } else if coding.is_some() {
        let body = (!answer.head).then(|| answer_body(entry, coding));
        send(entry.status, &hit_headers(entry, coding, age, status), body);
    } else {
        let ranged = range.answer(entry, hit_headers(entry, None, age, status));
        send(
            ranged.status,
            &ranged.headers,
            (!answer.head).then_some(ranged.body),
        );
    }
}

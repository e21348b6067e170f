//! A cacheable GET miss with a `bytes` `Range`: the origin is asked for the whole
//! representation (so it can be stored) and its response is cut, as it streams, to the
//! client's range (`206`, or `416`) — when its `Content-Length` gives the length up front;
//! otherwise the client gets the whole `200`, which RFC 9110 allows.

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

use super::request::Request;
use super::state::{EdgeHttp, Pending};
use crate::plugin::host::body;
use crate::policy::cache::range::{cut_headers, fetches_whole, BodyCut, RangeRequest};

impl EdgeHttp {
    /// Removes a `bytes` `Range` (and its `If-Range`) from a cacheable miss going to the
    /// origin; `pending` keeps the client's range for the response.
    pub(super) fn fetch_whole(&mut self, pending: &mut Pending, request: &Request<'_>) {
        if !fetches_whole(request.method, request.headers) {
            return;
        }
        for name in ["range", "if-range"] {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, name);
        }
        pending.range = RangeRequest::of(request.method, request.headers);
    }

    /// The origin's response headers to a request whose range was removed: turned into the
    /// range's answer when it can be cut.
    pub(super) fn start_cut(
        &mut self,
        range: &RangeRequest,
        status: u16,
        response: &[(String, String)],
    ) {
        let Some(decision) = range.decide_response(status, response) else {
            return;
        };
        for (name, value) in cut_headers(decision) {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, name, value.as_deref());
        }
        self.cut = BodyCut::new(decision);
    }

    /// A chunk of a response being cut: only the range's bytes pass on (after the capture
    /// copied the whole chunk for storing).
    pub(super) fn cut_body(&mut self, body_size: usize) {
        let Some(cut) = &mut self.cut else {
            return;
        };
        let keep = cut.next(body_size);
        if keep == (0..body_size) {
            return;
        }
        let chunk = body(BufferType::HttpResponseBody, body_size);
        let kept = chunk.get(keep).unwrap_or_default();
        let _ = hostcalls::set_buffer(BufferType::HttpResponseBody, 0, body_size, kept);
    }
}

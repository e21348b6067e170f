use std::rc::Rc;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType};

use crate::policy::{Registry, RequestAttributes};

/// Names the matched service on the upstream request (a client-sent value is replaced).
pub const SERVICE_HEADER: &str = "x-edge-service";

/// One per HTTP stream.
pub struct EdgeHttp {
    registry: Option<Rc<Registry>>,
}

impl EdgeHttp {
    pub fn new(registry: Option<Rc<Registry>>) -> Self {
        Self { registry }
    }
}

/// A request header as text; absent or unreadable headers read as empty (never a panic on
/// non-UTF-8 bytes, which the SDK's string accessors would do).
fn request_header(name: &str) -> String {
    match hostcalls::get_map_value_bytes(MapType::HttpRequestHeaders, name) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
        _ => String::new(),
    }
}

impl Context for EdgeHttp {}

impl HttpContext for EdgeHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(registry) = &self.registry else {
            return Action::Continue;
        };
        let authority = request_header(":authority");
        let path = request_header(":path");
        let method = request_header(":method");
        let service = registry.match_request(&RequestAttributes {
            authority: &authority,
            path: &path,
            method: &method,
        });
        // Failing to tag is not worth failing the request: the request still goes through.
        let _ = hostcalls::set_map_value(
            MapType::HttpRequestHeaders,
            SERVICE_HEADER,
            Some(&service.name),
        );
        Action::Continue
    }
}

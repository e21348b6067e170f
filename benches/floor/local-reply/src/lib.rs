//! The floor for a cache hit in a wasm VM: every request is answered from `on_http_request_headers`
//! with one `send_http_response` call carrying a fixed body (`body.json`, the demo origin's
//! 7,300-byte `/api/v1/leads/42` record) and the headers an edge-filter L1 hit carries. It reads
//! nothing, keeps no state and allocates nothing per request beyond what the SDK does, so the
//! edge filter's hit path is measured against it (`benches/peers/hit_path.sh`).

/// The body of every answer.
pub const BODY: &[u8] = include_bytes!("body.json");

/// The headers of every answer: those of an L1 hit on `/api/v1/leads/42` (the stored origin
/// headers, then `accept-ranges`, `age` and `cache-status`). Envoy adds `content-length`.
pub const HEADERS: [(&str, &str); 9] = [
    ("content-type", "application/json"),
    ("cache-control", "public, max-age=60"),
    ("etag", "\"32304963ed1ea527\""),
    ("x-origin-endpoint", "leads"),
    ("date", "Wed, 02 Dec 2026 06:41:39 GMT"),
    ("vary", "accept-encoding"),
    ("accept-ranges", "bytes"),
    ("age", "0"),
    ("cache-status", "edge; hit; ttl=60"),
];

// Without the `guest` feature the crate is only its body and headers (for benches/floor/read-reply).
#[cfg(all(target_arch = "wasm32", feature = "guest"))]
mod guest {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Warn);
        proxy_wasm::set_root_context(|_| Box::new(Root));
    }}

    struct Root;

    impl Context for Root {}

    impl RootContext for Root {
        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }

        fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Reply))
        }
    }

    struct Reply;

    impl Context for Reply {}

    impl HttpContext for Reply {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            // The SDK wrapper panics only on a status it does not expect; `Err` is ignored, as a
            // refused reply leaves nothing else to do.
            let _ = hostcalls::send_http_response(200, super::HEADERS.to_vec(), Some(super::BODY));
            Action::Pause
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_body_is_the_7300_byte_json_record() {
        assert_eq!(super::BODY.len(), 7300);
        assert_eq!(super::BODY.first(), Some(&b'{'));
        assert_eq!(super::BODY.last(), Some(&b'}'));
    }
}

//! The floor of a cache hit: `benches/floor/local-reply`'s fixed answer, sent after reading what
//! any cache must read first — the request headers (one host call, the serialized map, not
//! parsed) and the clock (one host call, for freshness). `read/floor` in
//! `benches/peers/hit_path.sh` is what those two calls cost; no cache in a wasm VM can beat it.

pub use floor_local_reply::{BODY, HEADERS};

#[cfg(target_arch = "wasm32")]
mod guest {
    use proxy_wasm::hostcalls;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, Status};

    #[link(wasm_import_module = "env")]
    extern "C" {
        fn proxy_get_header_map_pairs(
            map_type: MapType,
            return_map_data: *mut *mut u8,
            return_map_size: *mut usize,
        ) -> Status;
    }

    /// The request headers as the host serializes them, in one host call (as the edge filter
    /// reads them).
    fn request_header_bytes() -> Vec<u8> {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer it allocated through the module's allocator (as a
        // `Vec<u8>` of `size` bytes) and its size; ownership passes to us.
        unsafe {
            match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
                Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
                _ => Vec::new(),
            }
        }
    }

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
            let headers = request_header_bytes();
            let now = hostcalls::get_current_time();
            // Both are used, so neither read can be optimized away; a request with no
            // headers and no clock goes on to the origin.
            if headers.is_empty() && now.is_err() {
                return Action::Continue;
            }
            let _ = hostcalls::send_http_response(200, super::HEADERS.to_vec(), Some(super::BODY));
            Action::Pause
        }
    }
}

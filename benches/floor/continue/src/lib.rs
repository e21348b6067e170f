//! The floor for a pass-through in a wasm VM: an HTTP context is created for every request and
//! every callback continues (the SDK's defaults), so Envoy pays the VM's per-stream crossings and
//! nothing else. The edge filter's pass-through is measured against it
//! (`benches/peers/hit_path.sh`).

#[cfg(target_arch = "wasm32")]
mod guest {
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{ContextType, LogLevel};

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
            Some(Box::new(Continue))
        }
    }

    struct Continue;

    impl Context for Continue {}

    impl HttpContext for Continue {}
}

//! The `wasm-bindgen` layer the page calls: JSON text in, JSON text out, nothing decided here.

use wasm_bindgen::prelude::wasm_bindgen;

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|err| format!(r#"{{"error":"{err}"}}"#))
}

/// The filter's validation of a configuration and a summary per service.
#[wasm_bindgen]
pub fn check_config(config: &str) -> String {
    json(&crate::check_config(config))
}

/// The trace of a request (a `TraceRequest` as JSON) under a configuration.
#[wasm_bindgen]
pub fn trace(config: &str, request: &str) -> String {
    match serde_json::from_str::<crate::TraceRequest>(request) {
        Ok(request) => json(&crate::trace(config, &request)),
        Err(err) => json(&serde_json::json!({ "error": format!("request: {err}") })),
    }
}

/// A `Cache-Status` header explained, member by member.
#[wasm_bindgen]
pub fn explain_cache_status(value: &str) -> String {
    json(&crate::explain_cache_status(value))
}

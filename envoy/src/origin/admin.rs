//! The `/__origin/*` control endpoints (not counted, not logged).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;

use super::fault::Fault;
use super::response::{json_error, json_value};
use super::state::OriginState;

type Shared = State<Arc<OriginState>>;

/// Body of `POST /__origin/faults`; unset numbers are 0.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultRequest {
    endpoint: String,
    #[serde(default)]
    error_rate: f64,
    #[serde(default)]
    extra_latency_ms: u64,
    #[serde(default)]
    reset_rate: f64,
}

/// `GET /__origin/stats`
pub async fn stats(State(st): Shared) -> Response {
    json_value(StatusCode::OK, &st.stats.to_json())
}

/// `GET /__origin/webhooks`: webhook deliveries processed, per id.
pub async fn webhooks(State(st): Shared) -> Response {
    json_value(StatusCode::OK, &st.deliveries.to_json())
}

/// `GET /__origin/requests`: the recent requests, oldest first.
pub async fn requests(State(st): Shared) -> Response {
    json_value(StatusCode::OK, &json!(st.log.snapshot()))
}

/// `GET /__origin/faults`
pub async fn get_faults(State(st): Shared) -> Response {
    json_value(StatusCode::OK, &st.faults_json())
}

/// `POST /__origin/faults`: sets one endpoint's fault (or all with `"*"`), answers like GET.
pub async fn set_faults(State(st): Shared, body: Bytes) -> Response {
    let req: FaultRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, &format!("bad fault JSON: {e}")),
    };
    let fault = Fault {
        error_rate: req.error_rate,
        extra_latency_ms: req.extra_latency_ms,
        reset_rate: req.reset_rate,
    };
    match st.apply_fault(&req.endpoint, fault) {
        Ok(()) => json_value(StatusCode::OK, &st.faults_json()),
        Err(e) => json_error(StatusCode::BAD_REQUEST, &e),
    }
}

/// `POST /__origin/reset`: clears counters, the request log and faults.
pub async fn reset(State(st): Shared) -> Response {
    st.reset();
    json_value(StatusCode::OK, &json!({ "reset": true }))
}

/// Anything else.
pub async fn not_found(uri: Uri) -> Response {
    json_value(
        StatusCode::NOT_FOUND,
        &json!({ "error": "not found", "path": uri.path() }),
    )
}

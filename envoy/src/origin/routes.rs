//! The demo platform's endpoints: each waits its scaled baseline (plus injected latency),
//! then answers, fails with 503, or resets the connection, as the fault injector decides.

use std::sync::Arc;

use axum::body::{to_bytes, Bytes};
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::conn::AbortSwitch;
use super::content::{coaching_json, lead_json, properties_json};
use super::endpoint::Endpoint;
use super::injector::Action;
use super::response::{cacheable, json_error, json_value, tag_endpoint};
use super::state::OriginState;

/// The largest webhook body read (larger ones get 413).
pub const MAX_WEBHOOK_BODY: usize = 1 << 20;

type Shared = State<Arc<OriginState>>;

/// Records the request, applies delay and faults, and otherwise answers with `answer`.
async fn serve(
    st: &OriginState,
    endpoint: Endpoint,
    parts: &Parts,
    answer: impl FnOnce() -> Response,
) -> Response {
    st.record(endpoint, parts);
    let decision = st.faults.decide(endpoint);
    let delay = st.baseline_delay(endpoint) + decision.extra_latency;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let resp = match decision.action {
        Action::Serve => answer(),
        Action::Error => json_value(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": "injected fault", "endpoint": endpoint.name() }),
        ),
        Action::Reset => match parts.extensions.get::<ConnectInfo<AbortSwitch>>() {
            Some(ConnectInfo(switch)) => {
                // The connection fails before this answer's first byte is written.
                switch.abort();
                json_error(StatusCode::SERVICE_UNAVAILABLE, "connection reset")
            }
            None => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "injected reset (connection cannot be aborted here)",
            ),
        },
    };
    tag_endpoint(resp, endpoint)
}

/// `POST /webhooks/ghl`
pub async fn webhooks(State(st): Shared, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body: Result<Bytes, _> = to_bytes(body, MAX_WEBHOOK_BODY).await;
    let id = ["webhook-id", "idempotency-key"]
        .iter()
        .find_map(|h| parts.headers.get(*h))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let deliveries = &st.deliveries;
    serve(&st, Endpoint::Webhooks, &parts, move || match body {
        Ok(body) => {
            if let Some(id) = &id {
                deliveries.record(id);
            }
            json_value(
                StatusCode::OK,
                &json!({ "received": true, "id": id, "bytes": body.len() }),
            )
        }
        Err(_) => json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "webhook body unreadable or larger than 1 MiB",
        ),
    })
    .await
}

/// `GET /api/v1/coaching/{lead}`
pub async fn coaching(State(st): Shared, Path(lead): Path<String>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    serve(&st, Endpoint::Coaching, &parts, || {
        cacheable(
            st.cache_control(Endpoint::Coaching),
            &parts.headers,
            coaching_json(&lead),
        )
    })
    .await
}

/// `GET /api/v1/leads/{id}`
pub async fn leads(State(st): Shared, Path(id): Path<String>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    serve(&st, Endpoint::Leads, &parts, || {
        cacheable(
            st.cache_control(Endpoint::Leads),
            &parts.headers,
            lead_json(&id),
        )
    })
    .await
}

/// `GET /api/v1/properties?city=..` (the content is keyed on the sorted query, the
/// missing or empty `city` is a 400).
pub async fn properties(State(st): Shared, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let answer = || {
        let Ok(Query(mut params)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) else {
            return json_error(StatusCode::BAD_REQUEST, "malformed query string");
        };
        let Some(city) = params
            .iter()
            .find(|(k, v)| k == "city" && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
        else {
            return json_error(StatusCode::BAD_REQUEST, "missing query parameter: city");
        };
        params.sort();
        let query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = format!("{}?{}", parts.uri.path(), query.join("&"));
        cacheable(
            st.cache_control(Endpoint::Properties),
            &parts.headers,
            properties_json(&key, &city),
        )
    };
    serve(&st, Endpoint::Properties, &parts, answer).await
}

/// `GET /health`
pub async fn health(State(st): Shared, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    serve(&st, Endpoint::Health, &parts, || {
        json_value(StatusCode::OK, &json!({ "status": "ok" }))
    })
    .await
}

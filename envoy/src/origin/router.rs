//! The origin's routes.

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use super::state::OriginState;
use super::{admin, routes};

/// The full router: platform endpoints, `/__origin/*` controls and a JSON 404.
pub fn router(state: Arc<OriginState>) -> Router {
    Router::new()
        .route("/webhooks/ghl", post(routes::webhooks))
        .route("/api/v1/coaching/{lead}", get(routes::coaching))
        .route("/api/v1/leads/{id}", get(routes::leads))
        .route("/api/v1/properties", get(routes::properties))
        .route("/health", get(routes::health))
        .route("/__origin/stats", get(admin::stats))
        .route("/__origin/requests", get(admin::requests))
        .route("/__origin/webhooks", get(admin::webhooks))
        .route(
            "/__origin/faults",
            get(admin::get_faults).post(admin::set_faults),
        )
        .route("/__origin/reset", post(admin::reset))
        .fallback(admin::not_found)
        .with_state(state)
}

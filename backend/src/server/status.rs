//! `GET /api/status`: what serves, whether a model is loading, and what the
//! background job is doing. Public, so the front end can say why
//! identification is not available yet.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use flukeid_shared::api::StatusResponse;

use super::state::AppState;

/// `GET /api/status`.
pub async fn status(State(state): State<Arc<AppState>>) -> Json<StatusResponse> {
    let view = state.worker.view();
    Json(StatusResponse {
        model: view.status,
        serving: view.serving,
        training: state.jobs.status(),
    })
}

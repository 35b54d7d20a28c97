//! `GET /api/admin/orgs/{org}/signals/{id}`: everything sigstage did with one signal
//! ([`control::trace`]).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, unavailable, Admin};

pub async fn signal(State(admin): State<Admin>, Path((org, id)): Path<(String, String)>) -> Response {
    let Ok(signal_id) = id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "invalid_signal_id", format!("{id:?} is not a signal id (digits)"));
    };
    match control::trace::signal(&admin.client, &org, signal_id).await {
        Ok(Some(trace)) => Json(trace).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "signal_not_found", control::trace::missing(&org, signal_id)),
        Err(failure) => unavailable(failure),
    }
}

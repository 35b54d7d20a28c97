//! `GET /api/admin/orgs/{org}/leads/{email}`: one lead, its visitors and its newest signals
//! ([`control::leads`]), from which the console's lead view links to each signal's trace.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{error, unavailable, Admin};

pub async fn lead(State(admin): State<Admin>, Path((org, email)): Path<(String, String)>) -> Response {
    let Some(email) = schemas::person::normalise_email(&email) else {
        return error(StatusCode::BAD_REQUEST, "invalid_email", format!("{email:?} is not an email address"));
    };
    match control::leads::lead(&admin.client, &org, &email).await {
        Ok(Some(view)) => Json(view).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "lead_not_found", format!("{email} is not a lead of org {org:?}")),
        Err(failure) => unavailable(failure),
    }
}

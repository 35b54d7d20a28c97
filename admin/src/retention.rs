//! `/api/admin/orgs/{org}/retention`: how many days of the org's signals to keep
//! ([`control::retention`]).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use axum::http::StatusCode;
use control::retention::RetentionError;

use super::{body, unavailable, Admin};

pub async fn get(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match control::retention::of(&admin.client, &org).await {
        Ok(days) => Json(json!({"days": days})).into_response(),
        Err(error) => unavailable(error),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Days {
    /// Days of signals to keep, by event time; 0 keeps them for ever.
    days: u32,
}

pub async fn set(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    days: Result<Json<Days>, JsonRejection>,
) -> Response {
    let days = match body(days, "invalid_retention") {
        Ok(days) => days.days,
        Err(refused) => return refused,
    };
    match control::retention::set(&admin.client, &org, days).await {
        Ok(()) => Json(json!({"days": days, "message": "the sink enforces it within SIGSTAGE_RETENTION_INTERVAL_MS"}))
            .into_response(),
        Err(error @ RetentionError::TooLong(_)) => {
            super::error(StatusCode::BAD_REQUEST, "invalid_retention", error.to_string())
        }
        Err(RetentionError::ClickHouse(error)) => unavailable(error),
    }
}

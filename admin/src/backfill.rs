//! `/api/admin/orgs/{org}/webhooks/{sub}/backfill` and `/backfills`: history backfilled to a
//! subscription ([`control::backfill`]), its progress, and pausing, resuming or cancelling it.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use control::backfill;
use serde::Deserialize;
use serde_json::json;

use super::webhooks::subscription_of;
use super::{answer, body, error, Admin, Refusal};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Start {
    since_ms: u64,
    /// Exclusive; now by default.
    until_ms: Option<u64>,
    /// Of the subscription's types; all of them by default.
    #[serde(default)]
    events: Vec<String>,
    #[serde(default = "default_per_second")]
    per_second: u32,
}

fn default_per_second() -> u32 {
    backfill::DEFAULT_PER_SECOND
}

/// Starts a backfill: 202 with it.
pub async fn start(
    State(admin): State<Admin>,
    Path((org, id)): Path<(String, String)>,
    start: Result<Json<Start>, JsonRejection>,
) -> Response {
    let start = match body(start, "invalid_backfill") {
        Ok(start) => start,
        Err(refused) => return refused,
    };
    let request = backfill::Request {
        subscription_id: &id,
        since_ms: start.since_ms,
        until_ms: start.until_ms.unwrap_or_else(runtime::time::now_ms),
        event_types: &start.events,
        per_second: start.per_second,
    };
    let started = match subscription_of(&admin, &org, &id).await {
        Ok(_) => backfill::start(&admin.client, &request).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::ACCEPTED, started)
}

/// The subscription's backfills, the newest first, each with its progress.
pub async fn list(State(admin): State<Admin>, Path((org, id)): Path<(String, String)>) -> Response {
    if let Err(refused) = subscription_of(&admin, &org, &id).await {
        return refused.refusal();
    }
    let listed = async {
        let mut listed = Vec::new();
        for backfill in backfill::of_subscription(&admin.client, &org, &id).await? {
            let progress = backfill::progress(&admin.client, &backfill).await?;
            listed.push(json!({ "backfill": backfill, "progress": progress }));
        }
        Ok::<_, clickhouse::error::Error>(listed)
    };
    match listed.await {
        Ok(listed) => Json(listed).into_response(),
        Err(failure) => super::unavailable(failure),
    }
}

/// `pause`, `resume` or `cancel` a backfill.
pub async fn act(
    State(admin): State<Admin>,
    Path((org, id, backfill_id, action)): Path<(String, String, String, String)>,
) -> Response {
    let state = match action.as_str() {
        "pause" => backfill::PAUSED,
        "resume" => backfill::RUNNING,
        "cancel" => backfill::CANCELLED,
        other => {
            let message = format!("{other:?} is not an action on a backfill: pause, resume or cancel");
            return error(StatusCode::NOT_FOUND, "unknown_action", message);
        }
    };
    let changed = match subscription_of(&admin, &org, &id).await {
        Ok(_) => backfill::set_state(&admin.client, &org, &backfill_id, state).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::OK, changed)
}

//! `/api/admin/orgs/{org}/webhooks`: an org's subscriptions, their delivery log, re-sends,
//! recovery, test events and rate limits.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::{answer, body, error, Admin, Refusal};
use control::deliveries;
use control::webhooks::{self, Subscription, WebhookAdminError};

impl Refusal for WebhookAdminError {
    fn refusal(self) -> Response {
        let (status, code) = match &self {
            WebhookAdminError::InvalidOrg(_) | WebhookAdminError::Invalid(_) => {
                (StatusCode::BAD_REQUEST, "invalid_subscription")
            }
            WebhookAdminError::NotFound(_) => (StatusCode::NOT_FOUND, "subscription_not_found"),
            WebhookAdminError::BackfillNotFound(_) => (StatusCode::NOT_FOUND, "backfill_not_found"),
            WebhookAdminError::EventNotFound { .. } => (StatusCode::NOT_FOUND, "event_not_found"),
            WebhookAdminError::Random(_) | WebhookAdminError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        error(status, code, self.to_string())
    }
}

/// The subscription, if it belongs to `org`.
pub(crate) async fn subscription_of(admin: &Admin, org: &str, id: &str) -> Result<Subscription, WebhookAdminError> {
    let subscription = webhooks::get(&admin.client, id).await?;
    if subscription.org_id != org {
        return Err(WebhookAdminError::NotFound(id.to_owned()));
    }
    Ok(subscription)
}

pub async fn list(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    let shown = webhooks::list(&admin.client, Some(&org))
        .await
        .map(|all| json!({"subscriptions": all.into_iter().map(Subscription::without_secret).collect::<Vec<_>>()}));
    answer(StatusCode::OK, shown)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    url: String,
    events: Vec<String>,
}

pub async fn create(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    target: Result<Json<Target>, JsonRejection>,
) -> Response {
    match body(target, "invalid_subscription") {
        Ok(new) => answer(StatusCode::CREATED, webhooks::create(&admin.client, &org, &new.url, new.events).await),
        Err(refused) => refused,
    }
}

pub async fn edit(
    State(admin): State<Admin>,
    Path((org, id)): Path<(String, String)>,
    target: Result<Json<Target>, JsonRejection>,
) -> Response {
    let target = match body(target, "invalid_subscription") {
        Ok(target) => target,
        Err(refused) => return refused,
    };
    let edited = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhooks::edit(&admin.client, &id, &target.url, target.events).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::OK, edited.map(Subscription::without_secret))
}

pub async fn enable(State(admin): State<Admin>, Path((org, id)): Path<(String, String)>) -> Response {
    set_active(admin, org, id, true).await
}

pub async fn disable(State(admin): State<Admin>, Path((org, id)): Path<(String, String)>) -> Response {
    set_active(admin, org, id, false).await
}

async fn set_active(admin: Admin, org: String, id: String, active: bool) -> Response {
    let changed = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhooks::set_active(&admin.client, &id, active, "").await,
        Err(error) => Err(error),
    };
    answer(StatusCode::OK, changed.map(Subscription::without_secret))
}

pub async fn test(State(admin): State<Admin>, Path((org, id)): Path<(String, String)>) -> Response {
    let sent = match subscription_of(&admin, &org, &id).await {
        Ok(_) => deliveries::send_test(&admin.client, &id).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::ACCEPTED, sent.map(|event_id| json!({"subscription": id, "event_id": event_id})))
}

pub async fn deliveries(State(admin): State<Admin>, Path((org, id)): Path<(String, String)>) -> Response {
    let log = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhooks::deliveries(&admin.client, &id, 200).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::OK, log.map(|attempts| json!({"deliveries": attempts})))
}

pub async fn resend(State(admin): State<Admin>, Path((org, id, event_id)): Path<(String, String, String)>) -> Response {
    let sent = match subscription_of(&admin, &org, &id).await {
        Ok(_) => deliveries::resend(&admin.client, &id, &event_id).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::ACCEPTED, sent.map(|()| json!({"resent": event_id, "subscription": id})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    since_ms: u64,
}

pub async fn recover(
    State(admin): State<Admin>,
    Path((org, id)): Path<(String, String)>,
    recover: Result<Json<Recover>, JsonRejection>,
) -> Response {
    let since_ms = match body(recover, "invalid_recover") {
        Ok(recover) => recover.since_ms,
        Err(refused) => return refused,
    };
    let queued = match subscription_of(&admin, &org, &id).await {
        Ok(_) => deliveries::recover(&admin.client, &id, since_ms).await,
        Err(error) => Err(error),
    };
    answer(
        StatusCode::ACCEPTED,
        queued.map(|queued| json!({"subscription": id, "since_ms": since_ms, "queued": queued})),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    per_second: u32,
}

pub async fn set_rate_limit(
    State(admin): State<Admin>,
    Path((org, id)): Path<(String, String)>,
    limit: Result<Json<RateLimit>, JsonRejection>,
) -> Response {
    let per_second = match body(limit, "invalid_rate_limit") {
        Ok(limit) => limit.per_second,
        Err(refused) => return refused,
    };
    let set = match subscription_of(&admin, &org, &id).await {
        Ok(_) => deliveries::set_rate_limit(&admin.client, &id, per_second).await,
        Err(error) => Err(error),
    };
    answer(StatusCode::OK, set.map(|()| json!({"subscription": id, "per_second": per_second})))
}

//! The admin HTTP API under `/api/admin/`, on the admin listener (`SIGSTAGE_ADMIN_ADDR`, apart
//! from the public one) of every role when a token is configured: `Authorization: Bearer
//! <token>`. Read-only tokens may only GET. Each request is logged with the token's id, never
//! the token. Errors are `{"error": "<code>", "message": "…"}`.
//!
//! - `GET    /api/admin/orgs/{org}/rules`            the org's mapping rules, in order
//! - `POST   /api/admin/orgs/{org}/rules`            add one (body: the rule); 201 with its id
//! - `DELETE /api/admin/orgs/{org}/rules/{rule_id}`  remove one
//! - `GET    /api/admin/orgs/{org}/queue`            the signal queue, by source and event
//! - `GET    /api/admin/orgs/{org}/webhooks`         the org's subscriptions (no secrets)
//! - `POST   /api/admin/orgs/{org}/webhooks`         subscribe (`{"url", "events"}`); 201 with the secret, shown once
//! - `POST   /api/admin/orgs/{org}/webhooks/{sub}/enable` and `/disable`
//! - `GET    /api/admin/orgs/{org}/webhooks/{sub}/deliveries`  the delivery log, newest first
//! - `POST   /api/admin/orgs/{org}/webhooks/{sub}/resend/{event_id}`  deliver an event again
//! - `POST   /api/admin/orgs/{org}/webhooks/{sub}/recover`  queue again what it was not delivered
//!   since a time (`{"since_ms": …}`)
//! - `PUT    /api/admin/orgs/{org}/webhooks/{sub}/rate-limit`  cap deliveries per second
//!   (`{"per_second": n}`, 0 for none)
//! - `GET    /api/admin/orgs/{org}/keys`             the org's keys (ids and prefixes, never keys)
//! - `POST   /api/admin/orgs/{org}/keys`             create one (`{"secret", "expires_at_ms",
//!   "endpoints"}`, all optional); 201 with the key, shown once
//! - `DELETE /api/admin/orgs/{org}/keys/{key_id}`    revoke one
//! - `GET    /api/admin/orgs/{org}/limits`           rate, plan and this month's usage
//! - `PUT    /api/admin/orgs/{org}/limits`           change them (`{"requests_per_second", "burst",
//!   "monthly_raw_signals", "allow_overages"}`, each optional)
//! - `GET    /api/admin/orgs/{org}/usage?days=30`    signals per day and outcome

mod keys;
mod limits;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use schemas::rules::RuleSpec;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::AdminToken;
use crate::control::rules::RuleAdminError;
use crate::control::webhooks::{self, Subscription, WebhookAdminError};
use crate::control::{queue, rules, webhook_queue};

#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) client: clickhouse::Client,
    tokens: std::sync::Arc<[AdminToken]>,
}

pub fn router(client: clickhouse::Client, tokens: Vec<AdminToken>) -> Router {
    let admin = Admin { client, tokens: tokens.into() };
    Router::new()
        .route("/api/admin/orgs/{org}/rules", get(list_rules).post(add_rule))
        .route("/api/admin/orgs/{org}/rules/{rule_id}", delete(remove_rule))
        .route("/api/admin/orgs/{org}/queue", get(signal_queue))
        .route("/api/admin/orgs/{org}/webhooks", get(list_webhooks).post(create_webhook))
        .route("/api/admin/orgs/{org}/webhooks/{sub}/{action}", post(change_webhook).get(webhook_deliveries))
        .route("/api/admin/orgs/{org}/webhooks/{sub}/resend/{event_id}", post(resend_event))
        .route("/api/admin/orgs/{org}/webhooks/{sub}/recover", post(recover))
        .route("/api/admin/orgs/{org}/webhooks/{sub}/rate-limit", put(set_rate_limit))
        .route("/api/admin/orgs/{org}/keys", get(keys::list).post(keys::create))
        .route("/api/admin/orgs/{org}/keys/{key_id}", delete(keys::revoke))
        .route("/api/admin/orgs/{org}/limits", get(limits::get).put(limits::set))
        .route("/api/admin/orgs/{org}/usage", get(limits::usage))
        .route("/api/admin/{*rest}", get(not_found).post(not_found).put(not_found).delete(not_found))
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": code, "message": message.into()}))).into_response()
}

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    if admin.tokens.is_empty() {
        return error(StatusCode::NOT_FOUND, "admin_api_disabled", "the admin API is off: set SIGSTAGE_ADMIN_TOKEN");
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(given) = given else {
        return unauthorized("send an admin token as `Authorization: Bearer <SIGSTAGE_ADMIN_TOKEN>`");
    };
    // Every token is compared, in constant time, whichever matches.
    let matched = admin.tokens.iter().fold(None, |found, token| {
        let equal = bool::from(given.as_bytes().ct_eq(token.secret.expose().as_bytes()));
        found.or(equal.then_some(token))
    });
    let Some(token) = matched else { return unauthorized("the admin token is wrong") };
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    if token.read_only && method != axum::http::Method::GET && method != axum::http::Method::HEAD {
        tracing::warn!(token = %token.id, %method, %path, "admin request refused: the token is read-only");
        return error(StatusCode::FORBIDDEN, "admin_token_read_only", "this admin token may only read (GET)");
    }
    let response = next.run(request).await;
    tracing::info!(token = %token.id, %method, %path, status = response.status().as_u16(), "admin request");
    response
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "invalid_admin_token", message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

impl IntoResponse for RuleAdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            RuleAdminError::InvalidOrg(_) | RuleAdminError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_rule"),
            RuleAdminError::NotFound { .. } => (StatusCode::NOT_FOUND, "rule_not_found"),
            RuleAdminError::Random(_) | RuleAdminError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        match self {
            RuleAdminError::Invalid(problems) => {
                (status, Json(json!({"error": code, "message": "the rule is not valid", "problems": problems})))
                    .into_response()
            }
            other => error(status, code, other.to_string()),
        }
    }
}

async fn list_rules(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match rules::list(&admin.client, Some(&org)).await {
        Ok(rules) => Json(json!({"rules": rules})).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn add_rule(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    body: Result<Json<RuleSpec>, JsonRejection>,
) -> Response {
    let spec = match body {
        Ok(Json(spec)) => spec,
        Err(rejection) => return error(rejection.status(), "invalid_rule", rejection.body_text()),
    };
    match rules::add(&admin.client, &org, spec).await {
        Ok(rule) => (StatusCode::CREATED, Json(rule)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn remove_rule(State(admin): State<Admin>, Path((org, rule_id)): Path<(String, String)>) -> Response {
    match rules::remove(&admin.client, &org, &rule_id).await {
        Ok(rule) => Json(rule).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn signal_queue(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match queue::list(&admin.client, &org).await {
        Ok(groups) => Json(json!({"groups": groups})).into_response(),
        Err(error) => RuleAdminError::ClickHouse(error).into_response(),
    }
}

impl IntoResponse for WebhookAdminError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            WebhookAdminError::InvalidOrg(_) | WebhookAdminError::Invalid(_) => {
                (StatusCode::BAD_REQUEST, "invalid_subscription")
            }
            WebhookAdminError::NotFound(_) => (StatusCode::NOT_FOUND, "subscription_not_found"),
            WebhookAdminError::EventNotFound { .. } => (StatusCode::NOT_FOUND, "event_not_found"),
            WebhookAdminError::Random(_) | WebhookAdminError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        error(status, code, self.to_string())
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSubscription {
    url: String,
    events: Vec<String>,
}

async fn list_webhooks(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match webhooks::list(&admin.client, Some(&org)).await {
        Ok(all) => {
            let shown: Vec<Subscription> = all.into_iter().map(Subscription::without_secret).collect();
            Json(json!({"subscriptions": shown})).into_response()
        }
        Err(error) => error.into_response(),
    }
}

async fn create_webhook(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    body: Result<Json<NewSubscription>, JsonRejection>,
) -> Response {
    let new = match body {
        Ok(Json(new)) => new,
        Err(rejection) => return error(rejection.status(), "invalid_subscription", rejection.body_text()),
    };
    match webhooks::create(&admin.client, &org, &new.url, new.events).await {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(error) => error.into_response(),
    }
}

/// The subscription, if it belongs to `org`.
async fn subscription_of(admin: &Admin, org: &str, id: &str) -> Result<Subscription, WebhookAdminError> {
    let subscription = webhooks::get(&admin.client, id).await?;
    if subscription.org_id != org {
        return Err(WebhookAdminError::NotFound(id.to_owned()));
    }
    Ok(subscription)
}

async fn change_webhook(
    State(admin): State<Admin>,
    Path((org, id, action)): Path<(String, String, String)>,
) -> Response {
    let active = match action.as_str() {
        "enable" => true,
        "disable" => false,
        _ => return not_found().await,
    };
    let changed = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhooks::set_active(&admin.client, &id, active, "").await,
        Err(error) => Err(error),
    };
    match changed {
        Ok(subscription) => Json(subscription.without_secret()).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn webhook_deliveries(
    State(admin): State<Admin>,
    Path((org, id, action)): Path<(String, String, String)>,
) -> Response {
    if action != "deliveries" {
        return not_found().await;
    }
    let log = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhooks::deliveries(&admin.client, &id, 200).await,
        Err(error) => Err(error),
    };
    match log {
        Ok(attempts) => Json(json!({"deliveries": attempts})).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn resend_event(
    State(admin): State<Admin>,
    Path((org, id, event_id)): Path<(String, String, String)>,
) -> Response {
    let sent = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhook_queue::resend(&admin.client, &id, &event_id).await,
        Err(error) => Err(error),
    };
    match sent {
        Ok(()) => (StatusCode::ACCEPTED, Json(json!({"resent": event_id, "subscription": id}))).into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Recover {
    since_ms: u64,
}

async fn recover(
    State(admin): State<Admin>,
    Path((org, id)): Path<(String, String)>,
    body: Result<Json<Recover>, JsonRejection>,
) -> Response {
    let since_ms = match body {
        Ok(Json(recover)) => recover.since_ms,
        Err(rejection) => return error(rejection.status(), "invalid_recover", rejection.body_text()),
    };
    let queued = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhook_queue::recover(&admin.client, &id, since_ms).await,
        Err(error) => Err(error),
    };
    match queued {
        Ok(queued) => (StatusCode::ACCEPTED, Json(json!({"subscription": id, "since_ms": since_ms, "queued": queued})))
            .into_response(),
        Err(error) => error.into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimit {
    per_second: u32,
}

async fn set_rate_limit(
    State(admin): State<Admin>,
    Path((org, id)): Path<(String, String)>,
    body: Result<Json<RateLimit>, JsonRejection>,
) -> Response {
    let per_second = match body {
        Ok(Json(limit)) => limit.per_second,
        Err(rejection) => return error(rejection.status(), "invalid_rate_limit", rejection.body_text()),
    };
    let set = match subscription_of(&admin, &org, &id).await {
        Ok(_) => webhook_queue::set_rate_limit(&admin.client, &id, per_second).await,
        Err(error) => Err(error),
    };
    match set {
        Ok(()) => Json(json!({"subscription": id, "per_second": per_second})).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint; see the README's admin API section")
}

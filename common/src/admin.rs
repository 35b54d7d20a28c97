//! The admin HTTP API under `/api/admin/`, served by every role when SIGSTAGE_ADMIN_TOKEN is
//! set: `Authorization: Bearer <token>`. Errors are `{"error": "<code>", "message": "…"}`.
//!
//! - `GET    /api/admin/orgs/{org}/rules`            the org's mapping rules, in order
//! - `POST   /api/admin/orgs/{org}/rules`            add one (body: the rule); 201 with its id
//! - `DELETE /api/admin/orgs/{org}/rules/{rule_id}`  remove one
//! - `GET    /api/admin/orgs/{org}/queue`            the signal queue, by source and event

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use schemas::rules::RuleSpec;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::control::rules::RuleAdminError;
use crate::control::{queue, rules};

#[derive(Clone)]
struct Admin {
    client: clickhouse::Client,
    token: Option<Secret>,
}

pub fn router(client: clickhouse::Client, token: Option<Secret>) -> Router {
    let admin = Admin { client, token };
    Router::new()
        .route("/api/admin/orgs/{org}/rules", get(list_rules).post(add_rule))
        .route("/api/admin/orgs/{org}/rules/{rule_id}", delete(remove_rule))
        .route("/api/admin/orgs/{org}/queue", get(signal_queue))
        .route("/api/admin/{*rest}", get(not_found).post(not_found).delete(not_found))
        .layer(middleware::from_fn_with_state(admin.clone(), authorize))
        .with_state(admin)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": code, "message": message.into()}))).into_response()
}

async fn authorize(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let Some(token) = &admin.token else {
        return error(StatusCode::NOT_FOUND, "admin_api_disabled", "the admin API is off: set SIGSTAGE_ADMIN_TOKEN");
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => next.run(request).await,
        Some(_) => unauthorized("the admin token is wrong"),
        None => unauthorized("send the admin token as `Authorization: Bearer <SIGSTAGE_ADMIN_TOKEN>`"),
    }
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

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint; see the README's admin API section")
}

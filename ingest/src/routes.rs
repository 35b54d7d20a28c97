//! The edge's routes, and the request log line (which names the route, never the path: API
//! keys travel in paths).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::{activity, collect, signals, tracking, Edge};

pub const REQUESTS_TOTAL: &str = "sigstage_ingest_requests_total";
pub const REQUEST_SECONDS: &str = "sigstage_ingest_request_seconds";

pub fn router(edge: Arc<Edge>) -> Router {
    Router::new()
        .route("/api/signal-staging/webhook/{key}", post(signals::webhook))
        .route("/api/signal-staging/webhook/{first}/{second}", post(signals::webhook_with_source_or_batch))
        .route("/api/signal-staging/bulk/{key}", post(signals::bulk))
        .route("/collect/{event_type}/{source_id}", get(collect::collect).post(collect::collect))
        .route(
            "/collect/{event_type}/{source_id}/{session_id}",
            get(collect::collect_session).post(collect::collect_session),
        )
        .route("/webhooks/ingress/{token}", post(activity::ingress))
        .route("/v1/{call}", post(tracking::tracking))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(log_request))
        .with_state(edge)
}

async fn not_found() -> Response {
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(json!({"error": "not_found", "message": "no such endpoint; see the README for the list"})),
    )
        .into_response()
}

/// Logs and measures each request by its route template, so no key reaches a log line.
async fn log_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |path| route_label(path.as_str()));
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    metrics::counter!(REQUESTS_TOTAL, "route" => route, "status" => status_class(status)).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => route).record(elapsed.as_secs_f64());
    tracing::debug!(%method, route, status, elapsed_us = elapsed.as_micros() as u64, "request");
    response
}

/// Static labels for the route templates, so metrics never build strings per request.
fn route_label(template: &str) -> &'static str {
    match template {
        "/api/signal-staging/webhook/{key}" => "webhook",
        "/api/signal-staging/webhook/{first}/{second}" => "webhook_source_or_batch",
        "/api/signal-staging/bulk/{key}" => "bulk",
        "/collect/{event_type}/{source_id}" | "/collect/{event_type}/{source_id}/{session_id}" => "collect",
        "/webhooks/ingress/{token}" => "ingress",
        "/v1/{call}" => "tracking",
        _ => "other",
    }
}

fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

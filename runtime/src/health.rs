//! `/healthz`, `/readyz` and `/metrics`, served by every role.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::{json, Value};

use crate::kafka::MetadataClient;
use crate::stage::Stages;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the health endpoints look at.
#[derive(Clone)]
pub struct Health {
    pub kafka: MetadataClient,
    pub clickhouse: clickhouse::Client,
    pub metrics: PrometheusHandle,
    /// The stages this process runs (none for the edge alone).
    pub stages: Stages,
}

pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// 200 when the broker and ClickHouse answer and every stage is running, else 503 naming what
/// is not (a stage that is down says why, one that is restoring says how far it got).
async fn readyz(State(health): State<Health>) -> (StatusCode, Json<Value>) {
    let (kafka, clickhouse) = tokio::join!(health.kafka.ping(PROBE_TIMEOUT), async {
        tokio::time::timeout(PROBE_TIMEOUT, crate::clickhouse::ping(&health.clickhouse))
            .await
            .map_err(|_| "timed out".to_owned())?
            .map_err(|error| error.to_string())
    });
    let kafka = kafka.map(drop).map_err(|error| error.to_string());
    let (stages_running, stages) = health.stages.report();
    let ready = kafka.is_ok() && clickhouse.is_ok() && stages_running;
    let describe = |check: &Result<(), String>| match check {
        Ok(()) => "ok".to_owned(),
        Err(error) => format!("error: {error}"),
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "kafka": describe(&kafka),
        "clickhouse": describe(&clickhouse),
        "stages": stages,
    });
    (if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

async fn metrics(State(health): State<Health>) -> ([(header::HeaderName, &'static str); 1], String) {
    health.metrics.run_upkeep();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], health.metrics.render())
}

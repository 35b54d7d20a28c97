//! `/healthz`, `/readyz` and `/metrics` against the real broker and ClickHouse.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use common::health::{self, Health};
use common::kafka::MetadataClient;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::support::{config_of, TestDb};

async fn get(health: Health, path: &str) -> (StatusCode, String) {
    let response = health::router(health)
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = response.status();
    let body = response.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn health_for(vars: &std::collections::BTreeMap<String, String>) -> Health {
    let config = config_of(vars);
    Health {
        kafka: MetadataClient::new(&config.kafka).expect("kafka client"),
        clickhouse: common::clickhouse::client(&config.clickhouse),
        metrics: common::telemetry::init_metrics(),
        stages: common::stage::Stages::default(),
    }
}

#[tokio::test]
async fn ready_when_broker_and_clickhouse_answer() {
    let db = TestDb::migrated().await;
    let health = health_for(&db.vars);
    assert_eq!(get(health.clone(), "/healthz").await.0, StatusCode::OK);
    let (status, body) = get(health.clone(), "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""kafka":"ok""#) && body.contains(r#""clickhouse":"ok""#), "{body}");
    let (status, _) = get(health, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn not_ready_names_what_is_unreachable() {
    let db = TestDb::migrated().await;
    let mut vars = db.vars.clone();
    // Nothing listens on port 1.
    vars.insert("SIGSTAGE_CLICKHOUSE_URL".into(), "http://127.0.0.1:1".into());
    let (status, body) = get(health_for(&vars), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains(r#""kafka":"ok""#), "{body}");
    assert!(body.contains(r#""clickhouse":"error"#), "{body}");

    let mut vars = db.vars.clone();
    vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), "127.0.0.1:1".into());
    let (status, body) = get(health_for(&vars), "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains(r#""kafka":"error"#) && body.contains(r#""clickhouse":"ok""#), "{body}");
}

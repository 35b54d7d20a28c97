//! `/healthz`, `/readyz` and `/metrics` against the real broker and ClickHouse.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use runtime::health::{self, Health};
use runtime::kafka::MetadataClient;
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
        clickhouse: runtime::clickhouse::client(&config.clickhouse),
        metrics: runtime::telemetry::init_metrics(),
        stages: runtime::stage::Stages::default(),
    }
}

/// `/readyz` until its body satisfies `wanted`, for up to 30 s: each probe has 2 s, and a
/// starved test machine may need another try, as an orchestrator's would. Answers the last.
async fn readyz_until(health: &Health, wanted: impl Fn(&str) -> bool) -> (StatusCode, String) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = get(health.clone(), "/readyz").await;
        if wanted(&body) || std::time::Instant::now() > deadline {
            return (status, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn ready_when_broker_and_clickhouse_answer() {
    let db = TestDb::migrated().await;
    let health = health_for(&db.vars);
    assert_eq!(get(health.clone(), "/healthz").await.0, StatusCode::OK);
    let (status, body) = readyz_until(&health, |body| body.contains(r#""kafka":"ok""#)).await;
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
    let (status, body) = readyz_until(&health_for(&vars), |body| body.contains(r#""kafka":"ok""#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains(r#""kafka":"ok""#), "{body}");
    assert!(body.contains(r#""clickhouse":"error"#), "{body}");

    let mut vars = db.vars.clone();
    vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), "127.0.0.1:1".into());
    let (status, body) = readyz_until(&health_for(&vars), |body| body.contains(r#""clickhouse":"ok""#)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains(r#""kafka":"error"#) && body.contains(r#""clickhouse":"ok""#), "{body}");
}

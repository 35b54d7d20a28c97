//! Keys, secrets, rate limits, plan limits and usage at the edge.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use runtime::kafka::topics;
use serde::Deserialize;

use crate::support::edge::{count_records, TestEdge};

const SIGNAL: &str = r#"{"email":"test@example.com","event":"test"}"#;

fn with_secret(uri: &str, secret: Option<&str>) -> Request<Body> {
    let mut request = Request::post(uri).header("content-type", "application/json");
    if let Some(secret) = secret {
        request = request.header("x-api-secret", secret);
    }
    request.body(Body::from(SIGNAL)).expect("request")
}

#[tokio::test]
async fn keys_and_secrets_are_checked() {
    let edge = TestEdge::start().await;
    let with = edge.key("acme", &["--secret", "s3cret"]).await;
    let expired = edge.key("acme", &["--expires-at", "2020-01-01T00:00:00Z"]).await;
    let collect_only = edge.key("acme", &["--endpoints", "collect"]).await;
    let plain = edge.key("acme", &[]).await;
    let uri = |key: &str| format!("/api/signal-staging/webhook/{key}");

    let cases = [
        (with_secret(&uri(&with), None), StatusCode::UNAUTHORIZED, Some("missing_api_secret")),
        (with_secret(&uri(&with), Some("wrong")), StatusCode::UNAUTHORIZED, Some("invalid_api_secret")),
        (with_secret(&uri(&with), Some("s3cret")), StatusCode::ACCEPTED, None),
        (with_secret(&uri(&expired), None), StatusCode::UNAUTHORIZED, Some("expired_api_key")),
        (with_secret(&uri(&collect_only), None), StatusCode::UNAUTHORIZED, Some("endpoint_not_allowed")),
        (with_secret(&uri("sgk_0000"), None), StatusCode::UNAUTHORIZED, Some("invalid_api_key")),
        (with_secret(&uri(&plain), None), StatusCode::ACCEPTED, None),
    ];
    for (request, status, code) in cases {
        let response = edge.call(request).await;
        assert_eq!(response.status, status, "{}", response.text);
        assert_eq!(response.json["error"].as_str(), code, "{}", response.text);
    }

    // Revoked: refused as soon as the edge has refreshed (every SIGSTAGE_CONTROL_REFRESH_MS).
    edge.cli(&["keys", "revoke", &plain]).await;
    let response = edge.call(with_secret(&uri(&plain), None)).await;
    assert_eq!(
        (response.status, response.json["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("inactive_api_key"))
    );
    assert!(!response.text.contains(&plain), "the key is not echoed back");
    assert_eq!(count_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW)), 2, "only the two 202s were written");
}

#[tokio::test]
async fn the_rate_limit_is_enforced_and_recovers() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let other = edge.key("other", &[]).await;
    edge.cli(&["limits", "set", "--org", "acme", "--rate-per-second", "1", "--burst", "3"]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    // Six at once, so all are admitted (or not) within the same second however slow the broker.
    let responses = futures::future::join_all((0..6).map(|_| edge.post_json(&uri, SIGNAL))).await;
    let statuses: Vec<StatusCode> = responses.iter().map(|response| response.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::ACCEPTED).count(), 3, "the burst: {statuses:?}");
    let limited =
        responses.into_iter().find(|response| response.status == StatusCode::TOO_MANY_REQUESTS).expect("a 429");
    assert_eq!(limited.json["error"], "rate_limited");
    let retry_after: u64 =
        limited.headers[header::RETRY_AFTER].to_str().expect("ascii").parse().expect("Retry-After is seconds");
    assert_eq!(retry_after, 1, "one request per second");

    // Other orgs are not affected.
    assert_eq!(
        edge.post_json(&format!("/api/signal-staging/webhook/{other}"), SIGNAL).await.status,
        StatusCode::ACCEPTED
    );
    // Waiting what Retry-After says is the documented way to recover.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after)).await;
    assert_eq!(edge.post_json(&uri, SIGNAL).await.status, StatusCode::ACCEPTED);
}

#[derive(Debug, Deserialize, clickhouse::Row)]
struct UsageRow {
    outcome: String,
    signals: u64,
}

async fn usage(edge: &TestEdge, org: &str) -> Vec<(String, u64)> {
    edge.refresh().await; // flushes usage
    let rows: Vec<UsageRow> = edge
        .db
        .client
        .query("SELECT outcome, sum(signals) AS signals FROM usage_daily WHERE org_id = ? GROUP BY outcome ORDER BY outcome")
        .bind(org)
        .fetch_all()
        .await
        .expect("usage");
    rows.into_iter().map(|row| (row.outcome, row.signals)).collect()
}

#[tokio::test]
async fn the_plan_limit_refuses_or_counts_overage() {
    let edge = TestEdge::start().await;
    let strict = edge.key("strict", &[]).await;
    let generous = edge.key("generous", &[]).await;
    edge.cli(&["limits", "set", "--org", "strict", "--monthly-signals", "3"]).await;
    edge.cli(&["limits", "set", "--org", "generous", "--monthly-signals", "3", "--overages", "true"]).await;

    // Two singles, then a batch of three: one fits, two are refused individually.
    let single = format!("/api/signal-staging/webhook/{strict}");
    assert_eq!(edge.post_json(&single, SIGNAL).await.status, StatusCode::ACCEPTED);
    assert_eq!(edge.post_json(&single, SIGNAL).await.status, StatusCode::ACCEPTED);
    let batch = edge
        .post_json(&format!("/api/signal-staging/webhook/{strict}/batch"), &format!("[{SIGNAL},{SIGNAL},{SIGNAL}]"))
        .await;
    assert_eq!(batch.status, StatusCode::ACCEPTED, "{}", batch.text);
    assert_eq!((batch.json["accepted"].as_u64(), batch.json["rejected"].as_u64()), (Some(1), Some(2)));
    assert_eq!(batch.json["results"][2]["error"], "plan_limit_reached");
    let refused = edge.post_json(&single, SIGNAL).await;
    assert_eq!(
        (refused.status, refused.json["error"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("plan_limit_reached"))
    );
    assert!(refused.headers.contains_key(header::RETRY_AFTER));

    // The limit holds across a refresh, when the count comes back from ClickHouse.
    edge.refresh().await;
    assert_eq!(edge.post_json(&single, SIGNAL).await.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(usage(&edge, "strict").await, [("accepted".into(), 3), ("plan_limit_reached".into(), 4)]);

    let over = format!("/api/signal-staging/webhook/{generous}");
    for _ in 0..5 {
        assert_eq!(edge.post_json(&over, SIGNAL).await.status, StatusCode::ACCEPTED);
    }
    assert_eq!(usage(&edge, "generous").await, [("accepted".into(), 3), ("overage".into(), 2)]);
}

#[tokio::test]
async fn a_reload_that_fails_after_usage_was_written_counts_each_signal_once() {
    let edge = TestEdge::start().await;
    let key = edge.key("acct", &[]).await;
    edge.cli(&["limits", "set", "--org", "acct", "--monthly-signals", "5"]).await;
    let single = format!("/api/signal-staging/webhook/{key}");
    for _ in 0..3 {
        assert_eq!(edge.post_json(&single, SIGNAL).await.status, StatusCode::ACCEPTED);
    }
    // The failure, injected: usage is written, then reading the limits back fails.
    let client = &edge.db.client;
    client.query("RENAME TABLE plan_limits TO plan_limits_away").execute().await.expect("rename");
    assert!(edge.edge.gate.refresh().await.is_err(), "the reload failed");
    client.query("RENAME TABLE plan_limits_away TO plan_limits").execute().await.expect("rename back");
    edge.refresh().await;
    // 3 of 5 used: two more fit, the third is refused.
    let answers: Vec<StatusCode> = futures::future::join_all((0..3).map(|_| edge.post_json(&single, SIGNAL)))
        .await
        .into_iter()
        .map(|answer| answer.status)
        .collect();
    assert_eq!(answers.iter().filter(|status| **status == StatusCode::ACCEPTED).count(), 2, "{answers:?}");
    assert_eq!(usage(&edge, "acct").await[0], ("accepted".into(), 5), "each accepted signal in usage once");
}

//! Tracardi's collect API and activity webhooks.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use runtime::kafka::topics;
use serde_json::json;

use crate::support::edge::{key_of, payload_json, read_records, TestEdge};

#[tokio::test]
async fn collect_takes_properties_from_the_query_or_the_body() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &["--endpoints", "collect"]).await;

    let get = edge
        .call(
            Request::get(format!("/collect/page-view/{key}/sess-42?url=%2Fpricing&email=jo%40acme.io"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(get.status, StatusCode::ACCEPTED, "{}", get.text);
    assert_eq!((get.json["source"].as_str(), get.json["cold_storage"].as_bool()), (Some("tracardi"), Some(false)));

    let post = edge.post_json(&format!("/collect/purchase/{key}"), r#"{"value": 42, "items": ["a"]}"#).await;
    assert_eq!(post.status, StatusCode::ACCEPTED, "{}", post.text);
    assert_eq!(post.json["cold_storage"], true);

    let bad = edge.post_json(&format!("/collect/purchase/{key}"), "[1]").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let untyped =
        edge.call(Request::post(format!("/collect/purchase/{key}")).body(Body::from("{}")).expect("request")).await;
    assert_eq!(untyped.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let wrong_key = edge.call(Request::get("/collect/page-view/sgk_nope").body(Body::empty()).expect("request")).await;
    assert_eq!(wrong_key.status, StatusCode::UNAUTHORIZED);

    let mut records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW), 2).await;
    records.sort_by_key(|record| payload_json(record)["event_type"].as_str().map(str::to_owned));
    assert_eq!(
        payload_json(&records[0]),
        json!({"type": "collect", "event_type": "page-view", "session_id": "sess-42",
               "properties": {"url": "/pricing", "email": "jo@acme.io"}})
    );
    assert_eq!(key_of(&records[0]), "acme:sess-42", "the session ties the event to the visitor");
    assert_eq!(
        payload_json(&records[1]),
        json!({"type": "collect", "event_type": "purchase", "properties": {"value": 42, "items": ["a"]}})
    );
}

#[tokio::test]
async fn activities_are_validated_field_by_field() {
    let edge = TestEdge::start().await;
    let token = edge.key("acme", &["--endpoints", "ingress"]).await;
    let uri = format!("/webhooks/ingress/{token}");
    let seed = r#"{
        "title": "Customer Inquiry Handled",
        "description": "Handled customer inquiry from Jane Doe regarding billing.",
        "startTime": "2024-08-03T11:30:00Z",
        "trigger": "Manual Log",
        "event": "Call Center Log",
        "externalId": "call-log-9876"
    }"#;
    let accepted = edge.post_json(&uri, seed).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text);
    assert_eq!(accepted.json["source"], "activity");

    let bad = edge.post_json(&uri, r#"{"startTime": "last tuesday", "metadata": "x", "memberEmail": 5}"#).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json["error"], "invalid_activity");
    let fields: Vec<&str> =
        bad.json["fields"].as_array().expect("fields").iter().filter_map(|f| f["field"].as_str()).collect();
    assert_eq!(fields, ["title", "startTime", "memberEmail", "metadata"]);

    let not_allowed = edge.post_json(&format!("/api/signal-staging/webhook/{token}"), seed).await;
    assert_eq!(not_allowed.status, StatusCode::UNAUTHORIZED, "an ingress-only key");

    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW), 1).await;
    assert_eq!(payload_json(&records[0])["externalId"], "call-log-9876");
}

//! The signal-staging endpoints end to end: HTTP in, records in Kafka.

use std::io::Write;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use rdkafka::Message;
use runtime::kafka::topics;
use schemas::record::headers;
use serde_json::json;

use crate::support::edge::{header, key_of, payload_json, read_records, TestEdge};

#[tokio::test]
async fn the_seed_curl_example_gets_the_exact_202_body() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let body = r#"{"email": "test@example.com", "event": "test"}"#;
    let response = edge.post_json(&format!("/api/signal-staging/webhook/{key}"), body).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    let id = response.id();
    assert_eq!(
        response.text,
        format!(
            r#"{{"id":{id},"message":"Signal received and queued for processing","source":"generic","cold_storage":false}}"#
        ),
        "the seed's body, fields in the seed's order"
    );

    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW), 1).await;
    let record = &records[0];
    assert_eq!(record.payload(), Some(body.as_bytes()), "the raw bytes, untouched");
    assert_eq!(key_of(record), "acme:test@example.com");
    assert_eq!(header(record, headers::SIGNAL_ID), Some(id.to_string().as_str()));
    assert_eq!(header(record, headers::ORG), Some("acme"));
    assert_eq!(header(record, headers::ENDPOINT), Some("webhook"));
    assert_eq!(header(record, headers::SOURCE), Some("generic"));
    assert!(header(record, headers::KEY_ID).is_some_and(|id| id.starts_with("key_")));
    assert!(header(record, headers::RECEIVED_MS).is_some_and(|ms| ms.parse::<u64>().is_ok()));
}

#[tokio::test]
async fn segment_calls_are_detected_and_routed_by_lead() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let cases = [
        (
            json!({"type": "identify", "anonymousId": "anon-1", "messageId": "m1", "userId": "u1",
                   "traits": {"email": "Jane@Example.com", "name": "Jane", "company": "Acme"}}),
            false,
        ),
        (
            json!({"type": "track", "event": "Form Submitted", "anonymousId": "anon-1", "messageId": "m2",
                   "properties": {"form_name": "demo"}, "context": {"page": {"url": "https://acme.io/pricing"}}}),
            true,
        ),
        (
            json!({"type": "page", "anonymousId": "anon-1", "messageId": "m3", "name": "Pricing",
                   "properties": {"url": "https://acme.io/pricing", "name": "Pricing"}}),
            true,
        ),
        (
            json!({"type": "track", "event": "Signed Up", "userId": "u1", "messageId": "m4",
                   "context": {"traits": {"email": "jane@example.com"}}}),
            false,
        ),
    ];
    for (payload, cold) in &cases {
        let response = edge.post_json(&uri, &payload.to_string()).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
        assert_eq!(response.json["source"], "segment", "{payload}");
        assert_eq!(response.json["cold_storage"], *cold, "{payload}");
    }
    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW), cases.len()).await;
    let mut keys: Vec<&str> = records.iter().map(key_of).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["acme:anon-1", "acme:anon-1", "acme:anon-1", "acme:u1"], "one visitor, one key");
}

#[tokio::test]
async fn the_source_comes_from_the_path_or_x_source() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let segment_track = r#"{"type":"track","event":"x","anonymousId":"a","messageId":"m"}"#;
    let response = edge.post_json(&format!("/api/signal-staging/webhook/forms/{key}"), segment_track).await;
    assert_eq!((response.status, response.json["source"].as_str()), (StatusCode::ACCEPTED, Some("forms")));

    let request = Request::post(format!("/api/signal-staging/webhook/forms/{key}"))
        .header("content-type", "application/json")
        .header("x-source", "Marketing")
        .body(Body::from(segment_track))
        .expect("request");
    let response = edge.call(request).await;
    assert_eq!(response.json["source"], "marketing", "X-Source wins over the path, lower-cased");

    let request = Request::post(format!("/api/signal-staging/webhook/{key}"))
        .header("content-type", "application/json")
        .header("x-source", "bad source!")
        .body(Body::from(segment_track))
        .expect("request");
    let response = edge.call(request).await;
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.json["error"], "invalid_payload");

    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW), 2).await;
    assert!(records.iter().all(|r| header(r, headers::SOURCE_HINTED) == Some("1")));
}

#[tokio::test]
async fn batches_answer_per_signal() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}/batch");
    let body = r#"[{"email":"a@x.io","event":"one"}, [1], {"event":"anonymous"}, "text"]"#;
    let response = edge.post_json(&uri, body).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    assert_eq!((response.json["accepted"].as_u64(), response.json["rejected"].as_u64()), (Some(2), Some(2)));
    let results = response.json["results"].as_array().expect("results");
    assert_eq!(results[0]["cold_storage"], false);
    assert_eq!(results[1]["error"], "invalid_payload");
    assert_eq!(results[2]["cold_storage"], true);
    assert_eq!(results[3]["index"], 3);

    let wrapped = edge.post_json(&uri, r#"{"signals": [{"email":"b@x.io"}]}"#).await;
    assert_eq!(wrapped.status, StatusCode::ACCEPTED, "{}", wrapped.text);
    assert_eq!(wrapped.json["accepted"], 1);

    for (body, code) in [("[]", "invalid_payload"), ("[{", "invalid_json"), ("{}", "invalid_payload")] {
        let response = edge.post_json(&uri, body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{body}: {}", response.text);
        assert_eq!(response.json["error"], code, "{body}");
    }
    let none_valid = edge.post_json(&uri, "[1, 2]").await;
    assert_eq!(none_valid.status, StatusCode::BAD_REQUEST, "nothing accepted: {}", none_valid.text);
    assert_eq!((none_valid.json["accepted"].as_u64(), none_valid.json["rejected"].as_u64()), (Some(0), Some(2)));
    assert_eq!(none_valid.json["results"][1]["error"], "invalid_payload");
    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW), 3).await;
    let payloads: Vec<_> = records.iter().map(payload_json).collect();
    assert!(payloads.contains(&json!({"event": "anonymous"})), "each element's own bytes: {payloads:?}");
}

#[tokio::test]
async fn bulk_goes_to_the_historical_lane_as_json_ndjson_or_gzip() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/bulk/{key}");
    let seed = r#"{"signals": [
        {"email": "lead1@example.com", "event": "page_view", "properties": {"page": "/pricing"}},
        {"email": "lead2@example.com", "event": "form_submission", "properties": {"form": "contact"}}
    ]}"#;
    let response = edge.post_json(&uri, seed).await;
    assert_eq!(
        (response.status, response.json["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(2)),
        "{}",
        response.text
    );

    let ndjson = "{\"email\":\"lead3@example.com\"}\n\n{\"event\":\"anon\"}\nnot json\n";
    let request =
        Request::post(&uri).header("content-type", "application/x-ndjson").body(Body::from(ndjson)).expect("request");
    let response = edge.call(request).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
    assert_eq!((response.json["accepted"].as_u64(), response.json["rejected"].as_u64()), (Some(2), Some(1)));
    assert_eq!(response.json["results"][2]["error"], "invalid_json");

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(br#"[{"email":"lead4@example.com"}]"#).expect("gzip");
    let request = Request::post(&uri)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().expect("gzip")))
        .expect("request");
    let response = edge.call(request).await;
    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);

    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_HISTORICAL), 5).await;
    assert!(records.iter().all(|r| header(r, headers::ENDPOINT) == Some("bulk")));
    assert_eq!(
        crate::support::edge::count_records(&edge.db.config, &edge.topic(topics::SIGNALS_RAW)),
        0,
        "live lane untouched"
    );
}

#[tokio::test]
async fn malformed_oversized_and_hostile_bodies_are_refused_clearly() {
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_HTTP_MAX_BODY_BYTES".into(), "4096".into());
    })
    .await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let deep = "[".repeat(100_000) + &"]".repeat(100_000);
    let deep_object = format!("{{\"a\":{}1{}}}", "{\"b\":".repeat(100_000 / 2), "}".repeat(100_000 / 2));
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(5000));
    let cases: Vec<(String, &str, StatusCode, &str)> = vec![
        ("{not json".into(), "application/json", StatusCode::BAD_REQUEST, "invalid_json"),
        ("[1,2]".into(), "application/json", StatusCode::BAD_REQUEST, "invalid_payload"),
        (deep.clone(), "application/json", StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        (big, "application/json", StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ("{}".into(), "text/plain", StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
    ];
    for (body, content_type, status, code) in cases {
        let request = Request::post(&uri).header("content-type", content_type).body(Body::from(body)).expect("request");
        let response = edge.call(request).await;
        assert_eq!((response.status, response.json["error"].as_str()), (status, Some(code)), "{}", response.text);
        assert!(response.json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Deep nesting within the size limit: a 400, not a crash.
    let big_edge = TestEdge::start().await;
    let key = big_edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    for body in [deep, deep_object] {
        let response = big_edge.post_json(&uri, &body).await;
        assert_eq!(response.status, StatusCode::BAD_REQUEST, "{}", response.text);
        assert!(response.json["message"].as_str().is_some_and(|m| m.contains("nested deeper")), "{}", response.text);
    }

    // A gzip bomb: tiny compressed, too large once inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 64 << 20]).expect("gzip");
    let request = Request::post(&uri)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from(gz.finish().expect("gzip")))
        .expect("request");
    assert_eq!(big_edge.call(request).await.status, StatusCode::PAYLOAD_TOO_LARGE);

    let request = Request::post(&uri)
        .header("content-type", "application/json")
        .header("content-encoding", "br")
        .body(Body::from("{}"))
        .expect("request");
    assert_eq!(big_edge.call(request).await.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let request = Request::post(&uri)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(Body::from("nope"))
        .expect("request");
    assert_eq!(big_edge.call(request).await.status, StatusCode::BAD_REQUEST);

    let unknown = big_edge.post_json("/api/signal-staging/nothing-here", "{}").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

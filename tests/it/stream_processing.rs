//! The stream processor against the real broker: signals in through the edge (or written raw),
//! processed records and dead letters out, duplicates absorbed.

use std::time::Duration;

use futures::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Message};
use runtime::kafka::topics;
use schemas::record::headers;
use serde_json::Value;

use crate::support::edge::{count_records, header, payload_json, read_records, TestEdge};
use crate::support::pipeline::{caught_up, start_processor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_become_one_signal() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let uri = format!("/api/signal-staging/webhook/{key}");
    let retried = r#"{"type":"track","event":"Demo Requested","anonymousId":"a1","messageId":"m1"}"#;
    let hammered = r#"{"email":"lead@example.com","event":"Form Submitted"}"#;
    assert_eq!(edge.post_json(&uri, retried).await.status, 202);
    assert_eq!(edge.post_json(&uri, retried).await.status, 202);
    let answers = join_all((0..1000).map(|_| edge.post_json(&uri, hammered))).await;
    assert!(answers.iter().all(|answer| answer.status == 202));
    assert_eq!(edge.post_json(&uri, r#"{"event":"distinct"}"#).await.status, 202);

    caught_up(&edge.db.config).await;
    let processed_topic = edge.topic(topics::SIGNALS_PROCESSED);
    assert_eq!(count_records(&edge.db.config, &processed_topic), 3, "1003 raw signals, 3 distinct");
    processor.stop().await;

    // A new processor (empty cache) reloads the window from signals.processed: a redelivery
    // after the restart is still a duplicate, a new signal is not.
    let restarted = start_processor(&edge.db.config);
    assert_eq!(edge.post_json(&uri, retried).await.status, 202);
    assert_eq!(edge.post_json(&uri, r#"{"event":"after restart"}"#).await.status, 202);
    caught_up(&edge.db.config).await;
    assert_eq!(count_records(&edge.db.config, &processed_topic), 4);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signals_are_described_for_the_sinks() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let uri = format!("/api/signal-staging/webhook/{key}");
    let bodies = [
        r#"{"type":"track","event":"Form Submitted","anonymousId":"a1","messageId":"m1","properties":{"form_name":"demo"},"timestamp":"2026-01-01T00:00:00.000Z","sentAt":"2026-01-01T00:00:10.000Z"}"#,
        r#"{"type":"page","anonymousId":"a1","messageId":"m2","properties":{"url":"https://acme.io/pricing","name":"Pricing"}}"#,
        r#"{"type":"identify","anonymousId":"a1","messageId":"m3","traits":{"email":" Jane@Acme.IO ","company":"Acme"}}"#,
    ];
    let mut received = Vec::new();
    for body in bodies {
        let answer = edge.post_json(&uri, body).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        received.push(answer.id());
    }
    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_PROCESSED), 3).await;
    let mut described: Vec<Value> = records.iter().map(payload_json).collect();
    described.sort_by_key(|d| d["signal_id"].as_u64());
    let kinds: Vec<(&str, &str)> =
        described.iter().map(|d| (d["kind"].as_str().expect("kind"), d["event"].as_str().expect("event"))).collect();
    assert_eq!(kinds, [("track", "Form Submitted"), ("page", "page_view"), ("identify", "identify")]);
    assert_eq!(described[2]["email"], "jane@acme.io");
    assert_eq!((described[0]["hot"].as_bool(), described[2]["hot"].as_bool()), (Some(false), Some(true)));
    assert_eq!(described[1]["payload"]["properties"]["url"], "https://acme.io/pricing", "the raw signal travels along");
    // Sent 10 s after it happened by the sender's clock: the event time is 10 s before receipt.
    let track = &described[0];
    assert_eq!(track["received_ms"].as_u64().expect("received") - track["event_ms"].as_u64().expect("event"), 10_000);
    assert!(records.iter().all(|r| crate::support::edge::key_of(r) == "acme:a1"), "one visitor, one partition");
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_records_go_to_the_dlq_and_the_partition_moves_on() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let raw = edge.topic(topics::SIGNALS_RAW);
    // sigstage's producers refuse a 10 MB record before it reaches the broker.
    let huge = format!("{{\"event\":\"huge\",\"blob\":\"{}\"}}", "x".repeat(10 << 20));
    let ours = runtime::kafka::producer(&edge.db.config.kafka).expect("producer");
    let refused = ours.send(FutureRecord::to(&raw).key("acme:poison").payload(&huge), Duration::from_secs(5)).await;
    assert!(matches!(refused, Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), _))));
    // Another writer's 3 MiB record is above what the processor takes, and within what the topic
    // accepts (4 MiB).
    let large = format!("{{\"event\":\"large\",\"blob\":\"{}\"}}", "x".repeat(3 << 20));
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &edge.db.config.kafka.brokers)
        .set("message.max.bytes", "16000000")
        .create()
        .expect("producer");
    let edge_headers = |id: &str| {
        OwnedHeaders::new()
            .insert(Header { key: headers::ORG, value: Some("acme") })
            .insert(Header { key: headers::SIGNAL_ID, value: Some(id) })
    };
    let poison: [(&[u8], Option<OwnedHeaders>); 4] = [
        (b"{\"a\":\"\xff\"}", Some(edge_headers("1"))),
        (b"{\"truncated\":", Some(edge_headers("2"))),
        (b"{}", None),
        (large.as_bytes(), Some(edge_headers("3"))),
    ];
    for (payload, headers) in poison {
        let mut record = FutureRecord::to(&raw).key("acme:poison").payload(payload);
        if let Some(headers) = headers {
            record = record.headers(headers);
        }
        producer.send(record, Duration::from_secs(30)).await.expect("produced");
    }
    // A good signal for the same visitor, after the poison on the same partition.
    let good = r#"{"anonymousId":"poison","event":"after"}"#;
    assert_eq!(edge.post_json(&format!("/api/signal-staging/webhook/{key}"), good).await.status, 202);

    let dead = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_DLQ), 4).await;
    let mut reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|r| (header(r, headers::DLQ_REASON).expect("reason"), header(r, headers::DLQ_STAGE).expect("stage")))
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            ("invalid_json", "parse"),
            ("invalid_utf8", "parse"),
            ("missing_org_header", "envelope"),
            ("too_large", "envelope")
        ]
    );
    let too_large = dead.iter().find(|r| header(r, headers::DLQ_REASON) == Some("too_large")).expect("too large");
    assert_eq!(header(too_large, headers::DLQ_ORIGINAL_BYTES), Some(large.len().to_string().as_str()));
    assert_eq!(too_large.payload().map(<[u8]>::len), Some(runtime::kafka::DEAD_LETTER_MAX_BYTES), "cut to fit");
    let processed = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_PROCESSED), 1).await;
    assert_eq!(payload_json(&processed[0])["event"], "after");

    // The admin API's overview counts the org's dead letters from the topic, by reason.
    let dead_letters = |org: &'static str| {
        let settings = admin::Settings {
            kafka: Some(edge.db.config.kafka.clone()),
            tokens: vec![runtime::config::AdminToken {
                id: "admin".into(),
                read_only: false,
                org: None,
                secret: runtime::config::Secret::new("admin-token-of-the-dlq-test"),
            }],
            public_url: String::new(),
            tails: admin::TailLimits::default(),
            people: admin::PeopleReach::default(),
        };
        let router = admin::router(edge.db.client.clone(), settings);
        async move {
            use tower::ServiceExt;
            let request = axum::http::Request::get(format!("/api/admin/orgs/{org}/overview"))
                .header("authorization", "Bearer admin-token-of-the-dlq-test")
                .body(axum::body::Body::empty())
                .expect("request");
            let response = router.oneshot(request).await.expect("answer");
            assert_eq!(response.status(), 200);
            let body = http_body_util::BodyExt::collect(response.into_body()).await.expect("body").to_bytes();
            serde_json::from_slice::<Value>(&body).expect("JSON")["dead_letters"].clone()
        }
    };
    assert_eq!(
        dead_letters("acme").await,
        serde_json::json!({"total": 4, "complete": true,
            "by_reason": {"invalid_json": 1, "invalid_utf8": 1, "missing_org_header": 1, "too_large": 1}})
    );
    assert_eq!(dead_letters("globex").await["total"], 0);
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identified_visitors_stay_identified_across_a_restart() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let track =
        |n: u32| format!(r#"{{"type":"track","event":"Viewed {n}","anonymousId":"visitor-9","messageId":"t{n}"}}"#);
    let identify = |n: u32| {
        format!(
            r#"{{"type":"identify","anonymousId":"visitor-9","messageId":"i{n}","traits":{{"email":"Jo@Acme.io","name":"Jo","company":"Acme","title":"CTO"}}}}"#
        )
    };
    let processor = start_processor(&edge.db.config);
    for body in [track(1), track(2), identify(1), track(3), identify(2)] {
        assert_eq!(edge.post_json(&uri, &body).await.status, 202);
    }
    caught_up(&edge.db.config).await;
    processor.stop().await;

    let restarted = start_processor(&edge.db.config);
    assert_eq!(edge.post_json(&uri, &track(4)).await.status, 202);
    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_PROCESSED), 6).await;
    restarted.stop().await;

    let mut described: Vec<Value> = records.iter().map(payload_json).collect();
    described.sort_by_key(|d| d["signal_id"].as_u64());
    let attribution: Vec<(&str, Option<&str>, Option<&str>)> = described
        .iter()
        .map(|d| (d["event"].as_str().expect("event"), d["email"].as_str(), d["attributed_by"].as_str()))
        .collect();
    assert_eq!(
        attribution,
        [
            ("Viewed 1", None, None),
            ("Viewed 2", None, None),
            ("identify", Some("jo@acme.io"), Some("signal")),
            ("Viewed 3", Some("jo@acme.io"), Some("identity")),
            ("identify", Some("jo@acme.io"), Some("signal")),
            ("Viewed 4", Some("jo@acme.io"), Some("identity")),
        ],
        "tracks after the identify, and after the restart, are attributed to the lead"
    );

    // One lead and one link: the second identify and the restart announce nothing new.
    let identities = read_records(&edge.db.config, &edge.topic(topics::IDENTITIES), 2).await;
    let kinds: Vec<&str> = identities.iter().map(|r| header(r, headers::IDENTITY_KIND).expect("kind")).collect();
    assert_eq!(kinds, ["lead", "link"]);
    assert_eq!(count_records(&edge.db.config, &edge.topic(topics::IDENTITIES)), 2);
    let link = payload_json(&identities[1]);
    assert_eq!(
        (link["anonymous_id"].as_str(), link["email"].as_str(), link["company"].as_str(), link["title"].as_str()),
        (Some("visitor-9"), Some("jo@acme.io"), Some("Acme"), Some("CTO"))
    );
    let outbox = edge.topic(topics::WEBHOOKS_OUTBOX);
    let events: Vec<Value> = read_records(&edge.db.config, &outbox, 2).await.iter().map(payload_json).collect();
    assert_eq!(count_records(&edge.db.config, &outbox), 2, "no rules: no signal.created");
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["lead.created", "lead.identified"]);
    assert_eq!(events[0]["data"]["email"], "jo@acme.io");
    assert_eq!(events[1]["data"]["anonymous_id"], "visitor-9");
    assert_eq!(events[0]["id"], format!("{}.lead.created", described[2]["signal_id"]), "ids derive from the signal");
}

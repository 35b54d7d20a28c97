//! The broker goes away mid-test: the edge answers 503 with Retry-After (at once when its
//! bounded queue is full), recovers when the broker is back, and every signal that got a 202 is
//! in the topic exactly once. Uses a private broker so stopping it does not disturb other tests.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use futures::future::join_all;
use runtime::kafka::{topics, MetadataClient};
use schemas::record::headers;

use crate::support::brokers::PrivateKafka;
use crate::support::edge::{count_records, header, read_records, TestEdge};

/// Waits until `brokers` answer a metadata request.
async fn await_brokers(brokers: &str) {
    let mut vars = crate::support::test_vars();
    vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), brokers.into());
    let probe = MetadataClient::new(&crate::support::config_of(&vars).kafka).expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while probe.ping(Duration::from_millis(500)).await.is_err() {
        assert!(Instant::now() < deadline, "private broker did not come up");
    }
}

#[tokio::test]
async fn broker_outage_gives_503_then_recovers_without_loss_or_duplicates() {
    let broker = PrivateKafka::single();
    broker.start();
    await_brokers(&broker.brokers()).await;
    let brokers = broker.brokers();
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), brokers);
        vars.insert("SIGSTAGE_KAFKA_MESSAGE_TIMEOUT_MS".into(), "1500".into());
        vars.insert("SIGSTAGE_KAFKA_QUEUE_MAX_MESSAGES".into(), "5".into());
    })
    .await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let signal = |n: usize| format!(r#"{{"email":"lead{n}@example.com","event":"outage-test"}}"#);
    let mut accepted: Vec<u64> = Vec::new();
    // Each signal `from..to`, sent again on 503 until it is accepted, as a client would; fails
    // with `what` after 60 s.
    let post_until_accepted = |from: usize, to: usize, what: &'static str| {
        let (edge, uri) = (&edge, &uri);
        async move {
            let (mut ids, deadline) = (Vec::new(), Instant::now() + Duration::from_secs(60));
            for n in from..to {
                loop {
                    let response = edge.post_json(uri, &signal(n)).await;
                    if response.status == StatusCode::ACCEPTED {
                        ids.push(response.id());
                        break;
                    }
                    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text);
                    assert!(Instant::now() < deadline, "{what}");
                }
            }
            ids
        }
    };

    // The broker and its topics are seconds old: a first send may outlast the 1.5 s timeout.
    accepted.extend(post_until_accepted(0, 10, "the edge never accepted on a fresh broker").await);

    broker.stop();
    // Concurrent sends while the broker is down: the queue holds 5, so some are refused at once
    // (queue full) and the rest when their delivery times out. None is accepted.
    let started = Instant::now();
    let down = join_all((10..30).map(|n| {
        let edge = &edge;
        let uri = &uri;
        async move { edge.post_json(uri, &signal(n)).await }
    }))
    .await;
    for response in &down {
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text);
        assert_eq!(response.json["error"], "broker_unavailable");
        assert!(response.headers.contains_key(header::RETRY_AFTER));
    }
    assert!(started.elapsed() < Duration::from_secs(10), "503s come within the message timeout");

    broker.start();
    await_brokers(&broker.brokers()).await;
    // The producer reconnects by itself.
    accepted.extend(post_until_accepted(30, 40, "the edge did not recover after the broker came back").await);

    let topic = edge.topic(topics::SIGNALS_RAW);
    let total = count_records(&edge.db.config, &topic) as usize;
    let records = read_records(&edge.db.config, &topic, total).await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for record in &records {
        let id = header(record, headers::SIGNAL_ID).and_then(|id| id.parse().ok()).expect("signal id header");
        *seen.entry(id).or_default() += 1;
    }
    for id in &accepted {
        assert_eq!(seen.get(id), Some(&1), "signal {id} got a 202 and must be in the topic exactly once");
    }
    assert_eq!(accepted.len(), 20);
}

//! One webhook endpoint that hangs beside a healthy one, with 20 000 events: the healthy one is
//! served in full while the hanging one still holds its first requests, the sink stops within
//! seconds with those requests in flight, and the hanging endpoint's deliveries stay queued.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use control::{deliveries, webhooks};
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use tokio::sync::{watch, Notify};

use crate::support::edge::TestEdge;

const EVENTS: u64 = 20_000;

#[derive(Clone, Default)]
struct Endpoints {
    /// Calls of the healthy endpoint, per webhook-id.
    healthy: Arc<Mutex<HashMap<String, u32>>>,
    hanging_started: Arc<AtomicUsize>,
    hanging_answered: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

async fn receive(State(endpoints): State<Endpoints>, Path(path): Path<String>, headers: HeaderMap) -> StatusCode {
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if path == "hanging" {
        endpoints.hanging_started.fetch_add(1, Ordering::SeqCst);
        // Hangs until the test is done with the healthy endpoint (at most two minutes).
        let _ = tokio::time::timeout(Duration::from_secs(120), endpoints.release.notified()).await;
        endpoints.hanging_answered.fetch_add(1, Ordering::SeqCst);
    } else {
        *endpoints.healthy.lock().expect("lock").entry(id).or_default() += 1;
    }
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_endpoint_holds_only_its_own_backlog() {
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
        vars.insert("SIGSTAGE_WEBHOOKS_TIMEOUT_MS".into(), "150000".into());
    })
    .await;
    let endpoints = Endpoints::default();
    let app = Router::new().route("/hook/{path}", post(receive)).with_state(endpoints.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let types = vec!["lead.created".to_owned()];
    let client = &edge.db.client;
    let hanging =
        webhooks::create(client, "acme", &format!("{base}/hanging"), types.clone()).await.expect("subscription");
    webhooks::create(client, "acme", &format!("{base}/healthy"), types).await.expect("subscription");

    let config = &edge.db.config;
    let outbox = config.kafka.topic(runtime::kafka::topics::WEBHOOKS_OUTBOX);
    let producer = runtime::kafka::producer(&config.kafka).expect("producer");
    let now = runtime::time::now_ms();
    let events: Vec<Vec<u8>> =
        (1..=EVENTS).map(|id| schemas::events::encode("lead.created", id, "acme", now, b"{}")).collect();
    for chunk in events.chunks(1000) {
        let sends = chunk.iter().map(|event| {
            let headers = OwnedHeaders::new()
                .insert(Header { key: schemas::events::TYPE_HEADER, value: Some(schemas::events::LEAD_CREATED) });
            producer
                .send(FutureRecord::to(&outbox).key("acme").payload(event).headers(headers), Duration::from_secs(30))
        });
        for sent in join_all(sends).await {
            sent.map_err(|(error, _)| error).expect("outbox record written");
        }
    }

    let (stop, stopped) = watch::channel(false);
    let (kafka, settings, clickhouse) = (config.kafka.clone(), config.webhooks.clone(), client.clone());
    let started = Instant::now();
    let sink = tokio::spawn(async move {
        let stage = runtime::stage::Stages::default().stage("webhooks");
        sink::webhooks::run(&kafka, settings, clickhouse, Duration::from_millis(200), stage, stopped).await
    });
    let deadline = started + Duration::from_secs(120);
    while endpoints.healthy.lock().expect("lock").len() < EVENTS as usize {
        assert!(
            Instant::now() < deadline,
            "healthy endpoint: {} of {EVENTS}",
            endpoints.healthy.lock().expect("lock").len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served_in = started.elapsed();
    let calls: u32 = endpoints.healthy.lock().expect("lock").values().sum();
    assert_eq!(calls, EVENTS as u32, "each event delivered to the healthy endpoint once");
    let (held, answered) =
        (endpoints.hanging_started.load(Ordering::SeqCst), endpoints.hanging_answered.load(Ordering::SeqCst));
    assert_eq!(answered, 0, "the hanging endpoint answered nothing meanwhile");
    assert!((1..=sink::webhooks::worker::IN_FLIGHT).contains(&held), "{held} requests held by the hanging endpoint");
    println!(
        "healthy endpoint: {EVENTS} events in {served_in:?} ({:.0}/s) beside one holding {held} requests",
        EVENTS as f64 / served_in.as_secs_f64()
    );

    // Stopping with requests in flight takes seconds, not the receiver's timeout.
    let stopping = Instant::now();
    stop.send(true).expect("sink running");
    sink.await.expect("no panic").expect("webhook sink ends cleanly");
    let stop_took = stopping.elapsed();
    // Far below the receiver's 150 s timeout; the margin is for a starved machine.
    assert!(
        stop_took < sink::webhooks::scheduler::SHUTDOWN_GRACE + Duration::from_secs(30),
        "stopped in {stop_took:?}"
    );
    endpoints.release.notify_waiters();

    // Nothing owed to the hanging endpoint was lost: every delivery is still queued.
    let queue = deliveries::of_subscription(client, &hanging.subscription_id).await.expect("queue");
    assert_eq!(queue.len(), EVENTS as usize);
    assert!(queue.iter().all(|d| d.state == "pending" && d.attempts == 0), "none recorded as attempted");
}

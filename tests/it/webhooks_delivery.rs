//! Webhook fan-out against real HTTP receivers on loopback: signatures verified exactly as seed
//! 004 does, retries on the schedule, timeouts, 410, redirects, disabling after failing for too
//! long, re-sending, recovering, rate limits, and internal targets refused unless allowed, also
//! through a proxy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use control::webhooks::{self, Attempt};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::watch;

use crate::support::edge::TestEdge;
use crate::support::pipeline::start_processor;
use crate::support::{sigstage, stderr, stdout};

/// What the receiver saw: (path, webhook-id, body, signature valid by the seed's algorithm).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, Value)>>>);

#[derive(Clone)]
pub(crate) struct Receiver {
    seen: Seen,
    secrets: Arc<Mutex<Vec<(String, String)>>>,
    /// Calls per (path, webhook-id).
    calls: Arc<Mutex<std::collections::HashMap<(String, String), u32>>>,
}

impl Receiver {
    /// Calls taken at `path`, by webhook-id.
    pub(crate) fn calls_at(&self, path: &str) -> std::collections::HashMap<String, u32> {
        let calls = self.calls.lock().expect("lock");
        calls.iter().filter(|((at, _), _)| at == path).map(|((_, id), n)| (id.clone(), *n)).collect()
    }

    /// The events accepted at `path`, with their webhook-ids.
    pub(crate) fn events_at(&self, path: &str) -> Vec<(String, Value)> {
        let seen = self.seen.0.lock().expect("lock");
        seen.iter().filter(|(at, _, _)| at == path).map(|(_, id, event)| (id.clone(), event.clone())).collect()
    }
}

/// The seed's Python receiver, in Rust: HMAC-SHA256 of the raw body with the secret, hex,
/// compared in constant time.
fn seed_verify(raw_body: &[u8], secret: &str, signature_header: &str) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(raw_body);
    let computed = hex::encode(mac.finalize().into_bytes());
    computed.len() == signature_header.len()
        && computed.bytes().zip(signature_header.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

async fn receive(
    State(receiver): State<Receiver>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = receiver.secrets.lock().expect("lock").iter().find(|(p, _)| *p == path).map(|(_, s)| s.clone());
    let signature = headers.get("x-sigstage-signature").and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !secret.is_some_and(|secret| seed_verify(&body, &secret, signature)) {
        return (StatusCode::UNAUTHORIZED, "Invalid signature").into_response();
    }
    let id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let event: Value = serde_json::from_slice(&body).expect("JSON event");
    let call = {
        let mut calls = receiver.calls.lock().expect("lock");
        let count = calls.entry((path.clone(), id.clone())).or_default();
        *count += 1;
        *count
    };
    match path.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return (StatusCode::OK, "too late").into_response();
        }
        "gone" => return (StatusCode::GONE, "unsubscribed").into_response(),
        "redirect" => return (StatusCode::FOUND, [("location", "/hook/ok")], "moved").into_response(),
        "busy" if call == 1 => {
            return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy").into_response();
        }
        "flaky" if call <= 2 => return (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(5000)).into_response(),
        _ => {}
    }
    receiver.seen.0.lock().expect("lock").push((path, id, event));
    (StatusCode::OK, "OK").into_response()
}

pub(crate) async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver { seen: Seen::default(), secrets: Arc::default(), calls: Arc::default() };
    let app = Router::new().route("/hook/{path}", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, format!("http://{addr}/hook"))
}

pub(crate) fn subscribe(edge: &TestEdge, receiver: &Receiver, base: &str, path: &str) -> String {
    let url = format!("{base}/{path}");
    let output =
        sigstage(&["webhooks", "create", "--org", "acme", "--url", &url, "--events", "lead.created"], &edge.db.vars);
    assert!(output.status.success(), "{}", stderr(&output));
    let created: Value = serde_json::from_str(stdout(&output).trim()).expect("subscription JSON");
    let secret = created["secret"].as_str().expect("the secret is shown at creation").to_owned();
    assert!(secret.starts_with("whsec_"));
    receiver.secrets.lock().expect("lock").push((path.to_owned(), secret));
    created["subscription_id"].as_str().expect("id").to_owned()
}

async fn deliveries(client: &clickhouse::Client, subscription: &str) -> Vec<Attempt> {
    let mut log = webhooks::deliveries(client, subscription, 100).await.expect("log");
    log.sort_by_key(|a| (a.attempted_ms, a.attempt));
    log
}

/// Waits until `done` holds for the subscription's log.
async fn await_log(edge: &TestEdge, subscription: &str, done: impl Fn(&[Attempt]) -> bool) -> Vec<Attempt> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = deliveries(&edge.db.client, subscription).await;
        if done(&log) {
            return log;
        }
        if Instant::now() > deadline {
            let queue = control::deliveries::of_subscription(&edge.db.client, subscription).await;
            panic!("{subscription}: {log:#?}\nqueue: {queue:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The subscription once it is disabled (within 30 s), or as it is then.
async fn await_disabled(edge: &TestEdge, subscription: &str) -> webhooks::Subscription {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = webhooks::get(&edge.db.client, subscription).await.expect("subscription");
        if now.active == 0 || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn outcomes(log: &[Attempt]) -> Vec<(u32, u16, &str)> {
    log.iter().map(|a| (a.attempt, a.status_code, a.outcome.as_str())).collect()
}

/// The attempts of the log's first event, in order (each subscription here gets two events,
/// whose attempts interleave).
fn attempts_of_first_event(log: &[Attempt]) -> Vec<Attempt> {
    log.iter().filter(|a| a.event_id == log[0].event_id).cloned().collect()
}

/// Starts the webhook sink on the edge's database and topics.
pub(crate) fn start_sink(
    edge: &TestEdge,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<Result<(), runtime::stage::StageError>>) {
    let (stop, stopped) = watch::channel(false);
    let (kafka, settings, clickhouse) =
        (edge.db.config.kafka.clone(), edge.db.config.webhooks.clone(), edge.db.client.clone());
    let sink = tokio::spawn(async move {
        let stage = runtime::stage::Stages::default().stage("webhooks");
        sink::webhooks::run(&kafka, settings, clickhouse, Duration::from_millis(200), stage, stopped).await
    });
    (stop, sink)
}

fn delivered(log: &[Attempt]) -> usize {
    log.iter().filter(|a| a.outcome == "delivered").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_logged_and_disabled() {
    let edge = TestEdge::start_with(|vars| {
        for (name, value) in [
            ("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE", "true"),
            ("SIGSTAGE_WEBHOOKS_RETRY_SCHEDULE", "50ms,50ms"),
            ("SIGSTAGE_WEBHOOKS_TIMEOUT_MS", "1000"),
            ("SIGSTAGE_WEBHOOKS_DISABLE_AFTER", "2s"),
        ] {
            vars.insert(name.into(), value.into());
        }
    })
    .await;
    let key = edge.key("acme", &[]).await;
    let (receiver, base) = start_receiver().await;
    let [ok, flaky, slow, gone, redirect, busy] =
        ["ok", "flaky", "slow", "gone", "redirect", "busy"].map(|path| subscribe(&edge, &receiver, &base, path));

    let processor = start_processor(&edge.db.config);
    let (stop, sink) = start_sink(&edge);
    let uri = format!("/api/signal-staging/webhook/{key}");
    for n in 0..2 {
        assert_eq!(edge.post_json(&uri, &format!(r#"{{"email":"lead{n}@x.io","event":"signup"}}"#)).await.status, 202);
    }

    // Every event reaches the healthy receiver once, signed, with a stable id, however the
    // others behave.
    let ok_log = await_log(&edge, &ok, |log| delivered(log) == 2).await;
    assert!(ok_log.iter().all(|a| a.status_code == 200 && a.attempt == 1 && a.response_body == "OK"));
    let slow_so_far = deliveries(&edge.db.client, &slow).await;
    assert!(slow_so_far.len() < 6, "the slow endpoint had not finished its schedule: {}", slow_so_far.len());
    let seen = receiver.seen.0.lock().expect("lock").clone();
    let ok_seen: Vec<&(String, String, Value)> = seen.iter().filter(|(p, ..)| p == "ok").collect();
    assert_eq!(ok_seen.len(), 2);
    for (_, id, event) in &ok_seen {
        assert_eq!(event["type"], "lead.created");
        assert_eq!(id, event["id"].as_str().expect("id"), "webhook-id is the event id");
    }

    // 500, 500, then 200: retried on the schedule, each attempt logged with a truncated body.
    let flaky_log = await_log(&edge, &flaky, |log| delivered(log) == 2).await;
    assert_eq!(
        outcomes(&attempts_of_first_event(&flaky_log)),
        [(1, 500, "retrying"), (2, 500, "retrying"), (3, 200, "delivered")]
    );
    assert_eq!(flaky_log[0].response_body.len(), sink::webhooks::delivery::RESPONSE_BODY_MAX_BYTES);
    let first = attempts_of_first_event(&flaky_log);
    assert!(first[1].attempted_ms - first[0].attempted_ms >= 50, "the schedule's first wait: {first:#?}");

    // 503 with Retry-After: 1 waits a second before the next attempt (the schedule says 50 ms).
    let busy_log = await_log(&edge, &busy, |log| delivered(log) == 2).await;
    let first_event: Vec<&Attempt> = busy_log.iter().filter(|a| a.event_id == busy_log[0].event_id).collect();
    assert_eq!(first_event.iter().map(|a| (a.attempt, a.status_code)).collect::<Vec<_>>(), [(1, 503), (2, 200)]);
    let waited = first_event[1].attempted_ms - first_event[0].attempted_ms;
    assert!(waited >= 1000, "Retry-After honoured: {waited} ms between attempts");

    // A redirect is a failure, never followed; the schedule's end fails the delivery.
    let redirect_log =
        await_log(&edge, &redirect, |log| log.iter().filter(|a| a.outcome == "gave_up").count() == 2).await;
    assert_eq!(
        outcomes(&attempts_of_first_event(&redirect_log)),
        [(1, 302, "retrying"), (2, 302, "retrying"), (3, 302, "gave_up")]
    );
    let redirect_queue = control::deliveries::of_subscription(&edge.db.client, &redirect).await.expect("queue");
    assert!(redirect_queue.iter().all(|d| d.state == "failed" && d.attempts == 3), "{redirect_queue:#?}");
    assert_eq!(receiver.seen.0.lock().expect("lock").iter().filter(|(p, ..)| p == "ok").count(), 2);

    // 410 disables at once; the disabling is logged and the subscription says why.
    let gone_log = await_log(&edge, &gone, |log| !log.is_empty()).await;
    assert!(outcomes(&gone_log).iter().all(|o| *o == (1, 410, "disabled")), "{gone_log:#?}");
    let gone_now = await_disabled(&edge, &gone).await;
    assert_eq!((gone_now.active, gone_now.disabled_reason.as_str()), (0, "the endpoint answered 410 Gone"));

    // Timeouts only: disabled once every attempt has failed for 2 s (SIGSTAGE_WEBHOOKS_DISABLE_AFTER).
    let slow_now = await_disabled(&edge, &slow).await;
    assert_eq!((slow_now.active, slow_now.disabled_reason.as_str()), (0, "every delivery failed for 2s"));
    let slow_log = deliveries(&edge.db.client, &slow).await;
    assert!(slow_log.iter().all(|a| a.error.contains("timed out") && a.status_code == 0), "{slow_log:#?}");
    let span = slow_log.last().expect("attempts").attempted_ms - slow_log[0].attempted_ms;
    assert!(span < 2000 + 3000, "disabled soon after failing for 2 s: {span} ms");

    // Re-sending delivers the same event again, with the same webhook-id.
    let first_id = ok_seen[0].1.clone();
    let resend = sigstage(&["webhooks", "resend", &ok, &first_id], &edge.db.vars);
    assert!(resend.status.success(), "{}", stderr(&resend));
    await_log(&edge, &ok, |log| delivered(log) == 3).await;
    let again = receiver.seen.0.lock().expect("lock").iter().filter(|(p, id, _)| p == "ok" && *id == first_id).count();
    assert_eq!(again, 2);
    let history = stdout(&sigstage(&["webhooks", "deliveries", &ok], &edge.db.vars));
    assert_eq!(history.lines().count(), 3, "{history}");

    // Recovering queues for a subscription every event of its types it was not delivered since
    // a time: all of them for one created later, then none once they are delivered.
    let late = subscribe(&edge, &receiver, &base, "late");
    let recover = || sigstage(&["webhooks", "recover", &late, "--since", "1h"], &edge.db.vars);
    let first_recovery = recover();
    assert!(first_recovery.status.success(), "{}", stderr(&first_recovery));
    assert!(stderr(&first_recovery).starts_with("2 events queued"), "{}", stderr(&first_recovery));
    let late_log = await_log(&edge, &late, |log| delivered(log) == 2).await;
    let mut late_ids: Vec<&str> = late_log.iter().map(|a| a.event_id.as_str()).collect();
    let mut ok_ids: Vec<&str> = ok_seen.iter().map(|(_, id, _)| id.as_str()).collect();
    late_ids.sort_unstable();
    ok_ids.sort_unstable();
    assert_eq!(late_ids, ok_ids);
    assert!(stderr(&recover()).starts_with("0 events queued"));

    let stopping = Instant::now();
    stop.send(true).expect("sink running");
    sink.await.expect("no panic").expect("webhook sink ends cleanly");
    assert!(stopping.elapsed() < Duration::from_secs(30), "stopped in {:?}", stopping.elapsed());
    processor.stop().await;
}

#[tokio::test]
async fn internal_targets_are_refused_unless_allowed() {
    let (receiver, base) = start_receiver().await;
    receiver.secrets.lock().expect("lock").push(("ok".into(), "whsec_c2VjcmV0".into()));
    let subscription = subscription(&format!("{base}/ok"));
    let config = |allow_private| runtime::config::WebhookConfig {
        allow_private,
        retry_schedule: Vec::new(),
        timeout_ms: 2000,
        disable_after: Duration::from_secs(1),
        proxy: None,
    };
    let refusing = sink::webhooks::delivery::Deliverer::new(&config(false)).expect("client");
    let answer = refusing.post(&subscription, "1.lead.created", "lead.created", b"{}").await;
    assert!(answer.refused && answer.status.is_none(), "{answer:?}");
    assert!(answer.error.contains("127.0.0.1 is a private or internal address"), "{}", answer.error);
    // By name: checked on the resolved addresses.
    let by_name =
        webhooks::Subscription { url: subscription.url.replace("127.0.0.1", "localhost"), ..subscription.clone() };
    let answer = refusing.post(&by_name, "1.lead.created", "lead.created", b"{}").await;
    assert!(answer.refused && answer.error.contains("resolves only to private or internal addresses"), "{answer:?}");
    assert!(receiver.seen.0.lock().expect("lock").is_empty(), "nothing reached the receiver");

    let allowing = sink::webhooks::delivery::Deliverer::new(&config(true)).expect("client");
    let answer = allowing.post(&subscription, "1.lead.created", "lead.created", br#"{"id":"1.lead.created"}"#).await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
}

/// An active subscription of acme to `lead.created` at `url`, for delivering by hand.
fn subscription(url: &str) -> webhooks::Subscription {
    webhooks::Subscription {
        org_id: "acme".into(),
        subscription_id: "sub_1".into(),
        url: url.into(),
        event_types: vec!["lead.created".into()],
        active: 1,
        secret: "whsec_c2VjcmV0".into(),
        disabled_reason: String::new(),
        created_ms: 0,
        version: 0,
    }
}

/// A stand-in HTTP proxy: records each request line and answers 200.
async fn start_proxy() -> (Arc<Mutex<Vec<String>>>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::clone(&lines);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request);
                seen.lock().expect("lock").push(text.lines().next().unwrap_or_default().to_owned());
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nOK").await;
            });
        }
    });
    (lines, url)
}

#[tokio::test]
async fn through_a_proxy_only_when_configured_and_targets_still_checked() {
    let (proxied, proxy) = start_proxy().await;
    let config = |allow_private| runtime::config::WebhookConfig {
        allow_private,
        retry_schedule: Vec::new(),
        timeout_ms: 2000,
        disable_after: Duration::from_secs(1),
        proxy: Some(proxy.clone()),
    };
    let guarded = sink::webhooks::delivery::Deliverer::new(&config(false)).expect("client");
    // The proxy would resolve these itself; they are resolved and refused before it is asked.
    for (url, why) in [
        ("http://localhost:9/hook", "resolves to internal addresses"),
        ("http://[::ffff:127.0.0.1]/hook", "is a private or internal address"),
        ("http://[64:ff9b::a9fe:a9fe]/latest/meta-data", "is a private or internal address"),
        ("http://[2002:7f00:1::1]/hook", "is a private or internal address"),
        ("http://[fec0::1]/hook", "is a private or internal address"),
        ("http://[::127.0.0.1]/hook", "is a private or internal address"),
        ("http://name.invalid/hook", "does not resolve"),
    ] {
        let answer = guarded.post(&subscription(url), "1.lead.created", "lead.created", b"{}").await;
        assert!(answer.refused && answer.status.is_none(), "{url}: {answer:?}");
        assert!(answer.error.contains(why), "{url}: {}", answer.error);
    }
    assert!(proxied.lock().expect("lock").is_empty(), "nothing reached the proxy");

    // A target that passes goes through the configured proxy, never around it.
    let open = sink::webhooks::delivery::Deliverer::new(&config(true)).expect("client");
    let answer =
        open.post(&subscription("http://hooks.example.invalid/in?token=s3cret"), "1", "lead.created", b"{}").await;
    assert_eq!(answer.status, Some(200), "{answer:?}");
    assert_eq!(*proxied.lock().expect("lock"), ["POST http://hooks.example.invalid/in?token=s3cret HTTP/1.1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_endpoint_is_paced() {
    let db = crate::support::TestDb::migrated().await;
    let (receiver, base) = start_receiver().await;
    let created = webhooks::create(&db.client, "acme", &format!("{base}/ok"), vec!["lead.created".into()])
        .await
        .expect("subscription");
    receiver.secrets.lock().expect("lock").push(("ok".into(), created.secret.clone()));
    let id = created.subscription_id.clone();
    let set = sigstage(&["webhooks", "rate-limit", &id, "5"], &db.vars);
    assert!(set.status.success(), "{}", stderr(&set));
    let limits = control::deliveries::rate_limits(&db.client).await.expect("limits");
    assert_eq!(limits, [(id.clone(), 5)]);

    let due = (0..10)
        .map(|n| {
            let event = format!("{n}.lead.created");
            let body = format!(r#"{{"id":"{event}","type":"lead.created"}}"#);
            let delivery = control::deliveries::Delivery::due("acme", &id, &event, "lead.created", 0);
            (delivery, Some(Arc::from(body.into_bytes())))
        })
        .collect();
    let batch = sink::webhooks::worker::Batch {
        subscription: created,
        lane: control::deliveries::Lane::Live,
        rate_limit: 5,
        failures: 0,
        deliveries: due,
    };
    let config = Arc::new(db.config.webhooks.clone());
    let config = Arc::new(runtime::config::WebhookConfig { allow_private: true, ..(*config).clone() });
    let deliverer = Arc::new(sink::webhooks::delivery::Deliverer::new(&config).expect("client"));
    let outcome = sink::webhooks::worker::run(batch, deliverer, config, db.client.clone()).await;
    assert_eq!((outcome.delivered, outcome.unrecorded), (10, false));
    let log = deliveries(&db.client, &id).await;
    assert_eq!(log.len(), 10);
    let span = log.last().expect("attempts").attempted_ms - log[0].attempted_ms;
    assert!(span >= 1700, "10 deliveries at 5 per second take 1.8 s at least: {span} ms");
}

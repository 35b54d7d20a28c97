//! Webhook fan-out against real HTTP receivers on loopback: signatures verified exactly as seed
//! 004 does, retries, timeouts, 410, redirects, disabling, re-sending, and internal targets
//! refused unless allowed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use common::control::webhooks::{self, Attempt};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::sync::watch;

use crate::edge_support::TestEdge;
use crate::pipeline_support::start_processor;
use crate::support::{sigstage, stderr, stdout};

/// What the receiver saw: (path, webhook-id, body, signature valid by the seed's algorithm).
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<(String, String, Value)>>>);

#[derive(Clone)]
struct Receiver {
    seen: Seen,
    secrets: Arc<Mutex<Vec<(String, String)>>>,
    flaky_calls: Arc<Mutex<u32>>,
    busy_calls: Arc<Mutex<u32>>,
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
    match path.as_str() {
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            return (StatusCode::OK, "too late").into_response();
        }
        "gone" => return (StatusCode::GONE, "unsubscribed").into_response(),
        "redirect" => return (StatusCode::FOUND, [("location", "/hook/ok")], "moved").into_response(),
        "busy" => {
            let mut calls = receiver.busy_calls.lock().expect("lock");
            *calls += 1;
            if *calls == 1 {
                return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy").into_response();
            }
        }
        "flaky" => {
            let mut calls = receiver.flaky_calls.lock().expect("lock");
            *calls += 1;
            if *calls <= 2 {
                return (StatusCode::INTERNAL_SERVER_ERROR, "x".repeat(5000)).into_response();
            }
        }
        _ => {}
    }
    receiver.seen.0.lock().expect("lock").push((path, id, event));
    (StatusCode::OK, "OK").into_response()
}

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver {
        seen: Seen::default(),
        secrets: Arc::default(),
        flaky_calls: Arc::default(),
        busy_calls: Arc::default(),
    };
    let app = Router::new().route("/hook/{path}", post(receive)).with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, format!("http://{addr}/hook"))
}

fn subscribe(edge: &TestEdge, receiver: &Receiver, base: &str, path: &str) -> String {
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

async fn deliveries(edge: &TestEdge, subscription: &str) -> Vec<Attempt> {
    let mut log = webhooks::deliveries(&edge.db.client, subscription, 100).await.expect("log");
    log.sort_by_key(|a| (a.attempted_ms, a.attempt));
    log
}

/// Waits until `done` holds for the subscription's log.
async fn await_log(edge: &TestEdge, subscription: &str, done: impl Fn(&[Attempt]) -> bool) -> Vec<Attempt> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let log = deliveries(edge, subscription).await;
        if done(&log) {
            return log;
        }
        assert!(Instant::now() < deadline, "{subscription}: {log:#?}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_logged_and_disabled() {
    let edge = TestEdge::start_with(|vars| {
        for (name, value) in [
            ("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE", "true"),
            ("SIGSTAGE_WEBHOOKS_MAX_ATTEMPTS", "3"),
            ("SIGSTAGE_WEBHOOKS_RETRY_BASE_MS", "50"),
            ("SIGSTAGE_WEBHOOKS_TIMEOUT_MS", "300"),
            ("SIGSTAGE_WEBHOOKS_DISABLE_AFTER", "5"),
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
    let (stop, stopped) = watch::channel(false);
    let (kafka, settings, clickhouse) =
        (edge.db.config.kafka.clone(), edge.db.config.webhooks.clone(), edge.db.client.clone());
    let sink = tokio::spawn(async move {
        let stage = common::stage::Stages::default().stage("webhooks");
        sink::webhooks::run(&kafka, settings, clickhouse, Duration::from_millis(200), stage, stopped).await
    });
    let uri = format!("/api/signal-staging/webhook/{key}");
    for n in 0..2 {
        assert_eq!(edge.post_json(&uri, &format!(r#"{{"email":"lead{n}@x.io","event":"signup"}}"#)).await.status, 202);
    }

    // Every event reaches the healthy receiver once, signed, with a stable id, however the
    // others behave.
    let ok_log = await_log(&edge, &ok, |log| log.iter().filter(|a| a.outcome == "delivered").count() == 2).await;
    assert!(ok_log.iter().all(|a| a.status_code == 200 && a.attempt == 1 && a.response_body == "OK"));
    let slow_so_far = deliveries(&edge, &slow).await;
    assert!(slow_so_far.len() < 6, "the slow endpoint had not finished its schedule: {}", slow_so_far.len());
    let seen = receiver.seen.0.lock().expect("lock").clone();
    let ok_seen: Vec<&(String, String, Value)> = seen.iter().filter(|(p, ..)| p == "ok").collect();
    assert_eq!(ok_seen.len(), 2);
    for (_, id, event) in &ok_seen {
        assert_eq!(event["type"], "lead.created");
        assert_eq!(id, event["id"].as_str().expect("id"), "webhook-id is the event id");
    }

    // 500, 500, then 200: retried, each attempt logged with a truncated body.
    let flaky_log = await_log(&edge, &flaky, |log| log.iter().filter(|a| a.outcome == "delivered").count() == 2).await;
    assert_eq!(
        outcomes(&attempts_of_first_event(&flaky_log)),
        [(1, 500, "retrying"), (2, 500, "retrying"), (3, 200, "delivered")]
    );
    assert_eq!(flaky_log[0].response_body.len(), sink::webhooks::delivery::RESPONSE_BODY_MAX_BYTES);

    // 503 with Retry-After: 1 waits a second before the next attempt (the schedule says 50 ms).
    let busy_log = await_log(&edge, &busy, |log| log.iter().filter(|a| a.outcome == "delivered").count() == 2).await;
    let first_event: Vec<&Attempt> = busy_log.iter().filter(|a| a.event_id == busy_log[0].event_id).collect();
    assert_eq!(first_event.iter().map(|a| (a.attempt, a.status_code)).collect::<Vec<_>>(), [(1, 503), (2, 200)]);
    let waited = first_event[1].attempted_ms - first_event[0].attempted_ms;
    assert!(waited >= 1000, "Retry-After honoured: {waited} ms between attempts");

    // A redirect is a failure, never followed.
    let redirect_log = await_log(&edge, &redirect, |log| log.iter().any(|a| a.outcome == "gave_up")).await;
    assert_eq!(
        outcomes(&attempts_of_first_event(&redirect_log)),
        [(1, 302, "retrying"), (2, 302, "retrying"), (3, 302, "gave_up")]
    );
    assert_eq!(receiver.seen.0.lock().expect("lock").iter().filter(|(p, ..)| p == "ok").count(), 2);

    // 410 disables at once; the disabling is logged and the subscription says why.
    let gone_log = await_log(&edge, &gone, |log| !log.is_empty()).await;
    assert_eq!(outcomes(&gone_log), [(1, 410, "disabled")]);
    let gone_now = webhooks::get(&edge.db.client, &gone).await.expect("subscription");
    assert_eq!((gone_now.active, gone_now.disabled_reason.as_str()), (0, "the endpoint answered 410 Gone"));

    // Timeouts: 3 attempts for the first event, then the 5th consecutive failure disables it.
    let slow_log = await_log(&edge, &slow, |log| log.iter().any(|a| a.outcome == "disabled")).await;
    assert_eq!(
        outcomes(&slow_log),
        [(1, 0, "retrying"), (2, 0, "retrying"), (3, 0, "gave_up"), (1, 0, "retrying"), (2, 0, "disabled")]
    );
    assert!(slow_log.iter().all(|a| a.error.contains("timed out")), "{slow_log:#?}");
    assert_eq!(slow_log.last().map(|a| a.failure_count), Some(5));

    // Re-sending delivers the same event again, with the same webhook-id.
    let first_id = ok_seen[0].1.clone();
    let resend = sigstage(&["webhooks", "resend", &ok, &first_id], &edge.db.vars);
    assert!(resend.status.success(), "{}", stderr(&resend));
    await_log(&edge, &ok, |log| log.iter().filter(|a| a.outcome == "delivered").count() == 3).await;
    let again = receiver.seen.0.lock().expect("lock").iter().filter(|(p, id, _)| p == "ok" && *id == first_id).count();
    assert_eq!(again, 2);
    let history = stdout(&sigstage(&["webhooks", "deliveries", &ok], &edge.db.vars));
    assert_eq!(history.lines().count(), 3, "{history}");

    stop.send(true).expect("sink running");
    sink.await.expect("no panic").expect("webhook sink ends cleanly");
    processor.stop().await;
}

#[tokio::test]
async fn internal_targets_are_refused_unless_allowed() {
    let (receiver, base) = start_receiver().await;
    receiver.secrets.lock().expect("lock").push(("ok".into(), "whsec_c2VjcmV0".into()));
    let subscription = webhooks::Subscription {
        org_id: "acme".into(),
        subscription_id: "sub_1".into(),
        url: format!("{base}/ok"),
        event_types: vec!["lead.created".into()],
        active: 1,
        secret: "whsec_c2VjcmV0".into(),
        disabled_reason: String::new(),
        created_ms: 0,
        version: 0,
    };
    let config = |allow_private| common::config::WebhookConfig {
        allow_private,
        max_attempts: 1,
        retry_base_ms: 1,
        timeout_ms: 2000,
        disable_after: 1,
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

//! History backfilled to a webhook (`sigstage webhooks backfill`, issue 24), through the real
//! webhook sink to a real receiver: every stored event of the subscription's type in the range is
//! delivered once, under the `webhook-id` a live delivery has, skipping those it was delivered
//! already and those of other types; a live event sent meanwhile is delivered while the backfill
//! is still going; a second backfill sends nothing; a paused backfill stops sending.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use control::deliveries::{self, Delivery, DELIVERED};
use control::webhooks::{self, StoredEvent};
use serde_json::Value;

use crate::support::edge::TestEdge;
use crate::support::pipeline::start_processor;
use crate::support::{sigstage, stderr, stdout};
use crate::webhooks_delivery::{start_receiver, start_sink, subscribe};

/// Past `lead.created` events, of which the first [`DELIVERED_BEFORE`] were delivered live.
const PAST: u64 = 2_000;
const DELIVERED_BEFORE: u64 = 100;

fn event(id: u64, kind: &str, created_ms: u64) -> StoredEvent {
    let data = format!(r#"{{"email":"past{id}@acme.io"}}"#);
    let body = schemas::events::encode(kind, id, "acme", created_ms, data.as_bytes());
    StoredEvent {
        org_id: "acme".into(),
        event_id: format!("{id}.{kind}"),
        event_type: kind.into(),
        body: String::from_utf8(body).expect("UTF-8"),
        created_ms,
    }
}

/// Calls the receiver took for each webhook-id at `path`.
fn calls(receiver: &crate::webhooks_delivery::Receiver, path: &str) -> HashMap<String, u32> {
    receiver.calls_at(path)
}

fn backfill(edge: &TestEdge, args: &[&str]) -> std::process::Output {
    let mut all = vec!["webhooks", "backfill"];
    all.extend_from_slice(args);
    sigstage(&all, &edge.db.vars)
}

async fn state_of(edge: &TestEdge, subscription: &str) -> (String, Value) {
    let listed = backfill(edge, &[subscription, "--status"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let newest: Value = serde_json::from_str(stdout(&listed).lines().next().expect("a backfill")).expect("JSON");
    (newest["backfill"]["state"].as_str().expect("state").to_owned(), newest["progress"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_backfilled_once_beside_live_deliveries() {
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
    })
    .await;
    let client = &edge.db.client;
    let (receiver, base) = start_receiver().await;
    let subscription = subscribe(&edge, &receiver, &base, "ok");
    // A day ago: two thousand leads, and signals the subscription does not take.
    let day_ago = runtime::time::now_ms() - 86_400_000;
    let mut past: Vec<StoredEvent> = (1..=PAST).map(|id| event(id, "lead.created", day_ago + id)).collect();
    past.extend((1..=50).map(|id| event(id, "signal.created", day_ago + id)));
    webhooks::store_events(client, &past).await.expect("events");
    let before: Vec<Delivery> = (1..=DELIVERED_BEFORE)
        .map(|id| {
            let due = Delivery::due("acme", &subscription, &format!("{id}.lead.created"), "lead.created", 1);
            due.after_attempt(DELIVERED, None)
        })
        .collect();
    deliveries::write(client, &before).await.expect("delivered before");

    let processor = start_processor(&edge.db.config);
    let (stop_webhooks, webhooks_sink) = start_sink(&edge);
    let key = edge.key("acme", &[]).await;
    // A live lead, from the edge to the receiver: first with nothing else going on (which also
    // waits for the pipeline to be up), then while history goes out.
    let live_lead = |email: &'static str| {
        let (edge, receiver, key) = (&edge, &receiver, &key);
        async move {
            let sent = Instant::now();
            let body = format!(r#"{{"email":"{email}","event":"Signed Up"}}"#);
            assert_eq!(edge.post_json(&format!("/api/signal-staging/webhook/{key}"), &body).await.status, 202);
            loop {
                let seen = receiver.events_at("ok");
                if let Some((id, _)) = seen.iter().find(|(_, event)| event["data"]["email"] == email) {
                    return (id.clone(), sent.elapsed());
                }
                assert!(sent.elapsed() < Duration::from_secs(30), "{email} was not delivered");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    let (first_id, _) = live_lead("first@acme.io").await;
    let (calm_id, calm) = live_lead("calm@acme.io").await;

    let started = backfill(&edge, &[&subscription, "--since", "2d", "--rate", "400"]);
    assert!(started.status.success(), "{}", stderr(&started));
    let job: Value = serde_json::from_str(stdout(&started).trim()).expect("the backfill");
    assert_eq!(job["total"], PAST - DELIVERED_BEFORE, "{job}");
    while calls(&receiver, "ok").len() < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (live_id, live_latency) = live_lead("live@acme.io").await;
    let (state, progress) = state_of(&edge, &subscription).await;
    eprintln!("a live lead delivered in {calm:?} alone, {live_latency:?} with the backfill {state}: {progress}");
    assert_eq!(state, "running", "the backfill was still going when the live lead was delivered: {progress}");
    assert!(live_latency < calm.max(Duration::from_millis(300)) * 4, "{live_latency:?} against {calm:?} alone");

    // Done: each past event once, under its own id; none delivered before; no other type.
    let deadline = Instant::now() + Duration::from_secs(60);
    while state_of(&edge, &subscription).await.0 != "done" {
        assert!(Instant::now() < deadline, "the backfill did not end: {:?}", state_of(&edge, &subscription).await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = calls(&receiver, "ok");
    let mut expected: Vec<String> = (DELIVERED_BEFORE + 1..=PAST).map(|id| format!("{id}.lead.created")).collect();
    expected.extend([first_id, calm_id, live_id]);
    expected.sort();
    let mut ids: Vec<String> = got.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, expected);
    assert!(got.values().all(|&n| n == 1), "an event delivered twice");

    // Again: nothing is owed, nothing sent.
    let again = backfill(&edge, &[&subscription, "--since", "2d"]);
    let job: Value = serde_json::from_str(stdout(&again).trim()).expect("the backfill");
    assert_eq!(job["total"], 0, "{job}");

    // Paused, it stops sending: a second subscription, at 20 a second.
    let paused = subscribe(&edge, &receiver, &base, "paused");
    let started = backfill(&edge, &[&paused, "--since", "2d", "--rate", "20"]);
    assert!(started.status.success(), "{}", stderr(&started));
    while calls(&receiver, "paused").len() < 5 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pause = backfill(&edge, &[&paused, "--pause"]);
    assert!(pause.status.success(), "{}", stderr(&pause));
    let at_pause = calls(&receiver, "paused").len();
    // Heeded within a second, after the batch in flight (a second's worth): watched for three.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = calls(&receiver, "paused").len();
    assert!(after <= at_pause + 2 * 20, "{at_pause} when paused, {after} three seconds later");
    let (state, progress) = state_of(&edge, &paused).await;
    assert_eq!(state, "paused");
    assert!(progress["pending"].as_u64() > Some(0), "{progress}");
    let cancel = backfill(&edge, &[&paused, "--cancel"]);
    assert!(cancel.status.success(), "{}", stderr(&cancel));
    // What it still owed is dropped with it: no later backfill sends it as its own.
    let (state, progress) = state_of(&edge, &paused).await;
    assert_eq!((state.as_str(), progress["pending"].as_u64()), ("cancelled", Some(0)), "{progress}");
    let again = backfill(&edge, &[&paused, "--resume"]);
    assert!(!again.status.success() && stderr(&again).contains("no backfill running or paused"), "{}", stderr(&again));
    let wrong = backfill(&edge, &[&paused, "--since", "2d", "--events", "signal.created"]);
    assert!(!wrong.status.success() && stderr(&wrong).contains("does not receive"), "{}", stderr(&wrong));

    stop_webhooks.send(true).expect("stop");
    webhooks_sink.await.expect("task").expect("webhook sink");
    processor.stop().await;
}

//! No org slows the others: an org sending ten times the others' rate has its live signals moved
//! to the overflow (historical) lane once it is past its share, counted physically per topic and
//! org, while the calm orgs stay on the live lane; every signal is still stored once.

use std::collections::HashMap;

use rdkafka::message::{Headers, Message};
use runtime::kafka::topics;

use crate::support::edge::{for_each_record, TestEdge};
use crate::support::pipeline::{await_count, start_processor, start_sink};

/// Records of `topic` per org (the edge's `sigstage-org` header).
fn per_org(edge: &TestEdge, topic: &str) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for_each_record(&edge.db.config, &edge.topic(topic), |message| {
        let org = message
            .headers()
            .and_then(|headers| headers.iter().find(|header| header.key == "sigstage-org"))
            .and_then(|header| header.value)
            .map(|value| String::from_utf8_lossy(value).into_owned())
            .unwrap_or_default();
        *counts.entry(org).or_default() += 1;
    });
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_noisy_org_overflows_while_the_others_stay_live() {
    // A floor of 1/s: the test's few hundred signals are enough to overflow.
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_OVERFLOW_SHARE_PERCENT".into(), "50".into());
        vars.insert("SIGSTAGE_OVERFLOW_MIN_PER_SECOND".into(), "1".into());
    })
    .await;
    let mut uris = HashMap::new();
    for org in ["calm-a", "calm-b", "noisy"] {
        uris.insert(org, format!("/api/signal-staging/webhook/{}", edge.key(org, &[]).await));
    }
    let send = |org: &'static str, n: usize| {
        let body = format!(r#"{{"email":"p{n}@{org}.io","event":"e{n}"}}"#);
        let uri = uris[org].clone();
        let edge = &edge;
        async move { assert_eq!(edge.post_json(&uri, &body).await.status, 202, "{org} {n}") }
    };
    // The calm orgs first (alone, nobody overflows), then ten of the noisy org's for each of theirs.
    for n in 0..20 {
        send("calm-a", n).await;
        send("calm-b", n).await;
        for m in 0..10 {
            send("noisy", n * 10 + m).await;
        }
    }
    let (live, overflow) = (per_org(&edge, topics::SIGNALS_RAW), per_org(&edge, topics::SIGNALS_HISTORICAL));
    for calm in ["calm-a", "calm-b"] {
        assert_eq!((live.get(calm), overflow.get(calm)), (Some(&20), None), "{calm} stays live: {live:?} {overflow:?}");
    }
    let (noisy_live, noisy_overflow) =
        (live.get("noisy").copied().unwrap_or(0), overflow.get("noisy").copied().unwrap_or(0));
    assert_eq!(noisy_live + noisy_overflow, 200);
    // Its first two are within half of what the edge took, every later one past it (a couple
    // more may go live if the edge stalls past a whole counting window and starts afresh).
    assert!((2..=10).contains(&noisy_live), "live {live:?}, overflow {overflow:?}");

    // The overflow lane is processed like any other: every signal stored once.
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    await_count(&edge.db.client, "SELECT count() FROM signals_hot", 240).await;
    await_count(&edge.db.client, "SELECT count() FROM signals_hot WHERE org_id = 'noisy'", 200).await;
    sink.stop().await;
    processor.stop().await;
}

/// A key marked historical (`keys create --historical`) sends everything to the historical lane,
/// whatever its endpoint and however quiet the edge; another key of the same org stays live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_marked_historical_sends_to_the_historical_lane() {
    let edge = TestEdge::start().await;
    let backfill = edge.key("acme", &["--historical"]).await;
    let live = edge.key("acme", &[]).await;
    for (key, n) in [(&backfill, 1), (&backfill, 2), (&live, 3)] {
        let body = format!(r#"{{"email":"p{n}@acme.io","event":"e{n}"}}"#);
        assert_eq!(edge.post_json(&format!("/api/signal-staging/webhook/{key}"), &body).await.status, 202);
    }
    let (on_live, on_historical) = (per_org(&edge, topics::SIGNALS_RAW), per_org(&edge, topics::SIGNALS_HISTORICAL));
    assert_eq!((on_live.get("acme"), on_historical.get("acme")), (Some(&1), Some(&2)));
    let listed = crate::support::sigstage(&["keys", "list", "--org", "acme"], &edge.db.vars);
    assert!(crate::support::stdout(&listed).contains("(historical lane)"), "{}", crate::support::stdout(&listed));
}

/// The historical lane is read whenever the live one is idle, also after it has drained: its
/// partition queues are split again on each assignment, and a split used to leave them without
/// their wake-up, so a signal sent to the lane after that was not read while nothing came live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_historical_lane_is_read_after_it_drained_while_the_live_one_is_idle() {
    let edge = TestEdge::start().await;
    let backfill = edge.key("acme", &["--historical"]).await;
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let uri = format!("/api/signal-staging/webhook/{backfill}");
    for n in 1..=3 {
        let body = format!(r#"{{"event":"e{n}","anonymousId":"v{n}"}}"#);
        assert_eq!(edge.post_json(&uri, &body).await.status, 202);
        // Each after the one before is stored: the lane has drained, and nothing comes live.
        await_count(&edge.db.client, "SELECT count() FROM signals_cold WHERE org_id = 'acme'", n).await;
    }
    sink.stop().await;
    processor.stop().await;
}

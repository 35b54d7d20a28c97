//! Deleting a person (`sigstage people delete`, issue 25): after it no table holds their email or
//! their visitors, counted physically over every column of every table; the `identities` topic
//! ends each of their keys with a tombstone, so a stream restored from it (a fresh process) does
//! not bring them back; and a new signal of theirs is kept out of storage and counted as
//! suppressed, while another person's signals go on as before. The audit names who, what and
//! how many rows; lifting the suppression lets them in again.

use std::collections::HashMap;

use rdkafka::message::Message;

use crate::support::edge::{for_each_record, TestEdge};
use crate::support::pipeline::{await_count, metric, start_processor, start_ready, start_sink};
use crate::support::{sigstage, stderr, stdout};

const JO: &str = "jo.deleted@acme.io";
const JO_VISITORS: [&str; 2] = ["visitor-jo-laptop", "visitor-jo-phone"];
const SAM: &str = "sam.kept@acme.io";
/// The tables that record the deletion itself, and so name the person.
const RECORDS_OF_THE_DELETION: [&str; 2] = ["people_audit", "suppressions"];

/// Every table's rows as text (every column), and how many of them mention `needle`.
async fn mentions(client: &clickhouse::Client, needle: &str) -> Vec<(String, usize)> {
    let mut found = Vec::new();
    for table in schemas::migrations::tables() {
        let query = client.query(&format!("SELECT * FROM {table}"));
        let text = runtime::clickhouse::answer_bytes(query, "TSV").await.expect("table");
        let count = String::from_utf8_lossy(&text).lines().filter(|line| line.contains(needle)).count();
        if count > 0 {
            found.push((table, count));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_person_is_gone_from_every_table_and_topic_and_kept_out() {
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
        vars.insert("SIGSTAGE_CONTROL_REFRESH_MS".into(), "200".into());
    })
    .await;
    let acme = edge.key("acme", &[]).await;
    let (receiver, base) = crate::webhooks_delivery::start_receiver().await;
    let subscription = crate::webhooks_delivery::subscribe(&edge, &receiver, &base, "ok");
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let (stop_webhooks, webhooks) = crate::webhooks_delivery::start_sink(&edge);
    let uri = format!("/api/signal-staging/webhook/{acme}");
    let signals = [
        // Jo: anonymous on a laptop, identified there, then on a phone; a form with the email.
        format!(r#"{{"type":"track","event":"Pricing Viewed","anonymousId":"{}","messageId":"j1"}}"#, JO_VISITORS[0]),
        format!(
            r#"{{"type":"identify","anonymousId":"{}","messageId":"j2","traits":{{"email":"{JO}"}}}}"#,
            JO_VISITORS[0]
        ),
        format!(r#"{{"type":"page","name":"Docs","anonymousId":"{}","messageId":"j3"}}"#, JO_VISITORS[1]),
        format!(
            r#"{{"type":"identify","anonymousId":"{}","messageId":"j4","traits":{{"email":"{JO}"}}}}"#,
            JO_VISITORS[1]
        ),
        format!(r#"{{"email":"{JO}","event":"Demo Requested"}}"#),
        // Sam, who stays.
        r#"{"type":"track","event":"Pricing Viewed","anonymousId":"visitor-sam","messageId":"s1"}"#.into(),
        format!(r#"{{"type":"identify","anonymousId":"visitor-sam","messageId":"s2","traits":{{"email":"{SAM}"}}}}"#),
    ];
    for signal in &signals {
        assert_eq!(edge.post_json(&uri, signal).await.status, 202, "{signal}");
    }
    let client = &edge.db.client;
    // Jo's five and Sam's two, each with a hot row (the anonymous ones rehydrated); both leads
    // announced to the subscriber.
    await_count(client, "SELECT count() FROM signals_hot WHERE org_id = 'acme'", 7).await;
    await_count(client, "SELECT count() FROM leads WHERE org_id = 'acme'", 2).await;
    let delivered = format!(
        "SELECT count() FROM webhook_deliveries WHERE subscription_id = '{subscription}' AND outcome = 'delivered'"
    );
    await_count(client, &delivered, 2).await;
    for needle in [JO, JO_VISITORS[0], JO_VISITORS[1], SAM] {
        assert!(!mentions(client, needle).await.is_empty(), "{needle} is stored before the deletion");
    }

    let deleted = sigstage(&["people", "delete", "--org", "acme", "--email", JO], &edge.db.vars);
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    assert!(stdout(&deleted).contains("signals_hot"), "{}", stdout(&deleted));
    for needle in [JO, JO_VISITORS[0], JO_VISITORS[1]] {
        let mut tables: Vec<String> = mentions(client, needle).await.into_iter().map(|(table, _)| table).collect();
        tables.sort();
        assert_eq!(tables, RECORDS_OF_THE_DELETION, "{needle}: only the deletion's own records name it");
    }
    let sam = mentions(client, SAM).await;
    for table in ["signals_hot", "identities", "leads", "lead_summaries", "webhook_events"] {
        assert!(sam.iter().any(|(name, _)| name == table), "Sam stays in {table}: {sam:?}");
    }

    // The identities topic, folded as a restore folds it: nothing of Jo's is left.
    let topic = edge.db.config.kafka.topic(runtime::kafka::topics::IDENTITIES);
    let mut last: HashMap<(i32, Vec<u8>), bool> = HashMap::new();
    for_each_record(&edge.db.config, &topic, |message| {
        let key = message.key().unwrap_or_default().to_vec();
        last.insert((message.partition(), key), message.payload().is_some());
    });
    let left: Vec<String> = last
        .iter()
        .filter(|(_, &live)| live)
        .map(|((_, key), _)| String::from_utf8_lossy(key).into_owned())
        .filter(|key| key.contains(JO) || JO_VISITORS.iter().any(|visitor| key.contains(visitor)))
        .collect();
    assert!(left.is_empty(), "keys a restore would bring back: {left:?}");
    assert!(last.iter().any(|((_, key), &live)| live && key.ends_with(SAM.as_bytes())), "Sam's lead stays");

    // A fresh stream restores from the topics; Jo comes back on a known visitor and by email:
    // not stored, counted as suppressed. Sam's new signal is.
    stop_webhooks.send(true).expect("stop the webhook sink");
    webhooks.await.expect("webhook sink task").expect("webhook sink");
    processor.stop().await;
    let stream =
        start_ready(&edge.db.vars, &["stream"], &[]).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    let again = [
        format!(r#"{{"type":"track","event":"Back Again","anonymousId":"{}","messageId":"j5"}}"#, JO_VISITORS[0]),
        format!(r#"{{"type":"identify","anonymousId":"visitor-jo-new","messageId":"j6","traits":{{"email":"{JO}"}}}}"#),
        r#"{"type":"track","event":"Back Again","anonymousId":"visitor-sam","messageId":"s3"}"#.to_owned(),
    ];
    for signal in &again {
        assert_eq!(edge.post_json(&uri, signal).await.status, 202, "{signal}");
    }
    await_count(client, "SELECT count() FROM signals_hot WHERE org_id = 'acme' AND event = 'Back Again'", 1).await;
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = http.get(format!("http://{}/metrics", stream.addr)).send().await.expect("metrics");
        let metrics = metrics.text().await.expect("text");
        let suppressed = metric(&metrics, "sigstage_stream_records_total", r#"outcome="suppressed""#).unwrap_or(0.0);
        if suppressed == 2.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "suppressed {suppressed}: {metrics}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stream.stop().await;
    sink.stop().await;
    for needle in [JO, JO_VISITORS[0], "visitor-jo-new"] {
        let found: Vec<(String, usize)> = mentions(client, needle)
            .await
            .into_iter()
            .filter(|(table, _)| !RECORDS_OF_THE_DELETION.contains(&table.as_str()))
            .collect();
        assert!(found.is_empty(), "{needle} came back: {found:?}");
    }

    // Who did what, and how many rows; then the suppression is lifted.
    let audit = sigstage(&["people", "audit", "--org", "acme"], &edge.db.vars);
    let line: serde_json::Value = serde_json::from_str(stdout(&audit).lines().next().expect("a line")).expect("JSON");
    assert_eq!((line["action"].as_str(), line["value"].as_str()), (Some("delete"), Some(JO)), "{line}");
    assert!(line["actor"].as_str().is_some_and(|actor| actor.starts_with("cli:")), "{line}");
    assert!(line["rows"].as_u64().is_some_and(|rows| rows >= 10), "{line}");
    assert_eq!(line["visitors"].as_array().map(Vec::len), Some(2), "{line}");
    let listed = sigstage(&["people", "suppressions", "--org", "acme"], &edge.db.vars);
    assert_eq!(stdout(&listed).lines().count(), 4, "a header, the email and two visitors: {}", stdout(&listed));
    let lifted = sigstage(&["people", "lift", "--org", "acme", "--email", JO], &edge.db.vars);
    assert!(lifted.status.success(), "{}", stderr(&lifted));
    let listed = sigstage(&["people", "suppressions", "--org", "acme"], &edge.db.vars);
    assert_eq!(stdout(&listed).lines().count(), 1, "{}", stdout(&listed));
}

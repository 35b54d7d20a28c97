//! The attribution rules, end to end from the edge to the rows analysts query, counted without
//! FINAL: a Segment redelivery re-serialised by another client is one signal; ids that name
//! nobody are never linked; a re-identified visitor's later signals go to the new lead while
//! rows already attributed stay, so no signal counts under two leads.

use runtime::kafka::topics;

use crate::support::edge::{count_records, TestEdge};
use crate::support::pipeline::{await_count, caught_up, start_processor, start_sink};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_redelivery_reserialised_by_another_client_is_one_signal() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let sent = r#"{"type":"track","event":"Signed Up","anonymousId":"a1","messageId":"m-1","properties":{"plan":"pro","seats":3},"sentAt":"2026-11-24T10:00:00.000Z"}"#;
    // Another client: other key order, other whitespace, numbers written otherwise, a later sentAt.
    let again = r#"{ "messageId": "m-1", "sentAt": "2026-11-24T10:00:07Z", "properties": {"seats": 3.0, "plan": "pro"},
                     "anonymousId": "a1", "event": "Signed Up", "type": "track" }"#;
    let other = r#"{"type":"track","event":"Signed Up","anonymousId":"a1","messageId":"m-2","properties":{"plan":"pro","seats":3}}"#;
    for body in [sent, again, other] {
        assert_eq!(edge.post_json(&uri, body).await.status, 202, "{body}");
    }
    // Not Segment: the same object in another key order is the same signal.
    let generic = [
        r#"{"event":"demo","company":{"name":"Acme","size":10}}"#,
        r#"{"company":{"size":10,"name":"Acme"},"event":"demo"}"#,
    ];
    for body in generic {
        assert_eq!(edge.post_json(&uri, body).await.status, 202, "{body}");
    }
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    caught_up(&edge.db.config).await;
    assert_eq!(count_records(&edge.db.config, &edge.topic(topics::SIGNALS_PROCESSED)), 3, "m-1 once, m-2, demo once");
    await_count(&edge.db.client, "SELECT count() FROM signals_cold", 3).await;
    sink.stop().await;
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_that_name_nobody_are_never_linked() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let junk = ["undefined", "null", "[object Object]", "0", "", " "];
    for (n, id) in junk.iter().enumerate() {
        let identify = format!(
            r#"{{"type":"identify","anonymousId":"{id}","messageId":"i{n}","traits":{{"email":"p{n}@acme.io"}}}}"#
        );
        let track = format!(r#"{{"type":"track","event":"Viewed","anonymousId":"{id}","messageId":"t{n}"}}"#);
        for body in [identify, track] {
            assert_eq!(edge.post_json(&uri, &body).await.status, 202, "{body}");
        }
    }
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    caught_up(&edge.db.config).await;
    let client = &edge.db.client;
    // Each identify is its lead's own signal; no visitor was linked, so the tracks stay cold.
    await_count(client, "SELECT count() FROM signals_hot", junk.len() as u64).await;
    await_count(client, "SELECT count() FROM signals_cold", junk.len() as u64).await;
    await_count(client, "SELECT count() FROM leads", junk.len() as u64).await;
    await_count(client, "SELECT count() FROM identities", 0).await;
    await_count(client, "SELECT countIf(anonymous_id != '') FROM signals_cold", 0).await;
    sink.stop().await;
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reidentified_visitor_keeps_its_past_and_moves_its_future() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let client = &edge.db.client;
    let track = |n: u32| format!(r#"{{"type":"track","event":"Viewed","anonymousId":"v1","messageId":"t{n}"}}"#);
    let identify = |n: u32, email: &str| {
        format!(r#"{{"type":"identify","anonymousId":"v1","messageId":"i{n}","traits":{{"email":"{email}"}}}}"#)
    };
    for n in 1..=2 {
        assert_eq!(edge.post_json(&uri, &track(n)).await.status, 202);
    }
    await_count(client, "SELECT count() FROM signals_cold", 2).await;
    // Jo: two rehydrated, the identify, one track. Then the same visitor is Sam: the identify and
    // one track; Jo keeps hers.
    for body in [identify(1, "Jo@Acme.io"), track(3), identify(2, "sam@acme.io"), track(4)] {
        assert_eq!(edge.post_json(&uri, &body).await.status, 202);
    }
    await_count(client, "SELECT count() FROM signals_hot", 6).await;
    caught_up(&edge.db.config).await;
    let per_lead: Vec<crate::support::pipeline::TouchRow> = client
        .query(&crate::support::pipeline::library_query("first_and_last_touch", "acme", &[]))
        .fetch_all()
        .await
        .expect("per lead");
    let mut per_lead: Vec<(&str, u64, u64)> = per_lead.iter().map(|r| (r.0.as_str(), r.7, r.8)).collect();
    per_lead.sort();
    assert_eq!(per_lead, [("jo@acme.io", 4, 2), ("sam@acme.io", 2, 0)]);
    await_count(
        client,
        "SELECT count() FROM (SELECT signal_id FROM signals_hot GROUP BY signal_id HAVING count() > 1)",
        0,
    )
    .await;
    // The visitor's identity now is Sam's: the latest version wins, by processing order.
    let linked: Vec<String> =
        client.query("SELECT email FROM identities FINAL WHERE anonymous_id = 'v1'").fetch_all().await.expect("link");
    assert_eq!(linked, ["sam@acme.io"]);
    sink.stop().await;
    processor.stop().await;
}

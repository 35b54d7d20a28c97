//! The trace of one signal (`GET /api/admin/orgs/{org}/signals/{id}`, `sigstage trace`): what
//! the pipeline stored for it, read back, for a signal that arrived anonymous and was rehydrated
//! once its visitor was identified, and for the signal that identified it (its link, its lead,
//! and the `lead.created` event delivered to a subscriber).

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use runtime::config::{AdminToken, Secret};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::support::edge::TestEdge;
use crate::support::pipeline::{await_count, start_processor, start_sink};
use crate::support::{sigstage, stderr, stdout};

const TOKEN: &str = "admin-token-of-the-trace-test";

async fn get(edge: &TestEdge, uri: &str) -> (StatusCode, Value) {
    let settings = admin::Settings {
        kafka: None,
        tokens: vec![AdminToken { id: "admin".into(), read_only: true, org: None, secret: Secret::new(TOKEN) }],
        public_url: "http://127.0.0.1:1".into(),
        tails: admin::TailLimits::default(),
        people: admin::PeopleReach::default(),
    };
    let request = Request::builder().uri(uri).header(header::AUTHORIZATION, format!("Bearer {TOKEN}"));
    let response = admin::router(edge.db.client.clone(), settings)
        .oneshot(request.body(Body::empty()).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_is_traced_from_its_rows_links_and_leads() {
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_WEBHOOKS_ALLOW_PRIVATE".into(), "true".into());
    })
    .await;
    let acme = edge.key("acme", &[]).await;
    let (receiver, base) = crate::webhooks_delivery::start_receiver().await;
    let subscription = crate::webhooks_delivery::subscribe(&edge, &receiver, &base, "ok");
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let (stop_webhooks, webhooks) = crate::webhooks_delivery::start_sink(&edge);
    let uri = format!("/api/signal-staging/webhook/{acme}");
    let track = r#"{"type":"track","event":"Pricing Page Viewed","anonymousId":"v1","messageId":"t1","timestamp":"2026-03-01T10:00:00Z"}"#;
    assert_eq!(edge.post_json(&uri, track).await.status, 202);
    let client = &edge.db.client;
    await_count(client, "SELECT count() FROM signals_cold WHERE org_id = 'acme'", 1).await;
    let identify = r#"{"type":"identify","anonymousId":"v1","messageId":"i1","timestamp":"2026-03-02T10:00:00Z","traits":{"email":"jo@acme.io"}}"#;
    assert_eq!(edge.post_json(&uri, identify).await.status, 202);
    // The identify's own row and the track's, rehydrated under the lead; the link and the lead.
    await_count(client, "SELECT count() FROM signals_hot WHERE org_id = 'acme'", 2).await;
    await_count(client, "SELECT count() FROM identities WHERE org_id = 'acme'", 1).await;
    await_count(client, "SELECT count() FROM leads WHERE org_id = 'acme'", 1).await;
    let delivered = format!(
        "SELECT count() FROM webhook_deliveries WHERE subscription_id = '{subscription}' AND outcome = 'delivered'"
    );
    await_count(client, &delivered, 1).await;
    stop_webhooks.send(true).expect("stop the webhook sink");
    webhooks.await.expect("webhook sink task").expect("webhook sink");
    sink.stop().await;
    processor.stop().await;
    let id_of = |table: &'static str, kind: &'static str| {
        let client = client.clone();
        async move {
            let sql = format!("SELECT signal_id FROM {table} WHERE org_id = 'acme' AND kind = '{kind}'");
            client.query(&sql).fetch_one::<u64>().await.expect(kind)
        }
    };
    let (tracked, identified) = (id_of("signals_cold", "track").await, id_of("signals_hot", "identify").await);

    let (status, trace) = get(&edge, &format!("/api/admin/orgs/acme/signals/{tracked}")).await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    let rows: Vec<(&str, &str, &str)> = trace["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            let text = |name: &str| row[name].as_str().expect(name);
            (text("table"), text("lead_email"), text("attributed_by"))
        })
        .collect();
    assert_eq!(rows, [("signals_cold", "", ""), ("signals_hot", "jo@acme.io", "rehydrated")], "{trace}");
    assert_eq!(trace["rows"][0]["event"], "Pricing Page Viewed");
    assert_eq!(trace["signal_id"], tracked.to_string(), "64 bits, as a string: {trace}");
    assert_eq!((trace["links"].clone(), trace["leads_created"].clone()), (json!([]), json!([])), "{trace}");
    // Where it came in: the key's id (never the key), the endpoint, the lane; the dedupe verdict.
    let key_id: String = client
        .query("SELECT key_id FROM api_keys WHERE org_id = 'acme' LIMIT 1")
        .fetch_one()
        .await
        .expect("the key's id");
    assert_eq!(trace["origin"], json!({"key_id": key_id, "endpoint": "webhook", "lane": "live"}), "{trace}");
    assert!(!trace.to_string().contains(&acme), "the key itself is never shown: {trace}");
    assert!(
        trace["dedupe"].as_str().is_some_and(|verdict| verdict.starts_with("new: the first of its content")),
        "{trace}"
    );

    let (status, trace) = get(&edge, &format!("/api/admin/orgs/acme/signals/{identified}")).await;
    assert_eq!(status, StatusCode::OK, "{trace}");
    assert_eq!(trace["rows"][0]["attributed_by"], "signal", "{trace}");
    assert_eq!(trace["links"][0]["anonymous_id"], "v1", "{trace}");
    assert_eq!(trace["links"][0]["email"], "jo@acme.io", "{trace}");
    assert_eq!(trace["leads_created"], json!(["jo@acme.io"]), "{trace}");
    let event = format!("{identified}.lead.created");
    assert_eq!(trace["events"][0]["event_id"], event.as_str(), "{trace}");
    assert_eq!(trace["events"][0]["event_type"], "lead.created", "{trace}");
    let attempt = &trace["deliveries"][0];
    assert_eq!(
        (&attempt["subscription_id"], &attempt["event_id"], &attempt["status_code"], &attempt["outcome"]),
        (&json!(subscription), &json!(event), &json!(200), &json!("delivered")),
        "{trace}"
    );

    // The lead's view: its visitor and both its signals, the rehydrated one included.
    let (status, lead) = get(&edge, "/api/admin/orgs/acme/leads/Jo@Acme.io").await;
    assert_eq!(status, StatusCode::OK, "{lead}");
    assert_eq!(
        (lead["lead"]["email"].as_str(), lead["signal_count"].as_u64()),
        (Some("jo@acme.io"), Some(2)),
        "{lead}"
    );
    assert_eq!(lead["visitors"][0]["anonymous_id"], "v1", "{lead}");
    let listed: Vec<&str> =
        lead["signals"].as_array().expect("signals").iter().map(|s| s["signal_id"].as_str().expect("id")).collect();
    assert_eq!(listed, [identified.to_string(), tracked.to_string()], "newest first, ids as strings: {lead}");
    let (status, answer) = get(&edge, "/api/admin/orgs/acme/leads/nobody@acme.io").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("lead_not_found")), "{answer}");
    let (status, answer) = get(&edge, "/api/admin/orgs/acme/leads/not-an-email").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_email")), "{answer}");

    // Another org's view of the signal, an unknown one, and a malformed id.
    let (status, answer) = get(&edge, &format!("/api/admin/orgs/other/signals/{tracked}")).await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("signal_not_found")), "{answer}");
    let (status, _) = get(&edge, "/api/admin/orgs/acme/signals/12345").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = get(&edge, "/api/admin/orgs/acme/signals/t1").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_signal_id")), "{answer}");

    // The same from the command line.
    let traced = sigstage(&["trace", &tracked.to_string(), "--org", "acme"], &edge.db.vars);
    let said = stdout(&traced);
    assert!(traced.status.success(), "{}", stderr(&traced));
    assert!(said.contains("signals_cold: ") && said.contains("lead jo@acme.io (rehydrated)"), "{said}");
    assert!(said.contains(&format!("came in with key {key_id} on webhook (the live lane)")), "{said}");
    let traced = sigstage(&["trace", &identified.to_string(), "--org", "acme", "--json"], &edge.db.vars);
    let json: Value = serde_json::from_str(&stdout(&traced)).expect("JSON");
    assert_eq!(json["leads_created"], json!(["jo@acme.io"]));
    let missing = sigstage(&["trace", "12345", "--org", "acme"], &edge.db.vars);
    assert!(!missing.status.success() && stderr(&missing).contains("no stored row of signal 12345"));
}

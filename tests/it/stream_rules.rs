//! Mapping rules end to end: managed with `sigstage rules`, applied by a running processor
//! without a restart, each operator against real records, unmatched signals in the queue.

use std::time::{Duration, Instant};

use runtime::kafka::topics;
use serde_json::Value;

use crate::support::edge::{payload_json, read_records, TestEdge};
use crate::support::pipeline::{caught_up, start_processor};
use crate::support::{sigstage, stderr, stdout};

/// Adds a rule with the CLI; answers its id.
fn add_rule(edge: &TestEdge, rule: &str) -> String {
    let output = sigstage(&["rules", "add", "--org", "acme", rule], &edge.db.vars);
    assert!(output.status.success(), "{}", stderr(&output));
    let added: Value = serde_json::from_str(stdout(&output).trim()).expect("the rule as JSON");
    added["id"].as_str().expect("id").to_owned()
}

/// The processed records so far, in order (the tests use one visitor, so one partition).
async fn processed(edge: &TestEdge, count: usize) -> Vec<Value> {
    let records = read_records(&edge.db.config, &edge.topic(topics::SIGNALS_PROCESSED), count).await;
    records.iter().map(payload_json).collect()
}

/// Sends distinct copies of `body` (`{n}` numbered) until one comes out satisfying `done`:
/// the processor applies rule changes within its refresh, with no restart. Answers the
/// processed record and how many records there are now.
async fn send_until(edge: &TestEdge, uri: &str, sent: &mut usize, body: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        *sent += 1;
        let answer = edge.post_json(uri, &body.replace("{n}", &sent.to_string())).await;
        assert_eq!(answer.status, 202, "{}", answer.text);
        let last = processed(edge, *sent).await.pop().expect("a record");
        if done(&last) {
            return last;
        }
        assert!(Instant::now() < deadline, "the rule change never applied; last record: {last}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_apply_and_reload_without_a_restart() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let uri = format!("/api/signal-staging/webhook/{key}");
    let form = r#"{"type":"track","event":"Form Submitted","anonymousId":"v1","messageId":"m{n}",
        "properties":{"form_name":"demo","work_email":" Ann@Corp.IO ","company":"Corp"}}"#;

    let mut sent = 0;
    let before = send_until(&edge, &uri, &mut sent, form, |_| true).await;
    assert_eq!((before["mapped"].as_bool(), before["hot"].as_bool()), (Some(false), Some(false)));
    assert_eq!(before["fields"], serde_json::json!({}));

    let rule = add_rule(
        &edge,
        r#"{"name":"demo form","source":"segment","event":"Form Submitted",
            "conditions":[{"path":"properties.form_name","op":"equals","value":"demo"}],
            "map":{"email":"properties.work_email","company":"properties.company","custom.form":"properties.form_name"}}"#,
    );
    let mapped = send_until(&edge, &uri, &mut sent, form, |record| record["mapped"] == true).await;
    assert_eq!(mapped["rules"], serde_json::json!([rule]));
    assert_eq!((mapped["email"].as_str(), mapped["hot"].as_bool()), (Some("ann@corp.io"), Some(true)));
    assert_eq!(mapped["fields"], serde_json::json!({"company": "Corp", "custom.form": "demo"}));

    // Each mapped signal is announced once as signal.created, with the processed record.
    let outbox = edge.topic(topics::WEBHOOKS_OUTBOX);
    let events: Vec<Value> = read_records(&edge.db.config, &outbox, 3).await.iter().map(payload_json).collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().expect("type")).collect();
    assert_eq!(types, ["lead.created", "lead.identified", "signal.created"]);
    assert_eq!(events[2]["data"]["signal_id"], mapped["signal_id"]);
    assert_eq!(events[2]["data"]["fields"]["company"], "Corp");

    let removed = sigstage(&["rules", "remove", "--org", "acme", &rule], &edge.db.vars);
    assert!(removed.status.success(), "{}", stderr(&removed));
    send_until(&edge, &uri, &mut sent, form, |record| record["mapped"] == false).await;
    let missing = sigstage(&["rules", "remove", "--org", "acme", &rule], &edge.db.vars);
    assert!(!missing.status.success());
    assert!(stderr(&missing).contains("has no rule"), "{}", stderr(&missing));

    // Unmapped signals are in the signal queue, grouped by source and event.
    caught_up(&edge.db.config).await;
    let unmapped = processed(&edge, sent).await.iter().filter(|r| r["mapped"] == false).count() as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    let group = loop {
        let output = sigstage(&["queue", "--org", "acme", "--json"], &edge.db.vars);
        assert!(output.status.success(), "{}", stderr(&output));
        let groups: Vec<Value> = stdout(&output).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
        if groups.first().is_some_and(|g| g["signals"].as_u64() == Some(unmapped)) {
            break groups[0].clone();
        }
        assert!(Instant::now() < deadline, "queue never counted {unmapped} signals: {groups:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((group["source"].as_str(), group["event"].as_str()), (Some("segment"), Some("Form Submitted")));
    assert!(group["sample"].as_str().expect("sample").contains("work_email"));
    let table = stdout(&sigstage(&["queue", "--org", "acme"], &edge.db.vars));
    assert!(table.contains("Form Submitted") && table.contains("segment"), "{table}");
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_operator_matches_real_records() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let condition = |name: &str, condition: &str| {
        add_rule(&edge, &format!(r#"{{"name":"{name}","conditions":[{condition}],"map":{{"custom.{name}":"event"}}}}"#))
    };
    let ids = [
        condition("exists", r#"{"path":"properties.form_name","op":"exists"}"#),
        condition("equals", r#"{"path":"properties.seats","op":"equals","value":10}"#),
        condition("contains", r#"{"path":"context.page.url","op":"contains","value":"/pricing"}"#),
        condition("prefix", r#"{"path":"context.page.url","op":"prefix","value":"https://acme.io/"}"#),
        condition("regex", r#"{"path":"context.page.url","op":"regex","value":"/v[0-9]+$"}"#),
        condition("in", r#"{"path":"properties.plan","op":"in","values":["pro","team"]}"#),
    ];
    let invalid = sigstage(
        &["rules", "add", "--org", "acme", r#"{"name":"bad","conditions":[{"path":"x","op":"regex","value":"("}]}"#],
        &edge.db.vars,
    );
    assert!(!invalid.status.success());
    assert!(stderr(&invalid).contains("conditions[0].value: not a valid regex"), "{}", stderr(&invalid));
    let listed = stdout(&sigstage(&["rules", "list", "--org", "acme"], &edge.db.vars));
    assert_eq!(listed.lines().count(), ids.len(), "{listed}");

    let processor = start_processor(&edge.db.config);
    let uri = format!("/api/signal-staging/webhook/{key}");
    let all = r#"{"event":"all","anonymousId":"v2","properties":{"form_name":"demo","seats":10,"plan":"team"},
        "context":{"page":{"url":"https://acme.io/pricing/v2"}}}"#;
    let none = r#"{"event":"none","anonymousId":"v2","properties":{"form_name":null,"seats":"10","plan":"free"},
        "context":{"page":{"url":"http://other.io/docs/vX"}}}"#;
    for body in [all, none] {
        assert_eq!(edge.post_json(&uri, body).await.status, 202);
    }
    let records = processed(&edge, 2).await;
    processor.stop().await;
    assert_eq!(records[0]["rules"], serde_json::json!(ids), "every operator matched, in creation order");
    assert_eq!(records[0]["fields"]["custom.regex"], "all");
    assert_eq!((records[1]["mapped"].as_bool(), records[1].get("rules")), (Some(false), None));
}

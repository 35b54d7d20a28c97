//! A rule against the signals already stored (`sigstage rules preview`, issue 24): stored before
//! the rule existed, through the whole pipeline, the signals a new rule would map, attribute and
//! rehydrate, and the leads it would make, counted exactly; nothing is written.

use serde_json::Value;

use crate::support::edge::TestEdge;
use crate::support::pipeline::{await_count, start_processor, start_sink};
use crate::support::{sigstage, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_previewed_on_history_counts_what_it_would_change() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let uri = format!("/api/signal-staging/webhook/{key}");
    let form = |visitor: &str, email: &str, n: u32| {
        format!(
            r#"{{"type":"track","event":"Form Submitted","anonymousId":"{visitor}","messageId":"f{n}","properties":{{"work_email":"{email}"}}}}"#
        )
    };
    let signals = [
        r#"{"type":"page","name":"Pricing","anonymousId":"h1","messageId":"p1"}"#.to_owned(),
        form("h1", "Ann@X.io", 1),
        form("h2", "bo@x.io", 2),
        r#"{"type":"identify","anonymousId":"h3","messageId":"i3","traits":{"email":"cy@x.io"}}"#.to_owned(),
        form("h3", "cy@x.io", 3),
        r#"{"type":"track","event":"Other","anonymousId":"h4","messageId":"o4"}"#.to_owned(),
    ];
    for signal in &signals {
        assert_eq!(edge.post_json(&uri, signal).await.status, 202, "{signal}");
    }
    // The forms' emails are at a path no default knows: four anonymous, h3's two hot.
    await_count(&edge.db.client, "SELECT count() FROM signals_hot WHERE org_id = 'acme'", 2).await;
    await_count(&edge.db.client, "SELECT count() FROM signals_cold WHERE org_id = 'acme'", 4).await;
    sink.stop().await;
    processor.stop().await;

    let rule =
        r#"{"name":"Forms","source":"segment","event":"Form Submitted","map":{"email":"properties.work_email"}}"#;
    let added = sigstage(&["rules", "add", "--org", "acme", rule], &edge.db.vars);
    assert!(added.status.success(), "{}", stderr(&added));
    let rule_id =
        serde_json::from_str::<Value>(stdout(&added).trim()).expect("rule")["id"].as_str().expect("id").to_owned();
    let before: u64 = edge.db.client.query("SELECT count() FROM signals_hot").fetch_one().await.expect("count");

    let previewed = sigstage(&["rules", "preview", &rule_id, "--org", "acme", "--since", "2000-01-01"], &edge.db.vars);
    assert!(previewed.status.success(), "{}", stderr(&previewed));
    let preview: Value = serde_json::from_str(&stdout(&previewed)).expect("JSON");
    let counts =
        ["signals", "matched", "newly_mapped", "newly_attributed", "visitors_identified", "rehydrated", "new_leads"]
            .map(|name| preview[name].as_u64().unwrap_or_else(|| panic!("{name} in {preview}")));
    // Six signals; three forms, none mapped when it came; two anonymous forms get an email, h1
    // and h2 are identified (h3 was already), h1's page is rehydrated, two leads are new.
    assert_eq!(counts, [6, 3, 3, 2, 2, 1, 2], "{preview}");
    assert_eq!(preview["sample_leads"], serde_json::json!(["ann@x.io", "bo@x.io"]));
    let after: u64 = edge.db.client.query("SELECT count() FROM signals_hot").fetch_one().await.expect("count");
    assert_eq!(after, before, "a preview writes nothing");

    let old = sigstage(
        &["rules", "preview", &rule_id, "--org", "acme", "--since", "2000-01-01", "--until", "2001-01-01"],
        &edge.db.vars,
    );
    let none: Value = serde_json::from_str(&stdout(&old)).expect("JSON");
    assert_eq!(none["signals"], 0, "{none}");
    let unknown = sigstage(&["rules", "preview", "rule_x", "--org", "acme", "--since", "2000-01-01"], &edge.db.vars);
    assert!(!unknown.status.success() && stderr(&unknown).contains("has no rule"), "{}", stderr(&unknown));
    let bad = sigstage(&["rules", "preview", &rule_id, "--org", "acme", "--since", "March"], &edge.db.vars);
    assert!(!bad.status.success() && stderr(&bad).contains("not a day"), "{}", stderr(&bad));
}

//! A rule applied to the signals already stored (`sigstage rules apply`, issue 24), through the
//! real stream and sink: 10 000 signals stored before the rule existed, applied, give the same hot
//! rows, links and leads as the same signals sent after it was added; a second apply changes
//! nothing; an apply that crashes at each step of a chunk (sent but not recorded, recorded but
//! the next not read) resumes and ends
//! exact. Every count is physical (`count()`, no `FINAL`).

use axum::body::Body;
use axum::http::Request;
use serde_json::Value;

use axum::http::{header, StatusCode};
use http_body_util::BodyExt;
use runtime::config::{AdminToken, Secret};
use tower::ServiceExt;

use crate::support::edge::TestEdge;
use crate::support::pipeline::{assert_no_row_twice, await_count, start_processor, start_sink};
use crate::support::{sigstage, stderr, stdout};

/// Visitors who fill in the form (after three pages and a click), and visitors who never do.
const IDENTIFIED: usize = 1_940;
const ANONYMOUS: usize = 100;
/// Visitors of the orgs whose apply crashes: three chunks of stored signals.
const CRASHED: usize = 1_000;

/// `identified` visitors' signals and [`ANONYMOUS`] visitors', as NDJSON: each visitor's in
/// order, the form last; with [`IDENTIFIED`], 10 000.
fn history(org: &str, identified: usize) -> String {
    let mut lines = String::new();
    let signal = |lines: &mut String, visitor: &str, n: usize, body: &str| {
        lines.push_str(&format!(r#"{{"anonymousId":"{org}-{visitor}","messageId":"{visitor}-{n}",{body}}}"#));
        lines.push('\n');
    };
    for v in 0..identified {
        let visitor = format!("v{v}");
        for (n, page) in ["Home", "Pricing", "Docs"].iter().enumerate() {
            signal(&mut lines, &visitor, n, &format!(r#""type":"page","name":"{page}""#));
        }
        signal(&mut lines, &visitor, 3, r#""type":"track","event":"Clicked","properties":{"plan":"pro"}"#);
        let form = format!(
            r#""type":"track","event":"Form Submitted","properties":{{"work_email":"Lead{v}@Example.com","job":"cto"}}"#
        );
        signal(&mut lines, &visitor, 4, &form);
    }
    for v in 0..ANONYMOUS {
        for n in 0..3 {
            signal(&mut lines, &format!("a{v}"), n, r#""type":"page","name":"Home""#);
        }
    }
    lines
}

const RULE: &str = r#"{"name":"Forms","source":"segment","event":"Form Submitted","map":{"email":"properties.work_email","title":"properties.job"}}"#;

async fn send_history(edge: &TestEdge, org: &str, identified: usize) {
    let key = edge.key(org, &[]).await;
    let request = Request::post(format!("/api/signal-staging/bulk/{key}"))
        .header("content-type", "application/x-ndjson")
        .body(Body::from(history(org, identified)))
        .expect("request");
    let answer = edge.call(request).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    assert_eq!(answer.json["accepted"], identified * 5 + ANONYMOUS * 3, "{}", answer.text);
}

fn add_rule(edge: &TestEdge, org: &str) -> String {
    let added = sigstage(&["rules", "add", "--org", org, RULE], &edge.db.vars);
    assert!(added.status.success(), "{}", stderr(&added));
    serde_json::from_str::<Value>(stdout(&added).trim()).expect("rule")["id"].as_str().expect("id").to_owned()
}

/// Rows of each table of `org`, physically.
async fn counts(client: &clickhouse::Client, org: &str) -> [u64; 4] {
    let mut counts = [0; 4];
    for (count, table) in counts.iter_mut().zip(["signals_hot", "signals_cold", "identities", "leads"]) {
        let query = format!("SELECT count() FROM {table} WHERE org_id = '{org}'");
        *count = client.query(&query).fetch_one().await.expect("count");
    }
    counts
}

/// An org's hot rows as an analyst reads them, in one order (signal ids differ between orgs).
async fn hot_rows(client: &clickhouse::Client, org: &str) -> Vec<(String, String, String, u64, String, String)> {
    client
        .query(
            "SELECT lead_email, event, attributed_by, length(rules), fields, \
             replaceOne(anonymous_id, ?, '') AS visitor FROM signals_hot WHERE org_id = ? \
             ORDER BY lead_email, visitor, event, attributed_by, fields",
        )
        .bind(format!("{org}-"))
        .bind(org)
        .fetch_all()
        .await
        .expect("hot rows")
}

/// The CLI's variables: the test's, with its stream's 200 ms control refresh (start_processor),
/// which an apply waits two of for the stream to hold the rule.
fn vars(edge: &TestEdge, extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    let mut vars = edge.db.vars.clone();
    vars.insert("SIGSTAGE_CONTROL_REFRESH_MS".into(), "200".into());
    vars.extend(extra.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
    vars
}

fn apply(edge: &TestEdge, org: &str, rule: &str, extra: &[(&str, &str)]) -> std::process::Output {
    sigstage(&["rules", "apply", rule, "--org", org, "--since", "2000-01-01", "--rate", "100000"], &vars(edge, extra))
}

fn job_of(output: &std::process::Output) -> Value {
    serde_json::from_str(stdout(output).trim()).unwrap_or_else(|_| panic!("a job: {}", stdout(output)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_applied_to_history_writes_what_it_would_have_written_once() {
    let edge = TestEdge::start().await;
    let client = &edge.db.client;
    let hot = IDENTIFIED as u64 * 5;
    let cold = IDENTIFIED as u64 * 4 + ANONYMOUS as u64 * 3;
    let [before, after] = ["hist-before", "hist-after"];
    // A crash at each step of a chunk: sent but not recorded, recorded but the next not read.
    let crashes = [("hist-crash-sent", "history.sent:2", 2_000), ("hist-crash-saved", "history.saved:2", 4_000)];

    // The rule first (the stream loads it as it starts), then the signals: what history must become.
    add_rule(&edge, after);
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    send_history(&edge, after, IDENTIFIED).await;
    // Stored before the rule: nothing attributed.
    send_history(&edge, before, IDENTIFIED).await;
    for (crash, _, _) in crashes {
        send_history(&edge, crash, CRASHED).await;
    }
    await_count(client, &format!("SELECT count() FROM signals_hot WHERE org_id = '{after}'"), hot).await;
    await_count(client, &format!("SELECT count() FROM signals_cold WHERE org_id = '{before}'"), 10_000).await;
    let crashed_signals = CRASHED as u64 * 5 + ANONYMOUS as u64 * 3;
    for (crash, _, _) in crashes {
        await_count(client, &format!("SELECT count() FROM signals_cold WHERE org_id = '{crash}'"), crashed_signals)
            .await;
    }
    assert_eq!(counts(client, after).await, [hot, cold, IDENTIFIED as u64, IDENTIFIED as u64], "live, with the rule");
    // History keeps its cold rows (as a rehydrated signal does): the forms are in both tables.
    let expected = [hot, 10_000, IDENTIFIED as u64, IDENTIFIED as u64];
    assert_eq!(counts(client, before).await, [0, 10_000, 0, 0], "stored before the rule");

    let rule = add_rule(&edge, before);
    let dry =
        sigstage(&["rules", "apply", &rule, "--org", before, "--since", "2000-01-01", "--dry-run"], &edge.db.vars);
    let preview: Value = serde_json::from_str(&stdout(&dry)).expect("a preview");
    assert_eq!(preview["newly_attributed"], IDENTIFIED, "{preview}");
    assert_eq!(counts(client, before).await, [0, 10_000, 0, 0], "a dry run writes nothing");

    let applied = apply(&edge, before, &rule, &[]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    let job = job_of(&applied);
    assert_eq!(
        (job["state"].as_str(), job["read"].as_u64(), job["sent"].as_u64()),
        (Some("done"), Some(10_000), Some(IDENTIFIED as u64)),
        "{job}"
    );
    await_count(client, &format!("SELECT count() FROM signals_hot WHERE org_id = '{before}'"), hot).await;
    await_count(client, &format!("SELECT count() FROM leads WHERE org_id = '{before}'"), IDENTIFIED as u64).await;
    assert_eq!(counts(client, before).await, expected, "applied to history, as if the rule had been there");
    assert_eq!(hot_rows(client, before).await, hot_rows(client, after).await);

    // Again: the same signals are sent, and nothing changes.
    let again = apply(&edge, before, &rule, &[]);
    assert!(again.status.success(), "{}", stderr(&again));
    let job = job_of(&again);
    assert_eq!(job["sent"], 0, "attributed signals are not sent again: {job}");
    assert_eq!(counts(client, before).await, expected, "a second apply changes nothing");

    for (crash, fault, recorded) in crashes {
        let rule = add_rule(&edge, crash);
        let crashed = apply(&edge, crash, &rule, &[("SIGSTAGE_FAULT", fault)]);
        assert!(!crashed.status.success() && stderr(&crashed).contains("fault injected"), "{}", stderr(&crashed));
        let jobs = sigstage(&["rules", "jobs", "--org", crash], &edge.db.vars);
        let job: Value = serde_json::from_str(stdout(&jobs).lines().next().expect("a job")).expect("JSON");
        assert_eq!((job["state"].as_str(), job["read"].as_u64()), (Some("running"), Some(recorded)), "{fault}: {job}");
        let job_id = job["job_id"].as_str().expect("id");
        let resumed = sigstage(&["rules", "resume", job_id, "--org", crash], &vars(&edge, &[]));
        assert!(resumed.status.success(), "{}", stderr(&resumed));
        assert_eq!(job_of(&resumed)["state"], "done", "{}", stdout(&resumed));
        let leads = CRASHED as u64;
        await_count(client, &format!("SELECT count() FROM signals_hot WHERE org_id = '{crash}'"), leads * 5).await;
        await_count(client, &format!("SELECT count() FROM leads WHERE org_id = '{crash}'"), leads).await;
        let exact = [leads * 5, crashed_signals, leads, leads];
        assert_eq!(counts(client, crash).await, exact, "resumed after a crash at {fault}, exact");
        // Pausing or cancelling a finished job is refused, saying why.
        let finished = sigstage(&["rules", "pause", job_id, "--org", crash], &edge.db.vars);
        assert!(!finished.status.success() && stderr(&finished).contains("is done already"), "{}", stderr(&finished));
    }
    assert_no_row_twice(client).await;
    sink.stop().await;
    processor.stop().await;
}

const TOKEN: &str = "admin-token-of-the-apply-test";

async fn admin(edge: &TestEdge, method: &str, uri: &str, body: &str) -> (StatusCode, Value) {
    let settings = admin::Settings {
        kafka: Some(edge.db.config.kafka.clone()),
        tokens: vec![AdminToken { id: "admin".into(), read_only: false, org: None, secret: Secret::new(TOKEN) }],
        public_url: "http://127.0.0.1:1".into(),
        tails: admin::TailLimits::default(),
        people: admin::PeopleReach { cluster: None, refresh: std::time::Duration::from_millis(200) },
    };
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json");
    let response = admin::router(edge.db.client.clone(), settings)
        .oneshot(request.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("answer");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// The admin API starts a job in the background and reports it; bad input is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_applies_a_rule_as_a_background_job() {
    let edge = TestEdge::start().await;
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let client = &edge.db.client;
    send_history(&edge, "api", 40).await;
    await_count(client, "SELECT count() FROM signals_cold WHERE org_id = 'api'", 40 * 5 + ANONYMOUS as u64 * 3).await;
    let rule = add_rule(&edge, "api");
    let apply = format!("/api/admin/orgs/api/rules/{rule}/apply");

    let (status, preview) = admin(&edge, "POST", &apply, r#"{"since":"2000-01-01","dry_run":true}"#).await;
    assert_eq!((status, preview["newly_attributed"].as_u64()), (StatusCode::OK, Some(40)), "{preview}");
    for (body, code) in [
        (r#"{"since":"March"}"#, "invalid_range"),
        (r#"{"since":"2000-01-01","rate":"fast"}"#, "invalid_apply"),
        (r#"{"since":"2000-01-01","everything":true}"#, "invalid_apply"),
    ] {
        let (status, answer) = admin(&edge, "POST", &apply, body).await;
        assert_eq!((status.is_client_error(), answer["error"].as_str()), (true, Some(code)), "{body}: {answer}");
    }
    let (status, answer) =
        admin(&edge, "POST", "/api/admin/orgs/api/rules/rule_none/apply", r#"{"since":"2000-01-01"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    let (status, job) = admin(&edge, "POST", &apply, r#"{"since":"2000-01-01"}"#).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_id = job["job_id"].as_str().expect("a job id").to_owned();
    // Done in the background: awaited through the API.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let job = loop {
        let (status, job) = admin(&edge, "GET", &format!("/api/admin/orgs/api/rules/jobs/{job_id}"), "").await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if job["state"] == "done" {
            break job;
        }
        assert!(std::time::Instant::now() < deadline, "{job}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!((job["read"].as_u64(), job["sent"].as_u64()), (Some(40 * 5 + ANONYMOUS as u64 * 3), Some(40)), "{job}");
    await_count(client, "SELECT count() FROM signals_hot WHERE org_id = 'api'", 40 * 5).await;
    let (_, jobs) = admin(&edge, "GET", "/api/admin/orgs/api/rules/jobs", "").await;
    assert_eq!(jobs.as_array().map(Vec::len), Some(1), "{jobs}");
    let act = |action: &str| format!("/api/admin/orgs/api/rules/jobs/{job_id}/{action}");
    let (status, answer) = admin(&edge, "POST", &act("cancel"), "").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::CONFLICT, Some("job_finished")), "{answer}");
    let (status, answer) = admin(&edge, "POST", &act("explode"), "").await;
    assert_eq!((status, answer["error"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_action")), "{answer}");
    sink.stop().await;
    processor.stop().await;
}

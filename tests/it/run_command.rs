//! `sigstage run` reaches its ready line with a working demo key, serves the health endpoints,
//! stops cleanly on SIGTERM, and reuses the demo key on the next start.

use std::path::Path;
use std::time::Duration;

use control::keys::{Endpoint, KeySet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::pipeline::{http, metric, start_ready, Ready};
use crate::support::{unique, TestDb};

/// `sigstage run` with its demo key in `key_file`, an admin token, debug logs, and the rollups
/// compacted every second.
async fn start(db: &TestDb, key_file: &Path) -> Ready {
    let key_file = key_file.to_str().expect("a UTF-8 path");
    let extra = [
        ("RUST_LOG", "debug"),
        ("SIGSTAGE_ADMIN_ADDR", "127.0.0.1:0"),
        ("SIGSTAGE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("SIGSTAGE_ROLLUPS_COMPACT_INTERVAL_MS", "1000"),
    ];
    start_ready(&db.vars, &["run", "--demo-key-file", key_file], &extra)
        .await
        .unwrap_or_else(|(status, logs)| panic!("sigstage run: {status}: {logs}"))
}

const ADMIN_TOKEN: &str = "admin-token-of-the-run-test";

fn admin(running: &Ready) -> &str {
    running.admin.as_deref().expect("the admin listener's ready line")
}

fn demo_key(running: &Ready) -> String {
    running.demo_key.clone().expect("the demo key's ready line")
}

/// A GET with a bearer token.
async fn get_with_token(addr: &str, path: &str, token: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

#[tokio::test]
async fn run_prints_a_working_demo_key_and_reuses_it() {
    let db = TestDb::migrated().await;
    let key_file = std::env::temp_dir().join(unique("sigstage-demo-key"));

    let first = start(&db, &key_file).await;
    assert!(http(&first.addr, "GET /healthz", "").await.starts_with("HTTP/1.1 200"));
    // Ready once every stage runs: until then /readyz says which are still starting.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let ready = http(&first.addr, "GET /readyz", "").await;
        if ready.starts_with("HTTP/1.1 200") {
            for stage in ["stream", "sink", "webhooks"] {
                assert!(ready.contains(&format!(r#""{stage}":{{"status":"running"}}"#)), "{ready}");
            }
            break;
        }
        assert!(ready.starts_with("HTTP/1.1 503") && ready.contains(r#""stages""#), "{ready}");
        assert!(std::time::Instant::now() < deadline, "not ready after 60 s: {ready}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The admin API is on its own listener, never on the public one.
    let rules = "/api/admin/orgs/demo/rules";
    assert!(
        get_with_token(&first.addr, rules, ADMIN_TOKEN).await.starts_with("HTTP/1.1 404"),
        "not on the public port"
    );
    let listed = get_with_token(admin(&first), rules, ADMIN_TOKEN).await;
    assert!(listed.starts_with("HTTP/1.1 200") && listed.contains(r#""rules":[]"#), "{listed}");
    assert!(get_with_token(admin(&first), rules, "wrong-token").await.starts_with("HTTP/1.1 401"));

    // Every metric is there from the first scrape, at zero until something happens.
    let metrics = http(&first.addr, "GET /metrics", "").await;
    for line in [
        "sigstage_build_info{version=",
        r#"sigstage_stage_restarts_total{stage="stream"} 0"#,
        r#"sigstage_stage_restarts_total{stage="sink"} 0"#,
        r#"sigstage_stage_end_to_end_seconds_bucket{stage="sink",le="0.001"}"#,
        "sigstage_stream_dedupe_evicted_early_total 0",
        r#"sigstage_sink_rows_skipped_total{table="signals_hot"} 0"#,
        r#"sigstage_ingest_signals_total{endpoint="collect",outcome="accepted"} 0"#,
        r#"sigstage_rollups_compactions_total{result="failed"} 0"#,
    ] {
        assert!(metrics.contains(line), "/metrics lacks {line}: {metrics}");
    }
    let keys = KeySet::load(&db.client).await.expect("keys");
    let entry = keys
        .authenticate(&demo_key(&first), None, Endpoint::SignalStaging, runtime::time::now_ms())
        .expect("the demo key works");
    assert_eq!(&*entry.org_id, "demo");
    let key = demo_key(&first);
    let accepted =
        http(&first.addr, &format!("POST /api/signal-staging/webhook/{key}"), r#"{"email":"a@b.io","event":"test"}"#)
            .await;
    assert!(accepted.starts_with("HTTP/1.1 202"), "the printed curl example works: {accepted}");
    let refused = http(&first.addr, "POST /api/signal-staging/webhook/sgk_not-a-real-key", "{}").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    // The stages' client statistics have arrived (the sink's lag of the partitions that took the
    // signal is in /metrics): they feed the metric, and no client logs them (rdkafka's default
    // context logs kilobytes every 5 s, and every client had lived past its first 5 s by then).
    // The sink has compacted the rollups on its schedule by then too, and timed the signal from
    // the edge (the stream's outputs carry the edge's receive time).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let metrics = http(&first.addr, "GET /metrics", "").await;
        let compactions = |result| metric(&metrics, "sigstage_rollups_compactions_total", result);
        let timed = metric(&metrics, "sigstage_stage_end_to_end_seconds_count", r#"stage="sink""#);
        if metrics.contains(r#"sigstage_stage_consumer_lag{stage="sink""#)
            && compactions(r#"result="done""#) >= Some(1.0)
            && timed >= Some(1.0)
        {
            assert_eq!(compactions(r#"result="failed""#), Some(0.0), "{metrics}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no lag, no compaction, or the signal not timed by the sink, after 60 s: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs = first.stop().await;
    assert!(!logs.contains("Client stats") && !logs.contains("Statistics {"), "statistics in the log: {logs}");
    assert!(logs.contains(r#"route="webhook" status=202"#), "requests are logged by route: {logs}");
    assert!(!logs.contains(&key) && !logs.contains("sgk_not-a-real-key"), "no API key in the logs");

    let second = start(&db, &key_file).await;
    assert_eq!(demo_key(&second), key, "the saved demo key is reused");
    second.stop().await;
    assert_eq!(KeySet::load(&db.client).await.expect("keys").len(), 1, "no second key created");
    let _ = std::fs::remove_file(key_file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_requests_in_flight() {
    let db = TestDb::migrated().await;
    let key_file = std::env::temp_dir().join(unique("sigstage-demo-key"));
    let running = start(&db, &key_file).await;
    let uri = format!("/api/signal-staging/webhook/{}", demo_key(&running));

    // Forty requests written in full, then SIGTERM before their answers are read.
    let mut streams = Vec::new();
    for n in 0..40 {
        let mut stream = tokio::net::TcpStream::connect(&running.addr).await.expect("connect");
        let body = format!(r#"{{"email":"drain{n}@example.com","event":"drain"}}"#);
        let request = format!(
            "POST {uri} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        streams.push(stream);
    }
    // Connections are accepted in order: once this answer arrives, the forty were accepted.
    assert!(http(&running.addr, "GET /healthz", "").await.starts_with("HTTP/1.1 200"));
    let pid = running.child.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());

    // A request the server had begun is answered in full; one it had not yet read may be
    // closed unanswered (the sender retries it). Nothing in between, and no 202 is lost.
    let mut ids = Vec::new();
    for mut stream in streams {
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response).await;
        if response.is_empty() {
            continue;
        }
        assert!(response.starts_with("HTTP/1.1 202"), "{response}");
        let body = &response[response.find("\r\n\r\n").expect("body") + 4..];
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        ids.push(json["id"].as_u64().expect("id"));
    }
    assert!(!ids.is_empty(), "requests in flight at SIGTERM are answered");
    let mut child = running.child;
    assert!(child.wait().await.expect("exit").success(), "graceful shutdown exits 0");

    let config = crate::support::config_of(&db.vars);
    let topic = config.kafka.topic(runtime::kafka::topics::SIGNALS_RAW);
    let records = crate::support::edge::read_records(&config, &topic, ids.len()).await;
    let mut written: Vec<u64> = records
        .iter()
        .filter_map(|r| crate::support::edge::header(r, schemas::record::headers::SIGNAL_ID)?.parse().ok())
        .collect();
    written.sort_unstable();
    ids.sort_unstable();
    assert_eq!(written, ids, "every answered signal reached the broker");
    let _ = std::fs::remove_file(key_file);
}

/// On new, empty topics the stream restores its (empty) state as soon as it is given its
/// partitions, not when their first record arrives, which once left a fresh `make run` in
/// `restoring` for most of a minute and the first signal waiting; and reading an empty
/// changelog waits for no fetch.
#[tokio::test]
async fn a_fresh_stream_restores_before_any_record_arrives() {
    let db = TestDb::migrated().await;
    let started = std::time::Instant::now();
    let stream = start_ready(&db.vars, &["stream"], &[])
        .await
        .unwrap_or_else(|(status, logs)| panic!("sigstage stream: {status}: {logs}"));
    let deadline = started + Duration::from_secs(20);
    let metrics = loop {
        let metrics = http(&stream.addr, "GET /metrics", "").await;
        if metrics.contains(r#"sigstage_stage_restore_seconds_count{stage="stream"} 1"#) {
            break metrics;
        }
        assert!(std::time::Instant::now() < deadline, "no restore 20 s after start, with no record sent: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took =
        metric(&metrics, "sigstage_stage_restore_seconds_sum", r#"stage="stream""#).expect("the restore's duration");
    eprintln!(
        "fresh stream: restored {:.2} s after start, the restore itself {took:.3} s",
        started.elapsed().as_secs_f64()
    );
    // Reading two empty changelogs took 3.2 s of fetch waits before.
    assert!(took < 2.0, "restoring nothing took {took} s");
    let (code, ready) = crate::support::pipeline::readyz(&stream.addr).await;
    assert_eq!((code, &ready["stages"]["stream"]["status"]), (200, &serde_json::json!("running")), "{ready}");
    stream.stop().await;
}

//! The Segment Tracking API driven by the real clients, installed from PyPI and npm at pinned
//! versions (`scripts/sdk-clients.sh`): segment-analytics-python, rudder-sdk-python,
//! @segment/analytics-node and @rudderstack/rudder-sdk-node, each against `sigstage run` on
//! loopback through its normal API; and the browser's text/plain beacons. Rows are counted
//! physically (no FINAL).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::pipeline::{start_ready, Ready};
use crate::support::{sigstage, stderr, stdout, unique, TestDb};

const CLIENTS: [&str; 4] = ["segment-python", "rudder-python", "segment-node", "rudder-node"];

/// Runs one client's PHASE (see tests/sdk/clients.py) against `host`.
fn run_client(client: &str, host: &str, key: &str, run: &str, phase: &str) -> std::process::Output {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let state = root.join(".state/sdk");
    assert!(
        state.join("python").is_dir() && state.join("node/node_modules").is_dir(),
        "run scripts/sdk-clients.sh (make test does)"
    );
    let mut command = if client.ends_with("python") {
        let mut command = std::process::Command::new("python3");
        command.arg(root.join("tests/sdk/clients.py")).env("PYTHONPATH", state.join("python"));
        command
    } else {
        let mut command = std::process::Command::new("node");
        command.arg(root.join("tests/sdk/clients.cjs")).env("NODE_PATH", state.join("node/node_modules"));
        command
    };
    command.args([client, host, key, run, phase]).output().expect("the client runs")
}

async fn count(db: &TestDb, sql: &str, bind: &str) -> u64 {
    db.client.query(sql).bind(bind).fetch_one::<u64>().await.expect("count")
}

/// Waits until `sql` (bound to `bind`) counts `expected`.
async fn await_count(db: &TestDb, sql: &str, bind: &str, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counted = count(db, sql, bind).await;
        if counted == expected {
            return;
        }
        assert!(Instant::now() < deadline, "{sql} [{bind}]: {counted}, expected {expected}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn start(db: &TestDb) -> (Ready, String) {
    let run = start_ready(&db.vars, &["run"], &[]).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    let created = sigstage(&["keys", "create", "--org", "acme"], &db.vars);
    assert!(created.status.success(), "{}", stderr(&created));
    (run, stdout(&created).trim().to_owned())
}

const LINKED: &str = "SELECT count() FROM identities WHERE org_id = 'acme' AND anonymous_id = ?";
const HOT: &str = "SELECT count() FROM signals_hot WHERE org_id = 'acme' AND lead_email = ?";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sdk_delivers_each_event_once_attributed_to_its_lead() {
    let db = TestDb::migrated().await;
    let (sigstage_run, key) = start(&db).await;
    let host = format!("http://{}", sigstage_run.addr);
    let run = unique("r");
    for client in CLIENTS {
        let email = format!("{client}-{run}@example.com");
        let before = run_client(client, &host, &key, &run, "before");
        assert!(before.status.success(), "{client}: {}", String::from_utf8_lossy(&before.stderr));
        // The identify is processed before what follows it is sent, as in an application.
        await_count(&db, LINKED, &format!("anon-{client}-{run}"), 1).await;
        let after = run_client(client, &host, &key, &run, "after");
        assert!(after.status.success(), "{client}: {}", String::from_utf8_lossy(&after.stderr));

        // All eight events hot under the lead, once each: the anonymous ones before the
        // identify rehydrated, the old device's through the alias.
        await_count(&db, HOT, &email, 8).await;
        let distinct = "SELECT uniqExact(signal_id) FROM signals_hot WHERE org_id = 'acme' AND lead_email = ?";
        assert_eq!(count(&db, distinct, &email).await, 8, "{client}");
        let kinds: Vec<String> = db
            .client
            .query("SELECT kind FROM signals_hot WHERE org_id = 'acme' AND lead_email = ? ORDER BY kind")
            .bind(&email)
            .fetch_all()
            .await
            .expect("kinds");
        assert_eq!(kinds, ["alias", "group", "identify", "page", "page", "track", "track", "track"], "{client}");
        // Links are written from their own topic, possibly in a later batch than the signals.
        for linked in [format!("user-{client}-{run}"), format!("old-{client}-{run}")] {
            await_count(&db, LINKED, &linked, 1).await;
        }
        let leaked = "SELECT countIf(position(payload, 'writeKey') > 0) FROM signals_hot WHERE lead_email = ?";
        assert_eq!(count(&db, leaked, &email).await, 0, "{client}: the writeKey is never stored");
        let corrected =
            "SELECT countIf(position(payload, '\"receivedAt\"') > 0 AND position(payload, '\"timestamp\"') > 0) \
                         FROM signals_hot WHERE lead_email = ?";
        assert_eq!(count(&db, corrected, &email).await, 8, "{client}: receivedAt and a corrected timestamp");
    }
    sigstage_run.stop().await;
}

/// A TCP proxy that, on its first connection, passes the request on and drops the answer (the
/// client sees the connection die after sending), and passes later connections through.
async fn dropping_proxy(target: String) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            let target = target.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else { return };
                if first {
                    // Forward the whole request, let the server answer, then hang up on the client.
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 65536];
                    loop {
                        let Ok(n) = client.read(&mut buffer).await else { return };
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buffer[..n]);
                        if complete(&request) {
                            break;
                        }
                    }
                    let _ = server.write_all(&request).await;
                    let _ = server.read(&mut buffer).await; // the answer, dropped
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (format!("http://{addr}"), connections)
}

/// Whether `request` holds its head and a body of its Content-Length.
fn complete(request: &[u8]) -> bool {
    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok())
        .unwrap_or(0);
    request.len() >= end + 4 + length
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_double_nothing_and_refusals_are_segments() {
    let db = TestDb::migrated().await;
    let (sigstage_run, key) = start(&db).await;
    let host = format!("http://{}", sigstage_run.addr);
    let run = unique("r");

    // The first batch's answer is lost on the way back: the client sends it again, and the
    // stream's messageId dedupe keeps one of each event.
    let (proxied, connections) = dropping_proxy(sigstage_run.addr.clone()).await;
    let client = "segment-python";
    let sent = run_client(client, &proxied, &key, &run, "before");
    assert!(sent.status.success(), "{}", String::from_utf8_lossy(&sent.stderr));
    assert!(connections.load(Ordering::SeqCst) >= 2, "the client retried on a new connection");
    // Both sendings reached the broker: 4 events, twice.
    let raw = db.config.kafka.topic(runtime::kafka::topics::SIGNALS_RAW);
    assert_eq!(crate::support::edge::count_records(&db.config, &raw), 8, "the batch was accepted twice");
    await_count(&db, LINKED, &format!("anon-{client}-{run}"), 1).await;
    let anonymous = format!("anon-{client}-{run}");
    let hot = "SELECT count() FROM signals_hot WHERE org_id = 'acme' AND anonymous_id = ?";
    await_count(&db, hot, &anonymous, 3).await;
    let cold = "SELECT count() FROM signals_cold WHERE org_id = 'acme' AND anonymous_id = ?";
    // Track and page once each (they stay cold too).
    await_count(&db, cold, &anonymous, 2).await;
    let old_device = format!("old-{client}-{run}");
    await_count(&db, cold, &old_device, 1).await;

    // The browser: text/plain beacons to the short paths, the writeKey in the body.
    let http = reqwest::Client::new();
    let beacon = |path: &str, body: String| {
        http.post(format!("{host}{path}")).header("content-type", "text/plain;charset=UTF-8").body(body).send()
    };
    let answer = beacon(
        "/v1/t",
        format!(r#"{{"writeKey":"{key}","anonymousId":"browser-{run}","event":"Clicked","messageId":"b1-{run}"}}"#),
    )
    .await
    .expect("sent");
    assert_eq!(answer.status(), 200);
    let batch = format!(
        r#"{{"writeKey":"{key}","batch":[{{"type":"page","anonymousId":"browser-{run}","messageId":"b2-{run}"}},
            {{"type":"identify","anonymousId":"browser-{run}","traits":{{"email":"browser-{run}@example.com"}},"messageId":"b3-{run}"}}]}}"#
    );
    assert_eq!(beacon("/v1/b", batch).await.expect("sent").status(), 200);
    await_count(&db, HOT, &format!("browser-{run}@example.com"), 3).await;

    // A team moving from Segment's Webhooks destination (seed 001) to the Tracking API: the same
    // event through both paths is one signal (one processed record, on its messageId).
    let processed = db.config.kafka.topic(runtime::kafka::topics::SIGNALS_PROCESSED);
    crate::support::pipeline::caught_up(&db.config).await;
    let processed_before = crate::support::edge::count_records(&db.config, &processed);
    let event =
        format!(r#"{{"type":"track","event":"Moved","anonymousId":"moving-{run}","messageId":"moving-{run}"}}"#);
    let destination = http
        .post(format!("{host}/api/signal-staging/webhook/{key}"))
        .header("content-type", "application/json")
        .body(event.clone())
        .send()
        .await
        .expect("sent");
    assert_eq!(destination.status(), 202);
    let tracked =
        http.post(format!("{host}/v1/track")).basic_auth(&key, Some("")).body(event).send().await.expect("sent");
    assert_eq!(tracked.status(), 200);
    crate::support::pipeline::caught_up(&db.config).await;
    assert_eq!(
        crate::support::edge::count_records(&db.config, &processed) - processed_before,
        1,
        "deduped across paths"
    );

    // Refusals, as Segment answers them: 401 for a wrong or missing writeKey, 400 for too large
    // or invalid JSON (the SDKs do not retry a 400).
    let track = |key: &str| format!(r#"{{"writeKey":"{key}","userId":"u","event":"E"}}"#);
    assert_eq!(beacon("/v1/track", track("sk_wrong")).await.expect("sent").status(), 401);
    let missing = beacon("/v1/track", r#"{"userId":"u","event":"E"}"#.to_owned()).await.expect("sent");
    assert_eq!(missing.status(), 401);
    assert!(missing.text().await.expect("body").contains("X-Write-Key"), "says where the writeKey goes");
    let huge =
        format!(r#"{{"writeKey":"{key}","userId":"u","event":"E","properties":{{"blob":"{}"}}}}"#, "x".repeat(40_000));
    assert_eq!(beacon("/v1/track", huge).await.expect("sent").status(), 400);
    assert_eq!(beacon("/v1/batch", "{not json".to_owned()).await.expect("sent").status(), 400);

    // A real client given an oversize event gets its refusal once and gives up on it: it ends.
    let started = Instant::now();
    let oversize = run_client("segment-node", &host, &key, &run, "oversize");
    assert!(oversize.status.success(), "{}", String::from_utf8_lossy(&oversize.stderr));
    assert!(started.elapsed() < Duration::from_secs(30), "the client did not retry for long: {:?}", started.elapsed());
    let hugely = "SELECT count() FROM signals_hot WHERE org_id = 'acme' AND event = ?";
    assert_eq!(count(&db, hugely, "Huge").await, 0, "refused, not stored");

    // A wrong writeKey through a real client: 401, reported, not retried for ever.
    let refused = run_client("rudder-python", &host, "sk_not_a_key", &run, "before");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
    sigstage_run.stop().await;
}

//! `sigstage run` reaches its ready line with a working demo key, serves the health endpoints,
//! stops cleanly on SIGTERM, and reuses the demo key on the next start.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::control::keys::{Endpoint, KeySet};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{unique, TestDb};

struct Running {
    child: Child,
    addr: String,
    key: String,
    /// Everything the process logs, available once it has exited.
    logs: tokio::task::JoinHandle<String>,
}

async fn start(db: &TestDb, key_file: &Path) -> Running {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigstage"));
    command.arg("run").arg("--demo-key-file").arg(key_file);
    command.envs(&db.vars).env("SIGSTAGE_HTTP_ADDR", "127.0.0.1:0").env("RUST_LOG", "debug");
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs).await;
        logs
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut addr, mut key) = (None, None);
    while key.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("ready line within 30 s")
            .expect("stdout readable")
            .expect("process still running");
        if let Some(rest) = line.strip_prefix("sigstage ready: ") {
            addr = rest.split("http://").nth(1).and_then(|s| s.split_whitespace().next()).map(str::to_owned);
        }
        key = line.strip_prefix("demo org key: ").map(str::to_owned);
    }
    // Keep reading stdout so the process never writes into a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Running { child, addr: addr.expect("ready line names the address"), key: key.expect("key"), logs }
}

async fn http(addr: &str, request_line: &str, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{request_line} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    response
}

/// Stops the process with SIGTERM and answers what it logged.
async fn stop(mut running: Running) -> String {
    let pid = running.child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(15), running.child.wait())
        .await
        .expect("stops within 15 s of SIGTERM")
        .expect("exit status");
    assert!(exit.success(), "graceful shutdown exits 0: {exit}");
    running.logs.await.expect("logs")
}

#[tokio::test]
async fn run_prints_a_working_demo_key_and_reuses_it() {
    let db = TestDb::migrated().await;
    let key_file = std::env::temp_dir().join(unique("sigstage-demo-key"));

    let first = start(&db, &key_file).await;
    assert!(http(&first.addr, "GET /healthz", "").await.starts_with("HTTP/1.1 200"));
    let ready = http(&first.addr, "GET /readyz", "").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let keys = KeySet::load(&db.client).await.expect("keys");
    let entry = keys
        .authenticate(&first.key, None, Endpoint::SignalStaging, common::time::now_ms())
        .expect("the demo key works");
    assert_eq!(&*entry.org_id, "demo");
    let key = first.key.clone();
    let accepted =
        http(&first.addr, &format!("POST /api/signal-staging/webhook/{key}"), r#"{"email":"a@b.io","event":"test"}"#)
            .await;
    assert!(accepted.starts_with("HTTP/1.1 202"), "the printed curl example works: {accepted}");
    let refused = http(&first.addr, "POST /api/signal-staging/webhook/sgk_not-a-real-key", "{}").await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let logs = stop(first).await;
    assert!(logs.contains(r#"route="webhook" status=202"#), "requests are logged by route: {logs}");
    assert!(!logs.contains(&key) && !logs.contains("sgk_not-a-real-key"), "no API key in the logs");

    let second = start(&db, &key_file).await;
    assert_eq!(second.key, key, "the saved demo key is reused");
    stop(second).await;
    assert_eq!(KeySet::load(&db.client).await.expect("keys").len(), 1, "no second key created");
    let _ = std::fs::remove_file(key_file);
}

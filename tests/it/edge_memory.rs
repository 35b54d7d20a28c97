//! One authenticated client cannot take the edge's memory. A bulk request of 32 MiB of `{}`
//! lines is 11 M empty signals: it once took the edge to 11.9 GB. Now it, the same gzipped, and a
//! JSON array of the same, eight at once, are answered 413 `too_many_signals`, and the `sigstage
//! ingest` process's peak RSS (VmHWM) stays under 512 MiB; a bulk of the largest allowed size is
//! still accepted.

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use futures::future::join_all;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::support::{peak_rss_mib, sigstage, stdout, TestDb};

const BULK_LIMIT: usize = 32 << 20;

/// Sends one request and answers its status line and body.
async fn post(addr: &str, path: &str, extra_headers: &str, body: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra_headers}Content-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    // The edge may answer before it has read everything; the answer is what counts.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    String::from_utf8_lossy(&response).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bulk_requests_are_refused_within_bounded_memory() {
    let db = TestDb::migrated().await;
    let created = sigstage(&["keys", "create", "--org", "acme"], &db.vars);
    assert!(created.status.success());
    let key = stdout(&created).trim().to_owned();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigstage"))
        .arg("ingest")
        .envs(&db.vars)
        .env("SIGSTAGE_HTTP_ADDR", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sigstage ingest starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("ready within 60 s")
        .expect("stdout")
        .expect("a ready line");
    let addr = ready.split("http://").nth(1).and_then(|rest| rest.split_whitespace().next()).expect("address");
    let pid = child.id().expect("running");
    let path = format!("/api/signal-staging/bulk/{key}");

    let empty_lines = "{}\n".repeat(BULK_LIMIT / 3).into_bytes();
    let array = {
        let mut array = "{},".repeat((BULK_LIMIT - 2) / 3).into_bytes();
        array.insert(0, b'[');
        *array.last_mut().expect("not empty") = b']';
        array
    };
    let gzipped = {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&empty_lines).expect("compress");
        encoder.finish().expect("finish")
    };
    let (ndjson, json) = ("Content-Type: application/x-ndjson\r\n", "Content-Type: application/json\r\n");
    let gzip = "Content-Type: application/x-ndjson\r\nContent-Encoding: gzip\r\n";
    let mut hostile = Vec::new();
    for _ in 0..3 {
        hostile.push(post(addr, &path, ndjson, &empty_lines));
        hostile.push(post(addr, &path, gzip, &gzipped));
    }
    hostile.push(post(addr, &path, json, &array));
    hostile.push(post(addr, &path, json, &array));
    for answer in join_all(hostile).await {
        let status_line = answer.lines().next().unwrap_or_default();
        assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
        assert!(answer.contains(r#""error":"too_many_signals""#), "{answer}");
        assert!(answer.contains("at most 10000"), "the answer says what to do: {answer}");
    }

    // The largest bulk allowed (10 000 signals of about 100 bytes) is accepted whole.
    let allowed: String =
        (0..10_000).map(|n| format!(r#"{{"event":"import","email":"lead{n}@example.com","n":{n}}}"#) + "\n").collect();
    let answer = post(addr, &path, ndjson, allowed.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 202"), "{}", answer.lines().next().unwrap_or_default());
    assert!(answer.contains(r#""accepted":10000"#), "{}", &answer[..answer.len().min(400)]);

    let peak = peak_rss_mib(pid);
    eprintln!("sigstage ingest peak RSS: {peak} MiB");
    assert!(peak < 512, "peak RSS {peak} MiB");
}

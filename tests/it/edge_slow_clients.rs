//! A slow or hostile client cannot hold the edge. Against `sigstage ingest` with a 2 s head
//! timeout and a 3 s idle timeout, one address (127.0.0.2) opens 300 connections: half send a
//! request line and one header, half send nothing. The first 200 (its cap) are held and closed
//! within the head timeout; the other 100 are answered 503 at once. Meanwhile another address
//! (127.0.0.1) keeps getting its 202s, a body trickled from a third is cut with 408, a kept-alive
//! connection is closed once idle, and the edge's memory stays bounded.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::pipeline::start_ready;
use crate::support::{peak_rss_mib, sigstage, stdout, TestDb};

// Opening the 300 stalled connections must take well under the head timeout, or the first ones
// would be closed (freeing their address's slots) before the last are opened: 2 s leaves room on
// a busy machine. The idle timeout is longer, to show the head clock does not cut an idle one.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const PER_CLIENT: usize = 200;
const STALLED: usize = 300;

/// A connection from `source` (a loopback address) to `addr`.
async fn connect_from(source: &str, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.bind(format!("{source}:0").parse().expect("source address")).expect("bind");
    socket.connect(addr).await.expect("connect")
}

/// Reads until the edge closes the connection (or `limit` passes): what it sent, and when.
async fn until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Instant) {
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(limit, stream.read_to_end(&mut answer)).await;
    (String::from_utf8_lossy(&answer).into_owned(), Instant::now())
}

/// Reads one answer (its head and its `content-length` body) and leaves the connection open.
async fn one_answer(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let read = stream.read(&mut chunk).await.expect("an answer");
        assert!(read > 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&answer).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|line| line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned()))
                .map_or(0, |n| n.parse::<usize>().expect("content-length"));
            if answer.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// A counter's value; 0 before it is first counted.
fn metric(metrics: &str, name: &str, labels: &str) -> f64 {
    crate::support::pipeline::metric(metrics, name, labels).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_and_slow_clients_are_cut_while_others_are_served() {
    let db = TestDb::migrated().await;
    let created = sigstage(&["keys", "create", "--org", "acme"], &db.vars);
    assert!(created.status.success());
    let key = stdout(&created).trim().to_owned();
    let (head, idle, per_client) =
        (HEAD_TIMEOUT.as_millis().to_string(), IDLE_TIMEOUT.as_millis().to_string(), PER_CLIENT.to_string());
    let ready = start_ready(
        &db.vars,
        &["ingest"],
        &[
            ("SIGSTAGE_HTTP_HEAD_TIMEOUT_MS", &head),
            ("SIGSTAGE_HTTP_IDLE_TIMEOUT_MS", &idle),
            ("SIGSTAGE_HTTP_MAX_CONNECTIONS_PER_CLIENT", &per_client),
        ],
    )
    .await
    .unwrap_or_else(|(status, logs)| panic!("sigstage ingest exited {status}: {logs}"));
    let addr: SocketAddr = ready.addr.parse().expect("address");
    let pid = ready.child.id().expect("running");
    let path = format!("/api/signal-staging/webhook/{key}");
    let http = reqwest::Client::new();
    let post = |n: usize| {
        let request = http
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"email":"calm{n}@example.com","event":"calm"}}"#));
        async move { request.send().await.map(|answer| answer.status().as_u16()) }
    };
    assert_eq!(post(0).await.expect("a first request"), 202);

    // The attack: a head begun and never finished, or nothing at all.
    let opened = Instant::now();
    let mut stalled = Vec::new();
    for n in 0..STALLED {
        let mut stream = connect_from("127.0.0.2", addr).await;
        if n % 2 == 0 {
            let begun = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\n");
            stream.write_all(begun.as_bytes()).await.expect("a head begun");
        }
        stalled.push(tokio::spawn(async move { until_closed(&mut stream, Duration::from_secs(30)).await }));
    }
    let opening = opened.elapsed();
    // A body trickled at a byte every 100 ms from a third address: far under 1 KiB/s.
    let trickle = tokio::spawn(async move {
        let mut stream = connect_from("127.0.0.3", addr).await;
        let head = format!(
            "POST /api/signal-staging/webhook/{key} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let started = Instant::now();
        let mut answer = [0u8; 1024];
        loop {
            tokio::select! {
                read = stream.read(&mut answer) => {
                    let read = read.unwrap_or(0);
                    return (String::from_utf8_lossy(&answer[..read]).into_owned(), started.elapsed());
                }
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    if stream.write_all(b" ").await.is_err() {
                        return (String::new(), started.elapsed());
                    }
                }
            }
        }
    });
    // The calm client is served all along.
    for n in 1..=20 {
        assert_eq!(post(n).await.expect("a calm request is answered"), 202, "calm request {n} during the attack");
    }

    let (mut held, mut refused) = (Vec::new(), 0);
    for connection in stalled {
        let (answer, closed) = connection.await.expect("reader");
        if answer.starts_with("HTTP/1.1 503") {
            assert!(answer.contains("retry-after: 1"), "{answer}");
            assert!(answer.contains("too_many_connections"), "{answer}");
            refused += 1;
        } else {
            held.push(closed - opened);
        }
    }
    assert!(opening < HEAD_TIMEOUT, "opening the stalled connections took {opening:?}, past the head timeout");
    assert_eq!(refused, STALLED - PER_CLIENT, "past its cap an address is answered 503");
    assert_eq!(held.len(), PER_CLIENT);
    let slowest = held.iter().max().expect("held");
    // Opening them takes a moment; each is closed one head timeout after its own start.
    assert!(*slowest < HEAD_TIMEOUT + Duration::from_secs(4), "a stalled connection lived {slowest:?}");

    let (answer, took) = trickle.await.expect("trickle");
    assert!(answer.starts_with("HTTP/1.1 408"), "a trickled body is cut: {answer:?} after {took:?}");
    assert!(answer.contains("body_too_slow") && answer.contains("SIGSTAGE_HTTP_BODY_MIN_RATE"), "{answer}");
    assert!(took < HEAD_TIMEOUT * 4, "cut after {took:?}");

    // A kept-alive connection is closed after its idle timeout, not before.
    let mut kept = connect_from("127.0.0.1", addr).await;
    let body = r#"{"email":"kept@example.com","event":"kept"}"#;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    kept.write_all(request.as_bytes()).await.expect("request");
    // Idle from its answer on (the answer itself waits for Kafka, however long that takes).
    let answer = one_answer(&mut kept).await;
    let answered = Instant::now();
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    let (rest, closed) = until_closed(&mut kept, Duration::from_secs(30)).await;
    assert!(rest.is_empty(), "nothing more is sent: {rest}");
    let lived = closed - answered;
    assert!(lived >= IDLE_TIMEOUT - Duration::from_millis(200) && lived < IDLE_TIMEOUT * 3, "idle for {lived:?}");

    // Every attacking connection is closed: only /metrics' own stays open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = http.get(format!("http://{addr}/metrics")).send().await.expect("metrics");
        let metrics = metrics.text().await.expect("text");
        if metric(&metrics, "sigstage_http_connections_open", r#"listener="edge""#) == 1.0 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "connections left open: {metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let refused_metric = metric(&metrics, "sigstage_http_connections_refused_total", r#"reason="client_full""#);
    assert_eq!(refused_metric as usize, STALLED - PER_CLIENT, "refusals are counted");
    let timed_out = metric(&metrics, "sigstage_http_connections_timed_out_total", r#"reason="head_timeout""#)
        + metric(&metrics, "sigstage_http_connections_timed_out_total", r#"reason="idle""#);
    assert!(timed_out as usize > PER_CLIENT, "closings are counted: {timed_out}");
    assert_eq!(metric(&metrics, "sigstage_http_bodies_too_slow_total", ""), 1.0);

    let peak = peak_rss_mib(pid);
    eprintln!("sigstage ingest peak RSS under the attack: {peak} MiB");
    assert!(peak < 256, "peak RSS {peak} MiB");
}

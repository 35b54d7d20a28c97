//! The broker goes away mid-test: the edge answers 503 with Retry-After (at once when its
//! bounded queue is full), recovers when the broker is back, and every signal that got a 202 is
//! in the topic exactly once. Uses a private Tansu (durable sqlite storage) so stopping it does
//! not disturb other tests.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use common::kafka::{topics, MetadataClient};
use futures::future::join_all;
use schemas::record::headers;

use crate::edge_support::{count_records, header, read_records, TestEdge};
use crate::support::unique;

struct PrivateBroker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

fn tansu() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join("tansu")).find(|path| path.is_file()));
    on_path.unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo/bin/tansu"))
}

impl PrivateBroker {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("tansu"));
        std::fs::create_dir_all(&dir).expect("broker dir");
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
        PrivateBroker { dir, port, child: None }
    }

    fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn start(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(tansu())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "sqlite://tansu.db"])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(std::fs::File::options().create(true).append(true).open(self.dir.join("tansu.log")).expect("log"))
            .spawn()
            .expect("tansu runs (make stack-up installs it)");
        self.child = Some(child);
        let mut vars = crate::support::test_vars();
        vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), self.brokers());
        let probe = MetadataClient::new(&crate::support::config_of(&vars).kafka).expect("client");
        let deadline = Instant::now() + Duration::from_secs(30);
        while probe.ping(Duration::from_millis(500)).await.is_err() {
            assert!(Instant::now() < deadline, "private broker did not come up");
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("tansu.log")).unwrap_or_default();
            eprintln!("private broker log ({}):\n{}", self.dir.display(), &log[log.len().saturating_sub(4000)..]);
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[tokio::test]
async fn broker_outage_gives_503_then_recovers_without_loss_or_duplicates() {
    let mut broker = PrivateBroker::new();
    broker.start().await;
    let brokers = broker.brokers();
    let edge = TestEdge::start_with(|vars| {
        vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), brokers);
        vars.insert("SIGSTAGE_KAFKA_MESSAGE_TIMEOUT_MS".into(), "1500".into());
        vars.insert("SIGSTAGE_KAFKA_QUEUE_MAX_MESSAGES".into(), "5".into());
    })
    .await;
    let key = edge.key("acme", &[]).await;
    let uri = format!("/api/signal-staging/webhook/{key}");
    let signal = |n: usize| format!(r#"{{"email":"lead{n}@example.com","event":"outage-test"}}"#);
    let mut accepted: Vec<u64> = Vec::new();

    for n in 0..10 {
        let response = edge.post_json(&uri, &signal(n)).await;
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.text);
        accepted.push(response.id());
    }

    broker.stop();
    // Concurrent sends while the broker is down: the queue holds 5, so some are refused at once
    // (queue full) and the rest when their delivery times out. None is accepted.
    let started = Instant::now();
    let down = join_all((10..30).map(|n| {
        let edge = &edge;
        let uri = &uri;
        async move { edge.post_json(uri, &signal(n)).await }
    }))
    .await;
    for response in &down {
        assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text);
        assert_eq!(response.json["error"], "broker_unavailable");
        assert!(response.headers.contains_key(header::RETRY_AFTER));
    }
    assert!(started.elapsed() < Duration::from_secs(10), "503s come within the message timeout");

    broker.start().await;
    // The producer reconnects by itself; retry each signal until it is accepted, as a client would.
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in 30..40 {
        loop {
            let response = edge.post_json(&uri, &signal(n)).await;
            if response.status == StatusCode::ACCEPTED {
                accepted.push(response.id());
                break;
            }
            assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE, "{}", response.text);
            assert!(Instant::now() < deadline, "the edge did not recover after the broker came back");
        }
    }

    let topic = edge.topic(topics::SIGNALS_RAW);
    let total = count_records(&edge.db.config, &topic) as usize;
    let records = read_records(&edge.db.config, &topic, total).await;
    let mut seen: HashMap<u64, usize> = HashMap::new();
    for record in &records {
        let id = header(record, headers::SIGNAL_ID).and_then(|id| id.parse().ok()).expect("signal id header");
        *seen.entry(id).or_default() += 1;
    }
    for id in &accepted {
        assert_eq!(seen.get(id), Some(&1), "signal {id} got a 202 and must be in the topic exactly once");
    }
    assert_eq!(accepted.len(), 20);
}

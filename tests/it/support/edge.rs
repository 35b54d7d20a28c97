//! An in-process ingest edge against the real broker and ClickHouse, and helpers to call it and
//! read back what it wrote to Kafka.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use ingest::gate::Gate;
use ingest::sender::Sender;
use ingest::Edge;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;
use runtime::config::Config;
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{sigstage, stderr, stdout, unique, TestDb};

pub struct TestEdge {
    pub db: TestDb,
    pub edge: Arc<Edge>,
    pub router: Router,
}

impl TestEdge {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts an edge on a fresh database and topic prefix; `adjust` may change its variables.
    pub async fn start_with(adjust: impl FnOnce(&mut BTreeMap<String, String>)) -> Self {
        let mut db = TestDb::migrated().await;
        adjust(&mut db.vars);
        db.config = Config::from_vars(&db.vars).expect("valid test config");
        Self::start_on(db).await
    }

    /// Starts an edge on `db` (and its topic prefix).
    pub async fn start_on(db: TestDb) -> Self {
        runtime::telemetry::init_logs(runtime::config::LogFormat::Human);
        let config = &db.config;
        let gate = Arc::new(Gate::load(db.client.clone()).await.expect("control plane loads"));
        runtime::kafka::prepare_topics(&config.kafka).await.expect("topics");
        let sender = Sender::new(&config.kafka).expect("producers");
        let edge = Arc::new(Edge::new(gate, sender, 1, &config.http));
        let router = ingest::routes::router(Arc::clone(&edge));
        TestEdge { db, edge, router }
    }

    /// Creates a key with the CLI (`extra` are more `keys create` flags) and reloads keys.
    pub async fn key(&self, org: &str, extra: &[&str]) -> String {
        let mut args = vec!["keys", "create", "--org", org];
        args.extend_from_slice(extra);
        let output = sigstage(&args, &self.db.vars);
        assert!(output.status.success(), "{}", stderr(&output));
        self.refresh().await;
        stdout(&output).trim().to_owned()
    }

    /// Runs a `sigstage` CLI command against this edge's database, then reloads keys and limits.
    pub async fn cli(&self, args: &[&str]) {
        let output = sigstage(args, &self.db.vars);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
        self.refresh().await;
    }

    pub async fn refresh(&self) {
        self.edge.gate.refresh().await.expect("control plane refresh");
    }

    pub fn topic(&self, name: &str) -> String {
        self.db.config.kafka.topic(name)
    }

    pub async fn post_json(&self, uri: &str, body: &str) -> Response {
        self.call(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .expect("request"),
        )
        .await
    }

    pub async fn call(&self, request: Request<Body>) -> Response {
        let response = self.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response { status, headers, json, text: String::from_utf8_lossy(&bytes).into_owned() }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: Value,
    pub text: String,
}

impl Response {
    pub fn id(&self) -> u64 {
        self.json["id"].as_u64().unwrap_or_else(|| panic!("no id in {}", self.text))
    }
}

/// Every record of `topic` (all partitions), read through a fresh consumer group until
/// `expected` arrived; panics after 30 s.
pub async fn read_records(config: &Config, topic: &str, expected: usize) -> Vec<OwnedMessage> {
    let consumer: StreamConsumer = runtime::kafka::consumer(&config.kafka, &unique("reader")).expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut records = Vec::with_capacity(expected);
    while records.len() < expected {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {expected} records arrived in {topic}", records.len()))
            .expect("consume");
        records.push(message.detach());
    }
    records
}

/// How many records `topic` holds, counted one by one as a `read_committed` reader sees them
/// (the records of aborted transactions and transaction markers are not records), so a test can
/// assert there is nothing beyond what it expects. A topic that does not exist yet holds none;
/// broker trouble is waited out for 30 s.
pub fn count_records(config: &Config, topic: &str) -> i64 {
    let mut count = 0;
    for_each_record(config, topic, |_| count += 1);
    count
}

/// How many dedupe entries `stream.dedupe` holds, read out of its records one by one, and how
/// many distinct identity hashes among them.
pub fn count_dedupe_entries(config: &Config) -> (usize, usize) {
    let topic = config.kafka.topic(runtime::kafka::topics::DEDUPE);
    let (mut entries, mut hashes) = (0, std::collections::HashSet::new());
    for_each_record(config, &topic, |record| {
        use rdkafka::Message;
        let time = record.timestamp().to_millis().unwrap_or(0) as u64;
        let value = record.payload().unwrap_or_default();
        for (hash, _, _) in stream::dedupe::changelog_entries(record.key().unwrap_or_default(), value, time) {
            entries += 1;
            hashes.insert(hash);
        }
    });
    (entries, hashes.len())
}

/// Hands every record of `topic` (all partitions, from the beginning to the end, as a
/// `read_committed` reader sees them) to `visit`.
pub fn for_each_record(config: &Config, topic: &str, mut visit: impl FnMut(&rdkafka::message::BorrowedMessage<'_>)) {
    use rdkafka::consumer::BaseConsumer;
    let consumer: BaseConsumer<runtime::kafka::ReaderContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &config.kafka.brokers)
        .set("group.id", unique("counter"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", (64 << 20).to_string())
        .set("receive.message.max.bytes", ((64 << 20) + 4096).to_string())
        .create_with_context(runtime::kafka::ReaderContext)
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|partition| partition.id()).collect();
    if partitions.is_empty() {
        return;
    }
    let mut assignment = rdkafka::TopicPartitionList::new();
    for &partition in &partitions {
        assignment.add_partition_offset(topic, partition, rdkafka::Offset::Beginning).expect("partition");
    }
    consumer.assign(&assignment).expect("assign");
    let mut left = partitions;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !left.is_empty() {
        assert!(std::time::Instant::now() < deadline, "{topic}: partitions {left:?} never reached their end");
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => visit(&message),
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => left.retain(|&p| p != partition),
            Some(Err(error)) if runtime::kafka::is_transient(&error) => {}
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
}

pub fn header<'a>(message: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    message
        .headers()?
        .iter()
        .find(|header| header.key == name)
        .and_then(|header| std::str::from_utf8(header.value?).ok())
}

pub fn key_of(message: &OwnedMessage) -> &str {
    std::str::from_utf8(message.key().expect("key")).expect("utf-8 key")
}

pub fn payload_json(message: &OwnedMessage) -> Value {
    serde_json::from_slice(message.payload().expect("payload")).expect("payload is JSON")
}

/// Posts signals `from..to`, eight at a time; answers the ids of those that got a 202 and how many
/// got a 503 (anything else fails the test).
pub async fn post_signals(edge: &TestEdge, uri: &str, from: usize, to: usize) -> (Vec<u64>, usize) {
    let (mut accepted, mut refused) = (Vec::new(), 0);
    let numbers: Vec<usize> = (from..to).collect();
    for chunk in numbers.chunks(8) {
        let bodies: Vec<String> = chunk
            .iter()
            .map(|n| format!(r#"{{"email":"lead{n}@example.com","event":"cluster-test","n":{n}}}"#))
            .collect();
        let responses = futures::future::join_all(bodies.iter().map(|body| edge.post_json(uri, body))).await;
        for response in responses {
            match response.status {
                StatusCode::ACCEPTED => accepted.push(response.id()),
                StatusCode::SERVICE_UNAVAILABLE => refused += 1,
                status => panic!("unexpected {status}: {}", response.text),
            }
        }
    }
    (accepted, refused)
}

//! Durability on a real three-broker cluster (replication 3, `min.insync.replicas` 2): a broker
//! SIGKILLed under steady load and later restarted loses nothing from 202 to ClickHouse, and
//! writes each 202 once to the raw topic; with two brokers down the edge answers 503, never 202, and recovers when they
//! come back. Each test runs a cluster of its own (`scripts/stack.sh cluster`), one at a time.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use runtime::kafka::topics;
use schemas::record::headers;

use crate::support::brokers::PrivateKafka;
use crate::support::edge::{count_records, header, post_signals, read_records, TestEdge};
use crate::support::pipeline::{await_recovered, start_processor, start_sink};

/// Three JVMs per test on two cores: the cluster tests take turns.
static ONE_CLUSTER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A cluster of this test's own, its turn, and an edge on it with a key. Fields drop in order:
/// the edge before the cluster, the cluster before the turn passes.
struct ClusterEdge {
    edge: TestEdge,
    uri: String,
    cluster: PrivateKafka,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl ClusterEdge {
    async fn start(message_timeout_ms: u32) -> Self {
        let turn = ONE_CLUSTER_AT_A_TIME.lock().await;
        let cluster = PrivateKafka::cluster();
        cluster.start();
        let brokers = cluster.brokers();
        let edge = TestEdge::start_with(move |vars| {
            vars.insert("SIGSTAGE_KAFKA_BROKERS".into(), brokers);
            vars.insert("SIGSTAGE_KAFKA_REPLICATION_FACTOR".into(), "3".into());
            vars.insert("SIGSTAGE_KAFKA_MIN_INSYNC_REPLICAS".into(), "2".into());
            vars.insert("SIGSTAGE_KAFKA_MESSAGE_TIMEOUT_MS".into(), message_timeout_ms.to_string());
        })
        .await;
        let key = edge.key("acme", &[]).await;
        let uri = format!("/api/signal-staging/webhook/{key}");
        ClusterEdge { edge, uri, cluster, _turn: turn }
    }

    /// Posts signals from `next` on, eight at a time, resending what got a 503 as a client
    /// would, until `wanted` got a 202; fails with `what` after `within`.
    async fn post_until_accepted(&self, next: &mut usize, wanted: usize, within: Duration, what: &str) -> Vec<u64> {
        let (mut accepted, deadline) = (Vec::new(), Instant::now() + within);
        while accepted.len() < wanted {
            accepted.extend(post_signals(&self.edge, &self.uri, *next, *next + 8).await.0);
            *next += 8;
            assert!(Instant::now() < deadline, "{what}: {} of {wanted} accepted", accepted.len());
        }
        accepted
    }
}

/// Every signal id in the raw topic, with how many records carry it.
async fn raw_ids(edge: &TestEdge) -> HashMap<u64, usize> {
    let topic = edge.topic(topics::SIGNALS_RAW);
    let total = count_records(&edge.db.config, &topic) as usize;
    let mut seen = HashMap::new();
    for record in read_records(&edge.db.config, &topic, total).await {
        let id = header(&record, headers::SIGNAL_ID).and_then(|id| id.parse().ok()).expect("signal id header");
        *seen.entry(id).or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_under_load_loses_nothing() {
    let run = ClusterEdge::start(10_000).await;
    let (edge, uri, cluster) = (&run.edge, run.uri.as_str(), &run.cluster);
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());

    let mut accepted = Vec::new();
    let (before, _) = post_signals(edge, uri, 0, 400).await;
    accepted.extend(before);
    cluster.kill(2);
    let killed_at = Instant::now();
    let (during, refused) = post_signals(edge, uri, 400, 1200).await;
    assert!(
        during.len() >= 400,
        "the cluster kept accepting with one broker down: {} accepted, {refused} 503s",
        during.len()
    );
    accepted.extend(during);
    cluster.start();
    let (after, _) = post_signals(edge, uri, 1200, 1600).await;
    accepted.extend(after);
    eprintln!("{} accepted, broker 2 down for {:?}", accepted.len(), killed_at.elapsed());

    // The broker: each accepted signal exactly once in the raw topic, counted record by record.
    let raw = raw_ids(edge).await;
    for id in &accepted {
        assert_eq!(raw.get(id), Some(&1), "signal {id} got a 202: once in the raw topic");
    }
    // ClickHouse: every accepted signal has its hot row. A stage that failed while the broker was
    // away may be waiting out its longest backoff before it restores and reads the backlog.
    let client = &edge.db.client;
    await_recovered(client, "SELECT uniqExact(signal_id) FROM signals_hot", raw.len() as u64).await;
    let rows: Vec<u64> = client.query("SELECT signal_id FROM signals_hot").fetch_all().await.expect("rows");
    let stored: HashSet<u64> = rows.iter().copied().collect();
    // Physically: no row twice, without FINAL.
    assert_eq!(rows.len(), stored.len(), "{} rows for {} signals: some written twice", rows.len(), stored.len());
    let missing: Vec<&u64> = accepted.iter().filter(|id| !stored.contains(id)).collect();
    assert!(missing.is_empty(), "{} signals got a 202 and are not in ClickHouse: {missing:?}", missing.len());
    sink.stop().await;
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_brokers_down_means_503_not_202_until_they_are_back() {
    let run = ClusterEdge::start(2_000).await;
    let (edge, uri, cluster) = (&run.edge, run.uri.as_str(), &run.cluster);
    // The topics are seconds old: until their leaders have settled, a send may time out
    // (503), and a client sends it again. The cluster is healthy once 16 are accepted.
    let mut n = 0;
    let mut accepted = run.post_until_accepted(&mut n, 16, Duration::from_secs(60), "a healthy cluster").await;

    cluster.kill(2);
    cluster.kill(3);
    // One broker of three cannot meet min.insync.replicas 2: nothing may be acknowledged.
    let (during, refused) = post_signals(edge, uri, n, n + 32).await;
    assert_eq!((during.len(), refused), (0, 32), "two brokers down: every signal refused with 503");

    cluster.start();
    n += 32;
    let back = "the edge did not recover once the brokers were back";
    accepted.extend(run.post_until_accepted(&mut n, 16, Duration::from_secs(90), back).await);
    let raw = raw_ids(edge).await;
    for id in &accepted {
        assert_eq!(raw.get(id), Some(&1), "signal {id} got a 202: once in the raw topic");
    }
}

//! The ClickHouse sink end to end: from an HTTP 202 to rows analysts query, rehydration when a
//! visitor is identified, and nothing lost or doubled across a replay or a ClickHouse outage.

use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use runtime::kafka::topics;

use crate::support::edge::TestEdge;
use crate::support::pipeline::{
    assert_no_row_twice, await_count, await_recovered, library_query, start_processor, start_ready, start_sink,
};

fn hot_of(lead: &str) -> String {
    format!("SELECT count() FROM signals_hot FINAL WHERE org_id = 'acme' AND lead_email = '{lead}'")
}

/// Moves the sink's committed offsets back to the start, so the next sink replays everything.
fn rewind_sink_group(edge: &TestEdge) {
    let kafka = &edge.db.config.kafka;
    let consumer: StreamConsumer = runtime::kafka::consumer(kafka, &kafka.topic("sink")).expect("consumer");
    let mut start = TopicPartitionList::new();
    for topic in [topics::SIGNALS_PROCESSED, topics::IDENTITIES] {
        for partition in 0..kafka.partitions {
            start.add_partition_offset(&kafka.topic(topic), partition, Offset::Offset(0)).expect("partition");
        }
    }
    consumer.commit(&start, CommitMode::Sync).expect("rewound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identified_visitors_are_rehydrated_once_even_after_a_replay() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let uri = format!("/api/signal-staging/webhook/{key}");
    let track = |n: u32| format!(r#"{{"type":"track","event":"Viewed","anonymousId":"v1","messageId":"t{n}"}}"#);
    for n in 1..=3 {
        assert_eq!(edge.post_json(&uri, &track(n)).await.status, 202);
    }
    // Written cold first: rehydration then has rows to find.
    await_count(&edge.db.client, "SELECT count() FROM signals_cold FINAL WHERE anonymous_id = 'v1'", 3).await;
    let identify =
        r#"{"type":"identify","anonymousId":"v1","messageId":"i1","traits":{"email":"Jo@Acme.io","company":"Acme"}}"#;
    assert_eq!(edge.post_json(&uri, identify).await.status, 202);
    assert_eq!(edge.post_json(&uri, &track(4)).await.status, 202);

    // 3 rehydrated, the identify, and the track after it.
    await_count(&edge.db.client, &hot_of("jo@acme.io"), 5).await;
    await_count(&edge.db.client, &library_query("unlinked_cold_signals", "acme", &[]), 0).await;
    await_count(&edge.db.client, "SELECT count() FROM leads FINAL WHERE email = 'jo@acme.io' AND company = 'Acme'", 1)
        .await;
    await_count(&edge.db.client, "SELECT count() FROM identities FINAL WHERE anonymous_id = 'v1'", 1).await;
    let attributions: Vec<(String, u64)> = edge
        .db
        .client
        .query("SELECT attributed_by, count() FROM signals_hot FINAL GROUP BY attributed_by ORDER BY attributed_by")
        .fetch_all()
        .await
        .expect("attributions");
    let expected = [("identity", 1), ("rehydrated", 3), ("signal", 1)].map(|(a, n)| (a.to_owned(), n));
    assert_eq!(attributions, expected);
    sink.stop().await;

    // A sink that reads everything again changes no count an analyst sees.
    rewind_sink_group(&edge);
    let replay = start_sink(&edge.db.config, edge.db.client.clone());
    crate::support::pipeline::caught_up(&edge.db.config).await;
    assert_eq!(edge.post_json(&uri, &track(5)).await.status, 202);
    await_count(&edge.db.client, &hot_of("jo@acme.io"), 6).await;
    await_count(&edge.db.client, "SELECT count() FROM signals_cold FINAL WHERE anonymous_id = 'v1'", 3).await;
    await_count(&edge.db.client, "SELECT uniqExact(signal_id) FROM signals_hot", 6).await;
    replay.stop().await;
    processor.stop().await;

    // Physically too: the replay wrote only the new track, so the rollups' views saw each row
    // once (the offsets it was given had been moved by hand).
    let client = &edge.db.client;
    await_count(client, "SELECT count() FROM signals_hot", 6).await;
    await_count(client, "SELECT count() FROM signals_cold", 3).await;
    let daily: Vec<(u16, String, u64, u64)> =
        client.query(&library_query("signals_by_source_and_day", "acme", &[])).fetch_all().await.expect("daily");
    assert_eq!(daily.iter().map(|r| (r.2, r.3)).fold((0, 0), |a, r| (a.0 + r.0, a.1 + r.1)), (6, 3), "{daily:?}");
    assert!(daily.iter().all(|r| r.1 == "segment"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_reaches_clickhouse() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let sink = start_sink(&edge.db.config, edge.db.client.clone());
    let sent = [
        (format!("/api/signal-staging/webhook/{key}"), r#"{"email":"a@x.io","event":"webhook"}"#.to_owned()),
        (format!("/api/signal-staging/webhook/hubspot/{key}"), r#"{"email":"b@x.io","event":"sourced"}"#.to_owned()),
        (format!("/api/signal-staging/webhook/{key}/batch"), r#"[{"event":"batch 1"},{"event":"batch 2"}]"#.to_owned()),
        (format!("/api/signal-staging/bulk/{key}"), r#"[{"event":"bulk 1"},{"event":"bulk 2"}]"#.to_owned()),
        (format!("/collect/page_view/{key}/session-1"), r#"{"url":"https://acme.io/"}"#.to_owned()),
        (
            format!("/webhooks/ingress/{key}"),
            r#"{"title":"Call","description":"d","startTime":"2024-08-03T11:30:00Z","trigger":"Manual Log"}"#
                .to_owned(),
        ),
    ];
    for (uri, body) in &sent {
        let answer = edge.post_json(uri, body).await;
        assert!(answer.status == 202 || answer.status == 207, "{uri}: {} {}", answer.status, answer.text);
    }
    await_count(&edge.db.client, "SELECT count() FROM signals_hot FINAL", 2).await;
    await_count(&edge.db.client, "SELECT count() FROM signals_cold FINAL", 6).await;
    let sources: Vec<String> = edge
        .db
        .client
        .query("SELECT DISTINCT source FROM (SELECT source FROM signals_hot UNION ALL SELECT source FROM signals_cold) ORDER BY source")
        .fetch_all()
        .await
        .expect("sources");
    assert_eq!(sources, ["activity", "generic", "hubspot", "tracardi"]);
    sink.stop().await;
    processor.stop().await;
}

/// A TCP proxy to ClickHouse that can be cut, so the sink sees ClickHouse go away and return.
struct Proxy {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a port of its own for as long as it lives (so no other socket can take the
    /// port while ClickHouse is "away"), forwarding to ClickHouse while up.
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("proxy listens");
        let addr = listener.local_addr().expect("addr");
        let (up, mut is_up) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((mut inbound, _)) = accepted else { return };
                        if !*is_up.borrow() {
                            continue; // dropped at once: the client sees the connection closed
                        }
                        connections.spawn(async move {
                            if let Ok(mut outbound) = tokio::net::TcpStream::connect("127.0.0.1:8123").await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            }
                        });
                    }
                    changed = is_up.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        if !*is_up.borrow() {
                            connections.abort_all();
                        }
                    }
                }
            }
        });
        Proxy { addr, up, task }
    }

    /// Down: drops every open connection and each new one. Up: forwards again.
    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_clickhouse_is_away() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let proxy = Proxy::start().await;
    let through_proxy = runtime::clickhouse::client(&runtime::config::ClickHouseConfig {
        url: format!("http://{}", proxy.addr),
        ..edge.db.config.clickhouse.clone()
    });
    let sink = start_sink(&edge.db.config, through_proxy);
    let uri = format!("/api/signal-staging/webhook/{key}");
    assert_eq!(edge.post_json(&uri, r#"{"email":"first@x.io"}"#).await.status, 202);
    await_count(&edge.db.client, "SELECT count() FROM signals_hot FINAL", 1).await;

    proxy.set_up(false);
    for n in 0..20 {
        assert_eq!(edge.post_json(&uri, &format!(r#"{{"email":"away{n}@x.io"}}"#)).await.status, 202);
    }
    crate::support::pipeline::caught_up(&edge.db.config).await;
    // The sink has the records but cannot write them; nothing arrives meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    await_count(&edge.db.client, "SELECT count() FROM signals_hot FINAL", 1).await;

    proxy.set_up(true);
    await_count(&edge.db.client, "SELECT count() FROM signals_hot FINAL", 21).await;
    sink.stop().await;
    processor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_sink_loses_and_doubles_nothing() {
    let db = crate::support::TestDb::migrated().await;
    let config = &db.config;
    const TOTAL: u64 = 1_000;
    let processor = start_processor(config);
    let writer = {
        let config = config.clone();
        tokio::spawn(async move {
            crate::stream_recovery::fill(&config, &config.kafka.topic(topics::SIGNALS_RAW), 1, TOTAL, "webhook").await
        })
    };
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sigstage"))
        .arg("sink")
        .envs(&db.vars)
        .env("SIGSTAGE_HTTP_ADDR", "127.0.0.1:0")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sigstage sink starts");
    let written = "SELECT (SELECT count() FROM signals_cold) + (SELECT count() FROM signals_hot)";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while db.client.query(written).fetch_one::<u64>().await.unwrap_or(0) < 100 {
        assert!(std::time::Instant::now() < deadline, "the sink never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    writer.await.expect("raw records written");
    crate::support::pipeline::caught_up(config).await;

    let restarted = start_sink(config, db.client.clone());
    // Visitors v0..v99: ids 1..100 are tracks before their visitor's identify (ids 101..200), so
    // cold and then rehydrated; every later track is hot by identity: every signal is hot once.
    let signals = "SELECT uniqExact(signal_id) FROM (SELECT signal_id FROM signals_cold UNION ALL SELECT signal_id FROM signals_hot)";
    await_recovered(&db.client, signals, TOTAL).await;
    await_count(&db.client, "SELECT count() FROM signals_hot FINAL", TOTAL).await;
    await_count(&db.client, "SELECT count() FROM signals_cold FINAL", 100).await;
    await_count(&db.client, &library_query("unlinked_cold_signals", "acme", &[]), 0).await;
    await_count(&db.client, "SELECT count() FROM leads FINAL", 100).await;
    restarted.stop().await;
    assert_no_row_twice(&db.client).await;
    processor.stop().await;
}

/// A statement ClickHouse refuses the same way every time fails the sink with the reason, in
/// its log and in `/readyz`, instead of ending it as if it had stopped by itself; once the cause
/// is mended, the batch is read again and written, nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_refused_for_good_fails_the_sink_with_its_reason() {
    let edge = TestEdge::start().await;
    let key = edge.key("acme", &[]).await;
    let processor = start_processor(&edge.db.config);
    let sink = start_ready(&edge.db.vars, &["sink"], &[])
        .await
        .unwrap_or_else(|(status, logs)| panic!("sigstage sink: {status}: {logs}"));
    let uri = format!("/api/signal-staging/webhook/{key}");
    let track = r#"{"type":"track","event":"Viewed","anonymousId":"v9","messageId":"t1"}"#;
    assert_eq!(edge.post_json(&uri, track).await.status, 202);
    await_count(&edge.db.client, "SELECT count() FROM signals_cold WHERE anonymous_id = 'v9'", 1).await;

    // Rehydration reads `source` from signals_cold; now every read of it fails with code 6
    // (cannot parse), which is bad data to the sink: never retried.
    let client = &edge.db.client;
    let broken = "ALTER TABLE signals_cold ADD COLUMN source String ALIAS toString(toUInt8(concat('x', org_id)))";
    for statement in ["ALTER TABLE signals_cold DROP COLUMN source", broken] {
        client.query(statement).execute().await.expect(statement);
    }
    let identify = r#"{"type":"identify","anonymousId":"v9","messageId":"i1","traits":{"email":"kim@acme.io"}}"#;
    assert_eq!(edge.post_json(&uri, identify).await.status, 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (code, ready) = loop {
        let (code, ready) = crate::support::pipeline::readyz(&sink.addr).await;
        if ready["stages"]["sink"]["status"] == "down" {
            break (code, ready);
        }
        assert!(std::time::Instant::now() < deadline, "the sink never showed as down: {ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(code, 503, "{ready}");
    let error = ready["stages"]["sink"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("Code: 6") && error.contains("Cannot parse string"), "{ready}");

    // Mended: the batch is read again, and its visitor's cold signal is rehydrated once.
    for statement in
        ["ALTER TABLE signals_cold DROP COLUMN source", "ALTER TABLE signals_cold ADD COLUMN source String"]
    {
        client.query(statement).execute().await.expect(statement);
    }
    let rehydrated = "SELECT count() FROM signals_hot WHERE anonymous_id = 'v9' AND attributed_by = 'rehydrated'";
    await_recovered(client, rehydrated, 1).await;
    await_count(client, "SELECT count() FROM signals_hot WHERE anonymous_id = 'v9'", 2).await;
    let logs = sink.stop().await;
    processor.stop().await;
    let failed = logs.lines().find(|line| line.contains("stage failed")).unwrap_or_else(|| panic!("{logs}"));
    assert!(failed.contains("sink") && failed.contains("Cannot parse string"), "{failed}");
}

/// A batch's keys bound into one statement may be far longer than ClickHouse's default 256 KiB
/// query: 6 000 visitors with UUID-long ids (and their keys) once made the links lookup fail as a
/// syntax error at byte 262 144, every retry, stalling the sink. The clients raise the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_of_many_long_visitor_ids_is_looked_up_in_one_statement() {
    let db = crate::support::TestDb::migrated().await;
    let ids: Vec<String> = (0..6_000).map(|n| format!("{n:08}-5f3c-4a9e-9d2b-0c6f1e7a8b9c-visitor")).collect();
    let visitors = sink::store::Visitors::new(ids.iter().map(|id| ("an-org-with-a-longish-name", id.as_str())));
    let links = sink::store::links_of(&db.client, &visitors).await.expect("the lookup is not refused");
    assert!(links.is_empty(), "no visitor of these is linked: {links:?}");
}

#[tokio::test]
async fn visitor_ids_too_long_for_one_statement_are_looked_up_in_several() {
    let db = crate::support::TestDb::migrated().await;
    // 12 000 ids of 1 KB, each bound as itself and in its key: 48 MB, three times what the
    // server takes in one statement.
    let ids: Vec<String> = (0..12_000).map(|n| format!("{n:08}-{}", "v".repeat(1_000))).collect();
    let (first, last) = (&ids[0], &ids[ids.len() - 1]);
    db.client
        .query("INSERT INTO identities (org_id, anonymous_id, email, signal_id, linked_ms) VALUES (?, ?, ?, 1, 1), (?, ?, ?, 2, 1)")
        .bind("org")
        .bind(first)
        .bind("first@acme.io")
        .bind("org")
        .bind(last)
        .bind("last@acme.io")
        .execute()
        .await
        .expect("two links");
    let visitors = sink::store::Visitors::new(ids.iter().map(|id| ("org", id.as_str())));
    let links = sink::store::links_of(&db.client, &visitors).await.expect("the lookup is not refused");
    let found = |id: &str| links.get(&sink::store::visitor_key("org", id)).map(String::as_str);
    assert_eq!((links.len(), found(first), found(last)), (2, Some("first@acme.io"), Some("last@acme.io")));
}

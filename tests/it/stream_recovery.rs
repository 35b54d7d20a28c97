//! The processor under stress: killed with SIGKILL mid-stream and restarted (nothing lost,
//! nothing doubled), and the live lane served before a backlog of history.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use runtime::config::Config;
use runtime::kafka::topics;
use serde_json::Value;

use crate::support::edge::{count_records, header, payload_json, read_records};
use crate::support::pipeline::{caught_up, spawn_role, start_processor};
use crate::support::TestDb;

/// Writes `count` raw records to `topic` as the edge would, signal ids from `first_id`: visitors
/// `v0..v99` (id modulo 100); ids 101 to 200 identify each visitor's email, the rest are tracks.
pub async fn fill(config: &Config, topic: &str, first_id: u64, count: u64, endpoint: &str) {
    runtime::kafka::prepare_topics(&config.kafka).await.expect("topics");
    let producer = runtime::kafka::producer(&config.kafka).expect("producer");
    let records: Vec<(String, String, String)> = (first_id..first_id + count)
        .map(|id| {
            let visitor = id % 100;
            let body = if (101..=200).contains(&id) {
                format!(r#"{{"type":"identify","anonymousId":"v{visitor}","messageId":"{id}","traits":{{"email":"v{visitor}@acme.io"}}}}"#)
            } else {
                format!(r#"{{"type":"track","event":"Viewed","anonymousId":"v{visitor}","messageId":"{id}"}}"#)
            };
            (id.to_string(), format!("acme:v{visitor}"), body)
        })
        .collect();
    for chunk in records.chunks(100) {
        let sends = chunk.iter().map(|(id, key, body)| {
            let headers = OwnedHeaders::new()
                .insert(Header { key: schemas::record::headers::ORG, value: Some("acme") })
                .insert(Header { key: schemas::record::headers::SIGNAL_ID, value: Some(id.as_str()) })
                .insert(Header { key: schemas::record::headers::SOURCE, value: Some("segment") })
                .insert(Header { key: schemas::record::headers::ENDPOINT, value: Some(endpoint) });
            producer.send(FutureRecord::to(topic).key(key).payload(body).headers(headers), Duration::from_secs(30))
        });
        for result in join_all(sends).await {
            result.map_err(|(error, _)| error).expect("raw record written");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_then_restart_loses_and_doubles_nothing() {
    let db = TestDb::migrated().await;
    let config = &db.config;
    // Half the signals before the kill, half after: the processor is killed while it works
    // through the first half, and the restart finds both its unfinished work and new records.
    const TOTAL: u64 = 2_000;
    let raw_topic = config.kafka.topic(topics::SIGNALS_RAW);
    fill(config, &raw_topic, 1, TOTAL / 2, "webhook").await;
    let mut child = spawn_role(&db.vars, "stream", &[]);
    let processed_topic = config.kafka.topic(topics::SIGNALS_PROCESSED);
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_records(config, &processed_topic) < 300 {
        assert!(Instant::now() < deadline, "the processor never got going");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.start_kill().expect("SIGKILL");
    child.wait().await.expect("killed");
    fill(config, &raw_topic, 1 + TOTAL / 2, TOTAL / 2, "webhook").await;
    let at_kill = count_records(config, &processed_topic);
    assert!(at_kill < TOTAL as i64, "killed mid-stream ({at_kill} of {TOTAL} written), or the test proves nothing");

    // The group hands the dead member's partitions over once its session times out.
    let restarted = start_processor(config);
    caught_up(config).await;
    restarted.stop().await;
    let records = read_records(config, &processed_topic, TOTAL as usize).await;
    let ids: HashSet<u64> = records.iter().map(|r| payload_json(r)["signal_id"].as_u64().expect("id")).collect();
    assert_eq!(ids.len() as u64, TOTAL, "every signal processed");
    assert_eq!(count_records(config, &processed_topic), TOTAL as i64, "none twice ({at_kill} before the kill)");
    let identities = config.kafka.topic(topics::IDENTITIES);
    let links = read_records(config, &identities, 200).await;
    let kinds = links.iter().filter(|r| header(r, schemas::record::headers::IDENTITY_KIND) == Some("link")).count();
    assert_eq!((kinds, count_records(config, &identities)), (100, 200), "one link and one lead per visitor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_lane_goes_before_a_backlog_of_history() {
    let db = TestDb::migrated().await;
    let config = &db.config;
    // Several batches of history.
    const HISTORY: u64 = 3_000;
    const LIVE: u64 = 200;
    fill(config, &config.kafka.topic(topics::SIGNALS_HISTORICAL), 1_000_000, HISTORY, "bulk").await;
    fill(config, &config.kafka.topic(topics::SIGNALS_RAW), 1, LIVE, "webhook").await;

    let processor = start_processor(config);
    caught_up(config).await;
    let records = read_records(config, &config.kafka.topic(topics::SIGNALS_PROCESSED), (HISTORY + LIVE) as usize).await;
    processor.stop().await;

    // Per partition, in processing order: how much history went out before the last live one.
    let mut history_before_last_live = 0;
    for partition in 0..config.kafka.partitions {
        let lanes: Vec<bool> = records
            .iter()
            .filter(|r| rdkafka::Message::partition(*r) == partition)
            .map(|r| header(r, schemas::record::headers::ENDPOINT) == Some("webhook"))
            .collect();
        if let Some(last_live) = lanes.iter().rposition(|&live| live) {
            history_before_last_live += lanes[..last_live].iter().filter(|&&live| !live).count();
        }
    }
    let live: Vec<Value> =
        records.iter().map(payload_json).filter(|r| r["signal_id"].as_u64() < Some(1_000_000)).collect();
    assert_eq!(live.len() as u64, LIVE);
    // Interleaved by arrival, about 95% of history would precede the last live record.
    assert!(
        history_before_last_live < (HISTORY / 4) as usize,
        "{history_before_last_live} of {HISTORY} historical signals went before the last live one"
    );
}

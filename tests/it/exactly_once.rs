//! Exactly once, shown by killing a stage at each step: the `sigstage` binary runs with a fault
//! point armed (`SIGSTAGE_FAULT`, which only debug builds accept) and aborts there, as a SIGKILL
//! would; the stage then runs again and finishes. Every output is counted physically: records
//! in each topic as a `read_committed` reader sees them, and rows in each table without FINAL.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use runtime::config::Config;
use runtime::kafka::topics;
use tokio::process::Child;

use crate::stream_recovery::fill;
use crate::support::edge::{count_dedupe_entries, count_records};
use crate::support::pipeline::{
    assert_no_row_twice, await_count, await_recovered, caught_up, spawn_role, start_processor, start_sink,
};
use crate::support::TestDb;

/// Signals written: visitors v0..v99; ids 101..200 identify each visitor's email, the rest are
/// tracks (ids 1..100 before their visitor is identified: cold, then rehydrated).
const TOTAL: u64 = 5_000;
/// Signals written before the stage starts: its first batch.
const FIRST: u64 = 1_000;

/// Starts `sigstage ROLE` with `fault` armed.
fn start_with_fault(db: &TestDb, role: &str, fault: &str) -> Child {
    spawn_role(&db.vars, role, &[("SIGSTAGE_FAULT", fault)])
}

/// Waits until the fault kills `child`; panics if it ends otherwise.
async fn killed_by_fault(mut child: Child, fault: &str) {
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait())
        .await
        .unwrap_or_else(|_| panic!("never reached {fault}"))
        .expect("waited");
    assert_eq!(status.signal(), Some(SIGABRT), "ended at {fault} by the fault: {status}");
}

/// The signal a fault point aborts with.
const SIGABRT: i32 = 6;

/// Every record of the stream's outputs exactly once: processed signals, dedupe entries, one
/// link and one lead per visitor, and their two events.
///
/// A killed process's transaction stays open until the broker times it out (each process has a
/// transactional id of its own, so no successor fences it): `TRANSACTION_TIMEOUT`, and up to
/// the broker's 10 s sweep after. Until then a `read_committed` reader stops where it began, so
/// the counts are taken once the processed records have passed it, or that long has gone by.
async fn assert_stream_outputs_once(config: &Config) {
    let count = |name: &str| count_records(config, &config.kafka.topic(name));
    let deadline = Instant::now() + runtime::kafka::TRANSACTION_TIMEOUT + Duration::from_secs(30);
    while count(topics::SIGNALS_PROCESSED) < TOTAL as i64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(count(topics::SIGNALS_PROCESSED), TOTAL as i64, "processed signals");
    assert_eq!(count_dedupe_entries(config), (TOTAL as usize, TOTAL as usize), "dedupe entries, each hash once");
    assert_eq!(count(topics::IDENTITIES), 200, "a link and a lead per visitor");
    assert_eq!(count(topics::WEBHOOKS_OUTBOX), 200, "lead.created and lead.identified per visitor");
    assert_eq!(count(topics::SIGNALS_DLQ), 0, "no dead letters");
}

/// A batch is committed, then the stream is killed at `fault` in its second batch (so there is
/// state to restore), then at each of `then` as it starts again, then runs to the end.
async fn stream_killed_at(fault: &str, then: &[&str]) {
    let db = TestDb::migrated().await;
    let config = &db.config;
    let raw = config.kafka.topic(topics::SIGNALS_RAW);
    fill(config, &raw, 1, FIRST, "webhook").await;
    let mut first = start_with_fault(&db, "stream", fault);
    let processed = config.kafka.topic(topics::SIGNALS_PROCESSED);
    let deadline = Instant::now() + Duration::from_secs(60);
    // A batch committed; the fault may already have fired in the next one (even while the
    // count was being taken, so an exit is judged by counting again).
    while count_records(config, &processed) == 0 {
        if first.try_wait().expect("status").is_some() {
            assert!(count_records(config, &processed) > 0, "killed before any batch was committed");
            break;
        }
        assert!(Instant::now() < deadline, "no batch was committed in 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fill(config, &raw, FIRST + 1, TOTAL - FIRST, "webhook").await;
    killed_by_fault(first, fault).await;
    for fault in then {
        killed_by_fault(start_with_fault(&db, "stream", fault), fault).await;
    }
    let processor = start_processor(config);
    caught_up(config).await;
    processor.stop().await;
    assert_stream_outputs_once(config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_killed_after_some_outputs_then_mid_restore() {
    stream_killed_at("stream.some_outputs_written:2", &["stream.restoring:1"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_killed_after_all_outputs_before_commit() {
    stream_killed_at("stream.before_commit:2", &[]).await;
}

/// Killed with its second batch processed in memory while the first one's transaction may still
/// be in flight (batches are pipelined), then again as the next run processes its first batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_killed_while_a_transaction_is_in_flight() {
    stream_killed_at("stream.processed:2", &["stream.processed:1"]).await;
}

/// The sink, on `db`, killed at `fault` with a raw topic of [`TOTAL`] signals processed, then
/// started again: every row once, counted physically. On a cluster too (`db` made so).
pub async fn sink_killed_at(db: &TestDb, fault: &str) {
    let config = &db.config;
    fill(config, &config.kafka.topic(topics::SIGNALS_RAW), 1, TOTAL, "webhook").await;
    let processor = start_processor(config);
    caught_up(config).await;
    processor.stop().await;
    killed_by_fault(start_with_fault(db, "sink", fault), fault).await;
    let sink = start_sink(config, db.client.clone());
    let client = &db.client;
    // Hot: every signal but the first hundred tracks directly, and those hundred rehydrated.
    await_recovered(client, "SELECT count() FROM signals_hot", TOTAL).await;
    await_count(client, "SELECT count() FROM signals_cold", 100).await;
    await_count(client, "SELECT count() FROM identities", 100).await;
    await_count(client, "SELECT count() FROM leads", 100).await;
    sink.stop().await;
    assert_no_row_twice(client).await;
    await_count(client, "SELECT count() FROM signals_hot WHERE attributed_by = 'rehydrated'", 100).await;
    assert_eq!(count_records(config, &config.kafka.topic(topics::SIGNALS_DLQ)), 0, "no row refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_killed_after_some_rows() {
    sink_killed_at(&TestDb::migrated().await, "sink.some_rows_written:1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_killed_mid_rehydration() {
    sink_killed_at(&TestDb::migrated().await, "sink.rehydrating:1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_killed_after_all_rows_before_commit() {
    sink_killed_at(&TestDb::migrated().await, "sink.before_commit:1").await;
}

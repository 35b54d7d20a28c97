//! Consumer groups changing under steady load: two processors and two sinks (each a `sigstage`
//! process), then a third of each joins, one of each is SIGKILLed, and one of each leaves
//! cleanly. Nothing is lost or doubled, counted physically, and every identified visitor is
//! rehydrated.

use std::time::{Duration, Instant};

use runtime::config::Config;
use runtime::kafka::topics;
use tokio::process::Child;

use crate::stream_recovery::fill;
use crate::support::edge::{count_dedupe_entries, count_records};
use crate::support::pipeline::{await_count, caught_up, spawn_role};
use crate::support::TestDb;

const TOTAL: u64 = 6_000;

fn spawn(db: &TestDb, role: &str) -> Child {
    spawn_role(&db.vars, role, &[])
}

/// Waits until `signals.processed` holds at least `count` records.
async fn processed_at_least(config: &Config, count: i64) {
    let topic = config.kafka.topic(topics::SIGNALS_PROCESSED);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count_records(config, &topic) < count {
        assert!(Instant::now() < deadline, "fewer than {count} signals processed after 120 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks a process to stop (SIGTERM) and waits until it has.
async fn leave(mut child: Child) {
    let pid = child.id().expect("running").to_string();
    let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(sent.success());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("stops").expect("waited");
    assert!(status.success(), "a clean leave: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_die_and_leave_under_load_and_nothing_is_lost_or_doubled() {
    let db = TestDb::migrated().await;
    let config = db.config.clone();
    let raw = config.kafka.topic(topics::SIGNALS_RAW);
    fill(&config, &raw, 1, 300, "webhook").await;
    let load = {
        let (config, raw) = (config.clone(), raw.clone());
        tokio::spawn(async move {
            for first in (301..=TOTAL).step_by(100) {
                fill(&config, &raw, first, 100, "webhook").await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (mut p1, p2, mut s1, s2) = (spawn(&db, "stream"), spawn(&db, "stream"), spawn(&db, "sink"), spawn(&db, "sink"));
    processed_at_least(&config, 1_000).await;
    let (p3, s3) = (spawn(&db, "stream"), spawn(&db, "sink"));
    processed_at_least(&config, 2_500).await;
    p1.start_kill().expect("SIGKILL");
    s1.start_kill().expect("SIGKILL");
    processed_at_least(&config, 4_000).await;
    leave(p2).await;
    leave(s2).await;
    load.await.expect("load written");

    caught_up(&config).await;
    let count = |name: &str| count_records(&config, &config.kafka.topic(name));
    assert_eq!(count(topics::SIGNALS_PROCESSED), TOTAL as i64, "each signal processed once");
    assert_eq!(count_dedupe_entries(&config), (TOTAL as usize, TOTAL as usize), "one dedupe entry per signal");
    assert_eq!(count(topics::IDENTITIES), 200, "a link and a lead per visitor");
    assert_eq!(count(topics::WEBHOOKS_OUTBOX), 200, "lead.created and lead.identified per visitor");
    let client = &db.client;
    await_count(client, "SELECT count() FROM signals_hot", TOTAL).await;
    await_count(client, "SELECT count() FROM signals_cold", 100).await;
    await_count(client, "SELECT count() FROM signals_hot WHERE attributed_by = 'rehydrated'", 100).await;
    await_count(client, "SELECT count() FROM identities", 100).await;
    await_count(client, "SELECT count() FROM leads", 100).await;
    await_count(client, "SELECT count() - uniqExact(signal_id) FROM signals_hot", 0).await;
    drop((p3, s3));
}

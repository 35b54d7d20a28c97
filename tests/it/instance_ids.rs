//! Instance ids are leased through Kafka: a second edge started with the id of a running one is
//! refused at start, one without an id takes a free one, and a stopped edge frees its id at once.

use crate::support::pipeline::{start_ready, Ready};
use crate::support::TestDb;

async fn start(db: &TestDb, id: Option<&str>) -> Result<Ready, (std::process::ExitStatus, String)> {
    match id {
        Some(id) => start_ready(&db.vars, &["ingest"], &[("SIGSTAGE_INSTANCE_ID", id)]).await,
        None => start_ready(&db.vars, &["ingest"], &[]).await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_with_the_same_id_is_refused() {
    let db = TestDb::migrated().await;
    let first = start(&db, Some("7")).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));

    let Err((status, logs)) = start(&db, Some("7")).await else { panic!("a second instance with id 7 started") };
    assert!(!status.success());
    assert!(logs.contains("instance id 7 is in use by another running instance"), "{logs}");

    // Without an id: the lowest free one, which is not 7.
    let unnamed = start(&db, None).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));

    // Stopping releases the id at once: it can be taken again without waiting for the lease.
    let first_logs = first.stop().await;
    assert!(first_logs.contains("instance id leased instance_id=7"), "{first_logs}");
    let again = start(&db, Some("7")).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    again.stop().await;
    let unnamed_logs = unnamed.stop().await;
    assert!(unnamed_logs.contains("instance id leased instance_id=0"), "{unnamed_logs}");
}

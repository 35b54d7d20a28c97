//! Instance ids are leased through Kafka: a second edge started with the id of a running one is
//! refused at start, one without an id takes a free one, and a stopped edge frees its id at once.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::TestDb;

/// A `sigstage ingest` that reached its ready line.
struct Ingest {
    child: Child,
    logs: tokio::task::JoinHandle<String>,
}

/// Starts `sigstage ingest` with `SIGSTAGE_INSTANCE_ID` = `id` (when given): the running
/// process once ready, or its exit status and what it logged when it ends before that.
async fn start(db: &TestDb, id: Option<&str>) -> Result<Ingest, (std::process::ExitStatus, String)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sigstage"));
    command.arg("ingest").envs(&db.vars).env("SIGSTAGE_HTTP_ADDR", "127.0.0.1:0").env("RUST_LOG", "info");
    if let Some(id) = id {
        command.env("SIGSTAGE_INSTANCE_ID", id);
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true).spawn().expect("spawn");
    let mut stderr = child.stderr.take().expect("stderr");
    let logs = tokio::spawn(async move {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs).await;
        logs
    });
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("a ready line or an exit within 60 s")
            .expect("stdout readable");
        match line {
            Some(line) if line.starts_with("sigstage ready: ") => break,
            Some(_) => continue,
            None => {
                let status = child.wait().await.expect("exit status");
                return Err((status, logs.await.expect("logs")));
            }
        }
    }
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Ingest { child, logs })
}

/// Stops with SIGTERM; answers what it logged.
async fn stop(mut ingest: Ingest) -> String {
    let pid = ingest.child.id().expect("pid").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill").success());
    let exit = tokio::time::timeout(Duration::from_secs(15), ingest.child.wait())
        .await
        .expect("stops within 15 s")
        .expect("exit status");
    assert!(exit.success(), "{exit}");
    ingest.logs.await.expect("logs")
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
    let first_logs = stop(first).await;
    assert!(first_logs.contains("instance id leased instance_id=7"), "{first_logs}");
    let again = start(&db, Some("7")).await.unwrap_or_else(|(status, logs)| panic!("{status}: {logs}"));
    stop(again).await;
    let unnamed_logs = stop(unnamed).await;
    assert!(unnamed_logs.contains("instance id leased instance_id=0"), "{unnamed_logs}");
}

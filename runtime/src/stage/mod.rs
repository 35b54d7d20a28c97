//! What every stage (the stream processor, the ClickHouse sink, the webhook sink) runs under:
//! a supervisor that restarts a failed stage with backoff, so it rejoins its group and restores
//! its state from scratch; the status `/readyz` reports for each stage; and the fault points
//! tests use to kill a stage at a chosen step.
//!
//! A stage never carries on past an error it cannot undo: it returns it, and the supervisor
//! starts it again. Its state is rebuilt from what was committed, so nothing is lost or doubled.

pub mod batches;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

pub const RESTARTS_TOTAL: &str = "sigstage_stage_restarts_total";
pub const RESTORE_RECORDS: &str = "sigstage_stage_restore_records";
pub const RESTORE_SECONDS: &str = "sigstage_stage_restore_seconds";
pub const BATCH_RECORDS: &str = "sigstage_stage_batch_records";
pub const BATCH_SECONDS: &str = "sigstage_stage_batch_seconds";
pub const END_TO_END_SECONDS: &str = "sigstage_stage_end_to_end_seconds";
pub const CONSUMER_LAG: &str = "sigstage_stage_consumer_lag";

/// Why a stage stopped before it was asked to.
pub type StageError = Box<dyn std::error::Error + Send + Sync>;

/// What a stage is doing, as `/readyz` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    Starting,
    /// Reading its state back before it processes the partitions it was given.
    Restoring {
        partitions: Vec<i32>,
        records: u64,
    },
    Running,
    /// Running, but `what` keeps failing on `on` (a server it needs), retried until it succeeds.
    Waiting {
        on: String,
        what: String,
        error: String,
        failures: u64,
    },
    /// Failed; restarted after `retry_in_ms`.
    Down {
        error: String,
        restarts: u64,
        retry_in_ms: u64,
    },
}

/// Every stage of this process and its status.
#[derive(Clone, Default)]
pub struct Stages(Arc<Mutex<BTreeMap<String, Status>>>);

impl Stages {
    /// The handle a stage named `name` reports through.
    pub fn stage(&self, name: &str) -> Stage {
        let stage = Stage { name: name.to_owned(), stages: self.clone() };
        stage.set(Status::Starting);
        stage
    }

    /// Each stage's status, and whether all of them are running.
    pub fn report(&self) -> (bool, BTreeMap<String, Status>) {
        let all = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        (all.values().all(|status| *status == Status::Running), all)
    }
}

/// One stage's handle on its status.
#[derive(Clone)]
pub struct Stage {
    name: String,
    stages: Stages,
}

impl Stage {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn set(&self, status: Status) {
        self.stages.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(self.name.clone(), status);
    }
}

/// The longest a failed stage waits before it is started again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Runs `run` until `stop` turns true, starting it again after each failure: 1 s later, then
/// twice as long each time up to [`MAX_BACKOFF`] (back to 1 s after a run that lasted a minute).
pub async fn supervise<F, Fut>(stage: Stage, mut stop: watch::Receiver<bool>, mut run: F)
where
    F: FnMut(Stage, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = Result<(), StageError>>,
{
    let name = stage.name().to_owned();
    let (mut backoff, mut restarts) = (Duration::from_secs(1), 0u64);
    loop {
        stage.set(Status::Starting);
        let started = Instant::now();
        let error = match run(stage.clone(), stop.clone()).await {
            Ok(()) if *stop.borrow() => return,
            Ok(()) => "stopped by itself".into(),
            Err(error) => error.to_string(),
        };
        if *stop.borrow() {
            return;
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Duration::from_secs(1);
        }
        restarts += 1;
        metrics::counter!(RESTARTS_TOTAL, "stage" => name.clone()).increment(1);
        tracing::error!(stage = %name, %error, restarts, retry_in_ms = backoff.as_millis() as u64, "stage failed; restarting it");
        stage.set(Status::Down { error, restarts, retry_in_ms: backoff.as_millis() as u64 });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Registers the runtime metrics of `stage` at zero, with their descriptions.
pub fn register_metrics(stage: &'static str) {
    metrics::describe_counter!(RESTARTS_TOTAL, "times a stage failed and was restarted");
    metrics::describe_gauge!(RESTORE_RECORDS, "changelog records read by the current or last restore");
    metrics::describe_histogram!(RESTORE_SECONDS, "how long restores took");
    metrics::describe_histogram!(BATCH_RECORDS, "records per committed batch");
    metrics::describe_histogram!(BATCH_SECONDS, "time from a batch's first record read to its commit");
    metrics::describe_histogram!(END_TO_END_SECONDS, "time from the edge's receive to the stage's commit, per record");
    metrics::describe_gauge!(CONSUMER_LAG, "records a stage's group has yet to read, per partition");
    metrics::counter!(RESTARTS_TOTAL, "stage" => stage).absolute(0);
    metrics::gauge!(RESTORE_RECORDS, "stage" => stage).set(0.0);
    for histogram in [RESTORE_SECONDS, BATCH_RECORDS, BATCH_SECONDS, END_TO_END_SECONDS] {
        let _ = metrics::histogram!(histogram, "stage" => stage);
    }
}

/// Records a committed batch of `stage`: its size, how long it took since `started`, and for
/// each record the time since the edge received it.
pub fn record_batch(stage: &'static str, batch: &[rdkafka::message::BorrowedMessage<'_>], started: Instant) {
    use rdkafka::message::{Headers, Message};
    metrics::histogram!(BATCH_RECORDS, "stage" => stage).record(batch.len() as f64);
    metrics::histogram!(BATCH_SECONDS, "stage" => stage).record(started.elapsed().as_secs_f64());
    let now_ms = crate::time::now_ms();
    let latency = metrics::histogram!(END_TO_END_SECONDS, "stage" => stage);
    for message in batch {
        let received = message.headers().and_then(|headers| {
            let header = headers.iter().find(|header| header.key == schemas::record::headers::RECEIVED_MS)?;
            std::str::from_utf8(header.value?).ok()?.parse::<u64>().ok()
        });
        if let Some(received_ms) = received {
            latency.record(now_ms.saturating_sub(received_ms) as f64 / 1000.0);
        }
    }
}

/// The fault point tests arm (`SIGSTAGE_FAULT=point:n`): the n-th time the process reaches it,
/// it aborts at once, as a SIGKILL would. Debug builds only: release builds refuse the setting.
static FAULT: OnceLock<Option<(String, Mutex<u32>)>> = OnceLock::new();

/// Arms the fault point from the configuration (once, at start-up).
pub fn arm_fault(spec: Option<(String, u32)>) {
    let _ = FAULT.set(spec.map(|(point, count)| (point, Mutex::new(count))));
}

/// Aborts the process if this is the armed fault point, reached for the armed time.
pub fn fault_point(point: &str) {
    if !cfg!(debug_assertions) {
        return;
    }
    if let Some(Some((armed, left))) = FAULT.get() {
        if armed == point {
            let mut left = left.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *left = left.saturating_sub(1);
            if *left == 0 {
                eprintln!("sigstage: fault injected at {point}; aborting");
                std::process::abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_failed_stage_is_restarted_and_reported_down_meanwhile() {
        let stages = Stages::default();
        let (stop_tx, stop) = watch::channel(false);
        let runs = Arc::new(Mutex::new(0));
        let counted = Arc::clone(&runs);
        let supervised = tokio::spawn(supervise(stages.stage("stream"), stop, move |stage, mut stop| {
            let runs = Arc::clone(&counted);
            async move {
                let run = {
                    let mut runs = runs.lock().expect("lock");
                    *runs += 1;
                    *runs
                };
                if run < 3 {
                    return Err(format!("failure {run}").into());
                }
                stage.set(Status::Running);
                let _ = stop.wait_for(|stop| *stop).await;
                Ok(())
            }
        }));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (ready, report) = stages.report();
        assert!(!ready);
        assert!(matches!(&report["stream"], Status::Down { error, restarts: 1, .. } if error == "failure 1"));
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(*runs.lock().expect("lock"), 3, "restarted after 1 s, then 2 s");
        assert!(stages.report().0);
        stop_tx.send(true).expect("supervisor listening");
        supervised.await.expect("no panic");
    }
}

//! Per-org retention enforced every `SIGSTAGE_RETENTION_INTERVAL_MS` (an hour by default), as
//! [`control::retention`] says: a TTL where the server has one, else a delete of expired rows.

use std::time::{Duration, Instant};

use tokio::sync::watch;

pub const ROUNDS_TOTAL: &str = "sigstage_retention_rounds_total";
pub const ROWS_DELETED_TOTAL: &str = "sigstage_retention_rows_deleted_total";

/// Enforces retention now and then every `every`, until `stop` turns true. A failure is logged
/// and counted, and the next round tries again.
pub async fn run(
    client: clickhouse::Client,
    cluster: Option<String>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut applied = None;
    loop {
        let started = Instant::now();
        let enforced = tokio::select! {
            enforced = control::retention::enforce(&client, cluster.as_deref(), &mut applied) => enforced,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match enforced {
            Ok(enforced) => {
                metrics::counter!(ROUNDS_TOTAL, "result" => "done").increment(1);
                metrics::counter!(ROWS_DELETED_TOTAL).increment(enforced.rows_deleted);
                if enforced.ttl_changes > 0 || enforced.rows_deleted > 0 {
                    tracing::info!(
                        ttl_changes = enforced.ttl_changes,
                        rows_deleted = enforced.rows_deleted,
                        took_ms = started.elapsed().as_millis() as u64,
                        "retention enforced"
                    );
                }
            }
            Err(error) => {
                metrics::counter!(ROUNDS_TOTAL, "result" => "failed").increment(1);
                tracing::warn!(%error, "enforcing retention failed; trying again in the next round");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

pub fn register_metrics() {
    metrics::describe_counter!(ROUNDS_TOTAL, "rounds of per-org retention enforcement, by result");
    metrics::describe_counter!(ROWS_DELETED_TOTAL, "expired rows deleted by retention (servers without TTL)");
    for result in ["done", "failed"] {
        metrics::counter!(ROUNDS_TOTAL, "result" => result).absolute(0);
    }
    metrics::counter!(ROWS_DELETED_TOTAL).absolute(0);
}

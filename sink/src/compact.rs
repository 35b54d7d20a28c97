//! Compaction of the rollups kept per visitor and per lead ([`ENTITY_ROLLUPS`]).
//!
//! The analysts' questions about visitors and leads fold one rollup row per key, and what a fold
//! costs is the rows it reads. ClickHouse's background merges leave several parts, so a key has
//! a row in each: at 100 M signals, 15 M `visitors` rows for 4 M visitors of one org, and its
//! folds took 1.8 to 2 s. Merged to one part (`OPTIMIZE … FINAL`), a key has one row, and the
//! same folds take 0.5 to 0.7 s. The sink does that every `SIGSTAGE_ROLLUPS_COMPACT_INTERVAL_MS`
//! (an hour by default; 10 s for both tables at 100 M signals), and `sigstage rollups compact`
//! does it at once. A merge changes no answer: the rows of a key fold into one, as any merge
//! folds them; inserts go on meanwhile, into parts of their own.
//!
//! On a cluster it merges every node's local table (`ON CLUSTER`), except on ClickHouse 18.x:
//! it fails `OPTIMIZE … FINAL` of a replicated table sent to a replica that is not the leader
//! ("Unknown log entry type: 0", ClickHouse#3611), so there compaction is refused, saying so.

use std::time::{Duration, Instant};

use schemas::migrations::ENTITY_ROLLUPS;
use tokio::sync::watch;

pub const COMPACTIONS_TOTAL: &str = "sigstage_rollups_compactions_total";
pub const COMPACTION_SECONDS: &str = "sigstage_rollups_compaction_seconds";

#[derive(Debug)]
pub enum CompactError {
    ClickHouse(clickhouse::error::Error),
    /// A cluster of servers too old to merge a replicated table to one part (see the module).
    ReplicatedOnOldServer {
        version: String,
    },
}

impl std::fmt::Display for CompactError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClickHouse(error) => error.fmt(f),
            Self::ReplicatedOnOldServer { version } => write!(
                f,
                "ClickHouse {version} cannot merge a replicated table to one part from a replica that is not its \
                 leader (ClickHouse#3611), so sigstage does not compact rollups on a cluster of it; their answers \
                 are exact either way, only slower to read"
            ),
        }
    }
}

impl std::error::Error for CompactError {}

impl From<clickhouse::error::Error> for CompactError {
    fn from(error: clickhouse::error::Error) -> Self {
        Self::ClickHouse(error)
    }
}

/// Merges each of [`ENTITY_ROLLUPS`] into one part, in turn (on a cluster, every node's local
/// table); answers how long each took.
pub async fn compact(
    client: &clickhouse::Client,
    cluster: Option<&str>,
) -> Result<Vec<(&'static str, Duration)>, CompactError> {
    if cluster.is_some() {
        let version: String = client.query("SELECT version()").fetch_one().await?;
        if version.starts_with("18.") || version.starts_with("1.1.") {
            return Err(CompactError::ReplicatedOnOldServer { version });
        }
    }
    let mut took = Vec::with_capacity(ENTITY_ROLLUPS.len());
    for rollup in ENTITY_ROLLUPS {
        let started = Instant::now();
        let statement = match cluster {
            Some(cluster) => format!("OPTIMIZE TABLE {rollup}_local ON CLUSTER {cluster} FINAL"),
            None => format!("OPTIMIZE TABLE {rollup} FINAL"),
        };
        client.query(&statement).execute().await?;
        took.push((rollup, started.elapsed()));
    }
    Ok(took)
}

/// Compacts every `every` until `stop` turns true. A failure is logged and counted, and the
/// next round tries again: the rollups stay exact either way, only slower to read.
pub async fn run(
    client: clickhouse::Client,
    cluster: Option<String>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
        let started = Instant::now();
        let compacted = tokio::select! {
            compacted = compact(&client, cluster.as_deref()) => compacted,
            _ = stop.wait_for(|stopped| *stopped) => return,
        };
        match compacted {
            Ok(took) => {
                metrics::counter!(COMPACTIONS_TOTAL, "result" => "done").increment(1);
                metrics::gauge!(COMPACTION_SECONDS).set(started.elapsed().as_secs_f64());
                tracing::info!(?took, "rollups compacted");
            }
            Err(error @ CompactError::ReplicatedOnOldServer { .. }) => {
                tracing::warn!(%error, "rollups are not compacted");
                return;
            }
            Err(error) => {
                metrics::counter!(COMPACTIONS_TOTAL, "result" => "failed").increment(1);
                tracing::warn!(%error, "compacting the rollups failed; trying again in the next round");
            }
        }
    }
}

pub fn register_metrics() {
    metrics::describe_counter!(COMPACTIONS_TOTAL, "rounds of rollup compaction (OPTIMIZE FINAL), by result");
    metrics::describe_gauge!(COMPACTION_SECONDS, "how long the last rollup compaction took");
    for result in ["done", "failed"] {
        metrics::counter!(COMPACTIONS_TOTAL, "result" => result).absolute(0);
    }
}

//! The signal queue in ClickHouse: signals that no mapping rule of their org matched, grouped by
//! (org, source, event). Stream processors append counts; `sigstage queue` and the admin API
//! read the groups back to help users write rules.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// One group's count over one flush of one processor, or (read back) over all of them.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct QueuedGroup {
    pub org_id: String,
    pub source: String,
    pub event: String,
    pub signals: u64,
    pub first_seen_ms: u64,
    pub last_seen_ms: u64,
    /// A recent payload of the group, at most [`SAMPLE_MAX_BYTES`] (cut at a character
    /// boundary, so it may not be whole JSON).
    pub sample: String,
}

pub const SAMPLE_MAX_BYTES: usize = 4096;

pub async fn append(client: &clickhouse::Client, groups: &[QueuedGroup]) -> Result<(), clickhouse::error::Error> {
    runtime::clickhouse::insert::<QueuedGroup, _>(client, "signal_queue", groups).await
}

/// The groups of `org_id`, most signals first.
pub async fn list(client: &clickhouse::Client, org_id: &str) -> Result<Vec<QueuedGroup>, clickhouse::error::Error> {
    client
        .query(
            // Aliases are global in ClickHouse: the inner names keep `max(last) AS last_seen_ms`
            // from being read inside argMax.
            "SELECT org_id, source, event, sum(signals) AS signals, min(first) AS first_seen_ms, \
             max(last) AS last_seen_ms, argMax(sample, last) AS sample \
             FROM (SELECT org_id, source, event, signals, first_seen_ms AS first, last_seen_ms AS last, sample \
                   FROM signal_queue WHERE org_id = ?) \
             GROUP BY org_id, source, event ORDER BY signals DESC, source, event",
        )
        .bind(org_id)
        .fetch_all()
        .await
}

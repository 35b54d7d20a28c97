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

/// Why no rule is suggested for a group.
#[derive(Debug, thiserror::Error)]
pub enum SuggestError {
    #[error("the signal queue of {org} has no group of source {from:?} and event {event:?} (`sigstage queue --org {org}` lists them)")]
    NoGroup { org: String, from: String, event: String },
    #[error("the group's sample was cut at 4 KiB and is not whole JSON; give a whole sample instead")]
    SampleCut,
    #[error("reading the signal queue: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// The rule [`schemas::suggest`] proposes for the org's queue group of `source` and `event`
/// (empty: signals without one), read off the group's sample.
pub async fn suggest(
    client: &clickhouse::Client,
    org_id: &str,
    source: &str,
    event: &str,
) -> Result<schemas::rules::RuleSpec, SuggestError> {
    let groups = list(client, org_id).await?;
    let Some(group) = groups.into_iter().find(|group| group.source == source && group.event == event) else {
        return Err(SuggestError::NoGroup { org: org_id.to_owned(), from: source.to_owned(), event: event.to_owned() });
    };
    let sample: serde_json::Value = serde_json::from_str(&group.sample).map_err(|_| SuggestError::SampleCut)?;
    Ok(schemas::suggest::suggest(source, Some(event).filter(|event| !event.is_empty()), &sample))
}

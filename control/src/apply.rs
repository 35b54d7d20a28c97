//! A rule applied to the signals already stored (`sigstage rules apply`, issue 24): a job that
//! sends each stored signal the rule would attribute back through the stream, which then does
//! what it would have done had the rule existed when the signal came: the hot row with the
//! rule's fields, the visitor's link (and the rehydration of its other anonymous signals), the
//! new lead, and their webhook events.
//!
//! - **What is sent**: an org's anonymous signals with event times in the range, not hot yet,
//!   that the rule matches and gives an email ([`crate::history::preview`] counts the same).
//!   They go to `signals.raw.historical`, the lane imports use (so live traffic comes first),
//!   keyed as the edge keyed them, with their signal id and receive time and the header
//!   [`schemas::record::headers::HISTORY_RULES`]: the rules they matched when they came, and this one. The stream
//!   applies only those, leaves them out of dedupe and of the Signal Queue, does not move a
//!   visitor already linked, and sends no `signal.created` (a webhook backfill sends history);
//!   the sink writes only the rows its tables do not hold.
//! - **Exact, and idempotent**: a signal sent twice (a job resumed after a crash, or run again)
//!   changes nothing the second time: the stream makes a link or a lead only once, and the sink
//!   leaves out rows its tables hold. Rows already stored are not rewritten: their mapped fields
//!   stay those of the rules they matched when they came.
//! - **A job**: its state and cursor (the event time and id of the last signal sent) are a row of
//!   `history_jobs`, written after each chunk is acknowledged by Kafka; it resumes from there,
//!   paced at a rate of signals read a second, and stops between chunks when paused or cancelled.
//!   It sends a chunk only once the last one is stored: the sink reads history and live signals
//!   from one topic in order, so history sent faster than the pipeline stores would stand in
//!   front of live signals there.
//!   It sends nothing until the rule is two control refreshes old, so that every stream holds it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use clickhouse::Row;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::mapping::{Compiled, Mapping};
use schemas::record::{record_key, RawHeaders};
use schemas::rules::Rule;
use serde::{Deserialize, Serialize};

/// Stored signals read per chunk.
const CHUNK: u64 = 2_000;

pub const RUNNING: &str = "running";
pub const PAUSED: &str = "paused";
pub const CANCELLED: &str = "cancelled";
pub const DONE: &str = "done";
pub const FAILED: &str = "failed";

/// A rule applied to an org's stored signals, as stored in `history_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Job {
    pub org_id: String,
    pub job_id: String,
    pub rule_id: String,
    pub since_ms: u64,
    pub until_ms: u64,
    /// `running`, `paused`, `cancelled`, `done` or `failed`.
    pub state: String,
    /// The event time and id of the last signal read.
    pub cursor_ms: u64,
    pub cursor_id: u64,
    /// Anonymous signals stored in the range when the job began.
    pub total: u64,
    /// Of those, read so far, and sent to the stream.
    pub read: u64,
    pub sent: u64,
    pub error: String,
    /// Stored signals read a second, at most.
    pub rate: u32,
    pub started_ms: u64,
    pub version: u64,
}

impl Job {
    /// Done or cancelled: a failed job may be resumed.
    pub fn finished(&self) -> bool {
        [CANCELLED, DONE].contains(&self.state.as_str())
    }
}

/// Starts a job applying `rule` to its org's signals with event times in `since_ms..until_ms`.
pub async fn create(
    client: &clickhouse::Client,
    rule: &Rule,
    since_ms: u64,
    until_ms: u64,
    rate: u32,
) -> Result<Job, ApplyError> {
    if rate == 0 {
        return Err(ApplyError::Invalid("the rate must be at least 1 stored signal a second".into()));
    }
    Compiled::new(rule).map_err(ApplyError::Invalid)?;
    let total: u64 = client
        .query("SELECT count() FROM signals_cold WHERE org_id = ? AND event_ms >= ? AND event_ms < ?")
        .bind(&rule.org_id)
        .bind(since_ms)
        .bind(until_ms)
        .fetch_one()
        .await?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|error| ApplyError::Random(error.to_string()))?;
    let now = runtime::time::now_ms();
    let job = Job {
        org_id: rule.org_id.clone(),
        job_id: format!("job_{}", hex::encode(id)),
        rule_id: rule.id.clone(),
        since_ms,
        until_ms,
        state: RUNNING.to_owned(),
        cursor_ms: since_ms,
        cursor_id: 0,
        total,
        read: 0,
        sent: 0,
        error: String::new(),
        rate,
        started_ms: now,
        version: now,
    };
    save(client, &job).await?;
    Ok(job)
}

/// One job of an org.
pub async fn get(client: &clickhouse::Client, org: &str, job_id: &str) -> Result<Job, ApplyError> {
    client
        .query("SELECT ?fields FROM history_jobs FINAL WHERE org_id = ? AND job_id = ?")
        .bind(org)
        .bind(job_id)
        .fetch_optional()
        .await?
        .ok_or_else(|| ApplyError::NoJob(org.to_owned(), job_id.to_owned()))
}

/// An org's jobs, the newest first.
pub async fn list(client: &clickhouse::Client, org: &str) -> Result<Vec<Job>, ApplyError> {
    Ok(client
        .query("SELECT ?fields FROM history_jobs FINAL WHERE org_id = ? ORDER BY started_ms DESC")
        .bind(org)
        .fetch_all()
        .await?)
}

/// Pauses (`paused`), resumes (`running`, also a failed job) or cancels (`cancelled`) a job; one
/// done or cancelled stays as it is. The job's runner heeds it between chunks.
pub async fn set_state(client: &clickhouse::Client, org: &str, job_id: &str, state: &str) -> Result<Job, ApplyError> {
    let mut job = get(client, org, job_id).await?;
    if job.finished() {
        return Err(ApplyError::Finished(job.job_id, job.state));
    }
    job.state = state.to_owned();
    job.error.clear();
    save(client, &job).await?;
    Ok(job)
}

/// Saves the runner's progress, keeping a pause or a cancel made meanwhile (by [`set_state`]).
async fn save_progress(client: &clickhouse::Client, job: &mut Job) -> Result<(), ApplyError> {
    let now = get(client, &job.org_id, &job.job_id).await?;
    if now.state != RUNNING {
        job.state = now.state;
    }
    job.version = job.version.max(now.version);
    Ok(save(client, job).await?)
}

async fn save(client: &clickhouse::Client, job: &Job) -> Result<(), clickhouse::error::Error> {
    let mut job = job.clone();
    job.version = runtime::time::now_ms().max(job.version + 1);
    runtime::clickhouse::insert::<Job, _>(client, "history_jobs", &[job]).await
}

/// Where a job sends, and how fast it reads.
pub struct Sending<'a> {
    pub producer: &'a FutureProducer,
    /// The full name of `signals.raw.historical`.
    pub topic: &'a str,
    /// `SIGSTAGE_CONTROL_REFRESH_MS`: a rule is sent with once two refreshes old, when every
    /// stream holds it (one that did not would map nothing, and the signal stay unattributed).
    pub refresh: Duration,
}

#[derive(Row, Deserialize)]
struct Key {
    event_ms: u64,
    signal_id: u64,
}

#[derive(Row, Deserialize)]
struct Stored {
    signal_id: u64,
    anonymous_id: String,
    source: String,
    event: String,
    rules: Vec<String>,
    received_ms: u64,
    payload: String,
}

/// Runs `job` from its cursor until it is done, paused or cancelled (by [`set_state`], read
/// between chunks), telling `progress` after each chunk; answers the job as it ended.
pub async fn run(
    client: &clickhouse::Client,
    sending: &Sending<'_>,
    mut job: Job,
    progress: impl Fn(&Job),
) -> Result<Job, ApplyError> {
    let answer = run_chunks(client, sending, &mut job, progress).await;
    if let Err(error) = &answer {
        // Failed, unless it was paused or cancelled meanwhile; `resume` goes on from the cursor.
        job.state = FAILED.to_owned();
        job.error = error.to_string();
        save_progress(client, &mut job).await?;
    }
    answer
}

async fn run_chunks(
    client: &clickhouse::Client,
    sending: &Sending<'_>,
    job: &mut Job,
    progress: impl Fn(&Job),
) -> Result<Job, ApplyError> {
    let rule = crate::rules::list(client, Some(&job.org_id))
        .await
        .map_err(|error| ApplyError::Rules(error.to_string()))?
        .into_iter()
        .find(|rule| rule.id == job.rule_id)
        .ok_or_else(|| ApplyError::NoRule(job.rule_id.clone()))?;
    let compiled = [Compiled::new(&rule).map_err(ApplyError::Invalid)?];
    let mapping = Mapping { rules: &compiled, matched: &[0] };
    let held_from = rule.created_ms + 2 * sending.refresh.as_millis() as u64;
    if let Some(wait) = held_from.checked_sub(runtime::time::now_ms()) {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    let began = Instant::now();
    let read_before = job.read;
    loop {
        let state = get(client, &job.org_id, &job.job_id).await?.state;
        if state != RUNNING {
            job.state = state;
            return Ok(job.clone());
        }
        let keys: Vec<Key> = client
            .query(
                "SELECT event_ms, signal_id FROM signals_cold WHERE org_id = ? AND event_ms < ? \
                 AND (event_ms > ? OR (event_ms = ? AND signal_id > ?)) \
                 ORDER BY event_ms, signal_id LIMIT ?",
            )
            .bind(&job.org_id)
            .bind(job.until_ms)
            .bind(job.cursor_ms)
            .bind(job.cursor_ms)
            .bind(job.cursor_id)
            .bind(CHUNK)
            .fetch_all()
            .await?;
        let Some(last) = keys.last() else {
            job.state = DONE.to_owned();
            save_progress(client, job).await?;
            progress(job);
            return Ok(job.clone());
        };
        let (last_ms, last_id) = (last.event_ms, last.signal_id);
        let ids: Vec<u64> = keys.iter().map(|key| key.signal_id).collect();
        let hot: HashSet<u64> = client
            .query(
                "SELECT DISTINCT signal_id FROM signals_hot WHERE org_id = ? \
                 AND signal_id IN (SELECT toUInt64(arrayJoin(?)))",
            )
            .bind(&job.org_id)
            .bind(&ids)
            .fetch_all::<u64>()
            .await?
            .into_iter()
            .collect();
        let mut rows = client
            .query(
                "SELECT signal_id, anonymous_id, source, event, rules, received_ms, payload FROM signals_cold \
                 WHERE org_id = ? AND signal_id IN (SELECT toUInt64(arrayJoin(?))) LIMIT 1 BY signal_id",
            )
            .bind(&job.org_id)
            .bind(&ids)
            .fetch::<Stored>()?;
        let (mut deliveries, mut sent_ids) = (Vec::new(), Vec::new());
        while let Some(row) = rows.next().await? {
            if hot.contains(&row.signal_id) {
                continue;
            }
            let mut bytes = row.payload.clone().into_bytes();
            let Ok(signal) = simd_json::to_borrowed_value(&mut bytes) else { continue };
            if !compiled[0].matches(&row.source, &row.event, &signal) {
                continue;
            }
            let email = mapping
                .first("email", &signal)
                .and_then(|value| simd_json::prelude::ValueAsScalar::as_str(value))
                .and_then(schemas::person::normalise_email);
            if email.is_none() {
                continue;
            }
            let mut rules = row.rules.clone();
            rules.push(rule.id.clone());
            let raw = RawHeaders {
                signal_id: row.signal_id,
                org: &job.org_id,
                key_id: "",
                endpoint: "",
                source: &row.source,
                source_hinted: true,
                received_ms: row.received_ms,
                history_rules: Some(&rules.join(",")),
            };
            let headers = raw.write(OwnedHeaders::new_with_capacity(8), |headers, key, value| {
                headers.insert(Header { key, value: Some(value) })
            });
            let visitor = Some(row.anonymous_id.as_str()).filter(|id| !id.is_empty());
            let key = record_key(&job.org_id, visitor, row.signal_id);
            let record = FutureRecord::to(sending.topic).key(&key).payload(&row.payload).headers(headers);
            let delivery =
                sending.producer.send_result(record).map_err(|(error, _)| ApplyError::Kafka(error.to_string()))?;
            deliveries.push(delivery);
            sent_ids.push(row.signal_id);
        }
        let sent = deliveries.len() as u64;
        for delivery in futures::future::join_all(deliveries).await {
            match delivery {
                Ok(Ok(_)) => {}
                Ok(Err((error, _))) => return Err(ApplyError::Kafka(error.to_string())),
                Err(_) => return Err(ApplyError::Kafka("the producer went away".into())),
            }
        }
        // Sent, the cursor not yet moved: a crash here sends the chunk again, which changes nothing.
        runtime::stage::fault_point("history.sent");
        job.cursor_ms = last_ms;
        job.cursor_id = last_id;
        job.read += keys.len() as u64;
        job.sent += sent;
        save_progress(client, job).await?;
        // Recorded, the next chunk not read: a crash here resumes after this chunk.
        runtime::stage::fault_point("history.saved");
        progress(job);
        stored(client, &job.org_id, &sent_ids).await?;
        // Paced: no faster than `rate` stored signals read a second, this run.
        let due = Duration::from_secs_f64((job.read - read_before) as f64 / f64::from(job.rate.max(1)));
        if let Some(wait) = due.checked_sub(began.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Waits until the stream and the sink have stored the signals a chunk sent hot, so that history
/// never queues up ahead of live signals in `signals.processed`, where the sink reads both in
/// order: a job sends no faster than the pipeline stores. Gives up waiting after [`SETTLE`] (a
/// signal a deletion suppressed meanwhile is never stored), and goes on.
async fn stored(client: &clickhouse::Client, org: &str, ids: &[u64]) -> Result<(), ApplyError> {
    let began = Instant::now();
    while !ids.is_empty() {
        let hot: u64 = client
            .query(
                "SELECT uniqExact(signal_id) FROM signals_hot WHERE org_id = ? \
                 AND signal_id IN (SELECT toUInt64(arrayJoin(?)))",
            )
            .bind(org)
            .bind(ids)
            .fetch_one()
            .await?;
        if hot >= ids.len() as u64 {
            break;
        }
        if began.elapsed() >= SETTLE {
            tracing::warn!(stored = hot, sent = ids.len(), "a chunk's signals are not all stored yet; going on");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The longest a job waits for a chunk to be stored.
const SETTLE: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the rule cannot be compiled: {0}")]
    Invalid(String),
    #[error("rule {0} no longer exists; the job cannot go on (cancel it)")]
    NoRule(String),
    #[error("reading the rules: {0}")]
    Rules(String),
    #[error("org {0} has no job {1} (`sigstage rules jobs --org {0}`)")]
    NoJob(String, String),
    #[error("job {0} is {1} already")]
    Finished(String, String),
    #[error("the system's random source failed: {0}")]
    Random(String),
    #[error("Kafka refused a signal sent again ({0}); `sigstage rules resume` goes on from the last chunk")]
    Kafka(String),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

//! History backfilled to a webhook subscription (`sigstage webhooks backfill`, issue 24): every
//! stored event of its types in a range that it has not been delivered, sent through a queue of
//! its own (`webhook_backfill_queue`, [`Lane::Backfill`]) at the backfill's own rate. The
//! webhook sink's scheduler serves that queue beside the live one, each with its own task per
//! subscription, so live deliveries to the same endpoint never wait behind history.
//!
//! The `webhook-id`s are the events' own, as a live delivery's: a receiver that dedupes sees each
//! event once. A subscription has one backfill running or paused at a time; it is paused,
//! resumed and cancelled through its row, which the scheduler reads every second, and everything
//! it owes is in ClickHouse, so a restart goes on where it was.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::deliveries::{Lane, DELIVERED, FAILED, PENDING};
use crate::webhooks::{self, WebhookAdminError};

pub const RUNNING: &str = "running";
pub const PAUSED: &str = "paused";
pub const CANCELLED: &str = "cancelled";
pub const DONE: &str = "done";

/// Deliveries a second when none is asked for.
pub const DEFAULT_PER_SECOND: u32 = 100;

/// A backfill as stored in `webhook_backfills`.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Backfill {
    pub org_id: String,
    pub backfill_id: String,
    pub subscription_id: String,
    pub since_ms: u64,
    pub until_ms: u64,
    pub event_types: Vec<String>,
    /// `running`, `paused`, `cancelled` or `done`.
    pub state: String,
    /// Events queued when it began.
    pub total: u64,
    pub per_second: u32,
    pub created_ms: u64,
    pub version: u64,
}

/// How far a backfill has come: its deliveries by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Row, Deserialize)]
pub struct Progress {
    pub delivered: u64,
    pub failed: u64,
    pub pending: u64,
}

/// What to backfill.
pub struct Request<'a> {
    pub subscription_id: &'a str,
    pub since_ms: u64,
    pub until_ms: u64,
    /// Of the subscription's types; all of them when empty.
    pub event_types: &'a [String],
    pub per_second: u32,
}

/// Queues, for one subscription, every stored event of the asked types created in the range that
/// it has not been delivered (live or by an earlier backfill) and that its live queue does not
/// owe (one the live queue gave up on is sent again), and starts delivering them.
pub async fn start(client: &clickhouse::Client, request: &Request<'_>) -> Result<Backfill, WebhookAdminError> {
    let subscription = webhooks::get(client, request.subscription_id).await?;
    let types: Vec<String> = match request.event_types {
        [] => subscription.event_types.clone(),
        asked => {
            if let Some(other) = asked.iter().find(|kind| !subscription.event_types.contains(kind)) {
                return Err(WebhookAdminError::Invalid(format!(
                    "the subscription does not receive {other:?} events (it receives {})",
                    subscription.event_types.join(", ")
                )));
            }
            asked.to_vec()
        }
    };
    if request.per_second == 0 {
        return Err(WebhookAdminError::Invalid("a backfill's rate must be at least 1 a second".into()));
    }
    if let Some(open) = of_subscription(client, &subscription.org_id, request.subscription_id)
        .await?
        .into_iter()
        .find(|backfill| [RUNNING, PAUSED].contains(&backfill.state.as_str()))
    {
        return Err(WebhookAdminError::Invalid(format!(
            "backfill {} of this subscription is {}; cancel it first",
            open.backfill_id, open.state
        )));
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|error| WebhookAdminError::Random(error.to_string()))?;
    let now = runtime::time::now_ms();
    let owed = format!(
        "FROM webhook_events WHERE org_id = ? AND created_ms >= ? AND created_ms < ? AND has(?, event_type) \
         AND event_id NOT IN (SELECT event_id FROM webhook_queue WHERE subscription_id = ? \
         GROUP BY event_id HAVING argMax(state, version) != '{FAILED}') \
         AND event_id NOT IN \
         (SELECT event_id FROM webhook_backfill_queue WHERE subscription_id = ? AND state = '{DELIVERED}')"
    );
    let bind = |query: clickhouse::query::Query| {
        query
            .bind(&subscription.org_id)
            .bind(request.since_ms)
            .bind(request.until_ms)
            .bind(&types)
            .bind(request.subscription_id)
            .bind(request.subscription_id)
    };
    let total: u64 = bind(client.query(&format!("SELECT uniqExact(event_id) {owed}"))).fetch_one().await?;
    let queue = client
        .query(&format!(
            "INSERT INTO webhook_backfill_queue (org_id, subscription_id, event_id, event_type, state, attempts, \
             next_attempt_ms, created_ms, version) \
             SELECT org_id, ?, event_id, any(event_type), '{PENDING}', 0, ?, ?, ? {owed} GROUP BY org_id, event_id"
        ))
        .bind(request.subscription_id)
        .bind(now)
        .bind(now)
        .bind(now);
    bind(queue).execute().await?;
    let backfill = Backfill {
        org_id: subscription.org_id.clone(),
        backfill_id: format!("backfill_{}", hex::encode(id)),
        subscription_id: request.subscription_id.to_owned(),
        since_ms: request.since_ms,
        until_ms: request.until_ms,
        event_types: types,
        state: RUNNING.to_owned(),
        total,
        per_second: request.per_second,
        created_ms: now,
        version: now,
    };
    save(client, &backfill).await?;
    Ok(backfill)
}

async fn save(client: &clickhouse::Client, backfill: &Backfill) -> Result<(), clickhouse::error::Error> {
    let mut backfill = backfill.clone();
    backfill.version = runtime::time::now_ms().max(backfill.version + 1);
    runtime::clickhouse::insert::<Backfill, _>(client, "webhook_backfills", &[backfill]).await
}

/// One backfill of an org.
pub async fn get(client: &clickhouse::Client, org: &str, backfill_id: &str) -> Result<Backfill, WebhookAdminError> {
    client
        .query("SELECT ?fields FROM webhook_backfills FINAL WHERE org_id = ? AND backfill_id = ?")
        .bind(org)
        .bind(backfill_id)
        .fetch_optional()
        .await?
        .ok_or_else(|| WebhookAdminError::BackfillNotFound(backfill_id.to_owned()))
}

/// A subscription's backfills, the newest first.
pub async fn of_subscription(
    client: &clickhouse::Client,
    org: &str,
    subscription_id: &str,
) -> Result<Vec<Backfill>, clickhouse::error::Error> {
    client
        .query(
            "SELECT ?fields FROM webhook_backfills FINAL WHERE org_id = ? AND subscription_id = ? \
             ORDER BY created_ms DESC",
        )
        .bind(org)
        .bind(subscription_id)
        .fetch_all()
        .await
}

/// Every backfill running now, of every org: those the scheduler serves. The state is filtered
/// here, not in SQL: ClickHouse 18.16 may filter a non-key column before FINAL merges versions.
pub async fn running(client: &clickhouse::Client) -> Result<Vec<Backfill>, clickhouse::error::Error> {
    let all: Vec<Backfill> = client.query("SELECT ?fields FROM webhook_backfills FINAL").fetch_all().await?;
    Ok(all.into_iter().filter(|backfill| backfill.state == RUNNING).collect())
}

/// Pauses (`paused`), resumes (`running`) or cancels (`cancelled`) a backfill; one that is done
/// or cancelled stays as it is.
pub async fn set_state(
    client: &clickhouse::Client,
    org: &str,
    backfill_id: &str,
    state: &str,
) -> Result<Backfill, WebhookAdminError> {
    let mut backfill = get(client, org, backfill_id).await?;
    if [DONE, CANCELLED].contains(&backfill.state.as_str()) {
        return Err(WebhookAdminError::Invalid(format!("backfill {backfill_id} is {} already", backfill.state)));
    }
    if state == CANCELLED {
        // What it still owes is dropped, so that no later backfill sends it as its own.
        let sql = format!(
            "INSERT INTO webhook_backfill_queue (org_id, subscription_id, event_id, event_type, state, attempts, \
             next_attempt_ms, created_ms, version) \
             SELECT org_id, subscription_id, event_id, event_type, '{FAILED}', attempts, next_attempt_ms, created_ms, \
             version + 1 FROM ({}) WHERE state = '{PENDING}'",
            crate::deliveries::latest(Lane::Backfill)
        );
        client.query(&sql).bind(vec![&backfill.subscription_id]).execute().await?;
    }
    backfill.state = state.to_owned();
    save(client, &backfill).await?;
    Ok(backfill)
}

/// A backfill's deliveries by state (those its queue took since it began).
pub async fn progress(client: &clickhouse::Client, backfill: &Backfill) -> Result<Progress, clickhouse::error::Error> {
    let sql = format!(
        "SELECT countIf(state = '{DELIVERED}') AS delivered, countIf(state = '{FAILED}') AS failed, \
         countIf(state = '{PENDING}') AS pending FROM ({}) WHERE version >= ?",
        crate::deliveries::latest(Lane::Backfill)
    );
    client.query(&sql).bind(vec![&backfill.subscription_id]).bind(backfill.created_ms).fetch_one().await
}

/// Marks a running backfill done once nothing of it is pending; answers whether it is.
pub async fn finish_if_drained(
    client: &clickhouse::Client,
    backfill: &Backfill,
) -> Result<bool, clickhouse::error::Error> {
    if progress(client, backfill).await?.pending > 0 {
        return Ok(false);
    }
    let mut done = backfill.clone();
    done.state = DONE.to_owned();
    save(client, &done).await?;
    Ok(true)
}

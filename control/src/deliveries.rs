//! The deliveries owed to webhook subscriptions, in ClickHouse (`webhook_queue`): the webhook
//! sink queues one row per (subscription, event) when it reads an event, and moves each row on
//! after every attempt. Nothing is held in memory, so a dead endpoint's backlog costs disk, not
//! RAM, and a restart resumes every schedule where it was.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::webhooks::{self, WebhookAdminError};

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const FAILED: &str = "failed";

/// One delivery owed to one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Delivery {
    pub org_id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub state: String,
    /// Attempts made in the current schedule.
    pub attempts: u32,
    pub next_attempt_ms: u64,
    pub created_ms: u64,
    pub version: u64,
}

impl Delivery {
    /// A delivery due now, at the start of a schedule, at `version` (0 for the outbox's own,
    /// which must never override progress; the time for a re-send, which must).
    pub fn due(org_id: &str, subscription_id: &str, event_id: &str, event_type: &str, version: u64) -> Self {
        let now = runtime::time::now_ms();
        Self {
            org_id: org_id.to_owned(),
            subscription_id: subscription_id.to_owned(),
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            state: PENDING.to_owned(),
            attempts: 0,
            next_attempt_ms: now,
            created_ms: now,
            version,
        }
    }

    /// The same delivery after one more attempt: `next` is when to try again, or `None` when it
    /// is over (`state` delivered or failed).
    pub fn after_attempt(&self, state: &str, next: Option<u64>) -> Self {
        Self {
            state: state.to_owned(),
            attempts: self.attempts + 1,
            next_attempt_ms: next.unwrap_or(self.next_attempt_ms),
            version: runtime::time::now_ms().max(self.version + 1),
            ..self.clone()
        }
    }
}

/// A queue of deliveries: the live one, which the webhook sink fills from the outbox, or the one
/// a backfill fills with history ([`crate::backfill`]). The scheduler serves them side by side,
/// so a backfill never stands in front of a live delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    Live,
    Backfill,
}

impl Lane {
    pub fn table(self) -> &'static str {
        match self {
            Lane::Live => "webhook_queue",
            Lane::Backfill => "webhook_backfill_queue",
        }
    }
}

/// The state of each delivery of a lane as of its highest version, without FINAL: ClickHouse
/// 18.16 may filter non-key columns before FINAL merges versions, so the latest state is taken by
/// aggregation instead. Columns in [`Delivery`]'s order: rows are read by position.
pub(crate) fn latest(lane: Lane) -> String {
    format!(
        "SELECT org_id, subscription_id, event_id, event_type, last_state AS state, \
         last_attempts AS attempts, next_ms AS next_attempt_ms, first_ms AS created_ms, last_version AS version \
         FROM (SELECT subscription_id, event_id, any(org_id) AS org_id, any(event_type) AS event_type, \
         argMax(state, version) AS last_state, argMax(attempts, version) AS last_attempts, \
         argMax(next_attempt_ms, version) AS next_ms, min(created_ms) AS first_ms, max(version) AS last_version \
         FROM {} WHERE subscription_id IN (SELECT arrayJoin(?)) GROUP BY subscription_id, event_id)",
        lane.table()
    )
}

/// Writes deliveries to the live queue.
pub async fn write(client: &clickhouse::Client, deliveries: &[Delivery]) -> Result<(), clickhouse::error::Error> {
    write_to(client, Lane::Live, deliveries).await
}

pub async fn write_to(
    client: &clickhouse::Client,
    lane: Lane,
    deliveries: &[Delivery],
) -> Result<(), clickhouse::error::Error> {
    runtime::clickhouse::insert::<Delivery, _>(client, lane.table(), deliveries).await
}

/// The deliveries of a lane due at `now_ms` for these subscriptions, oldest first, at most
/// `per_subscription` of each.
pub async fn due(
    client: &clickhouse::Client,
    lane: Lane,
    subscriptions: &[String],
    now_ms: u64,
    per_subscription: u64,
) -> Result<Vec<Delivery>, clickhouse::error::Error> {
    if subscriptions.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "{} WHERE state = '{PENDING}' AND next_attempt_ms <= ? \
         ORDER BY next_attempt_ms, created_ms LIMIT ? BY subscription_id",
        latest(lane)
    );
    client.query(&sql).bind(subscriptions).bind(now_ms).bind(per_subscription).fetch_all().await
}

/// Every delivery of one subscription, as of now (tests, the console).
pub async fn of_subscription(
    client: &clickhouse::Client,
    subscription_id: &str,
) -> Result<Vec<Delivery>, clickhouse::error::Error> {
    let sql = format!("{} ORDER BY created_ms, event_id", latest(Lane::Live));
    client.query(&sql).bind(vec![subscription_id]).fetch_all().await
}

#[derive(Debug, Row, Deserialize)]
struct Body {
    event_id: String,
    body: String,
}

/// The bodies of these events of one org, by event id.
pub async fn bodies(
    client: &clickhouse::Client,
    org_id: &str,
    event_ids: &[String],
) -> Result<Vec<(String, String)>, clickhouse::error::Error> {
    let rows: Vec<Body> = client
        .query(
            "SELECT DISTINCT event_id, body FROM webhook_events WHERE org_id = ? AND event_id IN (SELECT arrayJoin(?))",
        )
        .bind(org_id)
        .bind(event_ids)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|row| (row.event_id, row.body)).collect())
}

/// Queues a received event again for one subscription, with a new schedule (the same webhook-id).
pub async fn resend(
    client: &clickhouse::Client,
    subscription_id: &str,
    event_id: &str,
) -> Result<(), WebhookAdminError> {
    let subscription = webhooks::get(client, subscription_id).await?;
    let event = webhooks::event(client, &subscription.org_id, event_id).await?;
    let delivery =
        Delivery::due(&event.org_id, subscription_id, &event.event_id, &event.event_type, runtime::time::now_ms());
    Ok(write(client, &[delivery]).await?)
}

/// The type of the events sent by [`send_test`]; no signal causes one.
pub const TEST_EVENT: &str = "webhook.test";

/// Stores a test event and queues it for one subscription only, whatever types it receives;
/// answers the event's id.
pub async fn send_test(client: &clickhouse::Client, subscription_id: &str) -> Result<String, WebhookAdminError> {
    let subscription = webhooks::get(client, subscription_id).await?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|error| WebhookAdminError::Random(error.to_string()))?;
    let (id, now) = (u64::from_le_bytes(id) >> 1, runtime::time::now_ms());
    let data = br#"{"message":"a test event: this endpoint receives sigstage's webhooks"}"#;
    let body = schemas::events::encode(TEST_EVENT, id, &subscription.org_id, now, data);
    let event = webhooks::StoredEvent {
        org_id: subscription.org_id.clone(),
        event_id: format!("{id}.{TEST_EVENT}"),
        event_type: TEST_EVENT.to_owned(),
        body: String::from_utf8(body).expect("JSON is UTF-8"),
        created_ms: now,
    };
    webhooks::store_events(client, std::slice::from_ref(&event)).await?;
    write(client, &[Delivery::due(&event.org_id, subscription_id, &event.event_id, TEST_EVENT, now)]).await?;
    Ok(event.event_id)
}

/// Queues again, for one subscription, every event of its types received since `since_ms` that
/// it has not been delivered (live or by a backfill): what an endpoint missed while it was down or disabled. Answers
/// how many were queued.
pub async fn recover(
    client: &clickhouse::Client,
    subscription_id: &str,
    since_ms: u64,
) -> Result<u64, WebhookAdminError> {
    let subscription = webhooks::get(client, subscription_id).await?;
    let now = runtime::time::now_ms();
    let missed = "FROM webhook_events WHERE org_id = ? AND created_ms >= ? AND has(?, event_type) \
         AND event_id NOT IN (SELECT event_id FROM webhook_queue WHERE subscription_id = ? AND state = 'delivered') \
         AND event_id NOT IN (SELECT event_id FROM webhook_backfill_queue WHERE subscription_id = ? \
         AND state = 'delivered')";
    let count: u64 = client
        .query(&format!("SELECT uniqExact(event_id) {missed}"))
        .bind(&subscription.org_id)
        .bind(since_ms)
        .bind(&subscription.event_types)
        .bind(subscription_id)
        .bind(subscription_id)
        .fetch_one()
        .await?;
    client
        .query(&format!(
            "INSERT INTO webhook_queue (org_id, subscription_id, event_id, event_type, state, attempts, \
             next_attempt_ms, created_ms, version) \
             SELECT org_id, ?, event_id, any(event_type), '{PENDING}', 0, ?, ?, ? {missed} GROUP BY org_id, event_id"
        ))
        .bind(subscription_id)
        .bind(now)
        .bind(now)
        .bind(now)
        .bind(&subscription.org_id)
        .bind(since_ms)
        .bind(&subscription.event_types)
        .bind(subscription_id)
        .bind(subscription_id)
        .execute()
        .await?;
    Ok(count)
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct RateLimit {
    subscription_id: String,
    per_second: u32,
    version: u64,
}

/// Caps deliveries per second to a subscription's endpoint (0: no cap).
pub async fn set_rate_limit(
    client: &clickhouse::Client,
    subscription_id: &str,
    per_second: u32,
) -> Result<(), WebhookAdminError> {
    webhooks::get(client, subscription_id).await?;
    let row = RateLimit { subscription_id: subscription_id.to_owned(), per_second, version: runtime::time::now_ms() };
    Ok(runtime::clickhouse::insert::<RateLimit, _>(client, "webhook_rate_limits", &[row]).await?)
}

/// Every subscription's rate limit that is not 0.
pub async fn rate_limits(client: &clickhouse::Client) -> Result<Vec<(String, u32)>, clickhouse::error::Error> {
    let rows: Vec<RateLimit> =
        client.query("SELECT ?fields FROM webhook_rate_limits FINAL WHERE per_second > 0").fetch_all().await?;
    Ok(rows.into_iter().map(|row| (row.subscription_id, row.per_second)).collect())
}

#[derive(Debug, Row, Deserialize)]
struct Failing {
    subscription_id: String,
    since_ms: u64,
}

/// For each subscription whose attempts have all failed since its last delivery (or since it
/// began), the time of the first of those failures: how long its endpoint has been failing.
pub async fn failing_since(client: &clickhouse::Client) -> Result<Vec<(String, u64)>, clickhouse::error::Error> {
    let rows: Vec<Failing> = client
        .query(
            "SELECT subscription_id, min(attempted_ms) AS since_ms FROM webhook_deliveries \
             ANY LEFT JOIN (SELECT subscription_id, maxIf(attempted_ms, outcome = 'delivered') AS last_delivered \
             FROM webhook_deliveries GROUP BY subscription_id) AS delivered USING subscription_id \
             WHERE attempted_ms > last_delivered GROUP BY subscription_id",
        )
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|row| (row.subscription_id, row.since_ms)).collect())
}

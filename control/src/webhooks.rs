//! Webhook subscriptions, the events received for them and the delivery log, in ClickHouse.
//! Managed with `sigstage webhooks` and the admin API; the webhook sink reads subscriptions
//! (refreshed like keys) and writes events and attempts.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// A subscription as stored (the secret included: deliveries are signed with it).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Subscription {
    pub org_id: String,
    pub subscription_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub active: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub secret: String,
    pub disabled_reason: String,
    pub created_ms: u64,
    pub version: u64,
}

impl Subscription {
    /// The subscription as shown after creation: everything but the secret.
    pub fn without_secret(mut self) -> Self {
        self.secret.clear();
        self
    }
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Attempt {
    pub org_id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub attempt: u32,
    pub status_code: u16,
    pub response_body: String,
    pub error: String,
    pub duration_ms: u32,
    pub attempted_ms: u64,
    pub failure_count: u32,
    pub outcome: String,
}

/// A received event, kept for re-sending.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StoredEvent {
    pub org_id: String,
    pub event_id: String,
    pub event_type: String,
    pub body: String,
    pub created_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookAdminError {
    #[error("org id {0:?} is not valid: use 1-64 letters, digits, '_', '-' or '.'")]
    InvalidOrg(String),
    #[error("{0}")]
    Invalid(String),
    #[error("no webhook subscription {0:?} (`sigstage webhooks list --org ORG` shows them)")]
    NotFound(String),
    #[error("no backfill {0:?} (`sigstage webhooks backfills SUB --org ORG` shows them)")]
    BackfillNotFound(String),
    #[error("no event {event:?} was received for org {org:?}")]
    EventNotFound { org: String, event: String },
    #[error("cannot generate a secret: {0}")]
    Random(String),
    #[error("ClickHouse: {0} (is it running, and has `sigstage migrate` run?)")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Checks a new subscription's URL and event types.
pub fn check(url: &str, event_types: &[String]) -> Result<(), WebhookAdminError> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    let host = url.split_once("://").map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or_default());
    if !scheme_ok || host.is_none_or(str::is_empty) || url.len() > 2048 || url.chars().any(char::is_whitespace) {
        return Err(WebhookAdminError::Invalid(format!(
            "url {url:?} is not valid: give an absolute http:// or https:// URL of at most 2048 characters"
        )));
    }
    if event_types.is_empty() {
        return Err(WebhookAdminError::Invalid(format!(
            "give at least one event type: {}",
            schemas::events::ALL.join(", ")
        )));
    }
    if let Some(unknown) = event_types.iter().find(|t| !schemas::events::ALL.contains(&t.as_str())) {
        return Err(WebhookAdminError::Invalid(format!(
            "event type {unknown:?} does not exist; use {}",
            schemas::events::ALL.join(", ")
        )));
    }
    Ok(())
}

/// Creates an active subscription with a new secret (`whsec_` and 32 random bytes, base64);
/// answers it, secret included: the only time the secret is shown.
pub async fn create(
    client: &clickhouse::Client,
    org_id: &str,
    url: &str,
    event_types: Vec<String>,
) -> Result<Subscription, WebhookAdminError> {
    if !schemas::valid_org_id(org_id) {
        return Err(WebhookAdminError::InvalidOrg(org_id.to_owned()));
    }
    check(url, &event_types)?;
    let mut secret = [0u8; 32];
    let mut id = [0u8; 8];
    getrandom::fill(&mut secret)
        .and_then(|()| getrandom::fill(&mut id))
        .map_err(|e| WebhookAdminError::Random(e.to_string()))?;
    let now = runtime::time::now_ms();
    let subscription = Subscription {
        org_id: org_id.to_owned(),
        subscription_id: format!("sub_{}", hex::encode(id)),
        url: url.to_owned(),
        event_types,
        active: 1,
        secret: format!("whsec_{}", base64_encode(&secret)),
        disabled_reason: String::new(),
        created_ms: now,
        version: now,
    };
    write(client, &subscription).await?;
    Ok(subscription)
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Every subscription of every org (of one org with `Some`), secrets included.
pub async fn list(client: &clickhouse::Client, org_id: Option<&str>) -> Result<Vec<Subscription>, WebhookAdminError> {
    Ok(client
        .query(
            "SELECT ?fields FROM webhook_subscriptions FINAL WHERE (? = 1 OR org_id = ?) \
             ORDER BY org_id, created_ms, subscription_id",
        )
        .bind(u8::from(org_id.is_none()))
        .bind(org_id.unwrap_or_default())
        .fetch_all()
        .await?)
}

pub async fn get(client: &clickhouse::Client, subscription_id: &str) -> Result<Subscription, WebhookAdminError> {
    list(client, None)
        .await?
        .into_iter()
        .find(|s| s.subscription_id == subscription_id)
        .ok_or_else(|| WebhookAdminError::NotFound(subscription_id.to_owned()))
}

/// Turns a subscription on or off; `reason` says why it was turned off (empty when a user did).
pub async fn set_active(
    client: &clickhouse::Client,
    subscription_id: &str,
    active: bool,
    reason: &str,
) -> Result<Subscription, WebhookAdminError> {
    change(client, subscription_id, |subscription| {
        subscription.active = u8::from(active);
        subscription.disabled_reason = if active { String::new() } else { reason.to_owned() };
    })
    .await
}

/// Changes where a subscription delivers and which event types it receives.
pub async fn edit(
    client: &clickhouse::Client,
    subscription_id: &str,
    url: &str,
    event_types: Vec<String>,
) -> Result<Subscription, WebhookAdminError> {
    check(url, &event_types)?;
    change(client, subscription_id, |subscription| {
        subscription.url = url.to_owned();
        subscription.event_types = event_types;
    })
    .await
}

/// Applies `apply` to the stored subscription and writes it back at a newer version.
async fn change(
    client: &clickhouse::Client,
    subscription_id: &str,
    apply: impl FnOnce(&mut Subscription),
) -> Result<Subscription, WebhookAdminError> {
    let mut subscription = get(client, subscription_id).await?;
    apply(&mut subscription);
    subscription.version = runtime::time::now_ms().max(subscription.version + 1);
    write(client, &subscription).await?;
    Ok(subscription)
}

async fn write(client: &clickhouse::Client, subscription: &Subscription) -> Result<(), clickhouse::error::Error> {
    runtime::clickhouse::insert::<Subscription, _>(client, "webhook_subscriptions", &[subscription]).await
}

/// The delivery log of a subscription, newest first.
pub async fn deliveries(
    client: &clickhouse::Client,
    subscription_id: &str,
    limit: u64,
) -> Result<Vec<Attempt>, WebhookAdminError> {
    Ok(client
        .query("SELECT ?fields FROM webhook_deliveries WHERE subscription_id = ? ORDER BY attempted_ms DESC, attempt DESC LIMIT ?")
        .bind(subscription_id)
        .bind(limit)
        .fetch_all()
        .await?)
}

pub async fn log_attempts(client: &clickhouse::Client, attempts: &[Attempt]) -> Result<(), clickhouse::error::Error> {
    runtime::clickhouse::insert::<Attempt, _>(client, "webhook_deliveries", attempts).await
}

pub async fn store_events(client: &clickhouse::Client, events: &[StoredEvent]) -> Result<(), clickhouse::error::Error> {
    runtime::clickhouse::insert::<StoredEvent, _>(client, "webhook_events", events).await
}

pub async fn event(
    client: &clickhouse::Client,
    org_id: &str,
    event_id: &str,
) -> Result<StoredEvent, WebhookAdminError> {
    client
        .query("SELECT ?fields FROM webhook_events FINAL WHERE org_id = ? AND event_id = ?")
        .bind(org_id)
        .bind(event_id)
        .fetch_optional()
        .await?
        .ok_or_else(|| WebhookAdminError::EventNotFound { org: org_id.to_owned(), event: event_id.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_event_types_are_checked() {
        let all = vec!["lead.created".to_owned()];
        assert!(check("https://hooks.example.com/in?x=1", &all).is_ok());
        assert!(check("http://127.0.0.1:9000/", &all).is_ok(), "private targets are refused at delivery time");
        for url in ["ftp://x", "https://", "hooks.example.com", "https://a b"] {
            assert!(check(url, &all).is_err(), "{url}");
        }
        assert!(check("https://x.io", &[]).is_err());
        let error = check("https://x.io", &["post.created".to_owned()]).expect_err("unknown type");
        assert!(error.to_string().contains("signal.created, lead.created, lead.identified"), "{error}");
    }
}

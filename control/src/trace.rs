//! What sigstage did with one signal, read from where it is stored: where it came in (the key's
//! id, never the key; the endpoint; the lane) and the dedupe verdict, its hot and cold rows (how
//! it was attributed, the rules that mapped it and the fields they mapped), the identity links
//! and leads it made, the outbox events it caused (ids `SIGNAL.TYPE`) and every delivery
//! attempt of them. `GET /api/admin/orgs/{org}/signals/{id}` and `sigstage trace` show it.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// A stored row of the signal: `table` is signals_hot or signals_cold.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct StoredRow {
    pub table: String,
    pub lead_email: String,
    pub anonymous_id: String,
    pub user_id: String,
    pub source: String,
    pub kind: String,
    pub event: String,
    pub attributed_by: String,
    pub mapped: u8,
    pub rules: Vec<String>,
    pub fields: String,
    pub content_hash: String,
    pub received_ms: u64,
    pub event_ms: u64,
    pub written_ms: u64,
}

/// Where the signal came in (`signal_origins`; none for a signal stored before it was kept).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Origin {
    /// The id of the API key it came with, never the key.
    pub key_id: String,
    pub endpoint: String,
    /// `live` or `historical`.
    pub lane: String,
}

/// An identity link the signal made: its visitor is this lead from then on.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Link {
    pub anonymous_id: String,
    pub email: String,
    pub linked_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub event_type: String,
    pub created_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Attempt {
    pub subscription_id: String,
    pub event_id: String,
    pub attempt: u32,
    pub status_code: u16,
    pub outcome: String,
    pub error: String,
    pub attempted_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trace {
    pub org_id: String,
    /// As a string in JSON, as the live tail sends it: a JavaScript number cannot hold 64 bits.
    #[serde(serialize_with = "as_string")]
    pub signal_id: u64,
    pub origin: Option<Origin>,
    /// What dedupe made of it: a stored signal was the first of its content in the window.
    pub dedupe: String,
    pub rows: Vec<StoredRow>,
    pub links: Vec<Link>,
    /// Leads this signal was the first of.
    pub leads_created: Vec<String>,
    pub events: Vec<Event>,
    pub deliveries: Vec<Attempt>,
}

fn as_string<S: serde::Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

const COLUMNS: &str = "lead_email, anonymous_id, user_id, source, kind, event, attributed_by, mapped, rules, fields, \
                       content_hash, received_ms, event_ms, written_ms";

/// What to say when [`signal`] finds no row of signal `id` of `org`.
pub fn missing(org: &str, id: u64) -> String {
    format!("no stored row of signal {id} for org {org:?}: not written yet, another org's, or never accepted")
}

/// The trace of signal `id` of `org`; `None` when no table holds a row of it (not stored yet,
/// another org's, or never accepted: see [`missing`]).
pub async fn signal(
    client: &clickhouse::Client,
    org: &str,
    id: u64,
) -> Result<Option<Trace>, clickhouse::error::Error> {
    let mut rows: Vec<StoredRow> = client
        .query(&format!(
            "SELECT 'signals_hot' AS table, {COLUMNS} FROM signals_hot WHERE org_id = ? AND signal_id = ? \
             UNION ALL SELECT 'signals_cold' AS table, {COLUMNS} FROM signals_cold WHERE org_id = ? AND signal_id = ?"
        ))
        .bind(org)
        .bind(id)
        .bind(org)
        .bind(id)
        .fetch_all()
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    // Cold first (how it arrived), then hot by when it was written (rehydration comes later).
    rows.sort_by_key(|row| (row.table != "signals_cold", row.written_ms));
    let origin = client
        .query("SELECT key_id, endpoint, lane FROM signal_origins WHERE org_id = ? AND signal_id = ? LIMIT 1")
        .bind(org)
        .bind(id)
        .fetch_optional()
        .await?;
    let dedupe = format!(
        "new: the first of its content (hash {}) within the dedupe window; later copies were dropped, not stored",
        rows[0].content_hash
    );
    let links = client
        .query("SELECT anonymous_id, email, linked_ms FROM identities WHERE org_id = ? AND signal_id = ? ORDER BY linked_ms")
        .bind(org)
        .bind(id)
        .fetch_all()
        .await?;
    let leads_created = client
        .query("SELECT DISTINCT email FROM leads WHERE org_id = ? AND first_signal_id = ? ORDER BY email")
        .bind(org)
        .bind(id)
        .fetch_all()
        .await?;
    let prefix = format!("{id}.%");
    let events = client
        .query(
            "SELECT event_id, any(event_type), min(created_ms) FROM webhook_events \
             WHERE org_id = ? AND event_id LIKE ? GROUP BY event_id ORDER BY event_id",
        )
        .bind(org)
        .bind(&prefix)
        .fetch_all()
        .await?;
    let deliveries = client
        .query(
            "SELECT subscription_id, event_id, attempt, status_code, outcome, error, attempted_ms FROM webhook_deliveries \
             WHERE org_id = ? AND event_id LIKE ? ORDER BY attempted_ms, subscription_id, attempt",
        )
        .bind(org)
        .bind(&prefix)
        .fetch_all()
        .await?;
    Ok(Some(Trace {
        org_id: org.to_owned(),
        signal_id: id,
        origin,
        dedupe,
        rows,
        links,
        leads_created,
        events,
        deliveries,
    }))
}

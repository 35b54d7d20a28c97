//! One lead as a support engineer looks it up: its row (the traits it was first seen with), the
//! visitors linked to it, and its newest signals, each of which `sigstage trace` and the console
//! follow further. `GET /api/admin/orgs/{org}/leads/{email}` answers it.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// Signals listed, newest first, at most.
pub const SIGNALS: u64 = 200;

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Lead {
    pub email: String,
    pub name: String,
    pub company: String,
    pub title: String,
    #[serde(serialize_with = "as_string")]
    pub first_signal_id: u64,
    pub created_ms: u64,
}

/// A visitor whose latest link is to the lead (one re-identified since is another lead's).
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Visitor {
    pub anonymous_id: String,
    pub linked_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Signal {
    /// As a string in JSON: a JavaScript number cannot hold 64 bits.
    #[serde(serialize_with = "as_string")]
    pub signal_id: u64,
    pub source: String,
    pub kind: String,
    pub event: String,
    pub attributed_by: String,
    pub anonymous_id: String,
    pub event_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeadView {
    pub org_id: String,
    pub lead: Lead,
    pub visitors: Vec<Visitor>,
    /// Hot signals of the lead in all.
    pub signal_count: u64,
    /// The newest [`SIGNALS`] of them.
    pub signals: Vec<Signal>,
}

fn as_string<S: serde::Serializer>(id: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(id)
}

/// The lead `email` of `org`; `None` when it is not a lead there.
pub async fn lead(
    client: &clickhouse::Client,
    org: &str,
    email: &str,
) -> Result<Option<LeadView>, clickhouse::error::Error> {
    let lead: Option<Lead> = client
        .query(
            "SELECT email, name, company, title, first_signal_id, created_ms FROM leads FINAL \
             WHERE org_id = ? AND email = ?",
        )
        .bind(org)
        .bind(email)
        .fetch_optional()
        .await?;
    let Some(lead) = lead else { return Ok(None) };
    let visitors = client
        .query(
            "SELECT anonymous_id, last_ms AS linked_ms FROM (SELECT anonymous_id, argMax(email, linked_ms) AS latest, \
             max(linked_ms) AS last_ms FROM identities WHERE org_id = ? AND anonymous_id IN \
             (SELECT anonymous_id FROM identities WHERE org_id = ? AND email = ?) GROUP BY anonymous_id) \
             WHERE latest = ? ORDER BY last_ms",
        )
        .bind(org)
        .bind(org)
        .bind(email)
        .bind(email)
        .fetch_all()
        .await?;
    let signal_count: u64 = client
        .query("SELECT uniqExact(signal_id) FROM signals_hot WHERE org_id = ? AND lead_email = ?")
        .bind(org)
        .bind(email)
        .fetch_one()
        .await?;
    let signals = client
        .query(
            "SELECT signal_id, source, kind, event, attributed_by, anonymous_id, event_ms FROM signals_hot \
             WHERE org_id = ? AND lead_email = ? ORDER BY event_ms DESC, signal_id DESC LIMIT 1 BY signal_id LIMIT ?",
        )
        .bind(org)
        .bind(email)
        .bind(SIGNALS)
        .fetch_all()
        .await?;
    Ok(Some(LeadView { org_id: org.to_owned(), lead, visitors, signal_count, signals }))
}

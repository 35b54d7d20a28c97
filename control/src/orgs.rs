//! Organisations.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Row, Serialize, Deserialize)]
struct OrgRow {
    org_id: String,
    name: String,
    created_at_ms: u64,
    version: u64,
}

/// Records the organisation unless it exists already.
pub async fn ensure(client: &clickhouse::Client, org_id: &str) -> Result<(), clickhouse::error::Error> {
    let existing: u64 = client.query("SELECT count() FROM orgs WHERE org_id = ?").bind(org_id).fetch_one().await?;
    if existing > 0 {
        return Ok(());
    }
    let now = runtime::time::now_ms();
    let row = OrgRow { org_id: org_id.to_owned(), name: org_id.to_owned(), created_at_ms: now, version: now };
    runtime::clickhouse::insert::<OrgRow, _>(client, "orgs", &[row]).await
}

/// An organisation as listed: its id, its latest name, and when it was first recorded.
#[derive(Debug, Row, Serialize, Deserialize)]
pub struct Org {
    pub org_id: String,
    pub name: String,
    pub created_at_ms: u64,
}

/// The organisations by id: every one, or only `only`.
pub async fn list(client: &clickhouse::Client, only: Option<&str>) -> Result<Vec<Org>, clickhouse::error::Error> {
    client
        .query(
            "SELECT org_id, argMax(name, version) AS shown, min(created_at_ms) AS created FROM orgs \
             WHERE ? = 1 OR org_id = ? GROUP BY org_id ORDER BY org_id",
        )
        .bind(u8::from(only.is_none()))
        .bind(only.unwrap_or_default())
        .fetch_all()
        .await
}

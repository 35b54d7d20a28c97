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
    let now = crate::time::now_ms();
    let row = OrgRow { org_id: org_id.to_owned(), name: org_id.to_owned(), created_at_ms: now, version: now };
    crate::clickhouse::insert::<OrgRow, _>(client, "orgs", &[row]).await
}

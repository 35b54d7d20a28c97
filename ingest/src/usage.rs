//! Raw-signal usage per org per day, counted in memory and flushed to `usage_daily`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// Outcomes that count against the plan.
pub const ACCEPTED: &str = "accepted";
pub const OVERAGE: &str = "overage";

#[derive(Debug, Row, Serialize, Deserialize)]
struct UsageRow {
    /// Days since 1970-01-01 (ClickHouse `Date`).
    day: u16,
    org_id: String,
    outcome: String,
    signals: u64,
}

/// Counts not yet written, keyed by org and outcome (`accepted`, `overage`, `rejected_<code>`).
#[derive(Default)]
pub struct Usage {
    pending: Mutex<HashMap<(Arc<str>, &'static str), u64>>,
}

/// Counts taken out of `Usage` to be written.
pub type Taken = HashMap<(Arc<str>, &'static str), u64>;

impl Usage {
    pub fn add(&self, org: &Arc<str>, outcome: &'static str, signals: u64) {
        if signals == 0 {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *pending.entry((Arc::clone(org), outcome)).or_default() += signals;
    }

    pub fn take(&self) -> Taken {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Puts counts back after a failed write, so they go out with the next flush.
    pub fn restore(&self, taken: Taken) {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (key, signals) in taken {
            *pending.entry(key).or_default() += signals;
        }
    }
}

/// Writes taken counts as rows of day `now_ms`.
pub async fn write(client: &clickhouse::Client, taken: &Taken, now_ms: u64) -> Result<(), clickhouse::error::Error> {
    if taken.is_empty() {
        return Ok(());
    }
    let day = (now_ms / 86_400_000) as u16;
    let rows: Vec<UsageRow> = taken
        .iter()
        .map(|((org, outcome), signals)| UsageRow {
            day,
            org_id: org.to_string(),
            outcome: (*outcome).to_owned(),
            signals: *signals,
        })
        .collect();
    runtime::clickhouse::insert::<UsageRow, _>(client, "usage_daily", &rows).await
}

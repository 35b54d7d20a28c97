//! Per-org limits: request rate (GCRA: a sustained rate and a burst) and the monthly raw-signal
//! plan limit with its overage flag. An org without a row has no limit of that kind.

use std::collections::HashMap;

use clickhouse::Row;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub requests_per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimit {
    /// Raw signals per calendar month (UTC); 0 means unlimited.
    pub monthly_raw_signals: u64,
    pub allow_overages: bool,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct RateRow {
    org_id: String,
    requests_per_second: u32,
    burst: u32,
    version: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct PlanRow {
    org_id: String,
    monthly_raw_signals: u64,
    allow_overages: u8,
    version: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct UsageRow {
    org_id: String,
    signals: u64,
}

/// Every org's limits and its raw signals counted so far this month.
#[derive(Debug, Default, Clone)]
pub struct OrgLimits {
    pub rate: HashMap<String, RateLimit>,
    pub plan: HashMap<String, PlanLimit>,
    pub month_used: HashMap<String, u64>,
}

impl OrgLimits {
    pub async fn load(client: &clickhouse::Client) -> Result<Self, clickhouse::error::Error> {
        let rates: Vec<RateRow> = client.query("SELECT ?fields FROM rate_limits FINAL").fetch_all().await?;
        let plans: Vec<PlanRow> = client.query("SELECT ?fields FROM plan_limits FINAL").fetch_all().await?;
        let used: Vec<UsageRow> = client
            .query(
                "SELECT org_id, sum(signals) AS signals FROM usage_daily \
                 WHERE day >= toStartOfMonth(today()) AND outcome IN ('accepted', 'overage') GROUP BY org_id",
            )
            .fetch_all()
            .await?;
        Ok(Self {
            rate: rates
                .into_iter()
                .filter(|r| r.requests_per_second > 0)
                .map(|r| (r.org_id, RateLimit { requests_per_second: r.requests_per_second, burst: r.burst }))
                .collect(),
            plan: plans
                .into_iter()
                .map(|p| {
                    (
                        p.org_id,
                        PlanLimit { monthly_raw_signals: p.monthly_raw_signals, allow_overages: p.allow_overages != 0 },
                    )
                })
                .collect(),
            month_used: used.into_iter().map(|u| (u.org_id, u.signals)).collect(),
        })
    }
}

/// Sets (or, with `None`, removes) an org's request rate limit.
pub async fn set_rate(
    client: &clickhouse::Client,
    org_id: &str,
    limit: Option<RateLimit>,
) -> Result<(), clickhouse::error::Error> {
    // A rate of 0 is stored for "no limit", so the latest row always wins.
    let limit = limit.unwrap_or(RateLimit { requests_per_second: 0, burst: 0 });
    let row = RateRow {
        org_id: org_id.to_owned(),
        requests_per_second: limit.requests_per_second,
        burst: limit.burst,
        version: runtime::time::now_ms(),
    };
    runtime::clickhouse::insert::<RateRow, _>(client, "rate_limits", &[row]).await
}

/// Sets an org's monthly plan limit (0: unlimited) and overage flag.
pub async fn set_plan(
    client: &clickhouse::Client,
    org_id: &str,
    limit: PlanLimit,
) -> Result<(), clickhouse::error::Error> {
    let row = PlanRow {
        org_id: org_id.to_owned(),
        monthly_raw_signals: limit.monthly_raw_signals,
        allow_overages: u8::from(limit.allow_overages),
        version: runtime::time::now_ms(),
    };
    runtime::clickhouse::insert::<PlanRow, _>(client, "plan_limits", &[row]).await
}

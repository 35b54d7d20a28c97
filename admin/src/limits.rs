//! `/api/admin/orgs/{org}/limits` and `/usage`: an org's request rate and monthly plan limit,
//! and its signals per day and outcome.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{body, error, unavailable, Admin};
use control::limits::{self, OrgLimits, PlanLimit, RateLimit};

fn shown(current: &OrgLimits, org: &str) -> serde_json::Value {
    let rate = current.rate.get(org);
    let plan = current.plan.get(org).filter(|plan| plan.monthly_raw_signals > 0);
    json!({
        "rate": rate.map(|r| json!({"requests_per_second": r.requests_per_second, "burst": r.burst})),
        "plan": plan.map(|p| json!({"monthly_raw_signals": p.monthly_raw_signals, "allow_overages": p.allow_overages})),
        "used_this_month": current.month_used.get(org).copied().unwrap_or(0),
    })
}

pub async fn get(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match OrgLimits::load(&admin.client).await {
        Ok(current) => Json(shown(&current, &org)).into_response(),
        Err(error) => unavailable(error),
    }
}

/// What to change; what is absent stays as it is.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// Sustained requests per second; 0 removes the rate limit.
    requests_per_second: Option<u32>,
    /// Requests allowed at once above the rate (default: the rate).
    burst: Option<u32>,
    /// Raw signals per calendar month, UTC; 0 is unlimited.
    monthly_raw_signals: Option<u64>,
    allow_overages: Option<bool>,
}

pub async fn set(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    change: Result<Json<Change>, JsonRejection>,
) -> Response {
    let change = match body(change, "invalid_limits") {
        Ok(change) => change,
        Err(refused) => return refused,
    };
    if !schemas::valid_org_id(&org) {
        return error(StatusCode::BAD_REQUEST, "invalid_limits", format!("org id {org:?} is not valid"));
    }
    let current = match OrgLimits::load(&admin.client).await {
        Ok(current) => current,
        Err(error) => return unavailable(error),
    };
    if change.requests_per_second.is_some() || change.burst.is_some() {
        let Some(rate) = change.requests_per_second.or(current.rate.get(&org).map(|r| r.requests_per_second)) else {
            let message = "burst needs requests_per_second (the org has no rate limit yet)";
            return error(StatusCode::BAD_REQUEST, "invalid_limits", message);
        };
        let limit =
            (rate > 0).then(|| RateLimit { requests_per_second: rate, burst: change.burst.unwrap_or(rate).max(1) });
        if let Err(error) = limits::set_rate(&admin.client, &org, limit).await {
            return unavailable(error);
        }
    }
    if change.monthly_raw_signals.is_some() || change.allow_overages.is_some() {
        let previous = current.plan.get(&org).copied();
        let plan = PlanLimit {
            monthly_raw_signals: change.monthly_raw_signals.or(previous.map(|p| p.monthly_raw_signals)).unwrap_or(0),
            allow_overages: change.allow_overages.or(previous.map(|p| p.allow_overages)).unwrap_or(false),
        };
        if let Err(error) = limits::set_plan(&admin.client, &org, plan).await {
            return unavailable(error);
        }
    }
    match OrgLimits::load(&admin.client).await {
        Ok(updated) => Json(shown(&updated, &org)).into_response(),
        Err(error) => unavailable(error),
    }
}

#[derive(Deserialize)]
pub struct UsageQuery {
    /// Days back from today, UTC (default 30, at most 400).
    days: Option<u32>,
    /// `day` (the default) or `month`.
    by: Option<String>,
}

/// Read by position: `date`, `outcome`, `total`.
#[derive(Debug, Row, Serialize, Deserialize)]
struct UsageRow {
    day: String,
    outcome: String,
    signals: u64,
}

pub async fn usage(State(admin): State<Admin>, Path(org): Path<String>, Query(query): Query<UsageQuery>) -> Response {
    let days = query.days.unwrap_or(30);
    if days == 0 || days > 400 {
        return error(StatusCode::BAD_REQUEST, "invalid_usage_query", "days must be from 1 to 400");
    }
    let period = match query.by.as_deref() {
        None | Some("day") => "day",
        Some("month") => "toStartOfMonth(day)",
        Some(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_usage_query",
                format!("by must be day or month, not {other:?}"),
            )
        }
    };
    let rows: Result<Vec<UsageRow>, _> = admin
        .client
        .query(&format!(
            "SELECT toString({period}) AS date, outcome, sum(signals) AS total FROM usage_daily \
             WHERE org_id = ? AND day > today() - ? GROUP BY date, outcome ORDER BY date, outcome"
        ))
        .bind(&org)
        .bind(days)
        .fetch_all()
        .await;
    match rows {
        Ok(rows) => Json(json!({"org": org, "days": days, "by": query.by.as_deref().unwrap_or("day"), "usage": rows}))
            .into_response(),
        Err(error) => unavailable(error),
    }
}

//! `/api/admin/orgs` and `/api/admin/orgs/{org}/overview`: which orgs there are, and one org's
//! last 24 hours at a glance (the console's first page).

use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{error, tail, unavailable, Admin, Caller};
use control::limits::OrgLimits;
use control::{orgs, webhooks};

const DAY_MS: u64 = 24 * 3600 * 1000;

pub async fn orgs(State(admin): State<Admin>, Extension(caller): Extension<Caller>) -> Response {
    match orgs::list(&admin.client, caller.org.as_deref()).await {
        Ok(orgs) => Json(json!({"orgs": orgs})).into_response(),
        Err(error) => unavailable(error),
    }
}

/// Read by position.
#[derive(Debug, Row, Serialize, Deserialize)]
struct SourceRow {
    source: String,
    signals: u64,
    attributed: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct CountRow {
    name: String,
    signals: u64,
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct HealthRow {
    subscription_id: String,
    delivered: u64,
    failed: u64,
    last_attempt_ms: u64,
    last_status: u16,
}

pub async fn overview(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    if !schemas::valid_org_id(&org) {
        return error(StatusCode::BAD_REQUEST, "invalid_org", format!("org id {org:?} is not valid"));
    }
    let since = runtime::time::now_ms().saturating_sub(DAY_MS);
    // A signal of an identified visitor is in both tables (cold, then hot once rehydrated):
    // counted once by its id.
    let sources = admin
        .client
        .query(
            "SELECT source, uniqExact(signal_id) AS n, uniqExactIf(signal_id, hot = 1) AS attributed FROM \
             (SELECT source, signal_id, 1 AS hot FROM signals_hot WHERE org_id = ? AND received_ms >= ? \
              UNION ALL SELECT source, signal_id, 0 AS hot FROM signals_cold WHERE org_id = ? AND received_ms >= ?) \
             GROUP BY source ORDER BY n DESC, source",
        )
        .bind(&org)
        .bind(since)
        .bind(&org)
        .bind(since)
        .fetch_all::<SourceRow>();
    let refusals = admin
        .client
        .query(
            "SELECT outcome, sum(signals) AS n FROM usage_daily WHERE org_id = ? AND day >= yesterday() \
             AND outcome NOT IN ('accepted', 'overage') GROUP BY outcome ORDER BY n DESC, outcome",
        )
        .bind(&org)
        .fetch_all::<CountRow>();
    let health = admin
        .client
        .query(
            "SELECT subscription_id, countIf(outcome = 'delivered') AS ok, countIf(outcome != 'delivered') AS bad, \
             max(attempted_ms) AS last, argMax(status_code, attempted_ms) AS status FROM webhook_deliveries \
             WHERE org_id = ? AND attempted_ms >= ? GROUP BY subscription_id",
        )
        .bind(&org)
        .bind(since)
        .fetch_all::<HealthRow>();
    let (sources, refusals, health, limits, subscriptions, dead) = tokio::join!(
        sources,
        refusals,
        health,
        OrgLimits::load(&admin.client),
        webhooks::list(&admin.client, Some(&org)),
        tail::dead_letters(&admin, &org, since),
    );
    let (sources, refusals, health, limits) = match (sources, refusals, health, limits) {
        (Ok(sources), Ok(refusals), Ok(health), Ok(limits)) => (sources, refusals, health, limits),
        (Err(error), ..) | (_, Err(error), ..) | (_, _, Err(error), _) | (.., Err(error)) => return unavailable(error),
    };
    let subscriptions = match subscriptions {
        Ok(subscriptions) => subscriptions,
        Err(error) => return unavailable(error),
    };
    let webhooks: Vec<_> = subscriptions
        .into_iter()
        .map(|subscription| {
            let seen = health.iter().find(|row| row.subscription_id == subscription.subscription_id);
            json!({
                "subscription_id": subscription.subscription_id,
                "url": subscription.url,
                "active": subscription.active == 1,
                "disabled_reason": subscription.disabled_reason,
                "delivered_24h": seen.map_or(0, |row| row.delivered),
                "failed_attempts_24h": seen.map_or(0, |row| row.failed),
                "last_attempt_ms": seen.map(|row| row.last_attempt_ms),
                "last_status": seen.map(|row| row.last_status),
            })
        })
        .collect();
    let plan = limits.plan.get(&org).filter(|plan| plan.monthly_raw_signals > 0);
    Json(json!({
        "org": org,
        "since_ms": since,
        "sources": sources,
        "usage": {
            "used_this_month": limits.month_used.get(&org).copied().unwrap_or(0),
            "monthly_raw_signals": plan.map(|plan| plan.monthly_raw_signals),
            "allow_overages": plan.map(|plan| plan.allow_overages),
        },
        "refusals": refusals,
        "dead_letters": dead,
        "webhooks": webhooks,
    }))
    .into_response()
}

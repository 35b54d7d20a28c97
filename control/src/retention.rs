//! Per-org retention: how many days of an org's signals to keep, and the statements that enforce
//! it on the signal tables (`signals_hot`, `signals_cold`), by the day of each signal's event
//! time (`event_date`, their partition key's day).
//!
//! - ClickHouse 21.3 and later: a table TTL, one rule per retention with a `WHERE` naming its
//!   orgs (`event_date + toIntervalDay(30) WHERE org_id IN (…)`). Changing it deletes what has
//!   expired at once (`materialize_ttl_after_modify`), and merges drop rows as they expire.
//! - ClickHouse 18.16 has no TTL: `ALTER TABLE … DELETE WHERE org_id = … AND event_date < …`, a
//!   mutation, for each org with expired rows. Dropping a month's partition would be cheaper, but
//!   a partition holds every org's signals of that month, so one org's retention cannot drop it.
//!
//! The sink enforces it every `SIGSTAGE_RETENTION_INTERVAL_MS`; `sigstage retention enforce`
//! does it at once.

use std::collections::BTreeMap;

use clickhouse::Row;
use schemas::queries::string_literal;
use serde::{Deserialize, Serialize};

/// The tables retention applies to.
pub const TABLES: [&str; 2] = ["signals_hot", "signals_cold"];

/// The most days a retention may keep (27 years). ClickHouse's `Date` counts days from 1970 in 16
/// bits, so `today() - days` past it would wrap to a date in the future and match every row.
pub const MAX_DAYS: u32 = 10_000;

/// One org's retention as stored; the highest `version` wins, 0 days keeps for ever.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct Retention {
    pub org_id: String,
    pub days: u32,
    pub version: u64,
}

/// Every org's retention (those with days > 0).
pub async fn policies(client: &clickhouse::Client) -> Result<Vec<Retention>, clickhouse::error::Error> {
    client.query("SELECT ?fields FROM org_retention FINAL WHERE days > 0 ORDER BY org_id").fetch_all().await
}

/// `org_id`'s retention in days (0: for ever).
pub async fn of(client: &clickhouse::Client, org_id: &str) -> Result<u32, clickhouse::error::Error> {
    Ok(client
        .query("SELECT days FROM org_retention FINAL WHERE org_id = ?")
        .bind(org_id)
        .fetch_optional::<u32>()
        .await?
        .unwrap_or(0))
}

/// Keeps `days` of `org_id`'s signals (0: for ever); at most [`MAX_DAYS`].
pub async fn set(client: &clickhouse::Client, org_id: &str, days: u32) -> Result<(), RetentionError> {
    if days > MAX_DAYS {
        return Err(RetentionError::TooLong(days));
    }
    let row = Retention { org_id: org_id.to_owned(), days, version: runtime::time::now_ms() };
    Ok(runtime::clickhouse::insert::<Retention, _>(client, "org_retention", &[row]).await?)
}

#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(
        "{0} days is more than sigstage keeps a retention for ({MAX_DAYS}, 27 years); use 0 to keep signals for ever"
    )]
    TooLong(u32),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// How a server enforces retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// A table TTL with a rule per retention.
    Ttl,
    /// A mutation per org (ClickHouse before 21.3).
    Delete,
}

impl Enforcement {
    pub fn of_version(version: (u32, u32)) -> Self {
        if version >= (21, 3) {
            Enforcement::Ttl
        } else {
            Enforcement::Delete
        }
    }
}

/// The TTL of `table` for `policies`: one rule per number of days, naming its orgs; `REMOVE TTL`
/// when there is none.
pub fn ttl_statement(table: &str, policies: &[Retention], cluster: Option<&str>) -> String {
    let mut by_days: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for policy in policies.iter().filter(|policy| policy.days > 0) {
        by_days.entry(policy.days).or_default().push(string_literal(&policy.org_id));
    }
    let target = schemas::migrations::mutation_target(table, cluster);
    if by_days.is_empty() {
        return format!("ALTER TABLE {target} REMOVE TTL");
    }
    let rules: Vec<String> = by_days
        .iter()
        .map(|(days, orgs)| {
            format!("event_date + toIntervalDay({}) WHERE org_id IN ({})", days.min(&MAX_DAYS), orgs.join(", "))
        })
        .collect();
    format!("ALTER TABLE {target} MODIFY TTL {}", rules.join(", "))
}

/// The condition of `policy`'s expired rows: as the TTL expires them, once `event_date + days`
/// is today.
pub fn expired(policy: &Retention) -> String {
    format!("org_id = {} AND event_date <= today() - {}", string_literal(&policy.org_id), policy.days.min(MAX_DAYS))
}

/// The mutation deleting `policy`'s expired rows of `table` (ClickHouse before 21.3).
pub fn delete_statement(table: &str, policy: &Retention, cluster: Option<&str>) -> String {
    format!("ALTER TABLE {} DELETE WHERE {}", schemas::migrations::mutation_target(table, cluster), expired(policy))
}

/// What one enforcement did.
#[derive(Debug, Default)]
pub struct Enforced {
    /// TTL statements applied (a change of the policies, or the first round).
    pub ttl_changes: usize,
    /// Expired rows deleted by mutation (ClickHouse before 21.3).
    pub rows_deleted: u64,
}

/// Enforces every org's retention now, and waits for ClickHouse to apply it. `applied` holds the
/// policies whose TTL is in place (so an unchanged TTL is not set again); `None` sets it.
pub async fn enforce(
    client: &clickhouse::Client,
    cluster: Option<&str>,
    applied: &mut Option<Vec<(String, u32)>>,
) -> Result<Enforced, clickhouse::error::Error> {
    let policies = policies(client).await?;
    let mut enforced = Enforced::default();
    match Enforcement::of_version(runtime::clickhouse::server_version(client).await?) {
        Enforcement::Ttl => {
            let wanted: Vec<(String, u32)> = policies.iter().map(|p| (p.org_id.clone(), p.days)).collect();
            if applied.as_ref() == Some(&wanted) {
                return Ok(enforced);
            }
            for table in TABLES {
                let has_ttl: u64 = client
                    .query(
                        "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = ? \
                         AND position(create_table_query, ' TTL ') > 0",
                    )
                    .bind(if cluster.is_some() { format!("{table}_local") } else { table.to_owned() })
                    .fetch_one()
                    .await?;
                if policies.is_empty() && has_ttl == 0 {
                    continue;
                }
                client.query(&ttl_statement(table, &policies, cluster)).execute().await?;
                enforced.ttl_changes += 1;
            }
            *applied = Some(wanted);
        }
        Enforcement::Delete => {
            for table in TABLES {
                for policy in &policies {
                    let count = format!("SELECT count() FROM {table} WHERE {}", expired(policy));
                    let rows: u64 = client.query(&count).fetch_one().await?;
                    if rows > 0 {
                        client.query(&delete_statement(table, policy, cluster)).execute().await?;
                        enforced.rows_deleted += rows;
                    }
                }
            }
        }
    }
    // Bounded: a slow mutation goes on in the background and the next round looks again.
    let _ = runtime::clickhouse::await_mutations(client, &TABLES, std::time::Duration::from_secs(600)).await?;
    Ok(enforced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(org: &str, days: u32) -> Retention {
        Retention { org_id: org.into(), days, version: 1 }
    }

    #[test]
    fn a_ttl_rule_per_retention_naming_its_orgs() {
        let policies = [policy("acme", 30), policy("o'hare", 90), policy("globex", 30), policy("kept", 0)];
        assert_eq!(
            ttl_statement("signals_hot", &policies, None),
            "ALTER TABLE signals_hot MODIFY TTL event_date + toIntervalDay(30) WHERE org_id IN ('acme', 'globex'), \
             event_date + toIntervalDay(90) WHERE org_id IN ('o\\'hare')"
        );
        assert_eq!(
            ttl_statement("signals_cold", &[], Some("c")),
            "ALTER TABLE signals_cold_local ON CLUSTER c REMOVE TTL"
        );
        assert_eq!(
            delete_statement("signals_cold", &policy("acme", 7), None),
            "ALTER TABLE signals_cold DELETE WHERE org_id = 'acme' AND event_date <= today() - 7"
        );
        assert_eq!(Enforcement::of_version((18, 16)), Enforcement::Delete);
        assert_eq!(Enforcement::of_version((26, 9)), Enforcement::Ttl);
    }
}

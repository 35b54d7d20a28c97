//! Mapping rules in ClickHouse: added, listed and removed by `sigstage rules` and the admin API,
//! loaded (all orgs, in creation order) by every stream processor.

use clickhouse::Row;
use schemas::rules::{Rule, RuleSpec};
use serde::{Deserialize, Serialize};

#[derive(Debug, Row, Serialize, Deserialize)]
struct RuleRow {
    org_id: String,
    rule_id: String,
    spec: String,
    deleted: u8,
    created_ms: u64,
    version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleAdminError {
    #[error("org id {0:?} is not valid: use 1-64 letters, digits, '_', '-' or '.'")]
    InvalidOrg(String),
    #[error("the rule is not valid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("org {org:?} has no rule {rule:?} (`sigstage rules list --org {org}` shows them)")]
    NotFound { org: String, rule: String },
    #[error("cannot generate a rule id: {0}")]
    Random(String),
    #[error("ClickHouse: {0} (is it running, and has `sigstage migrate` run?)")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Validates and stores a new rule of `org_id`; answers it with its id.
pub async fn add(client: &clickhouse::Client, org_id: &str, spec: RuleSpec) -> Result<Rule, RuleAdminError> {
    if !super::valid_org_id(org_id) {
        return Err(RuleAdminError::InvalidOrg(org_id.to_owned()));
    }
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(RuleAdminError::Invalid(problems));
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| RuleAdminError::Random(error.to_string()))?;
    let now = crate::time::now_ms();
    let rule = Rule { id: format!("rule_{}", hex::encode(bytes)), org_id: org_id.to_owned(), created_ms: now, spec };
    write(client, &rule, false, now).await?;
    Ok(rule)
}

/// Every live rule of `org_id` (of every org with `None`), in the order they apply.
pub async fn list(client: &clickhouse::Client, org_id: Option<&str>) -> Result<Vec<Rule>, RuleAdminError> {
    let rows: Vec<RuleRow> = client
        .query(
            "SELECT ?fields FROM mapping_rules FINAL WHERE deleted = 0 AND (? = '' OR org_id = ?) \
             ORDER BY org_id, created_ms, rule_id",
        )
        .bind(org_id.unwrap_or_default())
        .bind(org_id.unwrap_or_default())
        .fetch_all()
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match serde_json::from_str(&row.spec) {
            Ok(spec) => Some(Rule { id: row.rule_id, org_id: row.org_id, created_ms: row.created_ms, spec }),
            Err(error) => {
                tracing::warn!(rule = %row.rule_id, %error, "stored mapping rule does not parse; ignored");
                None
            }
        })
        .collect())
}

/// Removes a rule; answers the rule removed.
pub async fn remove(client: &clickhouse::Client, org_id: &str, rule_id: &str) -> Result<Rule, RuleAdminError> {
    let rule = list(client, Some(org_id))
        .await?
        .into_iter()
        .find(|rule| rule.id == rule_id)
        .ok_or_else(|| RuleAdminError::NotFound { org: org_id.to_owned(), rule: rule_id.to_owned() })?;
    // Never the version it was written with, or FINAL could keep either row.
    write(client, &rule, true, crate::time::now_ms().max(rule.created_ms + 1)).await?;
    Ok(rule)
}

async fn write(client: &clickhouse::Client, rule: &Rule, deleted: bool, version: u64) -> Result<(), RuleAdminError> {
    let row = RuleRow {
        org_id: rule.org_id.clone(),
        rule_id: rule.id.clone(),
        spec: serde_json::to_string(&rule.spec).expect("a rule spec serializes"),
        deleted: u8::from(deleted),
        created_ms: rule.created_ms,
        version,
    };
    Ok(crate::clickhouse::insert::<RuleRow, _>(client, "mapping_rules", &[row]).await?)
}

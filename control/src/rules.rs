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
    if !schemas::valid_org_id(org_id) {
        return Err(RuleAdminError::InvalidOrg(org_id.to_owned()));
    }
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(RuleAdminError::Invalid(problems));
    }
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| RuleAdminError::Random(error.to_string()))?;
    let now = runtime::time::now_ms();
    let rule = Rule { id: format!("rule_{}", hex::encode(bytes)), org_id: org_id.to_owned(), created_ms: now, spec };
    write(client, &rule, false, now).await?;
    Ok(rule)
}

/// Every live rule of `org_id` (of every org with `None`), in the order they apply.
pub async fn list(client: &clickhouse::Client, org_id: Option<&str>) -> Result<Vec<Rule>, RuleAdminError> {
    let rows: Vec<RuleRow> = client
        .query(
            "SELECT ?fields FROM mapping_rules FINAL WHERE deleted = 0 AND (? = 1 OR org_id = ?) \
             ORDER BY org_id, created_ms, rule_id",
        )
        .bind(u8::from(org_id.is_none()))
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
    let rule = find(client, org_id, rule_id).await?;
    write(client, &rule, true, next_version(&rule)).await?;
    Ok(rule)
}

/// Replaces a rule's spec, keeping its id and place in the order; answers the rule as changed.
pub async fn update(
    client: &clickhouse::Client,
    org_id: &str,
    rule_id: &str,
    spec: RuleSpec,
) -> Result<Rule, RuleAdminError> {
    let problems = spec.problems();
    if !problems.is_empty() {
        return Err(RuleAdminError::Invalid(problems));
    }
    let mut rule = find(client, org_id, rule_id).await?;
    rule.spec = spec;
    write(client, &rule, false, next_version(&rule)).await?;
    Ok(rule)
}

/// Puts the org's rules in the order of `rule_ids`, which must name each of them once;
/// answers them in their new order.
pub async fn reorder(
    client: &clickhouse::Client,
    org_id: &str,
    rule_ids: &[String],
) -> Result<Vec<Rule>, RuleAdminError> {
    let current = list(client, Some(org_id)).await?;
    let mut given = rule_ids.to_vec();
    given.sort();
    given.dedup();
    let mut known: Vec<String> = current.iter().map(|rule| rule.id.clone()).collect();
    known.sort();
    if given.len() != rule_ids.len() || given != known {
        return Err(RuleAdminError::Invalid(vec![format!(
            "rule_ids: name each of the org's {} rules once, in the new order (GET …/rules lists them)",
            current.len()
        )]));
    }
    // Rules apply in creation order: the new order is written as creation times, from the
    // earliest one the org has, one millisecond apart.
    let start = current.iter().map(|rule| rule.created_ms).min().unwrap_or_default();
    let mut ordered = Vec::with_capacity(current.len());
    let mut moved = Vec::new();
    for (position, id) in rule_ids.iter().enumerate() {
        let mut rule = current.iter().find(|rule| &rule.id == id).cloned().expect("checked above");
        let created_ms = start + position as u64;
        if rule.created_ms != created_ms {
            let version = next_version(&rule);
            rule.created_ms = created_ms;
            moved.push(row(&rule, false, version));
        }
        ordered.push(rule);
    }
    // One insert: a processor reloading meanwhile sees the old order or the new, never a mix.
    runtime::clickhouse::insert::<RuleRow, _>(client, "mapping_rules", &moved).await?;
    Ok(ordered)
}

async fn find(client: &clickhouse::Client, org_id: &str, rule_id: &str) -> Result<Rule, RuleAdminError> {
    list(client, Some(org_id))
        .await?
        .into_iter()
        .find(|rule| rule.id == rule_id)
        .ok_or_else(|| RuleAdminError::NotFound { org: org_id.to_owned(), rule: rule_id.to_owned() })
}

/// A version above any the rule was written with, or FINAL could keep either row.
fn next_version(rule: &Rule) -> u64 {
    runtime::time::now_ms().max(rule.created_ms + 1)
}

fn row(rule: &Rule, deleted: bool, version: u64) -> RuleRow {
    RuleRow {
        org_id: rule.org_id.clone(),
        rule_id: rule.id.clone(),
        spec: serde_json::to_string(&rule.spec).expect("a rule spec serializes"),
        deleted: u8::from(deleted),
        created_ms: rule.created_ms,
        version,
    }
}

async fn write(client: &clickhouse::Client, rule: &Rule, deleted: bool, version: u64) -> Result<(), RuleAdminError> {
    Ok(runtime::clickhouse::insert::<RuleRow, _>(client, "mapping_rules", &[row(rule, deleted, version)]).await?)
}

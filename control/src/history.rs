//! A rule against the signals already stored (issue 24): what it would change, read before
//! anything is written. A rule added today applies to signals from today on; this says what it
//! would have done to the history, the part a team imported before it had the rule.
//!
//! It reads every stored signal of the org in the range once (a cold signal only when no hot row
//! holds it: a rehydrated signal is in both), streamed, and evaluates the rule on each payload as
//! the stream does (`schemas::mapping`):
//! - **newly mapped**: the rule matches and did not map it when it arrived;
//! - **newly attributed**: an anonymous signal the rule would give an email, and so a lead;
//! - **visitors identified**: their visitors (anonymous ids), not yet linked to anyone, and the
//!   other anonymous signals of theirs a link would rehydrate;
//! - **new leads**: the emails it would name that are not leads yet, with a sample.

use std::collections::{BTreeSet, HashMap, HashSet};

use clickhouse::Row;
use schemas::mapping::{Compiled, Mapping};
use schemas::rules::Rule;
use serde::{Deserialize, Serialize};

/// Leads named in the answer, at most.
const SAMPLE: usize = 10;
/// Values bound into one `has(…)` lookup.
const PER_LOOKUP: usize = 5_000;

/// What a rule would change in the stored signals of a range.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Preview {
    pub rule_id: String,
    pub since_ms: u64,
    pub until_ms: u64,
    /// Stored signals read.
    pub signals: u64,
    /// Signals the rule matches: all, and those it did not map when they arrived.
    pub matched: u64,
    pub newly_mapped: u64,
    /// Anonymous signals the rule would give an email.
    pub newly_attributed: u64,
    /// Visitors not linked to anyone yet that those signals would link.
    pub visitors_identified: u64,
    /// Their other anonymous signals, which the links would rehydrate.
    pub rehydrated: u64,
    /// Emails the rule would name that are not leads yet, and a sample of them.
    pub new_leads: u64,
    pub sample_leads: Vec<String>,
}

#[derive(Row, Deserialize)]
struct Stored {
    signal_id: u64,
    source: String,
    event: String,
    anonymous_id: String,
    lead_email: String,
    rules: Vec<String>,
    payload: String,
}

/// What `rule` would change in its org's signals with event times in `since_ms..until_ms`.
pub async fn preview(
    client: &clickhouse::Client,
    rule: &Rule,
    since_ms: u64,
    until_ms: u64,
) -> Result<Preview, PreviewError> {
    let compiled = [Compiled::new(rule).map_err(PreviewError::Invalid)?];
    let mapping = Mapping { rules: &compiled, matched: &[0] };
    let org = rule.org_id.as_str();
    let mut preview = Preview { rule_id: rule.id.clone(), since_ms, until_ms, ..Preview::default() };
    // Visitor → the email the rule gives it (the first, in event order as stored).
    let mut identified: HashMap<String, String> = HashMap::new();
    let mut emails: BTreeSet<String> = BTreeSet::new();
    let mut attributed_ids: HashSet<u64> = HashSet::new();
    let query = "SELECT signal_id, source, event, anonymous_id, lead_email, rules, payload FROM signals_hot \
                 WHERE org_id = ? AND event_ms >= ? AND event_ms < ? \
                 UNION ALL \
                 SELECT signal_id, source, event, anonymous_id, '' AS lead_email, rules, payload FROM signals_cold \
                 WHERE org_id = ? AND event_ms >= ? AND event_ms < ? AND signal_id NOT IN \
                 (SELECT signal_id FROM signals_hot WHERE org_id = ? AND event_ms >= ? AND event_ms < ?)";
    let mut rows = client
        .query(query)
        .bind(org)
        .bind(since_ms)
        .bind(until_ms)
        .bind(org)
        .bind(since_ms)
        .bind(until_ms)
        .bind(org)
        .bind(since_ms)
        .bind(until_ms)
        .fetch::<Stored>()?;
    while let Some(row) = rows.next().await? {
        preview.signals += 1;
        let mut bytes = row.payload.into_bytes();
        let Ok(signal) = simd_json::to_borrowed_value(&mut bytes) else { continue };
        if !compiled[0].matches(&row.source, &row.event, &signal) {
            continue;
        }
        preview.matched += 1;
        if !row.rules.contains(&rule.id) {
            preview.newly_mapped += 1;
        }
        let email = mapping
            .first("email", &signal)
            .and_then(|value| simd_json::prelude::ValueAsScalar::as_str(value))
            .and_then(schemas::person::normalise_email);
        let Some(email) = email.filter(|_| row.lead_email.is_empty()) else { continue };
        preview.newly_attributed += 1;
        attributed_ids.insert(row.signal_id);
        if !row.anonymous_id.is_empty() {
            identified.entry(row.anonymous_id).or_insert_with(|| email.clone());
        }
        emails.insert(email);
    }
    // Visitors already linked keep their lead (a link is not replaced by history).
    let visitors: Vec<String> = identified.into_keys().collect();
    let new_visitors = not_in(client, org, "identities", "anonymous_id", visitors).await?;
    preview.visitors_identified = new_visitors.len() as u64;
    for chunk in new_visitors.chunks(PER_LOOKUP) {
        let cold: Vec<u64> = client
            .query(
                "SELECT DISTINCT signal_id FROM signals_cold WHERE org_id = ? AND has(?, anonymous_id) \
                 AND signal_id NOT IN (SELECT signal_id FROM signals_hot WHERE org_id = ?)",
            )
            .bind(org)
            .bind(chunk)
            .bind(org)
            .fetch_all()
            .await?;
        preview.rehydrated += cold.iter().filter(|id| !attributed_ids.contains(id)).count() as u64;
    }
    let new_leads = not_in(client, org, "leads", "email", emails.into_iter().collect()).await?;
    preview.new_leads = new_leads.len() as u64;
    preview.sample_leads = new_leads.into_iter().take(SAMPLE).collect();
    Ok(preview)
}

/// Those of `values` that `column` of `org`'s rows in `table` does not hold, in their order.
async fn not_in(
    client: &clickhouse::Client,
    org: &str,
    table: &str,
    column: &str,
    values: Vec<String>,
) -> Result<Vec<String>, clickhouse::error::Error> {
    let mut held: HashSet<String> = HashSet::new();
    let query = format!("SELECT DISTINCT {column} FROM {table} WHERE org_id = ? AND has(?, {column})");
    for chunk in values.chunks(PER_LOOKUP) {
        held.extend(client.query(&query).bind(org).bind(chunk).fetch_all::<String>().await?);
    }
    Ok(values.into_iter().filter(|value| !held.contains(value)).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("the rule cannot be compiled: {0}")]
    Invalid(String),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// A day (`2026-03-01`, midnight UTC) or an RFC 3339 time, in epoch milliseconds.
pub fn parse_time(value: &str) -> Option<u64> {
    use time::format_description::well_known::Rfc3339;
    let at = match time::Date::parse(value, time::macros::format_description!("[year]-[month]-[day]")) {
        Ok(day) => day.midnight().assume_utc(),
        Err(_) => time::OffsetDateTime::parse(value, &Rfc3339).ok()?,
    };
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_and_times_are_read_as_utc_milliseconds() {
        assert_eq!(super::parse_time("2026-03-01"), Some(1_772_323_200_000));
        assert_eq!(super::parse_time("2026-03-01T00:00:01Z"), Some(1_772_323_201_000));
        assert_eq!(super::parse_time("March"), None);
    }
}

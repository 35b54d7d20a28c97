//! Deleting a person (GDPR Article 17) and keeping them out afterwards.
//!
//! A person is an email and every visitor linked to it, or a visitor and, when it is linked,
//! its email's person. Deleting one, in this order:
//! 1. suppresses each of their emails and visitors: the stream and the sink reload suppressions
//!    every `SIGSTAGE_CONTROL_REFRESH_MS` and store nothing of a suppressed person from then on
//!    (counted as suppressed). The deletion waits two such intervals, so what was in flight is
//!    held back too;
//! 2. writes tombstones for their links and leads to the compacted `identities` topic (on every
//!    partition), so no restore brings them back, and a stream drops them from memory;
//! 3. deletes their rows from every table that holds them: signals, links, leads, per-lead and
//!    per-visitor rollups, the webhook events their signals caused with their queue and delivery
//!    log, and Signal Queue samples that name them (`ALTER … DELETE` on ClickHouse before 23,
//!    lightweight `DELETE FROM` after), then waits for ClickHouse to finish;
//! 4. records it in `people_audit`: who, when, what, how many rows.
//!
//! Running it again is harmless. The raw and processed topics keep records until their
//! retention ends (`SIGSTAGE_KAFKA_RETENTION_HOURS`); nothing replays them into storage past a
//! suppression.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use clickhouse::Row;
use rdkafka::producer::{FutureProducer, FutureRecord};
use runtime::config::KafkaConfig;
use runtime::kafka::topics;
use schemas::identities::Forgotten;
use schemas::queries::string_literal;
use serde::{Deserialize, Serialize};

/// What names a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Email(String),
    Visitor(String),
}

impl Subject {
    /// An email (normalised as the stream does) or an anonymous id.
    pub fn parse(email: Option<&str>, anonymous_id: Option<&str>) -> Result<Self, PeopleError> {
        match (email.map(str::trim).filter(|v| !v.is_empty()), anonymous_id.map(str::trim).filter(|v| !v.is_empty())) {
            (Some(email), None) => schemas::person::normalise_email(email)
                .map(Subject::Email)
                .ok_or_else(|| PeopleError::Invalid(format!("{email:?} is not an email address"))),
            (None, Some(visitor)) => Ok(Subject::Visitor(visitor.to_owned())),
            _ => Err(PeopleError::Invalid("name the person by exactly one of email or anonymous_id".into())),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Email(_) => EMAIL,
            Subject::Visitor(_) => VISITOR,
        }
    }

    pub fn value(&self) -> &str {
        match self {
            Subject::Email(value) | Subject::Visitor(value) => value,
        }
    }
}

const EMAIL: &str = "email";
const VISITOR: &str = "anonymous_id";

#[derive(Debug, thiserror::Error)]
pub enum PeopleError {
    #[error("{0}")]
    Invalid(String),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("Kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("ClickHouse has not finished deleting from {0} after 10 minutes; run the deletion again later")]
    Unfinished(String),
}

/// The emails and visitors suppressed, per org: what the stream and the sink keep out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Suppressions {
    by_org: HashMap<String, HashSet<String>>,
}

impl Suppressions {
    pub async fn load(client: &clickhouse::Client) -> Result<Self, clickhouse::error::Error> {
        #[derive(Row, Deserialize)]
        struct Suppressed {
            org_id: String,
            value: String,
        }
        let rows: Vec<Suppressed> =
            client.query("SELECT org_id, value FROM suppressions FINAL WHERE active = 1").fetch_all().await?;
        Ok(Self::from_pairs(rows.into_iter().map(|row| (row.org_id, row.value))))
    }

    /// Loaded now (waiting for ClickHouse), then reloaded every `every` until `stop` turns true:
    /// what the stream and the sinks keep out. None when stopped first.
    pub async fn keep_loaded(
        client: &clickhouse::Client,
        every: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Option<tokio::sync::watch::Receiver<std::sync::Arc<Self>>> {
        let client = client.clone();
        let load = move || {
            let client = client.clone();
            async move { Self::load(&client).await }
        };
        runtime::reload::keep_loaded("suppressions", every, stop, load).await
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut by_org: HashMap<String, HashSet<String>> = HashMap::new();
        for (org, value) in pairs {
            by_org.entry(org).or_default().insert(value);
        }
        Self { by_org }
    }

    /// True when `value` (an email or a visitor id) of `org` is suppressed.
    pub fn holds(&self, org: &str, value: &str) -> bool {
        self.by_org.get(org).is_some_and(|values| values.contains(value))
    }

    /// True when any of `values` is.
    pub fn holds_any<'v>(&self, org: &str, values: impl IntoIterator<Item = Option<&'v str>>) -> bool {
        match self.by_org.get(org) {
            Some(suppressed) => values.into_iter().flatten().any(|value| suppressed.contains(value)),
            None => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_org.is_empty()
    }

    /// Every suppressed (org, value).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_org.iter().flat_map(|(org, values)| values.iter().map(move |value| (org.as_str(), value.as_str())))
    }
}

/// A person: their emails and their visitors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Person {
    pub emails: Vec<String>,
    pub visitors: Vec<String>,
}

/// The person `subject` names in `org`, from the links ClickHouse holds.
pub async fn find(client: &clickhouse::Client, org: &str, subject: &Subject) -> Result<Person, PeopleError> {
    let email = match subject {
        Subject::Email(email) => Some(email.clone()),
        Subject::Visitor(visitor) => {
            client
                .query("SELECT email FROM identities FINAL WHERE org_id = ? AND anonymous_id = ? LIMIT 1")
                .bind(org)
                .bind(visitor)
                .fetch_optional::<String>()
                .await?
        }
    };
    let mut person = Person::default();
    if let Subject::Visitor(visitor) = subject {
        person.visitors.push(visitor.clone());
    }
    if let Some(email) = email {
        let visitors: Vec<String> = client
            .query("SELECT DISTINCT anonymous_id FROM identities FINAL WHERE org_id = ? AND email = ?")
            .bind(org)
            .bind(&email)
            .fetch_all()
            .await?;
        for visitor in visitors {
            if !person.visitors.contains(&visitor) {
                person.visitors.push(visitor);
            }
        }
        person.emails.push(email);
    }
    Ok(person)
}

/// One suppression as stored.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SuppressionRow {
    pub org_id: String,
    pub kind: String,
    pub value: String,
    pub active: u8,
    pub actor: String,
    pub version: u64,
}

/// Suppresses (or, with `active` false, lifts) each of `person`'s emails and visitors.
pub async fn set_suppressed(
    client: &clickhouse::Client,
    org: &str,
    person: &Person,
    active: bool,
    actor: &str,
) -> Result<(), PeopleError> {
    let version = runtime::time::now_ms();
    let row = |kind: &str, value: &String| SuppressionRow {
        org_id: org.to_owned(),
        kind: kind.to_owned(),
        value: value.clone(),
        active: u8::from(active),
        actor: actor.to_owned(),
        version,
    };
    let rows: Vec<SuppressionRow> = (person.emails.iter().map(|email| row(EMAIL, email)))
        .chain(person.visitors.iter().map(|visitor| row(VISITOR, visitor)))
        .collect();
    Ok(runtime::clickhouse::insert::<SuppressionRow, _>(client, "suppressions", &rows).await?)
}

/// `org`'s active suppressions, newest first.
pub async fn suppressions(client: &clickhouse::Client, org: &str) -> Result<Vec<SuppressionRow>, PeopleError> {
    Ok(client
        .query("SELECT ?fields FROM suppressions FINAL WHERE org_id = ? AND active = 1 ORDER BY version DESC")
        .bind(org)
        .fetch_all()
        .await?)
}

/// One line of the audit.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct AuditRow {
    pub org_id: String,
    pub at_ms: u64,
    pub actor: String,
    /// `delete`, `suppress` or `lift`.
    pub action: String,
    pub kind: String,
    pub value: String,
    pub emails: Vec<String>,
    pub visitors: Vec<String>,
    pub rows: u64,
    /// Rows per table, as JSON.
    pub detail: String,
}

impl AuditRow {
    /// `actor`'s `action` on the person `subject` names, now, with no rows counted.
    fn of(org: &str, actor: &str, action: &str, subject: &Subject, person: &Person) -> Self {
        Self {
            org_id: org.to_owned(),
            at_ms: runtime::time::now_ms(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            kind: subject.kind().into(),
            value: subject.value().to_owned(),
            emails: person.emails.clone(),
            visitors: person.visitors.clone(),
            rows: 0,
            detail: String::new(),
        }
    }
}

pub async fn record(client: &clickhouse::Client, row: &AuditRow) -> Result<(), PeopleError> {
    Ok(runtime::clickhouse::insert::<AuditRow, _>(client, "people_audit", std::slice::from_ref(row)).await?)
}

/// `org`'s audit, newest first (at most 1 000 lines).
pub async fn audit(client: &clickhouse::Client, org: &str) -> Result<Vec<AuditRow>, PeopleError> {
    Ok(client
        .query("SELECT ?fields FROM people_audit WHERE org_id = ? ORDER BY at_ms DESC LIMIT 1000")
        .bind(org)
        .fetch_all()
        .await?)
}

/// Writes a tombstone for each of `person`'s links and leads to every partition of the
/// `identities` topic (a key's records sit on the partition of the visitor that made them, which
/// only the stream knew); answers how many.
pub async fn forget(kafka: &KafkaConfig, org: &str, person: &Person) -> Result<usize, PeopleError> {
    let producer: FutureProducer = runtime::kafka::producer(kafka)?;
    let topic = kafka.topic(topics::IDENTITIES);
    let keys: Vec<String> = (person.visitors.iter().map(|visitor| Forgotten::Link { org, visitor }.key()))
        .chain(person.emails.iter().map(|email| Forgotten::Lead { org, email }.key()))
        .collect();
    let mut sent = Vec::new();
    for key in &keys {
        for partition in 0..kafka.partitions {
            let record = FutureRecord::<str, [u8]>::to(&topic).key(key.as_str()).partition(partition);
            sent.push(producer.send(record, Duration::from_secs(30)));
        }
    }
    let count = sent.len();
    for delivery in futures::future::join_all(sent).await {
        delivery.map_err(|(error, _)| error)?;
    }
    Ok(count)
}

/// Signal ids written into one statement: a person with more signals gets several, each well
/// under ClickHouse's `max_query_size` (256 KiB).
const IDS_PER_STATEMENT: usize = 5_000;

/// The statements that delete `person` from ClickHouse, each a table and its condition. The
/// webhook tables come first: their rows are found by the signal ids the signal tables hold, so
/// a deletion that stops halfway finds them again when it is run again.
fn deletions(person: &Person, signal_ids: &[u64]) -> Vec<(&'static str, String)> {
    // An empty `[]` has no element type, which `has` refuses.
    let list = |values: &[String]| match values {
        [] => "emptyArrayString()".to_owned(),
        values => format!("[{}]", values.iter().map(|value| string_literal(value)).collect::<Vec<_>>().join(",")),
    };
    let (emails, visitors) = (list(&person.emails), list(&person.visitors));
    let mut statements = Vec::new();
    for ids in signal_ids.chunks(IDS_PER_STATEMENT) {
        let ids = ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
        let by_event = format!("has(CAST([{ids}] AS Array(UInt64)), toUInt64OrZero(splitByChar('.', event_id)[1]))");
        for table in ["webhook_events", "webhook_queue", "webhook_backfill_queue", "webhook_deliveries"] {
            statements.push((table, by_event.clone()));
        }
    }
    statements.extend([
        ("signals_hot", format!("has({emails}, lead_email) OR has({visitors}, anonymous_id)")),
        ("signals_cold", format!("has({emails}, lead_email) OR has({visitors}, anonymous_id)")),
        ("identities", format!("has({emails}, email) OR has({visitors}, anonymous_id)")),
        ("leads", format!("has({emails}, email)")),
        ("lead_summaries", format!("has({emails}, lead_email)")),
        ("visitors", format!("has({visitors}, anonymous_id)")),
    ]);
    let mentions = person
        .emails
        .iter()
        .chain(&person.visitors)
        .map(|value| format!("position(sample, {}) > 0", string_literal(value)))
        .collect::<Vec<_>>()
        .join(" OR ");
    if !mentions.is_empty() {
        statements.push(("signal_queue", mentions));
    }
    statements
}

/// Rows deleted, per table.
pub type Erased = Vec<(&'static str, u64)>;

/// What a deletion did.
#[derive(Debug, Serialize)]
pub struct Deleted {
    pub person: Person,
    /// Tombstones written to `identities`.
    pub tombstones: usize,
    /// Rows each table held, now deleted.
    pub rows: Vec<(&'static str, u64)>,
}

/// Where a deletion reaches, and how long the stages take to load a suppression.
pub struct Reach<'a> {
    pub kafka: &'a KafkaConfig,
    pub cluster: Option<&'a str>,
    /// `SIGSTAGE_CONTROL_REFRESH_MS`.
    pub refresh: Duration,
}

/// Deletes the person `subject` names from `org` (see the module), telling `progress` each step.
pub async fn delete(
    client: &clickhouse::Client,
    reach: &Reach<'_>,
    org: &str,
    subject: &Subject,
    actor: &str,
    progress: impl Fn(&str),
) -> Result<Deleted, PeopleError> {
    let person = find(client, org, subject).await?;
    progress(&format!(
        "{} email(s) and {} visitor(s) found; suppressing them",
        person.emails.len(),
        person.visitors.len()
    ));
    set_suppressed(client, org, &person, true, actor).await?;
    let wait = reach.refresh * 2;
    progress(&format!(
        "waiting {} ms, two control refreshes, for every stream and sink to hold the suppression",
        wait.as_millis()
    ));
    tokio::time::sleep(wait).await;
    let tombstones = forget(reach.kafka, org, &person).await?;
    progress(&format!("{tombstones} tombstone(s) written to the identities topic; deleting rows"));
    // Again until a pass finds nothing: a write a stage started before it held the suppression
    // (an insert retried while ClickHouse was slow) can land after the first pass.
    let mut rows: Erased = Vec::new();
    for pass in 1..=3 {
        let found = erase(client, reach.cluster, org, &person).await?;
        if found.is_empty() {
            break;
        }
        for (table, count) in found {
            match rows.iter_mut().find(|(name, _)| *name == table) {
                Some((_, counted)) => *counted += count,
                None => rows.push((table, count)),
            }
        }
        if pass < 3 {
            progress("checking again after a control refresh for rows written meanwhile");
            tokio::time::sleep(reach.refresh).await;
        }
    }
    let total = rows.iter().map(|(_, rows)| rows).sum();
    let detail = serde_json::to_string(&rows.iter().map(|(table, rows)| (*table, *rows)).collect::<HashMap<_, _>>())
        .expect("counts serialize");
    record(client, &AuditRow { rows: total, detail, ..AuditRow::of(org, actor, "delete", subject, &person) }).await?;
    Ok(Deleted { person, tombstones, rows })
}

/// Lifts the suppression of `subject`, and of the visitors its deletion suppressed with it;
/// answers what was lifted.
pub async fn lift(
    client: &clickhouse::Client,
    org: &str,
    subject: &Subject,
    actor: &str,
) -> Result<Person, PeopleError> {
    #[derive(Row, Deserialize)]
    struct Deletion {
        emails: Vec<String>,
        visitors: Vec<String>,
    }
    let deleted: Option<Deletion> = client
        .query(
            "SELECT emails, visitors FROM people_audit WHERE org_id = ? AND action = 'delete' AND kind = ? AND value = ? \
             ORDER BY at_ms DESC LIMIT 1",
        )
        .bind(org)
        .bind(subject.kind())
        .bind(subject.value())
        .fetch_optional()
        .await?;
    let person = match (deleted, subject) {
        (Some(deleted), _) => Person { emails: deleted.emails, visitors: deleted.visitors },
        (None, Subject::Email(email)) => Person { emails: vec![email.clone()], visitors: Vec::new() },
        (None, Subject::Visitor(visitor)) => Person { emails: Vec::new(), visitors: vec![visitor.clone()] },
    };
    set_suppressed(client, org, &person, false, actor).await?;
    record(client, &AuditRow::of(org, actor, "lift", subject, &person)).await?;
    Ok(person)
}

/// Deletes `person`'s rows of `org` from every table that holds them and waits until ClickHouse
/// has; answers the rows each table held.
pub async fn erase(
    client: &clickhouse::Client,
    cluster: Option<&str>,
    org: &str,
    person: &Person,
) -> Result<Erased, PeopleError> {
    if person.emails.is_empty() && person.visitors.is_empty() {
        return Ok(Vec::new());
    }
    let mut signal_ids: Vec<u64> = Vec::new();
    for (table, column, values) in
        [("signals_hot", "lead_email", &person.emails), ("signals_cold", "anonymous_id", &person.visitors)]
    {
        if values.is_empty() {
            continue;
        }
        let query = format!("SELECT DISTINCT signal_id FROM {table} WHERE org_id = ? AND has(?, {column})");
        signal_ids.extend(client.query(&query).bind(org).bind(values).fetch_all::<u64>().await?);
    }
    signal_ids.sort_unstable();
    signal_ids.dedup();
    let lightweight = runtime::clickhouse::server_version(client).await? >= (23, 3);
    let mut erased = Vec::new();
    for (table, condition) in deletions(person, &signal_ids) {
        let condition = format!("org_id = {} AND ({condition})", string_literal(org));
        let rows: u64 = client.query(&format!("SELECT count() FROM {table} WHERE {condition}")).fetch_one().await?;
        if rows == 0 {
            continue;
        }
        match erased.iter_mut().find(|(name, _)| *name == table) {
            Some((_, counted)) => *counted += rows,
            None => erased.push((table, rows)),
        }
        let target = schemas::migrations::mutation_target(table, cluster);
        let statement = match (table, lightweight) {
            ("signal_queue", _) => format!("ALTER TABLE {target} UPDATE sample = '' WHERE {condition}"),
            (_, true) => format!("DELETE FROM {target} WHERE {condition}"),
            (_, false) => format!("ALTER TABLE {target} DELETE WHERE {condition}"),
        };
        client.query(&statement).execute().await?;
    }
    let tables: Vec<&str> = erased.iter().map(|(table, _)| *table).collect();
    runtime::clickhouse::await_mutations(client, &tables, Duration::from_secs(600))
        .await?
        .map_err(|pending| PeopleError::Unfinished(pending.join(", ")))?;
    Ok(erased)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_is_named_once_and_suppressions_are_per_org() {
        assert_eq!(Subject::parse(Some(" Jo@Acme.io "), None).expect("email"), Subject::Email("jo@acme.io".into()));
        assert_eq!(Subject::parse(None, Some("v1")).expect("visitor").kind(), "anonymous_id");
        assert!(Subject::parse(Some("jo@acme.io"), Some("v1")).is_err());
        assert!(Subject::parse(None, None).is_err());
        assert!(Subject::parse(Some("not an email"), None).is_err());
        let suppressed = Suppressions::from_pairs([("acme".into(), "jo@acme.io".into()), ("acme".into(), "v1".into())]);
        assert!(suppressed.holds("acme", "v1") && !suppressed.holds("globex", "v1"));
        assert!(suppressed.holds_any("acme", [None, Some("x"), Some("jo@acme.io")]));
        assert!(!suppressed.holds_any("acme", [None, Some("x")]));
        assert_eq!(suppressed.iter().count(), 2);
    }

    #[test]
    fn every_table_that_holds_a_person_is_deleted_from_with_its_values_quoted() {
        let person = Person { emails: vec!["o'neil@acme.io".into()], visitors: vec!["v1".into()] };
        let statements = deletions(&person, &[7, 8]);
        let tables: Vec<&str> = statements.iter().map(|(table, _)| *table).collect();
        assert_eq!(
            tables,
            [
                "webhook_events",
                "webhook_queue",
                "webhook_backfill_queue",
                "webhook_deliveries",
                "signals_hot",
                "signals_cold",
                "identities",
                "leads",
                "lead_summaries",
                "visitors",
                "signal_queue"
            ]
        );
        assert!(statements[4].1.contains(r"['o\'neil@acme.io']"), "{}", statements[4].1);
        assert!(statements[0].1.contains("[7,8]"));
        let many: Vec<u64> = (0..12_000).collect();
        let chunked = deletions(&person, &many);
        assert_eq!(chunked.iter().filter(|(table, _)| *table == "webhook_events").count(), 3, "5 000 ids a statement");
        assert!(chunked.iter().all(|(_, condition)| condition.len() < 100_000));
        assert_eq!(deletions(&person, &[]).len(), 7, "no webhook events without signals");
        let email_only = Person { emails: vec!["jo@acme.io".into()], visitors: Vec::new() };
        assert!(deletions(&email_only, &[]).iter().all(|(_, condition)| !condition.contains("[]")), "typed when empty");
    }
}

//! The sink's ClickHouse statements: batched RowBinary inserts that tell retryable errors (the
//! server is down, busy or slow) from bad data, the rows a table holds already (for writes
//! whose outcome is unknown), rehydration of identified visitors' cold signals, and the links
//! of a batch's visitors.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use clickhouse::error::Error;
use clickhouse::Row;
use runtime::stage::{Stage, Status};
use serde::Deserialize;
use tokio::sync::watch;

use crate::rows::{Keyed, MAX_MONTHS_PER_INSERT};

/// ClickHouse error codes that mean the rows themselves are wrong: retrying cannot help. Text
/// that cannot be parsed as its column's type (6, 25, 26, 27, 38, 41, 72, 130), data cut short
/// or malformed (32, 33, 117), values out of their type's range or of a wrong type (53, 69, 70,
/// 321), sizes beyond limits (128, 131), arrays of unequal sizes (190), a NULL or an unknown
/// enum value (349, 691), and what the server's parsers throw as plain exceptions (1001). But a
/// server that forwards an insert (a cluster's `Distributed` table) answers 32 too when the
/// replica it forwards to goes away mid-insert ("Attempt to read after eof: while receiving
/// packet from …"): see [`is_lost_peer`].
const BAD_DATA_CODES: [u32; 21] =
    [6, 25, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 128, 130, 131, 190, 321, 349, 691, 1001];

/// True when the same insert may succeed later.
pub fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(message) => {
            let bad_data = BAD_DATA_CODES.contains(&code_of(message).unwrap_or(0)) && !is_lost_peer(message);
            !bad_data && !is_too_many_partitions(error)
        }
        _ => false,
    }
}

/// True for ClickHouse's refusal of an insert whose rows fall in more partitions than
/// `max_partitions_per_insert_block` allows. Code 252 (TOO_MANY_PARTS) is two errors, so it is
/// not in [`BAD_DATA_CODES`]: "Too many parts" says merges are behind, and the same insert
/// succeeds once they catch up (retried, with back-off); "Too many partitions for single INSERT
/// block" refuses the same insert every time, so retrying it would stall the sink for good. The
/// sink's inserts stay under the default limit ([`MAX_MONTHS_PER_INSERT`]) and rehydration
/// falls back to ranges of months; should a server with a lower limit still refuse, the error
/// is not retryable: the rows are then written one at a time (one partition each), as for bad
/// data, and are not lost.
pub fn is_too_many_partitions(error: &Error) -> bool {
    matches!(error, Error::BadResponse(message)
        if code_of(message) == Some(252) && message.contains("Too many partitions"))
}

/// True when the server answering lost the server it was talking to (a replica of another
/// shard, killed mid-insert), not when the rows it read were cut short: the same insert
/// succeeds through another replica.
fn is_lost_peer(message: &str) -> bool {
    message.contains("while receiving packet from")
}

/// The `Code: N.` of a ClickHouse error message.
fn code_of(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

/// INSERT … SELECT of some visitors' cold signals in a range of months as hot rows of their leads.
const REHYDRATE: &str = include_str!("sql/rehydrate.sql");
/// The months some visitors' cold signals fall in.
const COLD_MONTHS: &str = include_str!("sql/cold_months.sql");
/// The latest link of some visitors.
const LINKS_OF: &str = include_str!("sql/links_of.sql");

/// The most text one statement binds: a quarter of what the server takes in a statement
/// ([`runtime::clickhouse::MAX_QUERY_BYTES`]), so quoting, escaping (at most doubling it) and the
/// statement's own text fit. A batch's keys are bound in as many statements as keep to it:
/// anonymous ids have no length limit, and 20 000 of 200 bytes, each bound three times, would
/// not fit in one.
const BOUND_BYTES: usize = runtime::clickhouse::MAX_QUERY_BYTES / 4;

/// `items` in runs whose bound text (`bytes` of each) keeps to [`BOUND_BYTES`]; an item above
/// it is a run of its own.
fn runs<T>(items: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let (mut runs, mut start, mut total) = (Vec::new(), 0, 0);
    for (i, item) in items.iter().enumerate() {
        let size = bytes(item);
        if i > start && total + size > BOUND_BYTES {
            runs.push(&items[start..i]);
            (start, total) = (i, 0);
        }
        total += size;
    }
    if start < items.len() {
        runs.push(&items[start..]);
    }
    runs
}

/// A visitor of an org, as the sink's statements bind it: org id, anonymous id, and the key
/// `org_id NUL anonymous_id` they compare on.
pub struct Visitors<'a> {
    orgs: Vec<&'a str>,
    anonymous_ids: Vec<&'a str>,
    keys: Vec<String>,
}

impl<'a> Visitors<'a> {
    pub fn new(visitors: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut this = Self { orgs: Vec::new(), anonymous_ids: Vec::new(), keys: Vec::new() };
        let mut seen = HashSet::new();
        for (org, anonymous_id) in visitors {
            if !seen.insert((org, anonymous_id)) {
                continue; // each visitor once, however many of its signals the batch holds
            }
            if !this.orgs.contains(&org) {
                this.orgs.push(org);
            }
            this.anonymous_ids.push(anonymous_id);
            this.keys.push(visitor_key(org, anonymous_id));
        }
        this
    }
}

/// Writes every cold signal of each visitor of `links` (org, anonymousId, lead email; each
/// visitor once) as a hot row of its lead, attributed `rehydrated`, leaving out signals already
/// hot under that lead, so doing it twice writes nothing more. One statement for all of them,
/// unless their signals span more months than ClickHouse takes in one insert: then one per
/// [`MAX_MONTHS_PER_INSERT`] of those months (see [`is_too_many_partitions`]); and one for each
/// run of links whose text fits in a statement ([`BOUND_BYTES`]).
pub async fn rehydrate(
    client: &clickhouse::Client,
    links: &[(&str, &str, &str)],
    written_ms: u64,
) -> Result<(), Error> {
    // The keys, anonymous ids and emails are bound twice or more (see rehydrate.sql).
    let bytes = |&(org, visitor, email): &(&str, &str, &str)| 4 * (org.len() + visitor.len() + email.len()) + 32;
    for run in runs(links, bytes) {
        rehydrate_run(client, run, written_ms).await?;
    }
    Ok(())
}

async fn rehydrate_run(
    client: &clickhouse::Client,
    links: &[(&str, &str, &str)],
    written_ms: u64,
) -> Result<(), Error> {
    let visitors = Visitors::new(links.iter().map(|&(org, visitor, _)| (org, visitor)));
    let emails: Vec<&str> = links.iter().map(|link| link.2).collect();
    let months = |first: u32, last: u32| {
        client
            .query(REHYDRATE)
            .bind(&visitors.keys)
            .bind(&emails)
            .bind(written_ms)
            .bind(&visitors.orgs)
            .bind(&visitors.anonymous_ids)
            .bind(&visitors.keys)
            .bind(first)
            .bind(last)
            .bind(&visitors.orgs)
            .bind(&emails)
            .execute()
    };
    match months(0, u32::MAX).await {
        Err(error) if is_too_many_partitions(&error) => {
            tracing::info!(visitors = links.len(), "rehydrating a long history a range of months at a time");
        }
        done => return done,
    }
    let cold: Vec<u32> = client
        .query(COLD_MONTHS)
        .bind(&visitors.orgs)
        .bind(&visitors.anonymous_ids)
        .bind(&visitors.keys)
        .fetch_all()
        .await?;
    for range in cold.chunks(MAX_MONTHS_PER_INSERT) {
        if let (Some(&first), Some(&last)) = (range.first(), range.last()) {
            months(first, last).await?;
        }
    }
    Ok(())
}

#[derive(Row, Deserialize)]
struct LinkRow {
    org_id: String,
    anonymous_id: String,
    email: String,
}

/// The first link of each of `visitors` that has one (the lead its anonymous signals belong
/// to): `org NUL anonymousId` → email. One statement for each run of them that fits in one
/// ([`BOUND_BYTES`]).
pub async fn links_of(client: &clickhouse::Client, visitors: &Visitors<'_>) -> Result<HashMap<String, String>, Error> {
    let mut links = HashMap::new();
    let indexes: Vec<usize> = (0..visitors.keys.len()).collect();
    // Each visitor is bound as its anonymous id and its key (org NUL anonymous id).
    for run in runs(&indexes, |&i| 2 * (visitors.anonymous_ids[i].len() + visitors.keys[i].len()) + 16) {
        let (first, last) = (run[0], run[run.len() - 1]);
        let rows: Vec<LinkRow> = client
            .query(LINKS_OF)
            .bind(&visitors.orgs)
            .bind(&visitors.anonymous_ids[first..=last])
            .bind(&visitors.keys[first..=last])
            .fetch_all()
            .await?;
        links.extend(rows.into_iter().map(|row| (visitor_key(&row.org_id, &row.anonymous_id), row.email)));
    }
    Ok(links)
}

pub fn visitor_key(org_id: &str, anonymous_id: &str) -> String {
    format!("{org_id}\0{anonymous_id}")
}

/// The ids (see [`Keyed`]) of `rows` that `table` holds already, asked in as many statements
/// as keep to [`BOUND_BYTES`].
pub async fn existing<T: Keyed>(client: &clickhouse::Client, table: &str, rows: &[&T]) -> Result<HashSet<u64>, Error> {
    let (second, id) = T::key_columns(table);
    let query = format!(
        "SELECT DISTINCT {id} FROM {table} WHERE org_id IN (SELECT arrayJoin(?)) \
         AND {second} IN (SELECT arrayJoin(?)) AND {id} IN (SELECT toUInt64(arrayJoin(?)))"
    );
    let mut found = HashSet::new();
    for run in runs(rows, |row| {
        let (org, value, _) = row.key(table);
        org.len() + value.len() + 32
    }) {
        let (mut orgs, mut seconds, mut ids) = (Vec::new(), Vec::new(), Vec::new());
        for row in run {
            let (org, value, row_id) = row.key(table);
            if !orgs.contains(&org) {
                orgs.push(org);
            }
            seconds.push(value);
            ids.push(row_id);
        }
        let there: Vec<u64> = client.query(&query).bind(&orgs).bind(&seconds).bind(&ids).fetch_all().await?;
        found.extend(there);
    }
    Ok(found)
}

/// What the sink's statements retry under: the stage's stop signal, and its status, which
/// `/readyz` shows as waiting on ClickHouse for as long as a statement keeps failing (a server
/// down, or a cluster that lost ZooKeeper and turned its tables read-only).
pub struct Retries<'s> {
    pub stop: &'s mut watch::Receiver<bool>,
    pub status: &'s Stage,
}

impl Retries<'_> {
    /// True once the stage was asked to stop.
    pub fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Runs `attempt` until it succeeds, backing off on retryable errors (up to 30 s apart).
    /// Answers None when the stage was asked to stop before it succeeded, and the error at once
    /// when it is not retryable (bad data, or a statement that fails the same way every time).
    pub async fn run<T, F, Fut>(&mut self, what: &str, mut attempt: F) -> Result<Option<T>, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let (mut backoff, mut failures) = (Duration::from_millis(200), 0u64);
        loop {
            match attempt().await {
                Ok(value) => {
                    if failures > 0 {
                        tracing::info!(what, failures, "ClickHouse write succeeded again");
                        self.status.set(Status::Running);
                    }
                    return Ok(Some(value));
                }
                Err(error) if !is_retryable(&error) => return Err(error),
                Err(_) if self.stopped() => return Ok(None),
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, what, retry_in_ms = backoff.as_millis() as u64, "ClickHouse write failed; retrying");
                    let (on, what, error) = ("clickhouse".to_owned(), what.to_owned(), error.to_string());
                    self.status.set(Status::Waiting { on, what, error, failures });
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {},
                _ = self.stop.changed() => {},
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_keep_to_the_bound_budget_and_lose_nothing() {
        let sizes = [BOUND_BYTES / 2, BOUND_BYTES / 2, 1, BOUND_BYTES * 2, 3, 4];
        let split = runs(&sizes, |&size| size);
        assert_eq!(split, [&sizes[..2], &sizes[2..3], &sizes[3..4], &sizes[4..]]);
        assert!(runs(&[] as &[usize], |&size| size).is_empty());
    }

    #[test]
    fn bad_data_is_told_from_a_server_in_trouble() {
        let bad =
            Error::BadResponse("Code: 27. DB::Exception: Cannot parse input: expected , (version 18.16.1)".into());
        let busy = Error::BadResponse("Code: 252. DB::Exception: Too many parts (300). Merges are processing".into());
        let timeout = Error::BadResponse("Code: 159. DB::Exception: Timeout exceeded: elapsed 1.2 seconds".into());
        assert!(!is_retryable(&bad));
        assert!(is_retryable(&busy) && is_retryable(&timeout) && is_retryable(&Error::TimedOut));
        assert!(!is_too_many_partitions(&busy) && !is_too_many_partitions(&bad));
        // Code 32 from a Distributed table whose replica was killed mid-insert: the rows are fine.
        let lost_peer = Error::BadResponse(
            "Code: 32, e.displayText() = DB::Exception: Attempt to read after eof: while receiving packet from \
             127.0.0.1:11944: Insertion status:"
                .into(),
        );
        let cut_short = Error::BadResponse("Code: 32. DB::Exception: Attempt to read after eof".into());
        assert!(is_retryable(&lost_peer) && !is_retryable(&cut_short));
        // Same code as `busy`, but the same insert fails every time: retrying would stall the sink.
        let partitions = Error::BadResponse(
            "Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). The limit is \
             controlled by 'max_partitions_per_insert_block' setting. (TOO_MANY_PARTS) (version 26.9.2.1)"
                .into(),
        );
        assert!(is_too_many_partitions(&partitions) && !is_retryable(&partitions));
        assert_eq!(code_of("oops"), None);
    }
}

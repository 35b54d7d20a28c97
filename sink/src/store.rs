//! The sink's ClickHouse writes: batched RowBinary inserts that tell retryable errors (the
//! server is down, busy or slow) from bad data, rehydration of a visitor's cold signals, and
//! the links already known.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::error::Error;
use clickhouse::Row;
use serde::Deserialize;

use crate::rows::MAX_MONTHS_PER_INSERT;

/// ClickHouse error codes that mean the rows themselves are wrong: retrying cannot help.
const BAD_DATA_CODES: [u32; 14] = [6, 26, 27, 33, 38, 41, 53, 69, 70, 72, 117, 131, 349, 1001];

/// True when the same insert may succeed later.
pub fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(message) => {
            !BAD_DATA_CODES.contains(&code_of(message).unwrap_or(0)) && !is_too_many_partitions(error)
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

/// The `Code: N.` of a ClickHouse error message.
fn code_of(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

/// INSERT … SELECT of some visitors' cold signals in a range of months as hot rows of their leads.
const REHYDRATE: &str = include_str!("sql/rehydrate.sql");
/// The months some visitors' cold signals fall in.
const COLD_MONTHS: &str = include_str!("sql/cold_months.sql");

/// Visitors one rehydration statement covers.
pub const REHYDRATE_VISITORS: usize = 1000;

/// Writes every cold signal of each visitor of `links` (anonymousId, lead email; one org, each
/// visitor once) as a hot row of its lead, attributed `rehydrated`. Idempotent: the hot table's
/// key is (org, lead, signal), so doing it twice leaves one row per signal once merged (and
/// queries read with FINAL). One statement, unless the visitors' signals span more months than
/// ClickHouse takes in one insert: then one per [`MAX_MONTHS_PER_INSERT`] of those months (see
/// [`is_too_many_partitions`]).
pub async fn rehydrate(
    client: &clickhouse::Client,
    org_id: &str,
    links: &[(&str, &str)],
    written_ms: u64,
) -> Result<(), Error> {
    let visitors: Vec<&str> = links.iter().map(|link| link.0).collect();
    let emails: Vec<&str> = links.iter().map(|link| link.1).collect();
    let months = |first: u32, last: u32| {
        client
            .query(REHYDRATE)
            .bind(&visitors)
            .bind(&emails)
            .bind(written_ms)
            .bind(org_id)
            .bind(&visitors)
            .bind(first)
            .bind(last)
            .execute()
    };
    match months(0, u32::MAX).await {
        Err(error) if is_too_many_partitions(&error) => {
            tracing::info!(org_id, visitors = links.len(), "rehydrating a long history a range of months at a time");
        }
        done => return done,
    }
    let cold: Vec<u32> = client.query(COLD_MONTHS).bind(org_id).bind(&visitors).fetch_all().await?;
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

/// Every link written so far: `org \0 anonymousId` → email.
pub async fn links(client: &clickhouse::Client) -> Result<HashMap<String, String>, Error> {
    let rows: Vec<LinkRow> =
        client.query("SELECT org_id, anonymous_id, email FROM identities FINAL").fetch_all().await?;
    Ok(rows.into_iter().map(|row| (link_key(&row.org_id, &row.anonymous_id), row.email)).collect())
}

pub fn link_key(org_id: &str, anonymous_id: &str) -> String {
    format!("{org_id}\0{anonymous_id}")
}

/// Runs `attempt` until it succeeds, backing off on retryable errors (up to 30 s apart), and
/// gives up at once on bad data or when `stop` turns true.
pub async fn with_retries<T, F, Fut>(
    what: &str,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    mut attempt: F,
) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut backoff = Duration::from_millis(200);
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if is_retryable(&error) && !*stop.borrow() => {
                tracing::warn!(%error, what, retry_in_ms = backoff.as_millis() as u64, "ClickHouse write failed; retrying");
            }
            Err(error) => return Err(error),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.changed() => {},
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_data_is_told_from_a_server_in_trouble() {
        let bad =
            Error::BadResponse("Code: 27. DB::Exception: Cannot parse input: expected , (version 18.16.1)".into());
        let busy = Error::BadResponse("Code: 252. DB::Exception: Too many parts (300). Merges are processing".into());
        let timeout = Error::BadResponse("Code: 159. DB::Exception: Timeout exceeded: elapsed 1.2 seconds".into());
        assert!(!is_retryable(&bad));
        assert!(is_retryable(&busy) && is_retryable(&timeout) && is_retryable(&Error::TimedOut));
        assert!(!is_too_many_partitions(&busy) && !is_too_many_partitions(&bad));
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

//! The sink's ClickHouse writes: batched RowBinary inserts that tell retryable errors (the
//! server is down, busy or slow) from bad data, rehydration of a visitor's cold signals, and
//! the links already known.

use std::collections::HashMap;
use std::time::Duration;

use clickhouse::error::Error;
use clickhouse::Row;
use serde::Deserialize;

/// ClickHouse error codes that mean the rows themselves are wrong: retrying cannot help.
const BAD_DATA_CODES: [u32; 14] = [6, 26, 27, 33, 38, 41, 53, 69, 70, 72, 117, 131, 349, 1001];

/// True when the same insert may succeed later.
pub fn is_retryable(error: &Error) -> bool {
    match error {
        Error::Network(_) | Error::TimedOut => true,
        Error::BadResponse(message) => !BAD_DATA_CODES.contains(&code_of(message).unwrap_or(0)),
        _ => false,
    }
}

/// The `Code: N.` of a ClickHouse error message.
fn code_of(message: &str) -> Option<u32> {
    let rest = &message[message.find("Code: ")? + 6..];
    rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
}

/// Writes every cold signal of a visitor as a hot row of `email`, attributed `rehydrated`.
/// Idempotent: the hot table's key is (org, lead, signal), so doing it twice leaves one row per
/// signal once merged (and queries read with FINAL).
pub async fn rehydrate(
    client: &clickhouse::Client,
    org_id: &str,
    anonymous_id: &str,
    email: &str,
    written_ms: u64,
) -> Result<(), Error> {
    client
        .query(
            "INSERT INTO signals_hot (org_id, lead_email, signal_id, anonymous_id, user_id, source, kind, event, \
             attributed_by, mapped, rules, content_hash, received_ms, event_ms, fields, payload, written_ms) \
             SELECT org_id, ?, signal_id, anonymous_id, user_id, source, kind, event, 'rehydrated', mapped, rules, \
             content_hash, received_ms, event_ms, fields, payload, ? \
             FROM signals_cold WHERE org_id = ? AND anonymous_id = ?",
        )
        .bind(email)
        .bind(written_ms)
        .bind(org_id)
        .bind(anonymous_id)
        .execute()
        .await
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
        assert_eq!(code_of("oops"), None);
    }
}

//! The one place ClickHouse clients are built.

use clickhouse::Client;

use crate::config::ClickHouseConfig;

/// A client bound to sigstage's database.
pub fn client(config: &ClickHouseConfig) -> Client {
    server_client(config).with_database(&config.database)
}

/// The settings of every statement on a cluster. An insert through a Distributed table answers
/// once each shard has its rows; a subquery over a Distributed table inside a distributed query
/// is run once and sent to the shards (GLOBAL), which 18.16 otherwise refuses (code 288); and
/// every query goes to the first replica of a shard that answers, so a read sees what the last
/// insert wrote while that replica is up (an insert waits for one replica only).
pub const CLUSTER_SETTINGS: [(&str, &str); 3] =
    [("insert_distributed_sync", "1"), ("distributed_product_mode", "global"), ("load_balancing", "in_order")];

/// The longest statement the server parses (its default is 256 KiB). Statements bind a batch's
/// keys as arrays (a sink batch's visitors, the rows a replay checks for): 5 000 visitors of
/// UUID ids with their keys came to 400 KiB, and the server refused the statement as a syntax
/// error at its 262 144th byte every time, which stalled the sink for good.
pub const MAX_QUERY_BYTES: usize = 16 << 20;

/// A client bound to no database, for statements such as `CREATE DATABASE`.
pub fn server_client(config: &ClickHouseConfig) -> Client {
    let client = Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        // ClickHouse 18.16 rejects the setting schema validation sends.
        .with_validation(false)
        .with_compression(if config.lz4 { clickhouse::Compression::Lz4 } else { clickhouse::Compression::None })
        .with_setting("max_query_size", MAX_QUERY_BYTES.to_string());
    let client = match config.cluster {
        Some(_) => CLUSTER_SETTINGS.iter().fold(client, |client, (name, value)| client.with_setting(*name, *value)),
        None => client,
    };
    match &config.password {
        Some(password) => client.with_password(password.expose()),
        None => client,
    }
}

/// Writes `rows` to `table` in one RowBinary insert. Sends nothing when there are no rows.
/// `rows` are rows or references to rows.
pub async fn insert<'v, T, R>(client: &Client, table: &str, rows: &[R]) -> Result<(), clickhouse::error::Error>
where
    T: clickhouse::Row + clickhouse::RowWrite,
    R: std::borrow::Borrow<T::Value<'v>>,
{
    if rows.is_empty() {
        return Ok(());
    }
    let mut insert = client.insert::<T>(table).await?;
    for row in rows {
        insert.write(row.borrow()).await?;
    }
    insert.end().await
}

/// The whole answer to `query` in ClickHouse's output `format` (`TSV`, `JSON`, …), for an
/// answer known to be small (a bound set on the query, or a test's).
pub async fn answer_bytes(query: clickhouse::query::Query, format: &str) -> Result<Vec<u8>, clickhouse::error::Error> {
    let mut cursor = query.fetch_bytes(format)?;
    let mut all = Vec::new();
    while let Some(chunk) = cursor.next().await? {
        all.extend_from_slice(&chunk);
    }
    Ok(all)
}

/// Answers whether the server is reachable and working.
pub async fn ping(client: &Client) -> Result<(), clickhouse::error::Error> {
    client.query("SELECT 1").fetch_one::<u8>().await.map(drop)
}

/// The server's (major, minor) version.
pub async fn server_version(client: &Client) -> Result<(u32, u32), clickhouse::error::Error> {
    let version: String = client.query("SELECT version()").fetch_one().await?;
    let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
}

/// Waits until the server has applied every mutation of `tables` (or of their `_local` tables on
/// a cluster's node), at most `limit`; answers the tables still pending after it.
pub async fn await_mutations(
    client: &Client,
    tables: &[&str],
    limit: std::time::Duration,
) -> Result<Result<(), Vec<String>>, clickhouse::error::Error> {
    if tables.is_empty() {
        return Ok(Ok(()));
    }
    let started = std::time::Instant::now();
    loop {
        let pending: Vec<String> = client
            .query(
                "SELECT DISTINCT table FROM system.mutations WHERE database = currentDatabase() \
                 AND is_done = 0 AND (has(?, table) OR has(?, replaceRegexpOne(table, '_local$', '')))",
            )
            .bind(tables)
            .bind(tables)
            .fetch_all()
            .await?;
        if pending.is_empty() {
            return Ok(Ok(()));
        }
        if started.elapsed() > limit {
            return Ok(Err(pending));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

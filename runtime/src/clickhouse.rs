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

/// A client bound to no database, for statements such as `CREATE DATABASE`.
pub fn server_client(config: &ClickHouseConfig) -> Client {
    let client = Client::default()
        .with_url(&config.url)
        .with_user(&config.user)
        // ClickHouse 18.16 rejects the setting schema validation sends.
        .with_validation(false)
        .with_compression(if config.lz4 { clickhouse::Compression::Lz4 } else { clickhouse::Compression::None });
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

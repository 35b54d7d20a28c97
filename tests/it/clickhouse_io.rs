//! Rows inserted through the `clickhouse` crate into a fresh database come back intact.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use crate::support::{config_of, test_vars};

#[derive(Debug, Clone, PartialEq, Row, Serialize, Deserialize)]
struct Probe {
    id: u64,
    name: String,
    tags: Vec<String>,
}

#[tokio::test]
async fn insert_and_read_back_in_a_fresh_database() {
    let config = config_of(&test_vars()).clickhouse;
    let server = runtime::clickhouse::server_client(&config);
    server
        .query(&format!("CREATE DATABASE {}", config.database))
        .execute()
        .await
        .expect("database created (is the stack up?)");
    let client = runtime::clickhouse::client(&config);
    client
        .query("CREATE TABLE probe (id UInt64, name String, tags Array(String)) ENGINE = MergeTree ORDER BY id")
        .execute()
        .await
        .expect("table created");

    let rows: Vec<Probe> = (0..5_000)
        .map(|id| Probe {
            id,
            name: format!("row \"{id}\"\t\n"),
            tags: vec![format!("t{}", id % 3); (id % 4) as usize],
        })
        .collect();
    let mut insert = client.insert::<Probe>("probe").await.expect("insert");
    for row in &rows {
        insert.write(row).await.expect("write");
    }
    insert.end().await.expect("insert acknowledged");

    let back: Vec<Probe> = client.query("SELECT ?fields FROM probe ORDER BY id").fetch_all().await.expect("select");
    assert_eq!(back, rows);
    let sum: u64 = client.query("SELECT sum(id) FROM probe").fetch_one().await.expect("sum");
    assert_eq!(sum, (0..5_000u64).sum::<u64>());

    server.query(&format!("DROP DATABASE {}", config.database)).execute().await.expect("dropped");
}

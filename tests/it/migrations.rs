//! `sigstage migrate` twice in a row succeeds and leaves the same schema.

use schemas::migrations::MIGRATIONS;

use crate::support::{config_of, sigstage, stderr, test_vars};

/// Every table with its engine, and every column with its type.
#[derive(Debug, PartialEq)]
struct Schema {
    tables: Vec<(String, String)>,
    columns: Vec<(String, String, String)>,
}

async fn schema(client: &clickhouse::Client, database: &str) -> Schema {
    let tables = client
        .query("SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name")
        .bind(database)
        .fetch_all()
        .await
        .expect("tables readable");
    let columns = client
        .query("SELECT table, name, type FROM system.columns WHERE database = ? ORDER BY table, name")
        .bind(database)
        .fetch_all()
        .await
        .expect("columns readable");
    Schema { tables, columns }
}

#[tokio::test]
async fn migrate_twice_leaves_the_same_schema() {
    let vars = test_vars();
    let config = config_of(&vars).clickhouse;
    let server = runtime::clickhouse::server_client(&config);

    let first = sigstage(&["migrate"], &vars);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stderr(&first).contains("applied [1"), "{}", stderr(&first));
    let after_first = schema(&server, &config.database).await;

    let second = sigstage(&["migrate"], &vars);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains(&format!("applied [], {} already applied", MIGRATIONS.len())),
        "{}",
        stderr(&second)
    );
    let after_second = schema(&server, &config.database).await;

    assert_eq!(after_first, after_second);
    let tables: Vec<&str> = after_first.tables.iter().map(|(table, _)| table.as_str()).collect();
    for expected in ["api_keys", "orgs", "plan_limits", "rate_limits", "schema_migrations"] {
        assert!(tables.contains(&expected), "{expected} missing from {tables:?}");
    }
    let client = runtime::clickhouse::client(&config);
    let recorded: u64 =
        client.query("SELECT count() FROM schema_migrations WHERE version > 0").fetch_one().await.expect("count");
    assert_eq!(recorded, MIGRATIONS.len() as u64, "each version recorded once");
    let layout: Vec<String> =
        client.query("SELECT name FROM schema_migrations WHERE version = 0").fetch_all().await.expect("layout");
    assert_eq!(layout, ["layout: single"], "the layout is recorded once");

    // The same database, migrated as if it were a cluster's: refused before anything changes.
    let mut on_cluster = vars.clone();
    on_cluster.insert("SIGSTAGE_CLICKHOUSE_CLUSTER".into(), "sigstage".into());
    let refused = sigstage(&["migrate"], &on_cluster);
    assert!(!refused.status.success(), "{}", stderr(&refused));
    assert!(
        stderr(&refused)
            .contains(r#"was made as "layout: single", and this migrate is for "layout: cluster sigstage""#)
            && stderr(&refused).contains("SIGSTAGE_CLICKHOUSE_CLUSTER"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(schema(&server, &config.database).await, after_second, "a refused migrate changes nothing");

    server.query(&format!("DROP DATABASE {}", config.database)).execute().await.expect("dropped");
}

//! Applies the DDL in `schemas` to the configured database, once per version.

use clickhouse::Row;
use schemas::migrations::{Layout, Migration, MIGRATIONS, MIGRATIONS_TABLE_DDL};
use serde::{Deserialize, Serialize};

use crate::config::{is_identifier, ClickHouseConfig};

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("database name {0:?} is not a plain identifier")]
    BadDatabase(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Statement { version: u32, name: &'static str, source: clickhouse::error::Error },
    #[error(
        "migration {version} ({name}) was edited after it ran (checksum {recorded} recorded, {current} now); \
         add a new migration instead of changing a shipped one"
    )]
    Edited { version: u32, name: &'static str, recorded: String, current: String },
    #[error(
        "database {database} was made as {recorded:?}, and this migrate is for {wanted:?}: set \
         SIGSTAGE_CLICKHOUSE_CLUSTER to match it, or migrate another database"
    )]
    OtherLayout { database: String, recorded: String, wanted: String },
    #[error("migration {version} ({name}) cannot be made on a cluster: {reason}")]
    NotForCluster { version: u32, name: &'static str, reason: String },
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct AppliedRow {
    version: u32,
    name: String,
    checksum: String,
    applied_at_ms: u64,
}

/// What a run did: the versions it applied and how many were already there.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub applied: Vec<u32>,
    pub already_applied: usize,
}

/// Creates the database if needed and applies every migration that has not run yet, in the
/// layout the configuration asks for (one server, or `ON CLUSTER`; see [`Layout`]). The layout
/// a database was made in is recorded (as version 0), and a run for the other one is refused
/// before it changes anything. Safe to run again and from several processes: every statement
/// is `IF NOT EXISTS`, or a `DROP TABLE IF EXISTS` of a table no later statement makes again.
pub async fn run(config: &ClickHouseConfig) -> Result<Report, MigrateError> {
    if !is_identifier(&config.database) {
        return Err(MigrateError::BadDatabase(config.database.clone()));
    }
    let layout = layout(config);
    let server = crate::clickhouse::server_client(config);
    let made: u64 = server
        .query("SELECT count() FROM system.tables WHERE database = ? AND name = 'schema_migrations'")
        .bind(&config.database)
        .fetch_one()
        .await?;
    let client = crate::clickhouse::client(config);
    let mut recorded: Vec<AppliedRow> = Vec::new();
    if made > 0 {
        recorded = client.query("SELECT ?fields FROM schema_migrations FINAL ORDER BY version").fetch_all().await?;
        check_layout(config, &layout, &recorded)?;
    }
    server.query(&create_database(config)).execute().await?;
    for statement in migrations_table(&layout)? {
        client.query(&statement).execute().await?;
    }
    if !recorded.iter().any(|row| row.version == 0) {
        let row = AppliedRow {
            version: 0,
            name: layout.recorded(),
            checksum: String::new(),
            applied_at_ms: crate::time::now_ms(),
        };
        crate::clickhouse::insert::<AppliedRow, _>(&client, "schema_migrations", &[row]).await?;
    }

    let mut report = Report::default();
    for migration in MIGRATIONS {
        match recorded.iter().find(|row| row.version == migration.version) {
            Some(row) => {
                check_unchanged(migration, row)?;
                report.already_applied += 1;
            }
            None => {
                apply(&client, &layout, migration).await?;
                report.applied.push(migration.version);
            }
        }
    }
    Ok(report)
}

/// The layout `config` asks for: `ON CLUSTER` when it names a cluster, else one server.
pub fn layout(config: &ClickHouseConfig) -> Layout<'_> {
    match &config.cluster {
        Some(name) => Layout::Cluster { name, database: &config.database },
        None => Layout::Single,
    }
}

/// The statement that creates the database, on every node of a cluster.
pub fn create_database(config: &ClickHouseConfig) -> String {
    let on_cluster = config.cluster.as_ref().map(|name| format!(" ON CLUSTER {name}")).unwrap_or_default();
    format!("CREATE DATABASE IF NOT EXISTS {}{on_cluster}", config.database)
}

/// The statements that create `schema_migrations` in `layout`.
pub fn migrations_table(layout: &Layout<'_>) -> Result<Vec<String>, MigrateError> {
    let not_for_cluster = |reason| MigrateError::NotForCluster { version: 0, name: "schema_migrations", reason };
    layout.create(MIGRATIONS_TABLE_DDL).map_err(not_for_cluster)
}

/// The statements `migration` runs in `layout`, in order.
pub fn statements(layout: &Layout<'_>, migration: &Migration) -> Result<Vec<String>, MigrateError> {
    let not_for_cluster =
        |reason| MigrateError::NotForCluster { version: migration.version, name: migration.name, reason };
    let mut all = Vec::new();
    for statement in migration.statements() {
        all.extend(layout.create(&statement).map_err(not_for_cluster)?);
    }
    Ok(all)
}

/// Refuses to migrate a database made in another layout. One made before layouts were
/// recorded has migrations but no version 0: it was made on one server.
fn check_layout(config: &ClickHouseConfig, layout: &Layout<'_>, recorded: &[AppliedRow]) -> Result<(), MigrateError> {
    let made_as = match recorded.iter().find(|row| row.version == 0) {
        Some(row) => row.name.clone(),
        None if recorded.is_empty() => return Ok(()),
        None => Layout::Single.recorded(),
    };
    if made_as == layout.recorded() {
        return Ok(());
    }
    Err(MigrateError::OtherLayout { database: config.database.clone(), recorded: made_as, wanted: layout.recorded() })
}

fn check_unchanged(migration: &Migration, row: &AppliedRow) -> Result<(), MigrateError> {
    let current = migration.checksum();
    if row.checksum == current {
        return Ok(());
    }
    Err(MigrateError::Edited {
        version: migration.version,
        name: migration.name,
        recorded: row.checksum.clone(),
        current,
    })
}

async fn apply(client: &clickhouse::Client, layout: &Layout<'_>, migration: &Migration) -> Result<(), MigrateError> {
    let failed = |source| MigrateError::Statement { version: migration.version, name: migration.name, source };
    for statement in statements(layout, migration)? {
        client.query(&statement).execute().await.map_err(failed)?;
    }
    let applied = AppliedRow {
        version: migration.version,
        name: migration.name.to_owned(),
        checksum: migration.checksum(),
        applied_at_ms: crate::time::now_ms(),
    };
    crate::clickhouse::insert::<AppliedRow, _>(client, "schema_migrations", &[applied]).await?;
    tracing::info!(version = migration.version, name = migration.name, "migration applied");
    Ok(())
}

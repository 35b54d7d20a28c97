//! Applies the DDL in `schemas` to the configured database, once per version.

use clickhouse::Row;
use schemas::migrations::{Migration, MIGRATIONS, MIGRATIONS_TABLE_DDL};
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

/// Creates the database if needed and applies every migration that has not run yet.
/// Safe to run again and from several processes: every statement is `IF NOT EXISTS`.
pub async fn run(config: &ClickHouseConfig) -> Result<Report, MigrateError> {
    if !is_identifier(&config.database) {
        return Err(MigrateError::BadDatabase(config.database.clone()));
    }
    crate::clickhouse::server_client(config)
        .query(&format!("CREATE DATABASE IF NOT EXISTS {}", config.database))
        .execute()
        .await?;
    let client = crate::clickhouse::client(config);
    client.query(MIGRATIONS_TABLE_DDL).execute().await?;
    let recorded: Vec<AppliedRow> =
        client.query("SELECT ?fields FROM schema_migrations FINAL ORDER BY version").fetch_all().await?;

    let mut report = Report::default();
    for migration in MIGRATIONS {
        match recorded.iter().find(|row| row.version == migration.version) {
            Some(row) => {
                check_unchanged(migration, row)?;
                report.already_applied += 1;
            }
            None => {
                apply(&client, migration).await?;
                report.applied.push(migration.version);
            }
        }
    }
    Ok(report)
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

async fn apply(client: &clickhouse::Client, migration: &Migration) -> Result<(), MigrateError> {
    let failed = |source| MigrateError::Statement { version: migration.version, name: migration.name, source };
    for statement in migration.statements() {
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

//! What every sigstage role runs on: typed configuration, telemetry, the one place Kafka clients
//! and the ClickHouse client are built, migrations, the stage supervisor, reloading of control
//! tables, and the health endpoints.

pub mod clickhouse;
pub mod config;
pub mod health;
pub mod kafka;
pub mod migrate;
pub mod reload;
pub mod stage;
pub mod telemetry;
pub mod time;

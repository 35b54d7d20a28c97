//! What every sigstage role runs on: typed configuration, telemetry, the one place Kafka clients
//! and the ClickHouse client are built, migrations, the stage supervisor, reloading of control
//! tables, the health endpoints, and the HTTP listeners' limits.

pub mod clickhouse;
pub mod config;
pub mod health;
pub mod kafka;
pub mod migrate;
pub mod reload;
pub mod serve;
pub mod stage;
pub mod telemetry;
pub mod time;

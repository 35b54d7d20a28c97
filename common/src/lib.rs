//! The wiring every sigstage role shares: configuration, telemetry, the one place Kafka clients
//! and the ClickHouse client are built, migrations, the control plane (orgs, keys, limits,
//! mapping rules, the signal queue) and its admin HTTP API.

pub mod admin;
pub mod clickhouse;
pub mod config;
pub mod control;
pub mod health;
pub mod kafka;
pub mod migrate;
pub mod stage;
pub mod telemetry;
pub mod time;

//! Integration tests against the real local stack (`scripts/stack.sh test-stack`: Apache Kafka and
//! ClickHouse).
//! Each test works in its own random topic names and ClickHouse database.

mod admin_api;
mod analytics;
mod attribution;
mod clickhouse_cluster;
mod clickhouse_io;
mod config_errors;
mod console_browser;
mod edge_auth_limits;
mod edge_broker_outage;
mod edge_collect_activity;
mod edge_memory;
mod edge_signals;
mod edge_signatures;
mod edge_slow_clients;
mod exactly_once;
mod group_changes;
mod health;
mod import_command;
mod instance_ids;
mod kafka_cluster;
mod kafka_roundtrip;
mod kafka_topics;
mod keys_lifecycle;
mod migrations;
mod run_command;
mod signal_trace;
mod sink_clickhouse;
mod stream_processing;
mod stream_recovery;
mod stream_rules;
mod support;
mod tracking_sdks;
mod webhooks_delivery;
mod webhooks_isolation;

//! sigstage's shared types and its ClickHouse DDL. No I/O lives here: the roles own that.

pub mod events;
pub mod identity;
pub mod mapping;
pub mod migrations;
pub mod record;
pub mod rules;

//! sigstage's shared types and its ClickHouse DDL. No I/O lives here: the roles own that.

pub mod events;
pub mod identities;
pub mod mapping;
pub mod migrations;
pub mod person;
pub mod processed;
pub mod queries;
pub mod record;
pub mod rules;
pub mod suggest;

/// Org ids appear in Kafka keys (`org:identity`), so `:` and spaces are not allowed.
pub fn valid_org_id(org_id: &str) -> bool {
    !org_id.is_empty()
        && org_id.len() <= 64
        && org_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

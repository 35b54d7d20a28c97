//! The control plane: organisations, API keys, limits and mapping rules, stored in ClickHouse and held in
//! memory by every instance.

pub mod keys;
pub mod limits;
pub mod orgs;
pub mod queue;
pub mod rules;
pub mod watch;
pub mod webhook_queue;
pub mod webhooks;

/// Org ids appear in Kafka keys (`org:identity`), so `:` and spaces are not allowed.
pub fn valid_org_id(org_id: &str) -> bool {
    !org_id.is_empty()
        && org_id.len() <= 64
        && org_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

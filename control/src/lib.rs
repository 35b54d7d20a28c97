//! The control plane: organisations, API keys, limits, mapping rules, the signal queue, webhook
//! subscriptions and their deliveries, stored in ClickHouse (`ReplacingMergeTree(version)`: a
//! change is a new row with a higher version) and held in memory by the roles that read them.

pub mod apply;
pub mod backfill;
pub mod deliveries;
pub mod history;
pub mod keys;
pub mod leads;
pub mod limits;
pub mod orgs;
pub mod people;
pub mod retention;
pub mod rules;
pub mod signal_queue;
pub mod signing;
pub mod trace;
pub mod webhooks;

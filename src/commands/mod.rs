//! One module per subcommand family.

pub mod copy;
pub mod import;
pub mod keys;
pub mod limits;
pub mod migrate;
pub mod people;
pub mod query;
pub mod queue;
pub mod retention;
pub mod rollups;
pub mod rules;
pub mod serve;
pub mod trace;
pub mod webhooks;

//! One module per subcommand family.

pub mod keys;
pub mod migrate;
pub mod serve;

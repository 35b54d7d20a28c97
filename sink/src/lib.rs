//! Sinks: batched writes of processed signals to ClickHouse (hot and cold), identities and leads,
//! rehydration of cold signals when their visitor is identified, and signed webhook delivery.

pub mod rows;
pub mod runner;
pub mod store;
pub mod webhooks;

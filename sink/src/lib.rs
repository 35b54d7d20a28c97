//! Sinks: batched writes of processed signals to ClickHouse, rehydration of cold signals, and
//! signed webhook delivery.

//! The shape of a record the edge writes, for baselines that stand in for it: an
//! `org:identity`-like key and the edge's six headers (shared by `examples/bare_producer` and
//! `examples/kafka_server`).

use rdkafka::message::{Header, OwnedHeaders};
use schemas::record::headers;

/// A key like the edge's, distinct per `(worker, n)`, so records spread over partitions.
pub fn key(worker: usize, n: usize) -> String {
    format!("bench:{worker}-{n}")
}

/// The edge's six headers, with typical values.
pub fn headers() -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(6)
        .insert(Header { key: headers::SIGNAL_ID, value: Some("123456789012345678") })
        .insert(Header { key: headers::ORG, value: Some("bench") })
        .insert(Header { key: headers::KEY_ID, value: Some("key_0123456789abcdef") })
        .insert(Header { key: headers::ENDPOINT, value: Some("bulk") })
        .insert(Header { key: headers::SOURCE, value: Some("segment") })
        .insert(Header { key: headers::RECEIVED_MS, value: Some("1795000000000") })
}

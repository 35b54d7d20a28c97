//! A raw record as the processor sees it: the edge's headers, the key and the bytes.

use rdkafka::message::{Headers, Message};
use schemas::record::RawHeaders;

#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub org: &'a str,
    pub signal_id: u64,
    pub source: &'a str,
    /// The id of the key it came with, and the path it came to ("" from an older edge).
    pub key_id: &'a str,
    pub endpoint: &'a str,
    pub received_ms: u64,
    /// A stored signal sent again by `sigstage rules apply`: the ids of the rules to apply to it,
    /// comma-separated (see [`crate::processor`]).
    pub history_rules: Option<&'a str>,
    /// `live` or `historical`: the raw topic it was read from.
    pub lane: &'static str,
    /// `org:identity`, as the edge keyed it; outputs keep it, so they land on the same
    /// partition number as their raw record.
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Inbound<'a> {
    /// Reads the edge's headers ([`RawHeaders`]); a record without them did not come through
    /// the edge.
    pub fn from_message<M: Message>(message: &'a M) -> Result<Self, &'static str> {
        let pairs = message.headers().into_iter().flat_map(|headers| headers.iter()).map(|h| (h.key, h.value));
        let raw = RawHeaders::read(pairs)?;
        Ok(Inbound {
            org: raw.org,
            signal_id: raw.signal_id,
            source: raw.source,
            key_id: raw.key_id,
            endpoint: raw.endpoint,
            received_ms: raw.received_ms,
            history_rules: raw.history_rules,
            lane: if message.topic().ends_with(runtime::kafka::topics::SIGNALS_HISTORICAL) {
                "historical"
            } else {
                "live"
            },
            key: message.key().unwrap_or_default(),
            payload: message.payload().unwrap_or_default(),
        })
    }
}

//! A raw record as the processor sees it: the edge's headers, the key and the bytes.

use rdkafka::message::{Headers, Message};
use schemas::record::headers;

#[derive(Debug, Clone, Copy)]
pub struct Inbound<'a> {
    pub org: &'a str,
    pub signal_id: u64,
    pub source: &'a str,
    pub received_ms: u64,
    /// `org:identity`, as the edge keyed it; outputs keep it, so they land on the same
    /// partition number as their raw record.
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

impl<'a> Inbound<'a> {
    /// Reads the edge's headers; a record without them did not come through the edge.
    pub fn from_message<M: Message>(message: &'a M) -> Result<Self, &'static str> {
        let header = |name: &str| -> Option<&'a str> {
            let headers = message.headers()?;
            headers.iter().find(|h| h.key == name).and_then(|h| std::str::from_utf8(h.value?).ok())
        };
        Ok(Inbound {
            org: header(headers::ORG).ok_or("missing_org_header")?,
            signal_id: header(headers::SIGNAL_ID).and_then(|v| v.parse().ok()).ok_or("missing_signal_id_header")?,
            source: header(headers::SOURCE).unwrap_or("generic"),
            received_ms: header(headers::RECEIVED_MS).and_then(|v| v.parse().ok()).unwrap_or(0),
            key: message.key().unwrap_or_default(),
            payload: message.payload().unwrap_or_default(),
        })
    }
}

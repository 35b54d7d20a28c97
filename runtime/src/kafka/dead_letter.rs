//! Dead letters: a record that cannot be handled, kept with why, in a record that always fits.

use rdkafka::message::{Header, Headers, OwnedHeaders};

/// The largest part of a record a dead letter keeps; its headers say how long the record was,
/// and a dead letter always fits in a Kafka record.
pub const DEAD_LETTER_MAX_BYTES: usize = 64 * 1024;

/// A dead letter's value and headers: at most the first [`DEAD_LETTER_MAX_BYTES`] of the record,
/// why it could not be handled (`reason`, `stage`, `detail`), then the record's own headers.
pub fn dead_letter(payload: &[u8], own_headers: &[(&str, &[u8])], why: [&str; 3]) -> (Vec<u8>, OwnedHeaders) {
    use schemas::record::headers;
    let [reason, stage, detail] = why;
    let size = payload.len().to_string();
    let mut all = OwnedHeaders::new()
        .insert(Header { key: headers::DLQ_REASON, value: Some(reason) })
        .insert(Header { key: headers::DLQ_STAGE, value: Some(stage) })
        .insert(Header { key: headers::DLQ_DETAIL, value: Some(detail) })
        .insert(Header { key: headers::DLQ_ORIGINAL_BYTES, value: Some(size.as_str()) });
    for &(key, value) in own_headers {
        all = all.insert(Header { key, value: Some(value) });
    }
    (payload[..payload.len().min(DEAD_LETTER_MAX_BYTES)].to_vec(), all)
}

/// A record's headers as (name, value) pairs.
pub fn header_pairs<H: Headers>(headers: &H) -> Vec<(&str, &[u8])> {
    headers.iter().filter_map(|h| Some((h.key, h.value?))).collect()
}

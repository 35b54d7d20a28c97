//! The `signals.processed` record: what the stream made of one raw signal, as one JSON object.
//! The stream writes it with [`encode`] and the sink reads it with [`decode`], both as
//! [`Processed`], so the two cannot disagree on a field.
//!
//! `fields` (the lead fields the org's rules mapped) and `payload` (the raw signal) are spliced
//! in by [`encode`] as they are, never parsed again: a signal is parsed once, by the stream.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

/// A processed signal. Strings borrow from the raw signal when written and from the record when
/// read (a string with escapes is the one that is copied).
#[derive(Debug, Clone, Deserialize)]
pub struct Processed<'a> {
    pub signal_id: u64,
    #[serde(borrow)]
    pub org: Cow<'a, str>,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    /// The id of the key it came with (never the key), and the path it came to.
    #[serde(borrow, default)]
    pub key_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub endpoint: Option<Cow<'a, str>>,
    /// The raw lane it was read from: `live` or `historical` (none from an older stream).
    #[serde(borrow, default)]
    pub lane: Option<Cow<'a, str>>,
    /// `track`, `page` (Segment's `screen` too), `identify`, `group`, `alias`, `collect`,
    /// `activity` or `signal`.
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
    /// The lead's email, normalised: trimmed, lower-case.
    #[serde(borrow, default)]
    pub email: Option<Cow<'a, str>>,
    /// Attributed to a lead: it names an email, or its visitor was identified earlier.
    pub hot: bool,
    /// `signal` when the signal named the email itself, `identity` when it came from an
    /// earlier identification of the visitor.
    #[serde(borrow, default)]
    pub attributed_by: Option<Cow<'a, str>>,
    /// Matched a mapping rule of its org (else it was counted in the signal queue).
    #[serde(default)]
    pub mapped: bool,
    /// The ids of the org's rules that matched, in the order they apply.
    #[serde(borrow, default)]
    pub rules: Vec<Cow<'a, str>>,
    /// xxh3-128 of org and content, 32 hex digits (see [`hex128`]).
    #[serde(borrow)]
    pub content_hash: Cow<'a, str>,
    /// A stored signal processed again to apply rules to it (`sigstage rules apply`): the sink
    /// writes only the rows its tables do not hold.
    #[serde(default)]
    pub history: bool,
    pub received_ms: u64,
    /// When the event happened, corrected for the sender's clock the way Segment does:
    /// `received - (sentAt - timestamp)`; else `timestamp`; else the receive time.
    pub event_ms: u64,
    /// The lead fields the rules mapped (email aside), as an object: written by [`encode`]'s
    /// caller.
    #[serde(borrow, default)]
    pub fields: Option<&'a RawValue>,
    /// The raw signal: spliced in by [`encode`], always there in a record [`decode`] answers.
    #[serde(borrow, default)]
    pub payload: Option<&'a RawValue>,
}

/// The record as JSON: `record`'s fields, then the mapped fields `write_fields` writes (a JSON
/// object), then `payload`, the raw signal (already known to be one JSON object).
///
/// Written by hand, member by member in [`Processed`]'s order, because it is the stream's
/// hottest write: the names are constant bytes, and a string is copied as it is unless it holds
/// something JSON escapes. [`decode`] reads it with serde, which the round-trip test holds it to.
pub fn encode(record: &Processed<'_>, write_fields: impl FnOnce(&mut Vec<u8>), payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(320 + payload.len());
    out.extend_from_slice(b"{\"signal_id\":");
    number(&mut out, record.signal_id);
    text(&mut out, "org", &record.org);
    text(&mut out, "source", &record.source);
    optional(&mut out, "key_id", &record.key_id);
    optional(&mut out, "endpoint", &record.endpoint);
    optional(&mut out, "lane", &record.lane);
    text(&mut out, "kind", &record.kind);
    text(&mut out, "event", &record.event);
    optional(&mut out, "anonymous_id", &record.anonymous_id);
    optional(&mut out, "user_id", &record.user_id);
    optional(&mut out, "email", &record.email);
    out.extend_from_slice(if record.hot { b",\"hot\":true" } else { b",\"hot\":false" });
    optional(&mut out, "attributed_by", &record.attributed_by);
    out.extend_from_slice(if record.mapped { b",\"mapped\":true" } else { b",\"mapped\":false" });
    if !record.rules.is_empty() {
        out.extend_from_slice(b",\"rules\":[");
        for (i, rule) in record.rules.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(&mut out, rule);
        }
        out.push(b']');
    }
    text(&mut out, "content_hash", &record.content_hash);
    if record.history {
        out.extend_from_slice(b",\"history\":true");
    }
    out.extend_from_slice(b",\"received_ms\":");
    number(&mut out, record.received_ms);
    out.extend_from_slice(b",\"event_ms\":");
    number(&mut out, record.event_ms);
    out.extend_from_slice(b",\"fields\":");
    write_fields(&mut out);
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload.trim_ascii());
    out.push(b'}');
    out
}

/// `,"name":"value"`; `name` is one of [`Processed`]'s, which need no escaping.
fn text(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    string(out, value);
}

/// [`text`] when there is a value; nothing when there is none.
fn optional(out: &mut Vec<u8>, name: &str, value: &Option<Cow<'_, str>>) {
    if let Some(value) = value {
        text(out, name, value);
    }
}

fn number(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// A JSON string: copied between quotes when nothing in it needs escaping, else escaped by
/// serde_json.
fn string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|byte| byte >= 0x20 && byte != b'"' && byte != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, value).expect("a string serializes into a Vec");
    }
}

/// A record [`encode`] wrote, borrowing from `bytes`.
pub fn decode(bytes: &[u8]) -> Result<Processed<'_>, serde_json::Error> {
    let record: Processed<'_> = serde_json::from_slice(bytes)?;
    if record.payload.is_none() {
        return Err(serde::de::Error::missing_field("payload"));
    }
    Ok(record)
}

/// `value` as 32 lower-case hex digits, in a buffer on the stack.
pub fn hex128(value: u128) -> [u8; 32] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (i, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[((value >> (124 - 4 * i)) & 0xf) as usize];
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_stream_writes_the_sink_reads() {
        let hex = hex128(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
        let written = Processed {
            signal_id: 7,
            org: "acme".into(),
            source: "segment".into(),
            key_id: Some("k_1".into()),
            endpoint: None,
            lane: Some("live".into()),
            kind: "track".into(),
            event: "Demo \"Requested\"".into(),
            anonymous_id: Some("v\u{1}1\\".into()),
            user_id: None,
            email: Some(Cow::Owned("jo@acme.io".to_owned())),
            hot: true,
            attributed_by: Some("signal".into()),
            mapped: true,
            rules: vec!["r1".into(), "r2".into()],
            content_hash: std::str::from_utf8(&hex).expect("hex digits").into(),
            history: false,
            received_ms: 1_000,
            event_ms: 900,
            fields: None,
            payload: None,
        };
        let payload = br#" {"type":"track","event":"Demo \"Requested\""} "#;
        let bytes = encode(&written, |out| out.extend_from_slice(br#"{"company":"Acme"}"#), payload);
        let read = decode(&bytes).expect("decoded");
        assert_eq!(read.signal_id, 7);
        assert_eq!((&*read.org, &*read.source, &*read.kind), ("acme", "segment", "track"));
        assert_eq!((read.key_id.as_deref(), read.endpoint.as_deref()), (Some("k_1"), None));
        assert_eq!(read.event, "Demo \"Requested\"");
        assert_eq!(read.anonymous_id.as_deref(), Some("v\u{1}1\\"), "escaped as JSON needs");
        assert_eq!(read.user_id, None);
        assert_eq!(
            (read.email.as_deref(), read.hot, read.attributed_by.as_deref()),
            (Some("jo@acme.io"), true, Some("signal"))
        );
        assert!(read.mapped);
        assert_eq!(read.rules, ["r1", "r2"]);
        assert_eq!(read.content_hash, "0123456789abcdef0011223344556677");
        assert_eq!((read.received_ms, read.event_ms), (1_000, 900));
        assert_eq!(read.fields.map(RawValue::get), Some(r#"{"company":"Acme"}"#));
        assert_eq!(read.payload.map(RawValue::get), Some(r#"{"type":"track","event":"Demo \"Requested\""}"#));
    }

    #[test]
    fn a_record_without_its_payload_is_refused() {
        let error = decode(br#"{"signal_id":1,"org":"a","source":"s","kind":"k","event":"e","hot":false,"content_hash":"0","received_ms":1,"event_ms":1}"#)
            .expect_err("no payload");
        assert!(error.to_string().contains("payload"), "{error}");
    }
}

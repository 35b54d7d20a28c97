//! The per-record work of the stream role: parse (simd-json, reused buffers), dedupe, detect
//! what the signal is and who it is about, and build the processed record. Pure: no I/O, so it
//! is tested and benchmarked without Kafka.

use std::time::Duration;

use serde::Serialize;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use crate::dedupe::Deduper;
use crate::identity::{Identities, IdentityLink};
use crate::inbound::Inbound;

/// What became of one raw record.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// A new signal: the `signals.processed` record (JSON), its content hash, and the
    /// identity link it made, if any.
    Processed { value: Vec<u8>, hash: u128, link: Option<IdentityLink> },
    /// Seen before within the dedupe window: nothing to write.
    Duplicate,
    /// Cannot be processed: to the dead-letter topic with a reason and the stage that failed.
    Dead { reason: &'static str, stage: &'static str, detail: String },
}

/// The `signals.processed` record.
#[derive(Debug, Serialize)]
pub struct Processed<'a> {
    pub signal_id: u64,
    pub org: &'a str,
    pub source: &'a str,
    /// `track`, `page`, `identify`, `collect`, `activity` or `signal`.
    pub kind: &'a str,
    pub event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Attributed to a lead: it names an email, or its visitor was identified earlier.
    pub hot: bool,
    /// `signal` when the signal named the email itself, `identity` when it came from an
    /// earlier identification of the visitor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributed_by: Option<&'static str>,
    /// xxh3-128 of org and bytes, hex.
    pub content_hash: String,
    pub received_ms: u64,
    /// When the event happened, corrected for the sender's clock the way Segment does:
    /// `received - (sentAt - timestamp)`; else `timestamp`; else the receive time.
    pub event_ms: u64,
    // The raw signal follows as `payload`, spliced in by `encode` without re-parsing.
}

pub struct Processor {
    deduper: Deduper,
    identities: Identities,
    buffer: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Processor {
    pub fn new(dedupe_entries: u64, dedupe_window: Duration) -> Self {
        Self {
            deduper: Deduper::new(dedupe_entries, dedupe_window),
            identities: Identities::default(),
            buffer: Vec::with_capacity(64 * 1024),
            buffers: simd_json::Buffers::new(64 * 1024),
        }
    }

    pub fn deduper(&self) -> &Deduper {
        &self.deduper
    }

    pub fn identities(&mut self) -> &mut Identities {
        &mut self.identities
    }

    pub fn process(&mut self, inbound: &Inbound<'_>) -> Output {
        if std::str::from_utf8(inbound.payload).is_err() {
            return dead("invalid_utf8", "parse", "the record is not UTF-8".into());
        }
        self.buffer.clear();
        self.buffer.extend_from_slice(inbound.payload);
        let value = match simd_json::to_borrowed_value_with_buffers(&mut self.buffer, &mut self.buffers) {
            Ok(value) => value,
            Err(error) => return dead("invalid_json", "parse", error.to_string()),
        };
        if value.as_object().is_none() {
            return dead("not_an_object", "parse", "a signal must be a JSON object".into());
        }
        let hash = Deduper::hash(inbound.org, inbound.payload);
        if !self.deduper.first_seen(hash) {
            return Output::Duplicate;
        }
        let mut processed = describe(inbound, &value, hash);
        let link = resolve(&mut self.identities, &mut processed, &value);
        match encode(&processed, inbound.payload) {
            Ok(value) => Output::Processed { value, hash, link },
            Err(error) => dead("unencodable", "encode", error.to_string()),
        }
    }
}

/// Attributes an anonymous signal to its visitor's lead, or links the visitor to the email the
/// signal names (answering the link when it is new).
fn resolve(
    identities: &mut Identities,
    processed: &mut Processed<'_>,
    value: &BorrowedValue<'_>,
) -> Option<IdentityLink> {
    let anonymous_id = processed.anonymous_id?;
    let Some(email) = &processed.email else {
        let lead = identities.lead_of(processed.org, anonymous_id)?;
        processed.email = Some(lead.to_owned());
        processed.hot = true;
        processed.attributed_by = Some("identity");
        return None;
    };
    if !identities.link(processed.org, anonymous_id, email) {
        return None;
    }
    let trait_of = |name: &str| text(value, &["traits", name]).map(str::to_owned);
    Some(IdentityLink {
        org: processed.org.to_owned(),
        anonymous_id: anonymous_id.to_owned(),
        email: email.clone(),
        name: trait_of("name"),
        company: trait_of("company"),
        title: trait_of("title"),
        signal_id: processed.signal_id,
        linked_ms: processed.event_ms,
    })
}

/// The processed record as JSON, the raw signal (already known to be one JSON object) as its
/// `payload` field.
fn encode(processed: &Processed<'_>, payload: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256 + payload.len());
    serde_json::to_writer(&mut out, processed)?;
    out.pop(); // the closing brace
    out.extend_from_slice(b",\"payload\":");
    out.extend_from_slice(payload.trim_ascii());
    out.push(b'}');
    Ok(out)
}

fn dead(reason: &'static str, stage: &'static str, detail: String) -> Output {
    Output::Dead { reason, stage, detail }
}

fn text<'v>(value: &'v BorrowedValue<'_>, path: &[&str]) -> Option<&'v str> {
    let mut current = value;
    for field in path {
        current = current.get(*field)?;
    }
    current.as_str().filter(|s| !s.trim().is_empty())
}

/// The four places the mapping seed looks for a lead's email, normalised.
fn email_of(value: &BorrowedValue<'_>) -> Option<String> {
    [&["email"][..], &["traits", "email"], &["properties", "email"], &["context", "traits", "email"]]
        .iter()
        .filter_map(|path| text(value, path))
        .find(|email| email.contains('@'))
        .map(|email| email.trim().to_lowercase())
}

fn describe<'a>(inbound: &Inbound<'a>, value: &'a BorrowedValue<'_>, hash: u128) -> Processed<'a> {
    let segment_type = if inbound.source == "segment" { text(value, &["type"]) } else { None };
    let (kind, event) = match (inbound.source, segment_type) {
        (_, Some("track")) => ("track", text(value, &["event"]).unwrap_or("track")),
        (_, Some("page")) => ("page", "page_view"),
        (_, Some("identify")) => ("identify", "identify"),
        ("tracardi", _) => ("collect", text(value, &["event_type"]).unwrap_or("collect")),
        ("activity", _) => ("activity", text(value, &["event"]).or(text(value, &["title"])).unwrap_or("activity")),
        _ => ("signal", text(value, &["event"]).unwrap_or("signal")),
    };
    let email = email_of(value);
    Processed {
        signal_id: inbound.signal_id,
        org: inbound.org,
        source: inbound.source,
        kind,
        event,
        anonymous_id: text(value, &["anonymousId"]).or(text(value, &["session_id"])),
        user_id: text(value, &["userId"]),
        hot: email.is_some(),
        attributed_by: email.is_some().then_some("signal"),
        email,
        content_hash: format!("{hash:032x}"),
        received_ms: inbound.received_ms,
        event_ms: event_ms(value, inbound.received_ms),
    }
}

fn event_ms(value: &BorrowedValue<'_>, received_ms: u64) -> u64 {
    let ms = |field: &str| text(value, &[field]).and_then(parse_rfc3339_ms);
    match (ms("timestamp"), ms("sentAt")) {
        (Some(timestamp), Some(sent_at)) => (received_ms as i64 - (sent_at - timestamp)).max(0) as u64,
        (Some(timestamp), None) => timestamp.max(0) as u64,
        _ => received_ms,
    }
}

fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos() / 1_000_000).ok()
}

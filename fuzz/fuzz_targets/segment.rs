//! Segment events, through every place that parses them:
//! - the Segment Tracking API's event normalisation (`ingest::tracking::normalize`: type from
//!   the path or the event, writeKey removed, `receivedAt` added, `timestamp` corrected for the
//!   client's clock), for one event (`/v1/track`…) and for a batch's event (batch `sentAt`);
//! - the edge (`ingest::signals::prepare`, source detected, and named `segment` as by
//!   `/webhook/segment/...` and the Tracking API);
//! - the stream (`stream::processor::Processor::process` with source `segment`: simd-json
//!   parse, dedupe by `messageId` or content hash, kind/event detection, Segment's clock-skew
//!   correction, identity resolution, the processed record and webhook events, the queue).
//!
//! Input: `<event JSON> [NUL <batch sentAt>]`. The event goes to the edge and the stream as it
//! is (a `/webhook/segment/...` signal), and through `normalize` first (a Tracking API event).
//!
//! Checked:
//! - `normalize` answers valid JSON for a valid event: one object with the type asked for (or
//!   the event's own, one of `EVENT_TYPES`), no `writeKey`, `receivedAt` the receive time, and a
//!   `timestamp`; what it makes of an event `RawValue` lets through but a full parse refuses is
//!   refused by the edge;
//! - the edge's answer is coherent (`cold_storage` iff no lead, an identity is trimmed and
//!   non-empty, the named source wins over detection);
//! - a signal the edge accepts is never dead-lettered by the stream (edge and stream parsers
//!   agree), its processed record and events are valid JSON;
//! - dedupe is exact: the same bytes again are a duplicate, and so is the same signal
//!   re-serialised by another client (keys reordered, whitespace gone, numbers rewritten);
//! - the queue's samples stay within `SAMPLE_MAX_BYTES`.
#![no_main]

#[allow(dead_code)]

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use control::signal_queue::SAMPLE_MAX_BYTES;
use ingest::signals::prepare;
use ingest::tracking::{normalize, Received, EVENT_TYPES};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use serde_json::Value;
use stream::inbound::Inbound;
use stream::processor::{Output, Processor};

const RECEIVED_MS: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const RECEIVED_AT: &str = "2026-01-01T00:00:00.000Z";
/// `SIGSTAGE_TRACKING_MAX_EVENT_BYTES`' default: the Tracking API refuses larger events before
/// normalising them.
const MAX_EVENT_BYTES: usize = 32_768;

static RECEIVED: LazyLock<Received> = LazyLock::new(|| Received::at(RECEIVED_MS as i64));

fuzz_target!(|data: &[u8]| {
    let (event, batch_sent_at) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    // A `/webhook/segment/{key}` signal.
    signal(event);

    // A Tracking API event: its text was checked as one JSON value (`Request::one`, or an
    // element of the batch's array) and is within the per-event limit.
    let Ok(text) = std::str::from_utf8(event) else { return };
    let batch_sent_at = match batch_sent_at.map(std::str::from_utf8) {
        Some(Ok(sent_at)) => Some(sent_at),
        Some(Err(_)) => return,
        None => None,
    };
    let Ok(raw) = serde_json::from_str::<&RawValue>(text) else { return };
    if raw.get().len() > MAX_EVENT_BYTES {
        return;
    }
    let path_kind = EVENT_TYPES[event.len() % EVENT_TYPES.len()];
    // `RawValue` checks less than a full parse (lone surrogates in escapes pass, say): such an
    // event may normalise to text that is not JSON, which the edge must then refuse.
    let valid = serde_json::from_str::<Value>(text).is_ok();
    for (kind, sent_at) in [(Some(path_kind), None), (None, batch_sent_at)] {
        let Ok(normalized) = normalize(raw.get(), kind, sent_at, &RECEIVED) else { continue };
        let Ok(value) = serde_json::from_str::<Value>(&normalized) else {
            assert!(!valid, "normalize wrote invalid JSON from a valid event: {normalized}");
            let refused = prepare(Bytes::from(normalized.clone()), Some("segment"), None).is_err();
            assert!(refused, "the edge accepts a normalised event that is not JSON: {normalized}");
            continue;
        };
        let object = value.as_object().expect("normalize writes an object");
        let written_type = object.get("type").and_then(Value::as_str).expect("a type");
        match kind {
            Some(kind) => assert_eq!(written_type, kind, "the path's type"),
            None => assert!(EVENT_TYPES.contains(&written_type), "type {written_type:?}"),
        }
        assert!(!object.contains_key("writeKey"), "the writeKey is stored: {normalized}");
        assert_eq!(object.get("receivedAt").and_then(Value::as_str), Some(RECEIVED_AT));
        assert_eq!(RECEIVED.text, RECEIVED_AT);
        assert!(object.contains_key("timestamp"), "no timestamp: {normalized}");
        signal(normalized.as_bytes());
    }
});

/// One Segment signal through the edge's checks and the stream processor.
fn signal(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    let detected = prepare(payload.clone(), None, None);
    let named = prepare(payload, Some("segment"), None);
    assert_eq!(detected.is_ok(), named.is_ok());
    if let (Ok(detected), Ok(named)) = (&detected, &named) {
        assert!(matches!(detected.source.as_str(), "segment" | "activity" | "generic"));
        assert!(!detected.hinted && named.hinted);
        assert_eq!(named.source, "segment");
        assert_eq!(detected.cold_storage, named.cold_storage);
        assert_eq!(detected.identity, named.identity);
        if let Some(identity) = &named.identity {
            assert!(!identity.is_empty() && identity.trim() == identity, "identity {identity:?}");
        }
    }
    let accepted_by_edge = named.is_ok();

    let mut processor = Processor::new(1024, Duration::from_secs(24 * 3600));
    let inbound = Inbound {
        org: "acme",
        signal_id: 1,
        source: "segment",
        key_id: "k_fuzz",
        endpoint: "/v1/track",
        received_ms: RECEIVED_MS,
        key: b"acme:x",
        payload: data,
    };
    match processor.process(&inbound) {
        Output::Processed { value, events, .. } => {
            if accepted_by_edge {
                let record: Value = serde_json::from_slice(&value).unwrap_or_else(|error| {
                    panic!("processed record is not JSON ({error}): {}", String::from_utf8_lossy(&value))
                });
                let kind = record.get("kind").and_then(Value::as_str).expect("kind");
                assert!(!kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase()), "kind {kind:?}");
                assert_eq!(record.get("source").and_then(Value::as_str), Some("segment"));
                assert!(record.get("event_ms").and_then(Value::as_u64).is_some(), "event_ms");
                for event in &events {
                    serde_json::from_slice::<serde::de::IgnoredAny>(&event.value).unwrap_or_else(|error| {
                        panic!("{} event is not JSON ({error}): {}", event.kind, String::from_utf8_lossy(&event.value))
                    });
                }
            }
            // Redelivered as is, a minute later.
            let again = Inbound { signal_id: 2, received_ms: RECEIVED_MS + 60_000, ..inbound };
            assert_eq!(processor.process(&again), Output::Duplicate, "the same bytes again");
            // Redelivered by a client that re-serialised it: keys sorted, whitespace gone,
            // numbers rewritten (shortest round-trip form of the value the stream read; a
            // client that changes a number's value sends another signal). Duplicate keys are
            // collapsed by that, so those signals are left out.
            if accepted_by_edge && !has_duplicate_keys(data) {
                let mut copy = data.to_vec();
                let value = simd_json::to_borrowed_value(&mut copy).expect("the stream parsed it");
                let sorted = serde_json::to_value(&value).expect("a value converts");
                let reserialised = serde_json::to_vec(&sorted).expect("a value serializes");
                let again = Inbound { signal_id: 3, payload: &reserialised, ..again };
                assert_eq!(
                    processor.process(&again),
                    Output::Duplicate,
                    "re-serialised: {}",
                    String::from_utf8_lossy(&reserialised)
                );
            }
        }
        Output::Duplicate => panic!("the first signal of a fresh processor is a duplicate"),
        Output::Dead { reason, detail, .. } => {
            assert!(!accepted_by_edge, "a signal the edge accepts is dead-lettered: {reason}: {detail}");
        }
    }
    for group in processor.queue().take() {
        assert!(group.sample.len() <= SAMPLE_MAX_BYTES, "sample of {} bytes", group.sample.len());
    }
}

/// Whether any object of the JSON text repeats a key (or the text is not JSON).
fn has_duplicate_keys(data: &[u8]) -> bool {
    struct Check;
    impl<'de> serde::de::Visitor<'de> for Check {
        type Value = bool;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_str<E>(self, _: &str) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_unit<E>(self) -> Result<bool, E> {
            Ok(false)
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
            let mut duplicates = false;
            while let Some(inner) = seq.next_element::<Duplicates>()? {
                duplicates |= inner.0;
            }
            Ok(duplicates)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut keys = std::collections::HashSet::new();
            let mut duplicates = false;
            while let Some(key) = map.next_key::<String>()? {
                duplicates |= !keys.insert(key);
                duplicates |= map.next_value::<Duplicates>()?.0;
            }
            Ok(duplicates)
        }
    }
    struct Duplicates(bool);
    impl<'de> serde::Deserialize<'de> for Duplicates {
        fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Check).map(Duplicates)
        }
    }
    serde_json::from_slice::<Duplicates>(data).map_or(true, |d| d.0)
}

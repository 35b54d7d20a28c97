//! The edge's one-pass JSON inspector (`ingest::inspect::inspect`) on arbitrary bytes.
//!
//! Checked against `serde_json::Value` (same tokenizer, recursion limit 128) as a reference:
//! - accepted ⇒ the body is one valid JSON object, no deeper than `MAX_DEPTH` as the module
//!   counts it (the fields read by name count at level `NESTED` = 2, see `depth_as_counted`),
//!   and the extracted fields are what the reference holds at those places;
//! - a valid JSON body no deeper than `MAX_DEPTH` (raw bracket nesting) is never refused for
//!   its depth, and a non-object is refused as `NotAnObject`;
//! - anything serde_json refuses is refused.
#![no_main]

use ingest::inspect::{inspect, InspectError, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let result = inspect(data);
    let reference = serde_json::from_slice::<Value>(data);
    match (&result, &reference) {
        (Ok(inspected), Ok(Value::Object(top))) => {
            let counted = depth_as_counted(top);
            assert!(counted <= MAX_DEPTH, "accepted a signal nested {counted} levels (as counted) > {MAX_DEPTH}");
            // Whatever the counting, nothing deeper than MAX_DEPTH + NESTED ever gets through.
            let raw = raw_depth(data);
            assert!(raw <= MAX_DEPTH + 2, "accepted a signal nested {raw} levels");

            assert_eq!(inspected.kind.as_deref(), text(top.get("type")).as_deref(), "type");
            assert_eq!(inspected.anonymous_id.as_deref(), text(top.get("anonymousId")).as_deref(), "anonymousId");
            assert_eq!(inspected.user_id.as_deref(), text(top.get("userId")).as_deref(), "userId");
            assert_eq!(inspected.session_id.as_deref(), text(top.get("session_id")).as_deref(), "session_id");
            assert_eq!(inspected.message_id.as_deref(), text(top.get("messageId")).as_deref(), "messageId");
            assert_eq!(inspected.title.as_deref(), text(top.get("title")).as_deref(), "title");
            assert_eq!(inspected.start_time.as_deref(), text(top.get("startTime")).as_deref(), "startTime");
            let email = email(top.get("email"))
                .or_else(|| email_in(top.get("traits")))
                .or_else(|| email_in(top.get("properties")))
                .or_else(|| email_in(top.get("context").and_then(Value::as_object).and_then(|c| c.get("traits"))));
            assert_eq!(inspected.email.as_deref(), email.as_deref(), "email");

            // No panics, and coherent answers.
            let source = inspected.detect_source();
            assert!(matches!(source, "segment" | "activity" | "generic"));
            assert_eq!(inspected.names_a_lead(), inspected.email.is_some());
            if let Some(identity) = inspected.identity() {
                assert!(!identity.is_empty() && identity.trim() == identity, "identity {identity:?}");
            }
        }
        (Ok(_), Ok(other)) => panic!("accepted a non-object: {other:?}"),
        (Ok(_), Err(error)) => panic!("accepted what serde_json refuses: {error}"),
        (Err(InspectError::NotAnObject(_)), Ok(value)) => {
            assert!(!value.is_object(), "an object refused as not an object");
        }
        (Err(InspectError::NotAnObject(what)), Err(error)) => {
            panic!("refused as {what} what serde_json refuses ({error}): should be InvalidJson")
        }
        (Err(InspectError::InvalidJson(message)), Ok(_)) => {
            // Valid JSON is refused only for its depth.
            assert!(message.contains("nested deeper than"), "valid JSON refused: {message}");
            let raw = raw_depth(data);
            assert!(raw > MAX_DEPTH, "refused for depth at {raw} levels <= {MAX_DEPTH}: {message}");
        }
        (Err(InspectError::InvalidJson(_)), Err(_)) => {}
    }
});

/// The inspector's own reading of a string field: a non-empty string, or an integer as text.
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

fn email(value: Option<&Value>) -> Option<String> {
    text(value).filter(|t| schemas::person::normalise_email(t).is_some())
}

fn email_in(value: Option<&Value>) -> Option<String> {
    email(value?.as_object()?.get("email"))
}

/// Nesting of objects and arrays, the top level being 1 (scalars add nothing).
fn depth(value: &Value, level: usize) -> usize {
    match value {
        Value::Array(items) => items.iter().map(|v| depth(v, level + 1)).fold(level, usize::max),
        Value::Object(members) => members.values().map(|v| depth(v, level + 1)).fold(level, usize::max),
        _ => 0,
    }
}

/// Depth as `inspect.rs` documents counting it: "The depth the few fields read by name live at
/// (`traits`, `properties`, `context.traits`), counted as one level" (`NESTED` = 2). So
/// `traits.email`, `properties.email`, `context.traits` and `context.traits.email` count at
/// level 2; everything else at its real level. (Duplicate keys: the reference keeps the last
/// one only, so this may under-count, never over-count.)
fn depth_as_counted(top: &Map<String, Value>) -> usize {
    const NESTED: usize = 2;
    let mut deepest = 1;
    for (key, value) in top {
        let counted = match (key.as_str(), value) {
            ("traits" | "properties", Value::Object(members)) => members
                .iter()
                .map(|(k, v)| if k == "email" { depth(v, NESTED) } else { depth(v, NESTED + 1) })
                .fold(NESTED, usize::max),
            ("context", Value::Object(members)) => members
                .iter()
                .map(|(k, v)| match (k.as_str(), v) {
                    ("traits", Value::Object(traits)) => traits
                        .iter()
                        .map(|(k, v)| if k == "email" { depth(v, NESTED) } else { depth(v, NESTED + 1) })
                        .fold(NESTED, usize::max),
                    ("traits", other) => depth(other, NESTED),
                    (_, other) => depth(other, NESTED + 1),
                })
                .fold(NESTED, usize::max),
            (_, other) => depth(other, NESTED),
        };
        deepest = deepest.max(counted);
    }
    deepest
}

/// Raw bracket nesting of a valid JSON text (strings skipped), counting every duplicate key.
fn raw_depth(text: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

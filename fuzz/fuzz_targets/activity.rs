//! Activity validation (`ingest::activity::validate`) on arbitrary bodies, the way the ingress
//! handler reaches it: `signals::prepare` (the inspector, source `activity`), the body as a JSON
//! map, then `validate`. Bodies the inspector refuses are still validated when serde_json
//! reads them as a map, so the field checks (ISO 8601 parsing with `time`) see every shape.
//!
//! Checked: each problem names a known Activity field, at most once, in the fields' order; a
//! required field that is absent or null is "is required"; an absent or null optional field
//! and unknown fields are never named; a body the inspector accepted keeps source `activity`.
#![no_main]

use bytes::Bytes;
use ingest::activity::{validate, SOURCE};
use ingest::signals::prepare;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The Activity fields, in `activity.rs`'s order, and whether each is required.
const FIELDS: [(&str, bool); 9] = [
    ("title", true),
    ("description", false),
    ("startTime", true),
    ("endTime", false),
    ("trigger", false),
    ("event", false),
    ("memberEmail", false),
    ("externalId", false),
    ("metadata", false),
];

fuzz_target!(|data: &[u8]| {
    if let Ok(prepared) = prepare(Bytes::copy_from_slice(data), None, Some(SOURCE)) {
        assert_eq!(prepared.source, SOURCE);
        assert!(!prepared.hinted);
        // The handler: anything the inspector accepts is one JSON object.
        let activity: Map<String, Value> =
            serde_json::from_slice(&prepared.payload).expect("an inspected signal reads as a JSON map");
        check(&activity);
    } else if let Ok(activity) = serde_json::from_slice::<Map<String, Value>>(data) {
        check(&activity);
    }
});

fn check(activity: &Map<String, Value>) {
    let problems = validate(activity);
    assert!(problems.len() <= FIELDS.len());
    let mut last = None;
    for problem in &problems {
        let index = FIELDS.iter().position(|(field, _)| *field == problem.field).expect("a known field");
        assert!(last.is_none_or(|last| index > last), "fields out of order or repeated: {problems:?}");
        last = Some(index);
        assert!(!problem.problem.is_empty());
    }
    for (field, required) in FIELDS {
        let named = problems.iter().find(|p| p.field == field).map(|p| p.problem);
        match activity.get(field) {
            None | Some(Value::Null) if required => assert_eq!(named, Some("is required"), "{field}"),
            None | Some(Value::Null) => assert_eq!(named, None, "{field}"),
            Some(Value::String(_)) if matches!(field, "description" | "trigger" | "event" | "externalId") => {
                assert_eq!(named, None, "{field}: any string is valid")
            }
            Some(Value::Object(_)) if field == "metadata" => assert_eq!(named, None, "metadata object"),
            Some(Value::String(_)) => {}
            Some(_) => assert!(named.is_some(), "{field}: a non-string {:?} passed", activity.get(field)),
        }
    }
}

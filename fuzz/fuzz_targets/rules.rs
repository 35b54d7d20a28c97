//! Mapping rules, from the spec a user writes to a processed signal: `schemas::rules::RuleSpec`
//! (parse, `problems`, the store's JSON round trip), `schemas::mapping::RuleSet::compile`,
//! `Compiled::matches`, `Mapping::first` / `write_fields`, and the whole stream `Processor`
//! with those rules.
//!
//! Input: `<rules JSON> NUL <source> NUL <signal JSON>`. The rules are one spec or an array of
//! specs; a missing source is `segment`, a missing signal a fixed Segment track.
//!
//! Checked: a spec without problems respects the documented bounds (`MAX_CONDITIONS`,
//! `MAX_MAPPINGS`, name of 1 to 200 characters, lead fields only) and survives the store's
//! `to_string`/`from_str` round trip unchanged (a stored rule that does not parse back is
//! dropped); exactly the specs without problems compile; `write_fields` writes one JSON object
//! of mapped fields (never `email`); the first `email` found is a string with an `@`; and for a
//! signal the edge accepts, the processed record and its webhook events are valid JSON.
#![no_main]

#[allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use schemas::mapping::{Mapping, RuleSet};
use schemas::rules::{Rule, RuleSpec, LEAD_FIELDS, MAX_CONDITIONS, MAX_MAPPINGS};
use serde_json::Value;
use simd_json::prelude::*;
use stream::inbound::Inbound;
use stream::processor::{Output, Processor};

const DEFAULT_SIGNAL: &[u8] = br#"{"type":"track","event":"Form Submitted","anonymousId":"a1","messageId":"m1","properties":{"form_name":"demo","email":"Jane@Acme.io","plan":"pro"},"context":{"page":{"url":"https://acme.io/pricing"}},"traits":{"name":"Jane","company":"Acme"}}"#;
const ORG: &str = "acme";
const RECEIVED_MS: u64 = 1_767_225_600_000; // 2026-01-01

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum Specs {
    Many(Vec<RuleSpec>),
    One(RuleSpec),
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let rules_json = parts.next().unwrap_or_default();
    let source = parts.next().map_or(Ok("segment"), std::str::from_utf8);
    let signal = parts.next().unwrap_or(DEFAULT_SIGNAL);
    let Ok(source) = source else { return };

    let specs = match serde_json::from_slice::<Specs>(rules_json) {
        Ok(Specs::Many(specs)) => specs,
        Ok(Specs::One(spec)) => vec![spec],
        Err(_) => Vec::new(),
    };
    let mut valid = 0;
    for spec in &specs {
        let problems = spec.problems();
        if problems.is_empty() {
            valid += 1;
            assert!(spec.conditions.len() <= MAX_CONDITIONS && spec.map.len() <= MAX_MAPPINGS);
            assert!(!spec.name.trim().is_empty() && spec.name.len() <= 200);
            for field in spec.map.keys() {
                let custom = field.strip_prefix("custom.").is_some_and(|name| {
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
                assert!(LEAD_FIELDS.contains(&field.as_str()) || custom, "{field:?} passed as a lead field");
            }
            // How `control::rules` stores and lists a rule.
            let stored = serde_json::to_string(spec).expect("a rule spec serializes");
            let listed: RuleSpec = serde_json::from_str(&stored)
                .unwrap_or_else(|error| panic!("a valid rule does not parse back from the store: {error}: {stored}"));
            assert_eq!(&listed, spec, "the stored rule changed: {stored}");
        }
    }

    let rules: Vec<Rule> = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| Rule { id: format!("rule_{i}"), org_id: ORG.to_owned(), created_ms: i as u64, spec })
        .collect();
    let rules = Arc::new(RuleSet::compile(rules));
    assert_eq!(rules.len(), valid, "exactly the rules without problems compile");
    let compiled = rules.of(ORG);

    // The rules on their own, over a simd-json value as the processor parses it.
    let mut buffer = signal.to_vec();
    if let Ok(value) = simd_json::to_borrowed_value(&mut buffer) {
        let event = value.get("event").and_then(|e| e.as_str()).unwrap_or("signal");
        let matched: Vec<usize> = (0..compiled.len()).filter(|&i| compiled[i].matches(source, event, &value)).collect();
        let mapping = Mapping { rules: compiled, matched: &matched };
        if let Some(email) = mapping.first("email", &value) {
            assert!(email.as_str().is_some_and(|s| s.contains('@')), "email mapped to {email:?}");
        }
        for field in ["name", "company", "title", "custom.plan"] {
            let _ = mapping.first(field, &value);
        }
        let mut fields = Vec::new();
        mapping.write_fields(&value, &mut fields);
        let written: Value = serde_json::from_slice(&fields).unwrap_or_else(|error| {
            panic!("write_fields wrote invalid JSON ({error}): {}", String::from_utf8_lossy(&fields))
        });
        let written = written.as_object().expect("write_fields writes an object");
        assert!(!written.contains_key("email"));
    }

    // The whole processor with these rules.
    let accepted_by_edge = ingest::inspect::inspect(signal).is_ok();
    let mut processor = Processor::new(1024, Duration::from_secs(3600));
    processor.set_rules(rules.clone());
    let inbound =
        Inbound {
            org: ORG,
            signal_id: 7,
            source,
            key_id: "k_fuzz",
            endpoint: "/v1/signals",
            received_ms: RECEIVED_MS,
            key: b"acme:a1",
            payload: signal,
        };
    match processor.process(&inbound) {
        Output::Processed { value, events, .. } => {
            if accepted_by_edge {
                let record: Value = serde_json::from_slice(&value).unwrap_or_else(|error| {
                    panic!("processed record is not JSON ({error}): {}", String::from_utf8_lossy(&value))
                });
                let mapped = record.get("mapped").and_then(Value::as_bool).expect("mapped");
                let ids = record.get("rules").and_then(Value::as_array).map_or(0, Vec::len);
                assert_eq!(mapped, ids > 0);
                for event in &events {
                    serde_json::from_slice::<serde::de::IgnoredAny>(&event.value).unwrap_or_else(|error| {
                        panic!("{} event is not JSON ({error}): {}", event.kind, String::from_utf8_lossy(&event.value))
                    });
                }
            }
        }
        Output::Duplicate => panic!("the first signal of a fresh processor is a duplicate"),
        Output::Dead { reason, detail, .. } => {
            assert!(!accepted_by_edge, "a signal the edge accepts is dead-lettered: {reason}: {detail}");
        }
    }
});

//! From Kafka records to ClickHouse rows: `signals.processed` records become hot or cold
//! signal rows, `identities` records identity and lead rows. Rows borrow from the records.

use std::borrow::Cow;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The parts of a `signals.processed` record the tables keep.
#[derive(Debug, Deserialize)]
pub struct Processed<'a> {
    pub signal_id: u64,
    #[serde(borrow)]
    pub org: Cow<'a, str>,
    #[serde(borrow)]
    pub source: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub event: Cow<'a, str>,
    #[serde(borrow, default)]
    pub anonymous_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub user_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub email: Option<Cow<'a, str>>,
    pub hot: bool,
    #[serde(borrow, default)]
    pub attributed_by: Option<Cow<'a, str>>,
    #[serde(default)]
    pub mapped: bool,
    #[serde(borrow, default)]
    pub rules: Vec<Cow<'a, str>>,
    #[serde(borrow)]
    pub content_hash: Cow<'a, str>,
    pub received_ms: u64,
    pub event_ms: u64,
    #[serde(borrow)]
    pub fields: Option<&'a RawValue>,
    #[serde(borrow)]
    pub payload: &'a RawValue,
}

/// A row of `signals_hot` or `signals_cold` (same columns; cold rows have no lead).
#[derive(Debug, Row, Serialize)]
pub struct SignalRow<'a> {
    pub org_id: &'a str,
    pub lead_email: &'a str,
    pub signal_id: u64,
    pub anonymous_id: &'a str,
    pub user_id: &'a str,
    pub source: &'a str,
    pub kind: &'a str,
    pub event: &'a str,
    pub attributed_by: &'a str,
    pub mapped: u8,
    pub rules: Vec<&'a str>,
    pub content_hash: &'a str,
    pub received_ms: u64,
    pub event_ms: u64,
    pub fields: &'a str,
    pub payload: &'a str,
    pub written_ms: u64,
}

impl<'a> Processed<'a> {
    /// The record as a row; `lead` makes it a hot row attributed `attributed_by`.
    pub fn row(&'a self, lead: Option<(&'a str, &'a str)>, written_ms: u64) -> SignalRow<'a> {
        let (lead_email, attributed_by) = lead.unwrap_or(("", ""));
        SignalRow {
            org_id: &self.org,
            lead_email,
            signal_id: self.signal_id,
            anonymous_id: self.anonymous_id.as_deref().unwrap_or_default(),
            user_id: self.user_id.as_deref().unwrap_or_default(),
            source: &self.source,
            kind: &self.kind,
            event: &self.event,
            attributed_by,
            mapped: u8::from(self.mapped),
            rules: self.rules.iter().map(|rule| rule.as_ref()).collect(),
            content_hash: &self.content_hash,
            received_ms: self.received_ms,
            event_ms: self.event_ms,
            fields: self.fields.map_or("{}", RawValue::get),
            payload: self.payload.get(),
            written_ms,
        }
    }
}

/// An `identities` record of kind `link`, and its `identities` table row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct IdentityRow {
    #[serde(rename(deserialize = "org"))]
    pub org_id: String,
    pub anonymous_id: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub title: String,
    pub signal_id: u64,
    pub linked_ms: u64,
}

/// An `identities` record of kind `lead`, and its `leads` table row.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct LeadRow {
    #[serde(rename(deserialize = "org"))]
    pub org_id: String,
    pub email: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub company: String,
    #[serde(default)]
    pub title: String,
    #[serde(rename(deserialize = "signal_id"))]
    pub first_signal_id: u64,
    pub created_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processed_records_become_rows_without_copying_the_payload() {
        let record = br#"{"signal_id":7,"org":"acme","source":"segment","kind":"track","event":"Form \"A\"",
            "anonymous_id":"v1","hot":false,"mapped":true,"rules":["rule_1"],"content_hash":"ab","received_ms":2,
            "event_ms":1,"fields":{"company":"Acme"},"payload":{"type":"track","n":[1,2]}}"#;
        let processed: Processed<'_> = serde_json::from_slice(record).expect("parses");
        let cold = processed.row(None, 9);
        assert_eq!(
            (cold.lead_email, cold.event, cold.anonymous_id, cold.fields),
            ("", "Form \"A\"", "v1", r#"{"company":"Acme"}"#)
        );
        assert_eq!(cold.payload, r#"{"type":"track","n":[1,2]}"#);
        let hot = processed.row(Some(("jo@acme.io", "rehydrated")), 9);
        assert_eq!((hot.lead_email, hot.attributed_by, hot.rules), ("jo@acme.io", "rehydrated", vec!["rule_1"]));
    }

    #[test]
    fn identity_records_become_rows() {
        let link: IdentityRow = serde_json::from_str(
            r#"{"org":"acme","anonymous_id":"v1","email":"jo@acme.io","company":"Acme","signal_id":3,"linked_ms":4}"#,
        )
        .expect("link");
        assert_eq!((link.org_id.as_str(), link.company.as_str(), link.name.as_str()), ("acme", "Acme", ""));
        let lead: LeadRow =
            serde_json::from_str(r#"{"org":"acme","email":"jo@acme.io","signal_id":3,"created_ms":4}"#).expect("lead");
        assert_eq!((lead.first_signal_id, lead.created_ms), (3, 4));
    }
}

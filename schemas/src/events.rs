//! Webhook events, as the stream processors write them to `webhooks.outbox` and the webhook
//! sink delivers them: `{"id":…,"type":…,"org":…,"created_ms":…,"data":{…}}`. The id is derived
//! from the signal that caused the event and the type, so reprocessing the same signal yields
//! the same id (receivers and the sink dedupe on it). The stream writes them with [`encode`];
//! the webhook sink reads their [`Envelope`] and delivers the record's bytes as they are.

use serde::Deserialize;

/// A signal matched one of its org's mapping rules; `data` is the processed signal.
pub const SIGNAL_CREATED: &str = "signal.created";
/// A lead (an email) was seen for the first time; `data` has the email and captured traits.
pub const LEAD_CREATED: &str = "lead.created";
/// An anonymous visitor was linked to a lead; `data` is the identity link.
pub const LEAD_IDENTIFIED: &str = "lead.identified";
pub const ALL: [&str; 3] = [SIGNAL_CREATED, LEAD_CREATED, LEAD_IDENTIFIED];

/// On `webhooks.outbox` records: the event type, so consumers filter without parsing.
pub const TYPE_HEADER: &str = "sigstage-event-type";

/// The event's JSON, `data` being a JSON value already encoded.
pub fn encode(kind: &str, signal_id: u64, org: &str, created_ms: u64, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut out = Vec::with_capacity(96 + org.len() + data.len());
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{{\"id\":\"{signal_id}.{kind}\",\"type\":\"{kind}\",\"org\":");
    serde_json::to_writer(&mut out, org).expect("a string serializes");
    let _ = write!(out, ",\"created_ms\":{created_ms},\"data\":");
    out.extend_from_slice(data);
    out.push(b'}');
    out
}

/// What the webhook sink reads of an event: its envelope, and of `data` only who it is about
/// (to keep a deleted person's events out); the rest of `data` is delivered as it is.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub org: String,
    pub created_ms: u64,
    #[serde(default)]
    pub data: About,
}

/// The person an event is about: the `email` and `anonymous_id` of its `data` (a processed
/// signal, a lead, or a link all carry them where they have them).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct About {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub anonymous_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::Envelope;

    #[test]
    fn what_the_stream_writes_the_webhook_sink_reads() {
        let event = super::encode(super::SIGNAL_CREATED, 42, "a\"cme", 7, br#"{"n":1}"#);
        let envelope: Envelope = serde_json::from_slice(&event).expect("an envelope");
        let expected = Envelope {
            id: "42.signal.created".into(),
            kind: "signal.created".into(),
            org: "a\"cme".into(),
            created_ms: 7,
            data: super::About::default(),
        };
        assert_eq!(envelope, expected);
        let link = br#"{"org":"acme","anonymous_id":"v1","email":"jo@acme.io","linked_ms":3}"#;
        let event = super::encode(super::LEAD_IDENTIFIED, 43, "acme", 8, link);
        let about = serde_json::from_slice::<Envelope>(&event).expect("an envelope").data;
        assert_eq!((about.email.as_deref(), about.anonymous_id.as_deref()), (Some("jo@acme.io"), Some("v1")));
    }

    #[test]
    fn events_are_json_with_a_stable_id() {
        let event = super::encode(super::LEAD_CREATED, 42, "acme", 7, br#"{"email":"a@b.io"}"#);
        let value: serde_json::Value = serde_json::from_slice(&event).expect("valid JSON");
        assert_eq!(
            value,
            serde_json::json!({"id": "42.lead.created", "type": "lead.created", "org": "acme", "created_ms": 7,
                "data": {"email": "a@b.io"}})
        );
    }
}

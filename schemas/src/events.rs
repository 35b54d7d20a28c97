//! Webhook events, as the stream processors write them to `webhooks.outbox` and the webhook
//! sink delivers them: `{"id":…,"type":…,"org":…,"created_ms":…,"data":{…}}`. The id is derived
//! from the signal that caused the event and the type, so reprocessing the same signal yields
//! the same id (receivers and the sink dedupe on it).

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

#[cfg(test)]
mod tests {
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

//! The per-record work of the stream role: parse (simd-json, reused buffers), dedupe, detect
//! what the signal is and who it is about, and build the processed record. Pure: no I/O, so it
//! is tested and benchmarked without Kafka.

use std::sync::Arc;
use std::time::Duration;

use std::borrow::Cow;

use schemas::events;
use schemas::processed::{self, Processed};
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use schemas::person;

use crate::dedupe::{Deduper, Verdict};
use crate::identity::{Identities, Linked};
use crate::inbound::Inbound;
use crate::signal_queue::SignalQueue;
use control::people::Suppressions;
use schemas::identities::{IdentityLink, NewLead};
use schemas::mapping::{Mapping, RuleSet};

/// What became of one raw record.
#[derive(Debug, PartialEq, Eq)]
pub enum Output {
    /// A new signal: the `signals.processed` record (JSON), its content hash, the lead it
    /// named first, the identity links it made (its visitor's, its userId's, an alias's), and
    /// its webhook events.
    Processed { value: Vec<u8>, hash: u128, lead: Option<Box<NewLead>>, links: Vec<IdentityLink>, events: Vec<Event> },
    /// Seen before within the dedupe window: nothing to write.
    Duplicate,
    /// Of a person deleted and suppressed (an email or visitor in [`Suppressions`]): nothing
    /// is written, not even to the Signal Queue.
    Suppressed,
    /// Cannot be processed: to the dead-letter topic with a reason and the stage that failed.
    Dead { reason: &'static str, stage: &'static str, detail: String },
}

/// A `webhooks.outbox` record: its type (see [`schemas::events`]) and JSON.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: &'static str,
    pub value: Vec<u8>,
}

pub struct Processor {
    deduper: Deduper,
    identities: Identities,
    rules: Arc<RuleSet>,
    suppressions: Arc<Suppressions>,
    /// Indexes of the rules that matched the current signal (reused).
    matched: Vec<usize>,
    queue: SignalQueue,
    buffer: Vec<u8>,
    buffers: simd_json::Buffers,
}

impl Processor {
    pub fn new(dedupe_entries: usize, dedupe_window: Duration) -> Self {
        Self {
            deduper: Deduper::new(dedupe_entries, dedupe_window),
            identities: Identities::default(),
            rules: Arc::default(),
            suppressions: Arc::default(),
            matched: Vec::new(),
            queue: SignalQueue::default(),
            buffer: Vec::with_capacity(64 * 1024),
            buffers: simd_json::Buffers::new(64 * 1024),
        }
    }

    pub fn deduper(&mut self) -> &mut Deduper {
        &mut self.deduper
    }

    pub fn identities(&mut self) -> &mut Identities {
        &mut self.identities
    }

    pub fn queue(&mut self) -> &mut SignalQueue {
        &mut self.queue
    }

    /// Applies from the next signal on.
    pub fn set_rules(&mut self, rules: Arc<RuleSet>) {
        self.rules = rules;
    }

    /// Applies from the next signal on; what the processor remembers of a suppressed person (their
    /// visitors' links, their leads) is forgotten at once.
    pub fn set_suppressions(&mut self, suppressions: Arc<Suppressions>) {
        self.suppressions = suppressions;
        self.forget_suppressed();
    }

    /// Forgets the links, leads and Signal Queue samples of suppressed people (after a restore,
    /// too).
    pub fn forget_suppressed(&mut self) {
        for (org, value) in self.suppressions.iter() {
            self.identities.forget(org, value);
            self.queue.scrub(org, value);
        }
    }

    pub fn process(&mut self, inbound: &Inbound<'_>) -> Output {
        let Self { deduper, identities, rules, suppressions, matched, queue, buffer, buffers } = self;
        buffer.clear();
        buffer.extend_from_slice(inbound.payload);
        // simd-json checks UTF-8 as it finds the structure, so the bytes are read once.
        let value = match simd_json::to_borrowed_value_with_buffers(buffer, buffers) {
            Ok(value) => value,
            Err(error) if *error.error() == simd_json::ErrorType::InvalidUtf8 => {
                return dead("invalid_utf8", "parse", "the record is not UTF-8".into())
            }
            Err(error) => return dead("invalid_json", "parse", error.to_string()),
        };
        if value.as_object().is_none() {
            return dead("not_an_object", "parse", "a signal must be a JSON object".into());
        }
        let hash = Deduper::identity(inbound.org, inbound.source, &value);
        // A stored signal sent again (history) was deduped when it came.
        let history = inbound.history_rules;
        if history.is_none() {
            if let Verdict::Repeat { .. } = deduper.check(hash, inbound.signal_id, inbound.received_ms) {
                return Output::Duplicate;
            }
        }
        let (kind, event) = detect(inbound.source, &value);
        let org_rules = rules.of(inbound.org);
        matched.clear();
        matched.extend((0..org_rules.len()).filter(|&i| {
            history.is_none_or(|ids| ids.split(',').any(|id| id == org_rules[i].id))
                && org_rules[i].matches(inbound.source, event, &value)
        }));
        let mapping = Mapping { rules: org_rules, matched };
        let email = mapping.first("email", &value).and_then(|v| v.as_str()).and_then(person::normalise_email);
        let anonymous_id =
            person::visitor(text(&value, &["anonymousId"]), text(&value, &["session_id"]), text(&value, &["userId"]));
        let user_id = text(&value, &["userId"]);
        if suppressions.holds_any(inbound.org, [email.as_deref(), anonymous_id, user_id]) {
            return Output::Suppressed;
        }
        if mapping.matched.is_empty() && history.is_none() {
            queue.count(inbound.org, inbound.source, event, inbound.received_ms, inbound.payload);
        }
        let hex = processed::hex128(hash);
        let mut record = Processed {
            signal_id: inbound.signal_id,
            org: Cow::Borrowed(inbound.org),
            source: Cow::Borrowed(inbound.source),
            key_id: Some(inbound.key_id).filter(|id| !id.is_empty()).map(Cow::Borrowed),
            endpoint: Some(inbound.endpoint).filter(|path| !path.is_empty()).map(Cow::Borrowed),
            lane: Some(Cow::Borrowed(inbound.lane)),
            kind: Cow::Borrowed(kind),
            event: Cow::Borrowed(event),
            anonymous_id: anonymous_id.map(Cow::Borrowed),
            user_id: user_id.map(Cow::Borrowed),
            hot: email.is_some(),
            attributed_by: email.is_some().then_some(Cow::Borrowed("signal")),
            email: email.map(Cow::Owned),
            mapped: !matched.is_empty(),
            rules: matched.iter().map(|&i| Cow::Borrowed(org_rules[i].id.as_str())).collect(),
            content_hash: Cow::Borrowed(std::str::from_utf8(&hex).expect("hex digits are ASCII")),
            history: history.is_some(),
            received_ms: inbound.received_ms,
            event_ms: event_ms(&value, inbound.received_ms),
            fields: None,
            payload: None,
        };
        let link = resolve(identities, &mut record, anonymous_id, &mapping, &value);
        if record.attributed_by.as_deref() == Some("identity")
            && suppressions.holds_any(inbound.org, [record.email.as_deref()])
        {
            return Output::Suppressed;
        }
        // Other ids of the same person: the userId beside an anonymous visitor, and an alias's
        // previousId. Linked too, so their signals are attributed wherever they arrive.
        let named = record.attributed_by.as_deref() == Some("signal");
        let user_link = person::visitor(None, None, user_id)
            .filter(|user_id| named && anonymous_id != Some(*user_id))
            .and_then(|user_id| link_other(identities, &record, user_id));
        let alias_link = (kind == "alias")
            .then(|| person::visitor(text(&value, &["previousId"]), None, None))
            .flatten()
            .filter(|previous_id| anonymous_id != Some(*previous_id))
            .and_then(|previous_id| link_other(identities, &record, previous_id));
        let lead =
            record.email.as_deref().filter(|email| named && identities.new_lead(inbound.org, email)).map(|email| {
                NewLead {
                    org: inbound.org.to_owned(),
                    email: email.to_owned(),
                    name: trait_of(&mapping, &value, "name"),
                    company: trait_of(&mapping, &value, "company"),
                    title: trait_of(&mapping, &value, "title"),
                    signal_id: inbound.signal_id,
                    created_ms: record.event_ms,
                }
            });
        let encoded = processed::encode(&record, |out| mapping.write_fields(&value, out), inbound.payload);
        let event_of = |kind: &'static str, data: &[u8]| Event {
            kind,
            value: events::encode(kind, inbound.signal_id, inbound.org, record.received_ms, data),
        };
        let mut outbox = Vec::new();
        if let Some(lead) = &lead {
            outbox.push(event_of(events::LEAD_CREATED, &serde_json::to_vec(lead).expect("a lead serializes")));
        }
        for link in link.iter().chain(&alias_link) {
            outbox.push(event_of(events::LEAD_IDENTIFIED, &serde_json::to_vec(link).expect("a link serializes")));
        }
        // History is sent to subscribers by a backfill, not as new signals.
        if record.mapped && !record.history {
            outbox.push(event_of(events::SIGNAL_CREATED, &encoded));
        }
        let links = link.into_iter().chain(user_link).chain(alias_link).collect();
        Output::Processed { value: encoded, hash, lead: lead.map(Box::new), links, events: outbox }
    }
}

fn trait_of(mapping: &Mapping<'_>, value: &BorrowedValue<'_>, field: &str) -> Option<String> {
    mapping.first(field, value).and_then(|v| v.as_str()).map(str::to_owned)
}

/// Attributes an anonymous signal to its visitor's lead, or links the visitor to the email the
/// signal names (answering the link when it is new).
fn resolve(
    identities: &mut Identities,
    record: &mut Processed<'_>,
    anonymous_id: Option<&str>,
    mapping: &Mapping<'_>,
    value: &BorrowedValue<'_>,
) -> Option<IdentityLink> {
    let anonymous_id = anonymous_id?;
    let Some(email) = record.email.as_deref() else {
        let lead = identities.lead_of(&record.org, anonymous_id)?;
        record.email = Some(Cow::Owned(lead.to_owned()));
        record.hot = true;
        record.attributed_by = Some(Cow::Borrowed("identity"));
        return None;
    };
    if record.history {
        if let Some(lead) = identities.lead_of(&record.org, anonymous_id) {
            // History does not move a visitor already linked: its signal goes to the visitor's
            // lead, where the link's rehydration may have written it already (the sink then
            // leaves it out), and never to a second lead.
            record.email = Some(Cow::Owned(lead.to_owned()));
            record.attributed_by = Some(Cow::Borrowed("identity"));
            return None;
        }
    }
    let Linked::News { previous, version } = identities.link(&record.org, anonymous_id, email, record.received_ms)
    else {
        return None;
    };
    Some(IdentityLink {
        org: record.org.to_string(),
        anonymous_id: anonymous_id.to_owned(),
        email: email.to_owned(),
        previous_email: previous,
        name: trait_of(mapping, value, "name"),
        company: trait_of(mapping, value, "company"),
        title: trait_of(mapping, value, "title"),
        signal_id: record.signal_id,
        linked_ms: version,
    })
}

/// Links another id of the signal's person (`other`) to the lead the signal was attributed to,
/// when that is news. The link is written where `other`'s records go, so the processor owning
/// them restores it, and the sink attributes and rehydrates `other`'s signals at once. A Segment
/// `alias` of a visitor not identified yet links nothing: identify first, then alias.
fn link_other(identities: &mut Identities, record: &Processed<'_>, other: &str) -> Option<IdentityLink> {
    let email = record.email.as_deref()?;
    if record.history && identities.lead_of(&record.org, other).is_some() {
        return None;
    }
    let Linked::News { previous, version } = identities.link(&record.org, other, email, record.received_ms) else {
        return None;
    };
    Some(IdentityLink {
        org: record.org.to_string(),
        anonymous_id: other.to_owned(),
        email: email.to_owned(),
        previous_email: previous,
        name: None,
        company: None,
        title: None,
        signal_id: record.signal_id,
        linked_ms: version,
    })
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

/// What kind of signal this is, and its event name (rules match on it, the queue groups by it).
fn detect<'v>(source: &str, value: &'v BorrowedValue<'_>) -> (&'static str, &'v str) {
    let segment_type = if source == "segment" { text(value, &["type"]) } else { None };
    match (source, segment_type) {
        (_, Some("track")) => ("track", text(value, &["event"]).unwrap_or("track")),
        (_, Some("page")) => ("page", "page_view"),
        (_, Some("screen")) => ("page", "screen_view"),
        (_, Some("identify")) => ("identify", "identify"),
        (_, Some("group")) => ("group", "group"),
        (_, Some("alias")) => ("alias", "alias"),
        ("tracardi", _) => ("collect", text(value, &["event_type"]).unwrap_or("collect")),
        ("activity", _) => ("activity", text(value, &["event"]).or(text(value, &["title"])).unwrap_or("activity")),
        _ => ("signal", text(value, &["event"]).unwrap_or("signal")),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn process(processor: &mut Processor, signal_id: u64, payload: &str) -> Output {
        process_history(processor, signal_id, payload, None)
    }

    fn process_history(processor: &mut Processor, signal_id: u64, payload: &str, rules: Option<&str>) -> Output {
        processor.process(&Inbound { payload: payload.as_bytes(), ..inbound(signal_id, rules) })
    }

    fn inbound(signal_id: u64, rules: Option<&str>) -> Inbound<'_> {
        Inbound {
            org: "acme",
            signal_id,
            source: "segment",
            key_id: "k_test",
            endpoint: "/v1/track",
            received_ms: 1_795_521_600_000,
            history_rules: rules,
            lane: "live",
            key: b"acme:a",
            payload: b"{}",
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_dead_as_such_and_bad_json_as_json() {
        let mut processor = Processor::new(1024, Duration::from_secs(3600));
        let not_utf8 = Inbound { payload: b"{\"a\":\"\xff\"}", ..inbound(1, None) };
        assert!(matches!(processor.process(&not_utf8), Output::Dead { reason: "invalid_utf8", stage: "parse", .. }));
        let not_json = Inbound { payload: b"{\"a\":", ..inbound(2, None) };
        assert!(matches!(processor.process(&not_json), Output::Dead { reason: "invalid_json", stage: "parse", .. }));
    }

    #[test]
    fn what_the_edge_accepts_is_processed_even_integers_beyond_64_bits() {
        // The edge (serde_json) accepts these as floats; the stream must not dead-letter them.
        let mut processor = Processor::new(1024, Duration::from_secs(3600));
        for (id, payload) in [
            r#"{"type":"track","event":"Big","userId":"u","properties":{"n":18446744073709551616}}"#,
            r#"{"type":"track","event":"Small","userId":"u","properties":{"n":-9223372036854775809}}"#,
        ]
        .iter()
        .enumerate()
        {
            let output = process(&mut processor, id as u64 + 1, payload);
            assert!(matches!(output, Output::Processed { .. }), "{payload}: {output:?}");
        }
    }

    #[test]
    fn screen_is_a_page_and_group_and_alias_have_kinds_of_their_own() {
        let mut processor = Processor::new(1024, Duration::from_secs(3600));
        for (id, (payload, kind, event)) in [
            (r#"{"type":"screen","name":"Home","userId":"u"}"#, "page", "screen_view"),
            (r#"{"type":"group","groupId":"g","userId":"u"}"#, "group", "group"),
            (r#"{"type":"alias","previousId":"p","userId":"u"}"#, "alias", "alias"),
        ]
        .iter()
        .enumerate()
        {
            let Output::Processed { value, .. } = process(&mut processor, id as u64 + 1, payload) else {
                panic!("{payload} not processed");
            };
            let record: serde_json::Value = serde_json::from_slice(&value).expect("JSON");
            assert_eq!((record["kind"].as_str(), record["event"].as_str()), (Some(*kind), Some(*event)), "{payload}");
        }
    }

    #[test]
    fn an_identify_links_its_user_id_and_an_alias_links_its_previous_id() {
        let mut processor = Processor::new(1024, Duration::from_secs(3600));
        let identify = r#"{"type":"identify","anonymousId":"a","userId":"u","traits":{"email":"Ada@Example.com"}}"#;
        let Output::Processed { links, .. } = process(&mut processor, 1, identify) else { panic!("identify") };
        let linked: Vec<(&str, &str)> = links.iter().map(|l| (l.anonymous_id.as_str(), l.email.as_str())).collect();
        assert_eq!(linked, [("a", "ada@example.com"), ("u", "ada@example.com")]);
        let alias = r#"{"type":"alias","previousId":"old","userId":"u"}"#;
        let Output::Processed { links, events, .. } = process(&mut processor, 2, alias) else { panic!("alias") };
        let linked: Vec<(&str, &str)> = links.iter().map(|l| (l.anonymous_id.as_str(), l.email.as_str())).collect();
        assert_eq!(linked, [("old", "ada@example.com")]);
        assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [events::LEAD_IDENTIFIED]);
        // An alias of a user nobody has identified links nothing.
        let unknown = r#"{"type":"alias","previousId":"older","userId":"stranger"}"#;
        let Output::Processed { links, .. } = process(&mut processor, 3, unknown) else { panic!("alias") };
        assert!(links.is_empty());
    }

    #[test]
    fn a_stored_signal_sent_again_applies_only_its_rules_and_moves_no_linked_visitor() {
        let rule = |id: &str, path: &str| schemas::rules::Rule {
            id: id.into(),
            org_id: "acme".into(),
            created_ms: 1,
            spec: serde_json::from_str(&format!(
                r#"{{"name":"{id}","source":"segment","event":"Form","map":{{"email":"{path}"}}}}"#
            ))
            .expect("a rule"),
        };
        let mut processor = Processor::new(1024, Duration::from_secs(3600));
        processor.set_rules(Arc::new(RuleSet::compile(vec![
            rule("r_old", "properties.old"),
            rule("r_new", "properties.new"),
        ])));
        let form =
            r#"{"type":"track","event":"Form","anonymousId":"v","properties":{"new":"new@x.io","old":"old@x.io"}}"#;
        // Live, both rules match; the first maps the email. Seen again live: a duplicate.
        let Output::Processed { value, .. } = process(&mut processor, 1, form) else { panic!("live") };
        let record: serde_json::Value = serde_json::from_slice(&value).expect("JSON");
        assert_eq!((record["email"].as_str(), record["rules"].as_array().map(Vec::len)), (Some("old@x.io"), Some(2)));
        assert_eq!(process(&mut processor, 1, form), Output::Duplicate);
        // As history with only r_new: not a duplicate, r_new alone, no signal.created; the visitor
        // stays with the lead it was linked to.
        let Output::Processed { value, links, events, .. } = process_history(&mut processor, 1, form, Some("r_new"))
        else {
            panic!("history")
        };
        let record: serde_json::Value = serde_json::from_slice(&value).expect("JSON");
        assert_eq!(
            (record["email"].as_str(), record["attributed_by"].as_str(), record["history"].as_bool()),
            (Some("old@x.io"), Some("identity"), Some(true)),
            "the visitor's lead, not a second one: {record}"
        );
        assert_eq!(record["rules"], serde_json::json!(["r_new"]));
        assert!(links.is_empty(), "{links:?}");
        assert!(events.iter().all(|event| event.kind != events::SIGNAL_CREATED), "{events:?}");
        // An unknown visitor is linked by history as live.
        let other = form.replace(r#""v""#, r#""w""#);
        let Output::Processed { links, .. } = process_history(&mut processor, 2, &other, Some("r_new")) else {
            panic!("history")
        };
        assert_eq!(links.iter().map(|link| link.email.as_str()).collect::<Vec<_>>(), ["new@x.io"]);
    }
}

//! The Segment Tracking API, so Segment's and RudderStack's SDKs send here unchanged:
//! `POST /v1/{track,identify,page,screen,group,alias}` (one event), `/v1/batch`, the browser's
//! `/v1/{t,i,p,s,g,a,b}`, and `/v1/import` (a batch on the historical lane).
//!
//! The writeKey is an API key of the org, taken from Basic auth (the username; a password is the
//! key's secret), `X-Write-Key`, or the body's `writeKey`. Bodies are JSON, gzip or not, whatever
//! their Content-Type: the browser's beacons say `text/plain`, and RudderStack's Node SDK sends
//! its gzip bodies without one of its own (axios calls them form data). Answers are
//! Segment's: 200 once every event is on the broker, 400 for invalid JSON or anything too large
//! (the SDKs do not retry a 400), 401 for a missing or wrong writeKey, 429 and 503 with
//! `Retry-After` (the SDKs retry those, and the stream's `messageId` dedupe absorbs the events
//! of a retried batch that had got through).
//!
//! Each event becomes a signal of source `segment` on the same path as every other: `type` set
//! from the path when the event has none, the writeKey removed, `receivedAt` added, and
//! `timestamp` corrected for the client's clock (`timestamp + (receivedAt - sentAt)`, as
//! Segment does), the client's own kept as `originalTimestamp`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use control::keys::{AuthError, Endpoint};
use serde::de::DeserializeSeed;
use serde_json::json;
use serde_json::value::RawValue;

use crate::accept::{Prepared, Via};
use crate::error::EdgeError;
use crate::signals::{self, TOO_MANY};
use crate::{body, clock, inspect, Edge};

pub const EVENT_TYPES: [&str; 6] = ["track", "identify", "page", "screen", "group", "alias"];
const WRITE_KEY_HEADER: &str = "x-write-key";

/// What a `/v1/...` path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// One event of this type.
    One(&'static str),
    Batch,
    Import,
}

fn call(path: &str) -> Option<Call> {
    Some(match path {
        "track" | "t" => Call::One("track"),
        "identify" | "i" => Call::One("identify"),
        "page" | "p" => Call::One("page"),
        "screen" | "s" => Call::One("screen"),
        "group" | "g" => Call::One("group"),
        "alias" | "a" => Call::One("alias"),
        "batch" | "b" => Call::Batch,
        "import" => Call::Import,
        _ => return None,
    })
}

/// `POST /v1/{call}`
pub async fn tracking(
    State(edge): State<Arc<Edge>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(call) = call(&path) else {
        let message = "no such Tracking API call; use /v1/track, identify, page, screen, group, alias, batch or import";
        return (StatusCode::NOT_FOUND, Json(json!({"error": "not_found", "message": message}))).into_response();
    };
    match handle(&edge, call, &headers, body).await {
        Ok(()) => (StatusCode::OK, Json(json!({"success": true}))).into_response(),
        Err(error) => refusal(error),
    }
}

/// As Segment answers: `{"code", "message"}` (what its SDKs read from a refusal, beside the
/// edge's own `error`), and anything too large is a 400, which the SDKs do not retry.
fn refusal(error: EdgeError) -> Response {
    let status = match error.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::BAD_REQUEST,
        status => status,
    };
    let body = json!({"success": false, "code": error.code(), "error": error.code(), "message": error.to_string()});
    let mut response = (status, Json(body)).into_response();
    error.set_headers(&mut response);
    response
}

async fn handle(edge: &Edge, call: Call, headers: &HeaderMap, body: Body) -> Result<(), EdgeError> {
    let limits = edge.tracking;
    let (limit, max_events, via) = match call {
        Call::One(_) => (limits.max_event_bytes, 1, Via::Tracking),
        Call::Batch => (limits.max_batch_bytes, limits.max_batch_events, Via::Tracking),
        Call::Import => (edge.max_bulk_body_bytes, edge.max_bulk_signals, Via::TrackingImport),
    };
    let bytes = body::read_raw(headers, body, limit).await?;
    let text = std::str::from_utf8(&bytes).map_err(|_| EdgeError::InvalidJson("the body is not UTF-8 JSON".into()))?;
    let request = match call {
        Call::One(kind) => Request::one(text, kind)?,
        Call::Batch | Call::Import => Request::batch(text, max_events)?,
    };
    let (key, secret) = write_key(headers, request.write_key.as_deref())?;
    let caller = edge.admit(&key, secret.as_deref(), Endpoint::Tracking).await?;
    let received = Received::now();
    let mut prepared = Vec::with_capacity(request.events.len());
    let checked: Result<(), EdgeError> = request.events.iter().enumerate().try_for_each(|(index, event)| {
        let size = event.size();
        if size > limits.max_event_bytes {
            return Err(EdgeError::InvalidPayload(format!(
                "event {index} is {size} bytes; at most {} per event (SIGSTAGE_TRACKING_MAX_EVENT_BYTES)",
                limits.max_event_bytes
            )));
        }
        let normalized = normalize_members(event, request.kind, request.sent_at.as_deref(), &received)
            .map_err(|problem| EdgeError::InvalidPayload(format!("event {index}: {problem}")))?;
        prepared.push(segment_signal(event, normalized)?);
        Ok(())
    });
    if let Err(error) = checked {
        edge.count_rejected(&caller, via, &error, request.events.len());
        return Err(error);
    }
    // Every event, or the first refusal: the SDKs retry a whole batch, and the stream dedupes
    // the events of it that got through on their messageId.
    match edge.produce(&caller, via, prepared).await.into_iter().find_map(Result::err) {
        None => Ok(()),
        Some(error) => Err(error),
    }
}

/// An event, normalized from its `members`, as a signal of source `segment`. The members were
/// read in the one pass over the request, so the checks every signal gets (depth, the fields the
/// edge reads) are made on them ([`inspect::inspect_members`]) rather than by parsing the
/// normalized event again: normalizing moves members, and adds only strings it wrote itself.
pub fn segment_signal(members: &Members<'_>, normalized: String) -> Result<Prepared, EdgeError> {
    let members = members.0.iter().map(|(key, value)| (key.as_ref(), *value));
    let inspected = inspect::inspect_members(members).map_err(signals::inspect_error)?;
    Ok(signals::prepare_inspected(Bytes::from(normalized), &inspected, Some("segment"), None))
}

/// The writeKey (and the key's secret): Basic auth's username (and password), else
/// `X-Write-Key` (and `X-Api-Secret`), else the body's `writeKey`.
fn write_key(headers: &HeaderMap, in_body: Option<&str>) -> Result<(String, Option<Vec<u8>>), EdgeError> {
    let secret_header = signals::secret(headers).map(<[u8]>::to_vec);
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic ")))
    {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or(EdgeError::Unauthorized(AuthError::Missing))?;
        let (key, password) = decoded.split_once(':').unwrap_or((&decoded, ""));
        if !key.is_empty() {
            let secret = if password.is_empty() { secret_header } else { Some(password.as_bytes().to_vec()) };
            return Ok((key.to_owned(), secret));
        }
    }
    let header_key = headers.get(WRITE_KEY_HEADER).and_then(|value| value.to_str().ok()).filter(|k| !k.is_empty());
    match header_key.or(in_body).filter(|key| !key.is_empty()) {
        Some(key) => Ok((key.to_owned(), secret_header)),
        None => Err(EdgeError::Unauthorized(AuthError::Missing)),
    }
}

/// A request's events, still raw, with what applies to all of them.
struct Request<'a> {
    /// Each event's members, read in the one pass over the body.
    events: Vec<Members<'a>>,
    /// The type the path gives its one event.
    kind: Option<&'static str>,
    sent_at: Option<Cow<'a, str>>,
    write_key: Option<Cow<'a, str>>,
}

impl<'a> Request<'a> {
    fn one(text: &'a str, kind: &'static str) -> Result<Self, EdgeError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let event = serde::Deserializer::deserialize_map(&mut deserializer, MembersVisitor)
            .and_then(|event| deserializer.end().map(|()| event))
            .map_err(|error| match error.classify() {
                serde_json::error::Category::Data => not_an_object("the body"),
                _ => invalid_json(error),
            })?;
        let write_key = event.string("writeKey");
        let sent_at = event.string("sentAt");
        Ok(Self { events: vec![event], kind: Some(kind), sent_at, write_key })
    }

    fn batch(text: &'a str, max: usize) -> Result<Self, EdgeError> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let envelope = BatchSeed { max }.deserialize(&mut deserializer).and_then(|e| deserializer.end().map(|()| e));
        let envelope = envelope.map_err(|error| match error.classify() {
            _ if error.to_string().starts_with(TOO_MANY) => EdgeError::TooManySignals { limit: max },
            serde_json::error::Category::Data => EdgeError::InvalidPayload(format!(
                "a batch must be an object {{\"batch\": [events...]}} of JSON objects: {error}"
            )),
            _ => invalid_json(error),
        })?;
        if envelope.batch.is_empty() {
            return Err(EdgeError::InvalidPayload("the batch holds no events".into()));
        }
        Ok(Self { events: envelope.batch, kind: None, sent_at: envelope.sent_at, write_key: envelope.write_key })
    }
}

fn invalid_json(error: serde_json::Error) -> EdgeError {
    EdgeError::InvalidJson(format!("the body is not valid JSON: {error}"))
}

fn not_an_object(what: &str) -> EdgeError {
    EdgeError::InvalidPayload(format!("{what} must be a JSON object (an event)"))
}

/// `{"batch": [...], "sentAt": …, "writeKey": …}`, the array bounded; other members skipped.
struct BatchSeed {
    max: usize,
}

struct Envelope<'a> {
    batch: Vec<Members<'a>>,
    sent_at: Option<Cow<'a, str>>,
    write_key: Option<Cow<'a, str>>,
}

impl<'de> DeserializeSeed<'de> for BatchSeed {
    type Value = Envelope<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for BatchSeed {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a \"batch\" array")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope { batch: Vec::new(), sent_at: None, write_key: None };
        let mut seen_batch = false;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "batch" => {
                    envelope.batch = map.next_value_seed(Events { max: self.max })?;
                    seen_batch = true;
                }
                "sentAt" => envelope.sent_at = map.next_value::<Option<Cow<'de, str>>>().unwrap_or(None),
                "writeKey" => envelope.write_key = map.next_value::<Option<Cow<'de, str>>>()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        if !seen_batch {
            return Err(serde::de::Error::missing_field("batch"));
        }
        Ok(envelope)
    }
}

/// An array of at most `max` events, each read as its [`Members`]: reading stops at the one
/// past `max`.
struct Events {
    max: usize,
}

impl<'de> DeserializeSeed<'de> for Events {
    type Value = Vec<Members<'de>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Events {
    type Value = Vec<Members<'de>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut events = Vec::new();
        while let Some(event) = seq.next_element_seed(MembersSeed)? {
            if events.len() == self.max {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            events.push(event);
        }
        Ok(events)
    }
}

/// An object's members in order, their values still raw.
pub struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(key, _)| key == name).map(|(_, value)| *value)
    }

    /// A member that is a JSON string, unescaped (borrowed when it has no escapes).
    fn string(&self, name: &str) -> Option<Cow<'a, str>> {
        let raw = self.get(name)?.get();
        match raw.strip_prefix('"').and_then(|rest| rest.strip_suffix('"')) {
            Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
            _ => serde_json::from_str::<Cow<'a, str>>(raw).ok(),
        }
    }

    /// The size of the object as JSON, without whitespace.
    fn size(&self) -> usize {
        2 + self.0.iter().map(|(key, value)| key.len() + value.get().len() + 4).sum::<usize>()
    }
}

struct MembersSeed;

impl<'de> DeserializeSeed<'de> for MembersSeed {
    type Value = Members<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> serde::de::Visitor<'de> for MembersVisitor {
    type Value = Members<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object (an event)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(map.size_hint().unwrap_or(16));
        while let Some((key, value)) = map.next_entry::<Cow<'de, str>, &'de RawValue>()? {
            members.push((key, value));
        }
        Ok(Members(members))
    }
}

/// An event's members, read from its JSON.
pub fn members(text: &str) -> Result<Members<'_>, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    serde::Deserializer::deserialize_map(&mut deserializer, MembersVisitor)
}

/// When a request was received, in epoch milliseconds and as Segment writes it.
pub struct Received {
    pub ms: i64,
    pub text: String,
}

impl Received {
    pub fn now() -> Self {
        Self::at(runtime::time::now_ms() as i64)
    }

    pub fn at(ms: i64) -> Self {
        Self { ms, text: clock::format(ms) }
    }
}

/// An event's JSON made ready to store: [`normalize_members`] of its members.
pub fn normalize(
    raw: &str,
    kind: Option<&str>,
    batch_sent_at: Option<&str>,
    received: &Received,
) -> Result<String, String> {
    let members = members(raw).map_err(|_| "an event must be a JSON object".to_owned())?;
    normalize_members(&members, kind, batch_sent_at, received)
}

/// The event made ready to store (see the module's documentation). `kind` is the path's type;
/// in a batch, each event must name its own.
pub fn normalize_members(
    members: &Members<'_>,
    kind: Option<&str>,
    batch_sent_at: Option<&str>,
    received: &Received,
) -> Result<String, String> {
    let kind = match kind {
        Some(kind) => Cow::Borrowed(kind),
        None => match members.string("type") {
            Some(kind) if EVENT_TYPES.contains(&kind.as_ref()) => kind,
            Some(kind) => return Err(format!("type {kind:?} is not one of {}", EVENT_TYPES.join(", "))),
            None => return Err(format!("no type; give one of {}", EVENT_TYPES.join(", "))),
        },
    };
    let own_sent_at = members.get("sentAt");
    let sent_at = members.string("sentAt").or(batch_sent_at.map(Cow::Borrowed));
    let timestamp = members.string("timestamp");
    // The client's clock, corrected by how far it was off when the request was sent.
    let parse = |text: &str| clock::parse_ms(text);
    let corrected = match (timestamp.as_deref().and_then(parse), sent_at.as_deref().and_then(parse)) {
        (Some(at), Some(sent)) => at.checked_add(received.ms - sent).filter(|ms| clock::WRITABLE_MS.contains(ms)),
        _ => None,
    };
    let mut out = String::with_capacity(members.size() + 160);
    out.push('{');
    let replaced = ["type", "writeKey", "receivedAt", "timestamp", "originalTimestamp", "sentAt"];
    for (key, value) in members.0.iter().filter(|(key, _)| !replaced.contains(&key.as_ref())) {
        push_member(&mut out, key, value.get());
    }
    push_text_member(&mut out, "type", &kind);
    push_text_member(&mut out, "receivedAt", &received.text);
    match (own_sent_at, batch_sent_at) {
        (Some(raw), _) => push_member(&mut out, "sentAt", raw.get()),
        (None, Some(batch)) => push_text_member(&mut out, "sentAt", batch),
        (None, None) => {}
    }
    match (&timestamp, corrected) {
        (Some(original), Some(corrected)) => {
            if out.len() > 1 {
                out.push(',');
            }
            out.push_str("\"timestamp\":\"");
            clock::push(&mut out, corrected);
            out.push('"');
            match members.get("originalTimestamp") {
                Some(raw) => push_member(&mut out, "originalTimestamp", raw.get()),
                None => push_text_member(&mut out, "originalTimestamp", original),
            }
        }
        (Some(_), None) => {
            push_member(&mut out, "timestamp", members.get("timestamp").map_or("null", RawValue::get));
            if let Some(raw) = members.get("originalTimestamp") {
                push_member(&mut out, "originalTimestamp", raw.get());
            }
        }
        (None, _) => push_text_member(&mut out, "timestamp", &received.text),
    }
    out.push('}');
    Ok(out)
}

fn push_text_member(out: &mut String, key: &str, text: &str) {
    if out.len() > 1 {
        out.push(',');
    }
    push_string(out, key);
    out.push(':');
    push_string(out, text);
}

fn push_member(out: &mut String, key: &str, raw_value: &str) {
    if out.len() > 1 {
        out.push(',');
    }
    push_string(out, key);
    out.push(':');
    out.push_str(raw_value);
}

/// `text` as a JSON string, without an allocation when it needs no escaping (the usual case).
fn push_string(out: &mut String, text: &str) {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        out.push_str(&json_string(text));
    } else {
        out.push('"');
        out.push_str(text);
        out.push('"');
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::InspectError;
    use serde_json::Value;

    fn received() -> Received {
        Received::at(clock::parse_ms("2026-11-24T12:00:10Z").expect("time"))
    }

    fn normalized(raw: &str, kind: Option<&str>, sent_at: Option<&str>) -> Value {
        serde_json::from_str(&normalize(raw, kind, sent_at, &received()).expect("normalizes")).expect("JSON")
    }

    #[test]
    fn the_clients_clock_is_corrected_by_its_skew_at_sending() {
        // The client's clock is 10 s behind: it sent at 12:00:00 by its clock, received at 12:00:10.
        let event = normalized(
            r#"{"type":"track","event":"Signed Up","timestamp":"2026-11-24T11:59:58Z","sentAt":"2026-11-24T12:00:00Z","writeKey":"k"}"#,
            None,
            None,
        );
        assert_eq!(event["timestamp"], "2026-11-24T12:00:08.000Z");
        assert_eq!(event["originalTimestamp"], "2026-11-24T11:59:58Z");
        assert_eq!(event["receivedAt"], "2026-11-24T12:00:10.000Z");
        assert_eq!(event["event"], "Signed Up");
        assert!(event.get("writeKey").is_none(), "the writeKey is an API key: never stored");
        // The batch's sentAt applies to events without their own.
        let batched =
            normalized(r#"{"type":"page","timestamp":"2026-11-24T11:59:59Z"}"#, None, Some("2026-11-24T12:00:00Z"));
        assert_eq!(batched["timestamp"], "2026-11-24T12:00:09.000Z");
        assert_eq!(batched["sentAt"], "2026-11-24T12:00:00Z");
    }

    #[test]
    fn events_checked_on_their_members_answer_as_a_second_parse_would() {
        let deep = |levels: usize| format!("{}1{}", "[".repeat(levels), "]".repeat(levels));
        let events = [
            r#"{"type":"track","messageId":"m","anonymousId":"a","context":{"ip":"203.0.113.9","traits":{"email":"Jo@Acme.io"}},"properties":{"plan":"growth"}}"#.to_owned(),
            r#"{"type":"identify","userId":42,"traits":{"em\u0061il":"jo@acme.io","name":"Jo"}}"#.to_owned(),
            r#"{"type":"track","anonymousId":"a","session_id":"s","properties":{"email":"not an email"}}"#.to_owned(),
            r#"{"type":"track","email":"jo\u0040acme.io","traits":"not an object","properties":{"email":"pa@acme.io"}}"#.to_owned(),
            r#"{"type":"page","userId":"u","properties":{"nested":{"email":"deeper@acme.io"}},"context":[1,2]}"#.to_owned(),
            format!(r#"{{"type":"track","anonymousId":"a","x":{}}}"#, deep(62)),
            format!(r#"{{"type":"track","anonymousId":"a","x":{}}}"#, deep(63)),
            format!(r#"{{"type":"track","anonymousId":"a","x":{}}}"#, deep(64)),
            format!(r#"{{"type":"track","anonymousId":"a","properties":{{"email":"jo@acme.io","x":{}}}}}"#, deep(61)),
            format!(r#"{{"type":"track","anonymousId":"a","properties":{{"plan":{}}}}}"#, deep(70)),
            // What a skim does not check: numbers out of range, lone surrogates.
            r#"{"type":"track","anonymousId":"a","x":1e400}"#.to_owned(),
            r#"{"type":"track","anonymousId":"a","properties":{"n":-2E999}}"#.to_owned(),
            format!(r#"{{"type":"track","anonymousId":"a","x":[{}]}}"#, "9".repeat(400)),
            r#"{"type":"track","anonymousId":"a","x":{"n":"\ud800"}}"#.to_owned(),
            r#"{"type":"track","anonymousId":"\udc00"}"#.to_owned(),
            r#"{"type":"track","anonymousId":"a","x":[1e10,2E-3,"4e3c-1e5"],"properties":{"id":"9e9"}}"#.to_owned(),
            // A member given twice: the last one answers; keys are compared unescaped.
            r#"{"type":"identify","userId":"u","traits":{"email":"a@acme.io"},"traits":{}}"#.to_owned(),
            r#"{"type":"identify","userId":"u","tr\u0061its":{"email":"a@acme.io"}}"#.to_owned(),
            r#"{"type":"identify","anonymousId":"a","anonymousId":"b","email":"x@acme.io","email":"nope"}"#.to_owned(),
            // context.traits is read a level shallower; the same answer either way.
            format!(r#"{{"type":"track","anonymousId":"a","context":{{"traits":{{"x":{}}}}}}}"#, deep(62)),
            format!(r#"{{"type":"track","anonymousId":"a","context":{{"traits":{{"x":{}}}}}}}"#, deep(63)),
        ];
        for event in &events {
            let members = members(event).expect("an object");
            let normalized =
                normalize_members(&members, None, Some("2026-11-24T12:00:01.000Z"), &received()).expect("ok");
            let parsed_again = crate::inspect::inspect(normalized.as_bytes());
            let read = crate::inspect::inspect_members(members.0.iter().map(|(key, value)| (key.as_ref(), *value)));
            match (parsed_again, read) {
                (Ok(again), Ok(read)) => assert_eq!(
                    (read.anonymous_id, read.user_id, read.session_id, read.message_id, read.email),
                    (again.anonymous_id, again.user_id, again.session_id, again.message_id, again.email),
                    "{event}"
                ),
                (Err(InspectError::InvalidJson(_)), Err(InspectError::InvalidJson(read))) => {
                    assert!(read.contains(" in member \""), "{event}: {read}");
                }
                (again, read) => panic!("{event}: parsed again {again:?}, from the members {read:?}"),
            }
        }
        // The top-level object is level 1: 63 levels below it are the most there may be; what a
        // skim lets through is refused as a full parse refuses it.
        let refused = [(6, false), (7, true), (10, true), (11, true), (12, true), (13, true), (14, true), (15, false)];
        for (event, deep_enough) in refused.map(|(n, refused)| (&events[n], refused)) {
            let members = members(event).expect("an object");
            let normalized = normalize_members(&members, None, None, &received()).expect("ok");
            assert_eq!(segment_signal(&members, normalized).is_err(), deep_enough, "{event}");
        }
    }

    #[test]
    fn types_come_from_the_path_or_the_event() {
        assert_eq!(normalized(r#"{"userId":"u"}"#, Some("identify"), None)["type"], "identify");
        assert_eq!(normalized(r#"{"type":"track","userId":"u"}"#, Some("screen"), None)["type"], "screen");
        let error = normalize(r#"{"userId":"u"}"#, None, None, &received()).expect_err("no type in a batch");
        assert!(error.contains("no type"), "{error}");
        let error = normalize(r#"{"type":"bogus"}"#, None, None, &received()).expect_err("unknown type");
        assert!(error.contains("not one of"), "{error}");
        assert!(normalize("[1]", Some("track"), None, &received()).is_err());
        // No timestamp: the receive time; no sentAt: the client's timestamp as it is.
        assert_eq!(normalized(r#"{"userId":"u"}"#, Some("track"), None)["timestamp"], "2026-11-24T12:00:10.000Z");
        let unsent = normalized(r#"{"timestamp":"2026-01-01T00:00:00Z"}"#, Some("track"), None);
        assert_eq!(unsent["timestamp"], "2026-01-01T00:00:00Z");
        // A correction that would leave the years RFC 3339 can write is not made.
        let far =
            normalized(r#"{"timestamp":"9999-12-31T23:59:59Z","sentAt":"2000-01-01T00:00:00Z"}"#, Some("track"), None);
        assert_eq!(far["timestamp"], "9999-12-31T23:59:59Z");
    }

    #[test]
    fn paths_map_to_calls() {
        assert_eq!(call("t"), Some(Call::One("track")));
        assert_eq!(call("screen"), Some(Call::One("screen")));
        assert_eq!(call("b"), Some(Call::Batch));
        assert_eq!(call("import"), Some(Call::Import));
        assert_eq!(call("x"), None);
    }
}

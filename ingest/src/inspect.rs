//! The cheap checks the edge needs to answer: is this one JSON object, which source sent it,
//! and does it name a lead. One pass over the bytes with `serde_json`, borrowing strings, keeping
//! only the handful of fields that matter and skipping the rest, counting depth as it goes:
//! nesting deeper than [`MAX_DEPTH`] is an ordinary error, never a stack overflow, and no
//! downstream parser ever meets it.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// What the edge learns from a signal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Inspected<'a> {
    pub kind: Option<Cow<'a, str>>,
    pub anonymous_id: Option<Cow<'a, str>>,
    pub user_id: Option<Cow<'a, str>>,
    /// A top-level `session_id` (Tracardi's collect API).
    pub session_id: Option<Cow<'a, str>>,
    pub message_id: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub start_time: Option<Cow<'a, str>>,
    /// The first email found at `email`, `traits.email`, `properties.email`,
    /// `context.traits.email`, in that order.
    pub email: Option<Cow<'a, str>>,
}

const SEGMENT_TYPES: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

impl Inspected<'_> {
    /// Segment (type, messageId and an anonymousId or userId), an activity object (title and
    /// startTime), or generic.
    pub fn detect_source(&self) -> &'static str {
        let segment_type = self.kind.as_deref().is_some_and(|kind| SEGMENT_TYPES.contains(&kind));
        if segment_type && self.message_id.is_some() && (self.anonymous_id.is_some() || self.user_id.is_some()) {
            "segment"
        } else if self.title.is_some() && self.start_time.is_some() {
            "activity"
        } else {
            "generic"
        }
    }

    /// Whether the signal names a lead; a signal that does not goes to cold storage.
    pub fn names_a_lead(&self) -> bool {
        self.email.is_some()
    }

    /// Who the signal is about, for the record key: its visitor as the stream sees it
    /// ([`schemas::person::visitor`]), else its email.
    pub fn identity(&self) -> Option<Cow<'_, str>> {
        schemas::person::visitor(self.anonymous_id.as_deref(), self.session_id.as_deref(), self.user_id.as_deref())
            .map(Cow::Borrowed)
            .or_else(|| self.email.as_deref().and_then(schemas::person::normalise_email).map(Cow::Owned))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InspectError {
    #[error("not valid JSON: {0}")]
    InvalidJson(String),
    #[error("a signal must be a JSON object, not {0}")]
    NotAnObject(&'static str),
}

/// Checks that `bytes` is exactly one JSON object and extracts what the edge needs.
pub fn inspect(bytes: &[u8]) -> Result<Inspected<'_>, InspectError> {
    // serde_json does not check UTF-8 inside strings it skips; check the whole body first.
    let text =
        std::str::from_utf8(bytes).map_err(|error| InspectError::InvalidJson(format!("body is not UTF-8: {error}")))?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let inspected = deserializer.deserialize_any(TopLevel).map_err(classify)?;
    deserializer.end().map_err(classify)?;
    inspected
}

/// [`inspect`] of an object whose top-level members were already read, as raw JSON that a skim
/// checked, in a pass over a larger body (the Tracking API's batch): the answer is the same,
/// without parsing the whole object again. The few members read by name are parsed on their
/// own, the rest only when their text could fail what a skim does not check
/// ([`surely_valid`]). `traits`, `properties` and `context` are parsed when their text could name
/// an email (it holds `email`, or a `\u` escape that could spell it) too; a later one of the
/// same name answers for it, as in [`inspect`].
pub fn inspect_members<'a>(
    members: impl IntoIterator<Item = (&'a str, &'a RawValue)>,
) -> Result<Inspected<'a>, InspectError> {
    let mut out = Inspected::default();
    let (mut traits_email, mut properties_email, mut context_email) = (None, None, None);
    for (key, value) in members {
        let raw = value.get();
        // Said of the member: a position in its own text would mislead.
        let in_member = |error: serde_json::Error| {
            let error = error.to_string();
            let what = error.split(" at line ").next().unwrap_or_default();
            InspectError::InvalidJson(format!("{what} in member {key:?}"))
        };
        let text = || serde_json::from_str::<Text<'a>>(raw).map(|text| text.0).map_err(in_member);
        // `traits`, `properties` and `context`: the email `read` finds, when worth a parse.
        let email_in = |read: fn(&'a str) -> serde_json::Result<Option<Cow<'a, str>>>| {
            let worth_a_parse = may_name_email(raw) || !surely_valid(raw);
            if worth_a_parse {
                read(raw).map_err(in_member)
            } else {
                Ok(None)
            }
        };
        match key {
            "type" => out.kind = text()?,
            "anonymousId" => out.anonymous_id = text()?,
            "userId" => out.user_id = text()?,
            "session_id" => out.session_id = text()?,
            "messageId" => out.message_id = text()?,
            "title" => out.title = text()?,
            "startTime" => out.start_time = text()?,
            "email" => out.email = found::<Email<'a>>(raw).map_err(in_member)?,
            "traits" => traits_email = email_in(found::<EmailIn<'a>>)?,
            "properties" => properties_email = email_in(found::<EmailIn<'a>>)?,
            "context" => context_email = email_in(found::<ContextTraitsEmail<'a>>)?,
            _ if surely_valid(raw) => {}
            _ => Skip { depth: NESTED }.deserialize(&mut serde_json::Deserializer::from_str(raw)).map_err(in_member)?,
        }
    }
    out.email = out.email.or(traits_email).or(properties_email).or(context_email);
    Ok(out)
}

/// The email a `T` finds in `raw`.
fn found<'a, T: Deserialize<'a> + Found<'a>>(raw: &'a str) -> serde_json::Result<Option<Cow<'a, str>>> {
    serde_json::from_str::<T>(raw).map(Found::found)
}

/// Whether a member's text, which a skim found to be JSON, surely passes the checks a full parse
/// makes and the skim does not: the depth limit (a member value is level 2, so fewer than
/// MAX_DEPTH - 1 containers cannot break it, whichever member reads them), surrogates in `\u`
/// escapes, and the range of numbers (one with an exponent, or of 300 digits or more, may not
/// fit). Conservative: a string that looks like a number's exponent (`"4e3c"`) only costs a parse.
fn surely_valid(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    let digit_before = |at: usize| at > 0 && bytes[at - 1].is_ascii_digit();
    bytes.iter().filter(|&&b| b == b'{' || b == b'[').count() < MAX_DEPTH - 1
        && !memchr::memchr2_iter(b'e', b'E', bytes).any(digit_before)
        && !has_unicode_escape(bytes)
        && (bytes.len() < 300 || longest_digit_run(bytes) < 300)
}

/// Whether `raw` holds `email`, or a `\u` escape that could spell it.
fn may_name_email(raw: &str) -> bool {
    static EMAIL: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new("email"));
    EMAIL.find(raw.as_bytes()).is_some() || has_unicode_escape(raw.as_bytes())
}

fn has_unicode_escape(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', bytes).any(|at| bytes.get(at + 1) == Some(&b'u'))
}

fn longest_digit_run(bytes: &[u8]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for byte in bytes {
        run = if byte.is_ascii_digit() { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Deepest nesting of objects and arrays a signal may have. Real payloads stay under 10.
pub const MAX_DEPTH: usize = 64;

fn classify(error: serde_json::Error) -> InspectError {
    InspectError::InvalidJson(error.to_string())
}

/// Accepts any JSON value so that a non-object answers with what it was, not a parse error.
struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = Result<Inspected<'de>, InspectError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Inspected::default();
        let (mut traits_email, mut properties_email, mut context_email) = (None, None, None);
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "type" => out.kind = map.next_value::<Text<'de>>()?.0,
                "anonymousId" => out.anonymous_id = map.next_value::<Text<'de>>()?.0,
                "userId" => out.user_id = map.next_value::<Text<'de>>()?.0,
                "session_id" => out.session_id = map.next_value::<Text<'de>>()?.0,
                "messageId" => out.message_id = map.next_value::<Text<'de>>()?.0,
                "title" => out.title = map.next_value::<Text<'de>>()?.0,
                "startTime" => out.start_time = map.next_value::<Text<'de>>()?.0,
                "email" => out.email = map.next_value::<Email<'de>>()?.0,
                "traits" => traits_email = map.next_value::<EmailIn<'de>>()?.0,
                "properties" => properties_email = map.next_value::<EmailIn<'de>>()?.0,
                "context" => context_email = map.next_value::<ContextTraitsEmail<'de>>()?.0,
                _ => map.next_value_seed(Skip { depth: 2 })?,
            }
        }
        out.email = out.email.or(traits_email).or(properties_email).or(context_email);
        Ok(Ok(out))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element_seed(Skip { depth: 2 })?.is_some() {}
        Ok(Err(InspectError::NotAnObject("an array")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(InspectError::NotAnObject("a string")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(InspectError::NotAnObject("a boolean")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(InspectError::NotAnObject("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(InspectError::NotAnObject("a number")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(InspectError::NotAnObject("a number")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(InspectError::NotAnObject("null")))
    }
}

/// The depth the few fields read by name live at (`traits`, `properties`, `context.traits`),
/// counted as one level for the depth limit.
const NESTED: usize = 2;

/// Skips a value of any shape at nesting level `depth` (the top-level object is 1), refusing
/// anything nested deeper than [`MAX_DEPTH`]. Unlike `IgnoredAny`, which serde_json skips
/// without counting depth, every level passes through here.
#[derive(Clone, Copy)]
struct Skip {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Skip {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let inner = self.deeper()?;
        while map.next_key::<IgnoredAny>()?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

impl Skip {
    /// The skipper for the children of a container at this level.
    fn deeper<E: de::Error>(self) -> Result<Skip, E> {
        if self.depth > MAX_DEPTH {
            return Err(E::custom(format_args!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Skip { depth: self.depth + 1 })
    }
}

/// An object key, borrowed from the input unless it holds escapes. (serde's own `Cow<str>`
/// always allocates.)
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(value)))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(value.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// A string (borrowed when unescaped) or an integer id as text; any other value is skipped.
struct Text<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Text(Some(value).filter(|v| !v.is_empty()).map(Cow::Borrowed)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Text(Some(value).filter(|v| !v.is_empty()).map(|v| Cow::Owned(v.to_owned()))))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Text(Some(Cow::Owned(value.to_string()))))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Text(None))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip { depth: NESTED }.visit_seq(seq).map(|()| Text(None))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Skip { depth: NESTED }.visit_map(map).map(|()| Text(None))
    }
}

/// A string that looks like an email address (something@something), else nothing.
struct Email<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for Email<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = Text::deserialize(deserializer)?.0;
        Ok(Email(text.filter(|value| looks_like_email(value))))
    }
}

fn looks_like_email(value: &str) -> bool {
    schemas::person::normalise_email(value).is_some()
}

/// The `email` field of an object (`traits`, `properties`); nothing when it is not an object.
struct EmailIn<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for EmailIn<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldOf::<Email<'de>>::new("email")).map(EmailIn)
    }
}

/// `context.traits.email`.
struct ContextTraitsEmail<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for ContextTraitsEmail<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldOf::<EmailIn<'de>>::new("traits")).map(ContextTraitsEmail)
    }
}

/// The email an `Email` or `EmailIn` found.
trait Found<'a> {
    fn found(self) -> Option<Cow<'a, str>>;
}

impl<'a> Found<'a> for Email<'a> {
    fn found(self) -> Option<Cow<'a, str>> {
        self.0
    }
}

impl<'a> Found<'a> for EmailIn<'a> {
    fn found(self) -> Option<Cow<'a, str>> {
        self.0
    }
}

impl<'a> Found<'a> for ContextTraitsEmail<'a> {
    fn found(self) -> Option<Cow<'a, str>> {
        self.0
    }
}

/// Visits an object, reading `field` as a `T` and skipping every other field; any value that
/// is not an object yields nothing.
struct FieldOf<T> {
    field: &'static str,
    inner: PhantomData<T>,
}

impl<T> FieldOf<T> {
    fn new(field: &'static str) -> Self {
        Self { field, inner: PhantomData }
    }
}

impl<'de, T: Deserialize<'de> + Found<'de>> Visitor<'de> for FieldOf<T> {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Skip { depth: NESTED }.visit_seq(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if key == self.field {
                found = map.next_value::<T>()?.found();
            } else {
                map.next_value_seed(Skip { depth: NESTED + 1 })?;
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_detected_from_real_shaped_payloads() {
        let cases: [(&str, &str); 7] = [
            (r#"{"email": "test@example.com", "event": "test"}"#, "generic"),
            (
                r#"{"type":"track","event":"Form Submitted","anonymousId":"a1","messageId":"m1","properties":{"form_name":"demo"}}"#,
                "segment",
            ),
            (r#"{"type":"identify","userId":42,"messageId":"m2","traits":{"email":"x@y.io"}}"#, "segment"),
            (
                r#"{"type":"page","anonymousId":"a1","messageId":"m3","properties":{"url":"https://x/pricing"}}"#,
                "segment",
            ),
            (r#"{"type":"track","anonymousId":"a1"}"#, "generic"),
            (r#"{"title":"Call","startTime":"2024-08-03T11:30:00Z"}"#, "activity"),
            (r#"{"type":"unknown","anonymousId":"a1","messageId":"m"}"#, "generic"),
        ];
        for (body, source) in cases {
            assert_eq!(inspect(body.as_bytes()).expect(body).detect_source(), source, "{body}");
        }
    }

    #[test]
    fn email_is_found_where_the_mapping_seed_looks() {
        let cases: [(&str, Option<&str>); 9] = [
            (r#"{"email":"a@x.io"}"#, Some("a@x.io")),
            (r#"{"traits":{"email":"b@x.io"}}"#, Some("b@x.io")),
            (r#"{"properties":{"email":"c@x.io","other":{"email":"no@x.io"}}}"#, Some("c@x.io")),
            (r#"{"context":{"traits":{"email":"d@x.io"}}}"#, Some("d@x.io")),
            (r#"{"context":{"page":{"email":"no@x.io"}}}"#, None),
            (r#"{"traits":"e@x.io"}"#, None),
            (r#"{"email":""}"#, None),
            (r#"{"email":"not-an-email"}"#, None),
            (r#"{"email":"a@x.io"}"#, Some("a@x.io")),
        ];
        for (body, email) in cases {
            let inspected = inspect(body.as_bytes()).expect(body);
            assert_eq!(inspected.email.as_deref(), email, "{body}");
            assert_eq!(inspected.names_a_lead(), email.is_some(), "{body}");
        }
    }

    #[test]
    fn identity_prefers_anonymous_id_then_session_then_user_id_then_email() {
        let cases: [(&str, Option<&str>); 7] = [
            (r#"{"anonymousId":"a","userId":"u","email":"E@x.io"}"#, Some("a")),
            (r#"{"anonymousId":"undefined","session_id":"s","userId":"u"}"#, Some("s")),
            (r#"{"anonymousId":"null","userId":"0","email":"E@x.io"}"#, Some("e@x.io")),
            (r#"{"userId":7,"email":"E@x.io"}"#, Some("7")),
            (r#"{"traits":{"email":" E@X.io "}}"#, Some("e@x.io")),
            (r#"{"event":"x"}"#, None),
            (r#"{"anonymousId":"[object Object]"}"#, None),
        ];
        for (body, identity) in cases {
            assert_eq!(inspect(body.as_bytes()).expect(body).identity().as_deref(), identity, "{body}");
        }
    }

    #[test]
    fn bad_input_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000) + &"]".repeat(100_000);
        let deep_object = r#"{"a":"#.repeat(100_000) + "1" + &"}".repeat(100_000);
        let deep_inside = format!(r#"{{"email":"a@b.c","x":{}{}}}"#, "[".repeat(65), "]".repeat(65));
        let not_deep = format!(r#"{{"x":"{}","y":{}{}}}"#, "[".repeat(1000), "[".repeat(63), "]".repeat(63));
        assert!(inspect(not_deep.as_bytes()).is_ok(), "brackets inside strings do not count");
        let cases: Vec<(&[u8], &str)> = vec![
            (b"", "not valid JSON"),
            (b"{", "not valid JSON"),
            (b"{\"a\":1} trailing", "not valid JSON"),
            (b"[1,2]", "not an array"),
            (b"\"text\"", "not a string"),
            (b"null", "not null"),
            (b"{\"a\":\"\xff\"}", "not valid JSON"),
            (deep.as_bytes(), "nested deeper than 64 levels"),
            (deep_object.as_bytes(), "nested deeper than 64 levels"),
            (deep_inside.as_bytes(), "nested deeper than 64 levels"),
        ];
        for (body, expected) in cases {
            let message = inspect(body).expect_err(expected).to_string();
            assert!(message.contains(expected), "{message}");
        }
    }
}

//! TrailSpark's signal-staging endpoints: one signal (source detected or named), a batch, and
//! bulk (historical lane, JSON or NDJSON).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use control::keys::Endpoint;
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::accept::{Accepted, Prepared, Via};
use crate::body::{self, Format};
use crate::error::EdgeError;
use crate::gate::Caller;
use crate::inspect::{inspect, InspectError, Inspected};
use crate::Edge;

pub const MESSAGE: &str = "Signal received and queued for processing";
const SECRET_HEADER: &str = "x-api-secret";
const SOURCE_HEADER: &str = "x-source";

/// `POST /api/signal-staging/webhook/{apiKey}`
pub async fn webhook(State(edge): State<Arc<Edge>>, Path(key): Path<String>, request: Parts, body: Body) -> Response {
    single(&edge, &key, None, &request, body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/signal-staging/webhook/{source}/{apiKey}` and `.../webhook/{apiKey}/batch`.
pub async fn webhook_with_source_or_batch(
    State(edge): State<Arc<Edge>>,
    Path((first, second)): Path<(String, String)>,
    request: Parts,
    body: Body,
) -> Response {
    let result = if second == "batch" {
        many(&edge, &first, Via::Batch, &request, body).await
    } else {
        single(&edge, &second, Some(&first), &request, body).await
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/signal-staging/bulk/{apiKey}`
pub async fn bulk(State(edge): State<Arc<Edge>>, Path(key): Path<String>, request: Parts, body: Body) -> Response {
    many(&edge, &key, Via::Bulk, &request, body).await.unwrap_or_else(IntoResponse::into_response)
}

pub fn secret(headers: &HeaderMap) -> Option<&[u8]> {
    headers.get(SECRET_HEADER).map(|value| value.as_bytes())
}

/// The source named by `X-Source` (wins) or the path, validated and lower-cased.
pub fn source_hint(headers: &HeaderMap, path_source: Option<&str>) -> Result<Option<String>, EdgeError> {
    let named = match headers.get(SOURCE_HEADER) {
        Some(value) => Some(value.to_str().unwrap_or("\u{fffd}")),
        None => path_source,
    };
    let Some(named) = named else { return Ok(None) };
    let valid = !named.is_empty()
        && named.len() <= 64
        && named.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !valid {
        return Err(EdgeError::InvalidPayload(format!(
            "source {named:?} is not valid: use 1-64 letters, digits, '_', '-' or '.'"
        )));
    }
    Ok(Some(named.to_ascii_lowercase()))
}

/// Checks one signal's bytes and prepares it for production.
/// The source is the hint (`X-Source` or the path) when there is one, else the endpoint's own
/// (`endpoint_source`: collect and activity endpoints), else the detected one.
pub fn prepare(
    payload: Bytes,
    hint: Option<&str>,
    endpoint_source: Option<&'static str>,
) -> Result<Prepared, EdgeError> {
    let inspected = inspect(&payload).map_err(inspect_error)?;
    // The payload goes in once `inspected`, which borrows it, is done with (a clone of these
    // bytes would allocate).
    let prepared = prepare_inspected(Bytes::new(), &inspected, hint, endpoint_source);
    Ok(Prepared { payload, ..prepared })
}

/// [`prepare`] of a signal whose checks were made already, answering `inspected`.
pub fn prepare_inspected(
    payload: Bytes,
    inspected: &Inspected<'_>,
    hint: Option<&str>,
    endpoint_source: Option<&'static str>,
) -> Prepared {
    let source = hint.or(endpoint_source).unwrap_or_else(|| inspected.detect_source()).to_owned();
    let cold_storage = !inspected.names_a_lead();
    let identity = inspected.identity().map(|identity| identity.into_owned());
    Prepared { payload, source, hinted: hint.is_some(), cold_storage, identity }
}

/// The answer to a signal that failed its checks.
pub fn inspect_error(error: InspectError) -> EdgeError {
    match error {
        InspectError::InvalidJson(_) => EdgeError::InvalidJson(format!("the signal is {error}")),
        InspectError::NotAnObject(_) => EdgeError::InvalidPayload(error.to_string()),
    }
}

/// The 202 of a single signal, fields in the order of the seed's example.
#[derive(Serialize)]
struct AcceptedBody<'a> {
    id: u64,
    message: &'static str,
    source: &'a str,
    cold_storage: bool,
}

pub fn accepted_response(accepted: Accepted) -> Response {
    let body = AcceptedBody {
        id: accepted.id,
        message: MESSAGE,
        source: &accepted.source,
        cold_storage: accepted.cold_storage,
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// Produces one checked signal and answers for it; a signal that failed its checks is counted
/// and refused.
pub async fn answer_one(
    edge: &Edge,
    caller: &Caller,
    via: Via,
    checked: Result<Prepared, EdgeError>,
) -> Result<Response, EdgeError> {
    let prepared = checked.inspect_err(|error| edge.count_rejected(caller, via, error, 1))?;
    let answer = edge.produce(caller, via, vec![prepared]).await.pop();
    answer.expect("one answer per signal").map(accepted_response)
}

async fn single(
    edge: &Edge,
    key: &str,
    path_source: Option<&str>,
    request: &Parts,
    body: Body,
) -> Result<Response, EdgeError> {
    let headers = &request.headers;
    let caller = edge.admit(key, secret(headers), Endpoint::SignalStaging).await?;
    let checked = async {
        let hint = source_hint(headers, path_source)?;
        let (bytes, _) = body::read(headers, body, edge.max_body_bytes, false).await?;
        edge.verify(&caller, request, &bytes)?;
        prepare(bytes, hint.as_deref(), None)
    }
    .await;
    answer_one(edge, &caller, Via::Webhook, checked).await
}

/// Splits a batch or bulk body into its signals' bytes, without copying them; more than `max`
/// signals is refused before anything is kept per signal beyond `max`.
fn split(bytes: &Bytes, format: Format, max: usize) -> Result<Vec<Bytes>, EdgeError> {
    let too_many = || EdgeError::TooManySignals { limit: max };
    match format {
        Format::NdJson => {
            let mut signals = Vec::new();
            for line in bytes.split(|&b| b == b'\n').map(|line| line.trim_ascii()).filter(|line| !line.is_empty()) {
                if signals.len() == max {
                    return Err(too_many());
                }
                signals.push(bytes.slice_ref(line));
            }
            Ok(signals)
        }
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_slice(bytes);
            let parsed = match bytes.trim_ascii_start().first() {
                Some(b'[') => Bounded { max }.deserialize(&mut deserializer),
                Some(b'{') => Wrapped { max }.deserialize(&mut deserializer),
                _ => serde::de::IgnoredAny::deserialize(&mut deserializer).map(|_| Vec::new()),
            }
            .and_then(|signals| deserializer.end().map(|()| signals));
            let raws = parsed.map_err(|error| match error.classify() {
                _ if error.to_string().starts_with(TOO_MANY) => too_many(),
                serde_json::error::Category::Data => EdgeError::InvalidPayload(format!(
                    "a batch must be a JSON array of signals or an object {{\"signals\": [...]}}: {error}"
                )),
                _ => EdgeError::InvalidJson(format!("body is not valid JSON: {error}")),
            })?;
            if raws.len() > max {
                return Err(too_many());
            }
            Ok(raws.into_iter().map(|raw| bytes.slice_ref(raw.get().as_bytes())).collect())
        }
    }
}

/// The `{"signals": [...]}` form of a batch, its array [`Bounded`] (other members are skipped).
struct Wrapped {
    max: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Wrapped {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Wrapped {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with a \"signals\" array")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut signals = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "signals" {
                signals = Some(map.next_value_seed(Bounded { max: self.max })?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        signals.ok_or_else(|| serde::de::Error::missing_field("signals"))
    }
}

/// The start of the error a [`Bounded`] array stops with.
pub(crate) const TOO_MANY: &str = "more signals than allowed";

/// A JSON array of at most `max` signals: reading stops at the one past `max`.
pub(crate) struct Bounded {
    pub max: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Bounded {
    type Value = Vec<&'de RawValue>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded {
    type Value = Vec<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of signals")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut signals = Vec::new();
        while let Some(signal) = seq.next_element::<&'de RawValue>()? {
            if signals.len() == self.max {
                return Err(serde::de::Error::custom(TOO_MANY));
            }
            signals.push(signal);
        }
        Ok(signals)
    }
}

async fn many(edge: &Edge, key: &str, via: Via, request: &Parts, body: Body) -> Result<Response, EdgeError> {
    let headers = &request.headers;
    let caller = edge.admit(key, secret(headers), Endpoint::SignalStaging).await?;
    let (limit, ndjson, max_signals) = match via {
        Via::Bulk => (edge.max_bulk_body_bytes, true, edge.max_bulk_signals),
        _ => (edge.max_body_bytes, false, edge.max_batch_signals),
    };
    let checked = async {
        let hint = source_hint(headers, None)?;
        let (bytes, format) = body::read(headers, body, limit, ndjson).await?;
        edge.verify(&caller, request, &bytes)?;
        let signals = split(&bytes, format, max_signals)?;
        if signals.is_empty() {
            return Err(EdgeError::InvalidPayload("the batch holds no signals".into()));
        }
        Ok((hint, signals))
    }
    .await;
    let (hint, signals) = checked.inspect_err(|error| edge.count_rejected(&caller, via, error, 1))?;

    let total = signals.len();
    let mut results: Vec<Option<Result<Accepted, EdgeError>>> = Vec::with_capacity(total);
    let mut valid = Vec::with_capacity(total);
    for payload in signals {
        match prepare(payload, hint.as_deref(), None) {
            Ok(prepared) => {
                valid.push(prepared);
                results.push(None);
            }
            Err(error) => {
                edge.count_rejected(&caller, via, &error, 1);
                results.push(Some(Err(error)));
            }
        }
    }
    let mut produced = edge.produce(&caller, via, valid).await.into_iter();
    let results: Vec<Result<Accepted, EdgeError>> = results
        .into_iter()
        .map(|slot| slot.unwrap_or_else(|| produced.next().expect("one answer per valid signal")))
        .collect();
    Ok(batch_response(results))
}

#[derive(Serialize)]
struct BatchBody<'a> {
    message: &'static str,
    accepted: usize,
    rejected: usize,
    results: Vec<SignalResult<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum SignalResult<'a> {
    Accepted { index: usize, id: u64, source: &'a str, cold_storage: bool },
    Rejected { index: usize, error: &'static str, message: String },
}

/// 202 with counts and one entry per signal when any was accepted; otherwise the status of
/// the first refusal (so a client's retry logic sees 429/503 when nothing got through).
fn batch_response(results: Vec<Result<Accepted, EdgeError>>) -> Response {
    let accepted = results.iter().filter(|result| result.is_ok()).count();
    let first_error = results.iter().find_map(|result| result.as_ref().err());
    let status = match first_error {
        Some(error) if accepted == 0 => error.status(),
        _ => StatusCode::ACCEPTED,
    };
    let retry_after = results.iter().find_map(|result| result.as_ref().err().and_then(EdgeError::retry_after_s));
    let body = BatchBody {
        message: if accepted > 0 { MESSAGE } else { "No signal was accepted" },
        accepted,
        rejected: results.len() - accepted,
        results: results
            .iter()
            .enumerate()
            .map(|(index, result)| match result {
                Ok(ok) => {
                    SignalResult::Accepted { index, id: ok.id, source: &ok.source, cold_storage: ok.cold_storage }
                }
                Err(error) => SignalResult::Rejected { index, error: error.code(), message: error.to_string() },
            })
            .collect(),
    };
    let mut response = (status, Json(body)).into_response();
    if let (false, Some(seconds)) = (status == StatusCode::ACCEPTED, retry_after) {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.max(1).into());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(body: &str, format: Format, max: usize) -> Result<usize, &'static str> {
        split(&Bytes::from(body.to_owned()), format, max).map(|signals| signals.len()).map_err(|error| error.code())
    }

    #[test]
    fn more_signals_than_allowed_are_refused_whatever_the_form() {
        let lines = "{}\n".repeat(5);
        assert_eq!(count(&lines, Format::NdJson, 5), Ok(5));
        assert_eq!(count(&lines, Format::NdJson, 4), Err("too_many_signals"));
        let array = format!("[{}{{}}]", "{},".repeat(4));
        assert_eq!(count(&array, Format::Json, 5), Ok(5));
        assert_eq!(count(&array, Format::Json, 4), Err("too_many_signals"));
        let wrapped = format!(r#"{{"source":"x","signals":{array}}}"#);
        assert_eq!(count(&wrapped, Format::Json, 5), Ok(5));
        assert_eq!(count(&wrapped, Format::Json, 4), Err("too_many_signals"));
        assert_eq!(count(r#"{"other":[]}"#, Format::Json, 5), Err("invalid_payload"));
        assert_eq!(count("[{}] trailing", Format::Json, 5), Err("invalid_json"));
        assert_eq!(count("[{},", Format::Json, 5), Err("invalid_json"));
    }
}

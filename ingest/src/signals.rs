//! TrailSpark's signal-staging endpoints: one signal (source detected or named), a batch, and
//! bulk (historical lane, JSON or NDJSON).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use common::control::keys::Endpoint;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::accept::{Accepted, Prepared, Via};
use crate::body::{self, Format};
use crate::control::Caller;
use crate::error::EdgeError;
use crate::inspect::{inspect, InspectError};
use crate::Edge;

pub const MESSAGE: &str = "Signal received and queued for processing";
const SECRET_HEADER: &str = "x-api-secret";
const SOURCE_HEADER: &str = "x-source";

/// `POST /api/signal-staging/webhook/{apiKey}`
pub async fn webhook(
    State(edge): State<Arc<Edge>>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    single(&edge, &key, None, &headers, body).await.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/signal-staging/webhook/{source}/{apiKey}` and `.../webhook/{apiKey}/batch`.
pub async fn webhook_with_source_or_batch(
    State(edge): State<Arc<Edge>>,
    Path((first, second)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = if second == "batch" {
        many(&edge, &first, Via::Batch, &headers, body).await
    } else {
        single(&edge, &second, Some(&first), &headers, body).await
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/signal-staging/bulk/{apiKey}`
pub async fn bulk(State(edge): State<Arc<Edge>>, Path(key): Path<String>, headers: HeaderMap, body: Body) -> Response {
    many(&edge, &key, Via::Bulk, &headers, body).await.unwrap_or_else(IntoResponse::into_response)
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
    let inspected = inspect(&payload).map_err(|error| match error {
        InspectError::InvalidJson(_) => EdgeError::InvalidJson(format!("the signal is {error}")),
        InspectError::NotAnObject(_) => EdgeError::InvalidPayload(error.to_string()),
    })?;
    let source = hint.or(endpoint_source).unwrap_or_else(|| inspected.detect_source()).to_owned();
    let cold_storage = !inspected.names_a_lead();
    let identity = inspected.identity().map(|identity| identity.into_owned());
    Ok(Prepared { payload, source, hinted: hint.is_some(), cold_storage, identity })
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
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, EdgeError> {
    let caller = edge.admit(key, secret(headers), Endpoint::SignalStaging)?;
    let checked = async {
        let hint = source_hint(headers, path_source)?;
        let (bytes, _) = body::read(headers, body, edge.max_body_bytes, false).await?;
        prepare(bytes, hint.as_deref(), None)
    }
    .await;
    answer_one(edge, &caller, Via::Webhook, checked).await
}

/// The `{"signals": [...]}` form of a batch.
#[derive(Deserialize)]
struct Wrapped<'a> {
    #[serde(borrow)]
    signals: Vec<&'a RawValue>,
}

/// Splits a batch or bulk body into its signals' bytes, without copying them.
fn split(bytes: &Bytes, format: Format) -> Result<Vec<Bytes>, EdgeError> {
    match format {
        Format::NdJson => Ok(bytes
            .split(|&b| b == b'\n')
            .map(|line| line.trim_ascii())
            .filter(|line| !line.is_empty())
            .map(|line| bytes.slice_ref(line))
            .collect()),
        Format::Json => {
            let parsed = match bytes.trim_ascii_start().first() {
                Some(b'[') => serde_json::from_slice::<Vec<&RawValue>>(bytes),
                Some(b'{') => serde_json::from_slice::<Wrapped<'_>>(bytes).map(|wrapped| wrapped.signals),
                _ => serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map(|_| Vec::new()),
            };
            let raws = parsed.map_err(|error| match error.classify() {
                serde_json::error::Category::Data => EdgeError::InvalidPayload(format!(
                    "a batch must be a JSON array of signals or an object {{\"signals\": [...]}}: {error}"
                )),
                _ => EdgeError::InvalidJson(format!("body is not valid JSON: {error}")),
            })?;
            Ok(raws.into_iter().map(|raw| bytes.slice_ref(raw.get().as_bytes())).collect())
        }
    }
}

async fn many(edge: &Edge, key: &str, via: Via, headers: &HeaderMap, body: Body) -> Result<Response, EdgeError> {
    let caller = edge.admit(key, secret(headers), Endpoint::SignalStaging)?;
    let (limit, ndjson) = match via {
        Via::Bulk => (edge.max_bulk_body_bytes, true),
        _ => (edge.max_body_bytes, false),
    };
    let checked = async {
        let hint = source_hint(headers, None)?;
        let (bytes, format) = body::read(headers, body, limit, ndjson).await?;
        let signals = split(&bytes, format)?;
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

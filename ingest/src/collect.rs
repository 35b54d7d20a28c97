//! Tracardi's collect API: `GET|POST /collect/{event_type}/{source_id}[/{session_id}]`. The
//! source id is an API key of the org; properties come from the JSON body or the query string;
//! the session id ties the event to the visitor (it becomes the record's identity).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use control::keys::Endpoint;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::accept::Via;
use crate::error::EdgeError;
use crate::signals::{answer_one, prepare, secret, source_hint};
use crate::{body, Edge};

pub const SOURCE: &str = "tracardi";

/// The signal the edge writes for a collect call.
#[derive(Serialize)]
struct CollectSignal<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    event_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    properties: Properties<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Properties<'a> {
    Body(&'a RawValue),
    Query(Map<String, Value>),
}

pub async fn collect(
    State(edge): State<Arc<Edge>>,
    Path((event_type, source_id)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&edge, &event_type, &source_id, None, query.as_deref(), &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub async fn collect_session(
    State(edge): State<Arc<Edge>>,
    Path((event_type, source_id, session_id)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    handle(&edge, &event_type, &source_id, Some(&session_id), query.as_deref(), &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(
    edge: &Edge,
    event_type: &str,
    source_id: &str,
    session_id: Option<&str>,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, EdgeError> {
    let caller = edge.admit(source_id, secret(headers), Endpoint::Collect).await?;
    let checked = async {
        let hint = source_hint(headers, None)?;
        let bytes = body::read_raw(headers, body, edge.max_body_bytes).await?;
        let payload = build(event_type, session_id, query, &bytes, headers)?;
        let mut prepared = prepare(payload, hint.as_deref(), Some(SOURCE))?;
        if let Some(session_id) = session_id {
            prepared.identity = Some(session_id.to_owned());
        }
        Ok(prepared)
    }
    .await;
    answer_one(edge, &caller, Via::Collect, checked).await
}

fn build(
    event_type: &str,
    session_id: Option<&str>,
    query: Option<&str>,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<Bytes, EdgeError> {
    if event_type.is_empty() || event_type.len() > 128 {
        return Err(EdgeError::InvalidPayload("event type must be 1-128 characters".into()));
    }
    let raw_body;
    let properties = if body.iter().all(u8::is_ascii_whitespace) {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|error| EdgeError::InvalidPayload(format!("query string is not valid: {error}")))?;
        Properties::Query(pairs.into_iter().map(|(name, value)| (name, Value::String(value))).collect())
    } else {
        let json_type = headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
        if !json_type {
            return Err(EdgeError::UnsupportedMediaType("a collect body must be sent as application/json".into()));
        }
        raw_body = serde_json::from_slice::<&RawValue>(body)
            .map_err(|error| EdgeError::InvalidJson(format!("body is not valid JSON: {error}")))?;
        if !raw_body.get().starts_with('{') {
            return Err(EdgeError::InvalidPayload("collect properties must be a JSON object".into()));
        }
        Properties::Body(raw_body)
    };
    let signal = CollectSignal { kind: "collect", event_type, session_id, properties };
    serde_json::to_vec(&signal)
        .map(Bytes::from)
        .map_err(|error| EdgeError::InvalidPayload(format!("cannot encode the signal: {error}")))
}

//! Activity webhooks: `POST /webhooks/ingress/{token}` takes one Activity object (title and an
//! ISO 8601 startTime required, the other fields typed); a 400 names every bad field.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use control::keys::Endpoint;
use serde_json::{Map, Value};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::OffsetDateTime;

use crate::accept::Via;
use crate::error::{EdgeError, FieldError};
use crate::signals::{answer_one, prepare, secret, source_hint};
use crate::{body, Edge};

pub const SOURCE: &str = "activity";

pub async fn ingress(State(edge): State<Arc<Edge>>, Path(token): Path<String>, request: Parts, body: Body) -> Response {
    handle(&edge, &token, &request, body).await.unwrap_or_else(IntoResponse::into_response)
}

async fn handle(edge: &Edge, token: &str, request: &Parts, body: Body) -> Result<Response, EdgeError> {
    let headers = &request.headers;
    let caller = edge.admit(token, secret(headers), Endpoint::Ingress).await?;
    let checked = async {
        let hint = source_hint(headers, None)?;
        let (bytes, _) = body::read(headers, body, edge.max_body_bytes, false).await?;
        edge.verify(&caller, request, &bytes)?;
        let prepared = prepare(bytes, hint.as_deref(), Some(SOURCE))?;
        let activity: Map<String, Value> = serde_json::from_slice(&prepared.payload)
            .map_err(|error| EdgeError::InvalidPayload(format!("an activity must be a JSON object: {error}")))?;
        let problems = validate(&activity);
        if !problems.is_empty() {
            return Err(EdgeError::InvalidActivity(problems));
        }
        Ok(prepared)
    }
    .await;
    answer_one(edge, &caller, Via::Ingress, checked).await
}

#[derive(Clone, Copy)]
enum Kind {
    Text,
    Timestamp,
    Email,
    Object,
}

/// The Activity fields of seed 002: name, type, required.
const FIELDS: [(&str, Kind, bool); 9] = [
    ("title", Kind::Text, true),
    ("description", Kind::Text, false),
    ("startTime", Kind::Timestamp, true),
    ("endTime", Kind::Timestamp, false),
    ("trigger", Kind::Text, false),
    ("event", Kind::Text, false),
    ("memberEmail", Kind::Email, false),
    ("externalId", Kind::Text, false),
    ("metadata", Kind::Object, false),
];

/// Every problem with the activity's known fields; unknown fields are kept and not checked.
pub fn validate(activity: &Map<String, Value>) -> Vec<FieldError> {
    FIELDS
        .iter()
        .filter_map(|&(field, kind, required)| {
            let problem = match (activity.get(field), kind) {
                (None | Some(Value::Null), _) => required.then_some("is required"),
                (Some(Value::String(text)), Kind::Text) if required && text.trim().is_empty() => {
                    Some("must not be empty")
                }
                (Some(Value::String(_)), Kind::Text) => None,
                (Some(Value::String(text)), Kind::Timestamp) => (!is_iso8601(text))
                    .then_some("must be an ISO 8601 timestamp with a time zone, e.g. 2024-08-03T11:30:00Z"),
                (Some(Value::String(text)), Kind::Email) => {
                    (!text.contains('@') || text.trim().len() < 3).then_some("must be an email address")
                }
                (Some(Value::Object(_)), Kind::Object) => None,
                (Some(_), Kind::Object) => Some("must be an object"),
                (Some(_), _) => Some("must be a string"),
            };
            problem.map(|problem| FieldError { field, problem })
        })
        .collect()
}

fn is_iso8601(text: &str) -> bool {
    OffsetDateTime::parse(text, &Rfc3339).is_ok() || OffsetDateTime::parse(text, &Iso8601::DEFAULT).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(activity: Value) -> Vec<(&'static str, &'static str)> {
        let Value::Object(map) = activity else { panic!("object") };
        validate(&map).into_iter().map(|e| (e.field, e.problem)).collect()
    }

    #[test]
    fn the_seed_example_is_valid() {
        let example = json!({
            "title": "Customer Inquiry Handled",
            "description": "Handled customer inquiry from Jane Doe regarding billing.",
            "startTime": "2024-08-03T11:30:00Z",
            "trigger": "Manual Log",
            "event": "Call Center Log",
            "externalId": "call-log-9876"
        });
        assert_eq!(problems(example), []);
    }

    #[test]
    fn each_bad_field_is_named() {
        let bad = json!({
            "description": 7,
            "startTime": "yesterday",
            "endTime": "2024-08-03T11:30:00",
            "memberEmail": "nobody",
            "metadata": [1],
            "externalId": {"a": 1}
        });
        assert_eq!(
            problems(bad),
            [
                ("title", "is required"),
                ("description", "must be a string"),
                ("startTime", "must be an ISO 8601 timestamp with a time zone, e.g. 2024-08-03T11:30:00Z"),
                ("endTime", "must be an ISO 8601 timestamp with a time zone, e.g. 2024-08-03T11:30:00Z"),
                ("memberEmail", "must be an email address"),
                ("externalId", "must be a string"),
                ("metadata", "must be an object"),
            ]
        );
        assert_eq!(
            problems(json!({"title": " ", "startTime": "2024-08-03T11:30:00+02:00"})),
            [("title", "must not be empty")]
        );
    }
}

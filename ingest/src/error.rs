//! Every way the edge refuses a request, each with exactly one status and a stable code.
//! Bodies are `{"error": "<code>", "message": "<what is wrong>"}` (plus `fields` for activity
//! validation). Nothing a client sends produces a 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use control::keys::AuthError;

use crate::verify::SignatureError;
use serde::Serialize;
use serde_json::json;

/// One invalid field of an activity object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: &'static str,
    pub problem: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error("{0}")]
    InvalidJson(String),
    #[error("{0}")]
    InvalidPayload(String),
    #[error("the activity has invalid fields")]
    InvalidActivity(Vec<FieldError>),
    #[error("{0}")]
    Unauthorized(AuthError),
    #[error("{0}")]
    Signature(SignatureError),
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the request holds more than {limit} signals; send at most {limit} per request")]
    TooManySignals { limit: usize },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    BodyTooSlow(String),
    #[error("the organisation's request rate limit is reached; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    #[error("the organisation's monthly raw signal limit is reached; upgrade the plan or enable overages")]
    PlanLimitReached { retry_after_s: u64 },
    #[error("the broker cannot take signals right now; retry after {retry_after_s} s")]
    Unavailable { retry_after_s: u64 },
}

impl EdgeError {
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::InvalidJson(_) | EdgeError::InvalidPayload(_) | EdgeError::InvalidActivity(_) => {
                StatusCode::BAD_REQUEST
            }
            EdgeError::Unauthorized(_) | EdgeError::Signature(_) => StatusCode::UNAUTHORIZED,
            EdgeError::TooLarge { .. } | EdgeError::TooManySignals { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            EdgeError::BodyTooSlow(_) => StatusCode::REQUEST_TIMEOUT,
            EdgeError::RateLimited { .. } | EdgeError::PlanLimitReached { .. } => StatusCode::TOO_MANY_REQUESTS,
            EdgeError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Machine-readable, stable across releases. Also the `outcome` label of usage counters.
    pub fn code(&self) -> &'static str {
        match self {
            EdgeError::InvalidJson(_) => "invalid_json",
            EdgeError::InvalidPayload(_) => "invalid_payload",
            EdgeError::InvalidActivity(_) => "invalid_activity",
            EdgeError::Unauthorized(reason) => reason.code(),
            EdgeError::Signature(reason) => reason.code(),
            EdgeError::TooLarge { .. } => "payload_too_large",
            EdgeError::TooManySignals { .. } => "too_many_signals",
            EdgeError::UnsupportedMediaType(_) => "unsupported_media_type",
            EdgeError::BodyTooSlow(_) => "body_too_slow",
            EdgeError::RateLimited { .. } => "rate_limited",
            EdgeError::PlanLimitReached { .. } => "plan_limit_reached",
            EdgeError::Unavailable { .. } => "broker_unavailable",
        }
    }

    /// Seconds a client should wait before retrying, for refusals that pass.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            EdgeError::RateLimited { retry_after_s }
            | EdgeError::PlanLimitReached { retry_after_s }
            | EdgeError::Unavailable { retry_after_s } => Some(*retry_after_s),
            _ => None,
        }
    }
}

impl IntoResponse for EdgeError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code(), "message": self.to_string() });
        if let EdgeError::InvalidActivity(fields) = &self {
            body["fields"] = json!(fields);
        }
        let mut response = (self.status(), Json(body)).into_response();
        self.set_headers(&mut response);
        response
    }
}

impl EdgeError {
    /// `Retry-After` for refusals that pass, and `Connection: close` for a body refused before
    /// it was read: the rest of it is never read, so the connection cannot carry another
    /// request, and a client must not put it back in its pool.
    pub fn set_headers(&self, response: &mut Response) {
        if let Some(seconds) = self.retry_after_s() {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        if let EdgeError::TooLarge { .. } | EdgeError::BodyTooSlow(_) = self {
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_status_and_retry_hint() {
        let cases = [
            (EdgeError::InvalidJson("x".into()), 400, None),
            (EdgeError::Unauthorized(AuthError::Expired), 401, None),
            (EdgeError::TooLarge { limit: 10 }, 413, None),
            (EdgeError::TooManySignals { limit: 10 }, 413, None),
            (EdgeError::UnsupportedMediaType("x".into()), 415, None),
            (EdgeError::BodyTooSlow("x".into()), 408, None),
            (EdgeError::RateLimited { retry_after_s: 0 }, 429, Some("1")),
            (EdgeError::PlanLimitReached { retry_after_s: 3600 }, 429, Some("3600")),
            (EdgeError::Unavailable { retry_after_s: 2 }, 503, Some("2")),
        ];
        for (error, status, retry_after) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            let header = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().expect("ascii").to_owned());
            assert_eq!(header.as_deref(), retry_after);
        }
    }

    #[test]
    fn a_body_refused_unread_closes_its_connection() {
        let closes = |error: EdgeError| {
            error.into_response().headers().get(header::CONNECTION).is_some_and(|value| value == "close")
        };
        assert!(closes(EdgeError::TooLarge { limit: 10 }));
        assert!(closes(EdgeError::BodyTooSlow("x".into())), "the rest of a slow body is never read");
        assert!(!closes(EdgeError::TooManySignals { limit: 10 }), "that body was read whole");
        assert!(!closes(EdgeError::InvalidJson("x".into())));
    }
}

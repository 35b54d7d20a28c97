//! `/api/admin/orgs/{org}/people`: deleting a person everywhere, their suppression and its audit
//! ([`control::people`]).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use control::people::{self, PeopleError, Reach, Subject};
use serde::Deserialize;
use serde_json::json;

use super::{answer, error, Admin, Caller, Refusal};

impl Refusal for PeopleError {
    fn refusal(self) -> Response {
        let (status, code) = match &self {
            PeopleError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_person"),
            PeopleError::Unfinished(_) => (StatusCode::ACCEPTED, "deletion_unfinished"),
            PeopleError::ClickHouse(_) | PeopleError::Kafka(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        error(status, code, self.to_string())
    }
}

/// `?email=` or `?anonymous_id=`.
#[derive(Deserialize)]
pub struct Named {
    email: Option<String>,
    anonymous_id: Option<String>,
}

impl Named {
    /// The person named, or the 400 that says how to name one.
    #[allow(clippy::result_large_err)] // the refusal is answered at once
    fn subject(&self) -> Result<Subject, Response> {
        Subject::parse(self.email.as_deref(), self.anonymous_id.as_deref()).map_err(Refusal::refusal)
    }
}

pub async fn delete(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    Query(named): Query<Named>,
) -> Response {
    let subject = match named.subject() {
        Ok(subject) => subject,
        Err(refused) => return refused,
    };
    let Some(kafka) = &admin.kafka else {
        let message = "this admin API has no Kafka configuration, so it cannot write the tombstones a deletion needs";
        return error(StatusCode::SERVICE_UNAVAILABLE, "kafka_unavailable", message);
    };
    let reach = Reach { kafka, cluster: admin.people.cluster.as_deref(), refresh: admin.people.refresh };
    let deleted = people::delete(&admin.client, &reach, &org, &subject, &caller.token_id, |step| {
        tracing::info!(%org, token = %caller.token_id, "deleting a person: {step}");
    })
    .await;
    answer(StatusCode::OK, deleted)
}

pub async fn suppressions(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match people::suppressions(&admin.client, &org).await {
        Ok(rows) => Json(json!({"suppressions": rows})).into_response(),
        Err(error) => error.refusal(),
    }
}

pub async fn lift(
    State(admin): State<Admin>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    Query(named): Query<Named>,
) -> Response {
    let subject = match named.subject() {
        Ok(subject) => subject,
        Err(refused) => return refused,
    };
    answer(StatusCode::OK, people::lift(&admin.client, &org, &subject, &caller.token_id).await)
}

pub async fn audit(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match people::audit(&admin.client, &org).await {
        Ok(rows) => Json(json!({"audit": rows})).into_response(),
        Err(error) => error.refusal(),
    }
}

//! `/api/admin/orgs/{org}/rules/{rule_id}/apply` and `/rules/jobs`: a rule applied to the stored
//! signals ([`control::apply`]), as a job this process runs in the background; its progress, and
//! pausing, resuming and cancelling it. A job whose process ended stays `running` until resumed
//! (here or with `sigstage rules resume`).

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use control::apply::{self, ApplyError};
use serde::Deserialize;

use super::rules::{previewed, saved};
use super::{body, error, Admin, Refusal};

impl Refusal for ApplyError {
    fn refusal(self) -> Response {
        let (status, code) = match &self {
            ApplyError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_rule"),
            ApplyError::NoRule(_) => (StatusCode::NOT_FOUND, "rule_not_found"),
            ApplyError::NoJob(..) => (StatusCode::NOT_FOUND, "job_not_found"),
            ApplyError::Finished(..) => (StatusCode::CONFLICT, "job_finished"),
            ApplyError::Rules(_) | ApplyError::Random(_) | ApplyError::Kafka(_) | ApplyError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        error(status, code, self.to_string())
    }
}

/// `POST …/rules/{rule_id}/apply`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// A day (`2026-03-01`, UTC) or an RFC 3339 time; `until` is exclusive, now by default.
    since: String,
    until: Option<String>,
    /// Answer the preview, and write nothing.
    #[serde(default)]
    dry_run: bool,
    /// Stored signals read a second, at most.
    #[serde(default = "default_rate")]
    rate: u32,
}

fn default_rate() -> u32 {
    5_000
}

/// Applies a saved rule to the org's stored signals: 202 with the job, which runs in the
/// background; with `dry_run`, 200 with what it would change.
pub async fn start(
    State(admin): State<Admin>,
    Path((org, rule_id)): Path<(String, String)>,
    request: Result<Json<ApplyRequest>, JsonRejection>,
) -> Response {
    let request = match body(request, "invalid_apply") {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let range = super::rules::Range { since: request.since, until: request.until };
    let (since_ms, until_ms) = match range.millis() {
        Ok(range) => range,
        Err(refused) => return refused,
    };
    let rule = match saved(&admin, &org, &rule_id).await {
        Ok(rule) => rule,
        Err(refused) => return refused,
    };
    if request.rate == 0 {
        return error(StatusCode::BAD_REQUEST, "invalid_apply", "rate must be at least 1 stored signal a second");
    }
    if request.dry_run {
        return previewed(&admin, &rule, since_ms, until_ms).await;
    }
    if admin.kafka.is_none() {
        return kafka_missing();
    }
    match apply::create(&admin.client, &rule, since_ms, until_ms, request.rate).await {
        Ok(job) => {
            spawn(&admin, job.clone());
            (StatusCode::ACCEPTED, Json(job)).into_response()
        }
        Err(refused) => refused.refusal(),
    }
}

/// The org's jobs, the newest first.
pub async fn list(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match apply::list(&admin.client, &org).await {
        Ok(jobs) => Json(jobs).into_response(),
        Err(refused) => refused.refusal(),
    }
}

/// One job: its state and progress.
pub async fn show(State(admin): State<Admin>, Path((org, job_id)): Path<(String, String)>) -> Response {
    match apply::get(&admin.client, &org, &job_id).await {
        Ok(job) => Json(job).into_response(),
        Err(refused) => refused.refusal(),
    }
}

/// `pause`, `resume` (run here from where it stopped) or `cancel` a job.
pub async fn act(State(admin): State<Admin>, Path((org, job_id, action)): Path<(String, String, String)>) -> Response {
    let state = match action.as_str() {
        "pause" => apply::PAUSED,
        "resume" => apply::RUNNING,
        "cancel" => apply::CANCELLED,
        other => {
            let message = format!("{other:?} is not an action on a job: pause, resume or cancel");
            return error(StatusCode::NOT_FOUND, "unknown_action", message);
        }
    };
    if state == apply::RUNNING && admin.kafka.is_none() {
        return kafka_missing();
    }
    match apply::set_state(&admin.client, &org, &job_id, state).await {
        Ok(job) => {
            if state == apply::RUNNING {
                spawn(&admin, job.clone());
            }
            Json(job).into_response()
        }
        Err(refused) => refused.refusal(),
    }
}

fn kafka_missing() -> Response {
    let message = "this admin API has no Kafka to send through (serve it with the pipeline: `sigstage run`)";
    error(StatusCode::SERVICE_UNAVAILABLE, "kafka_unavailable", message)
}

/// Runs `job` in the background; its outcome is in `history_jobs`.
fn spawn(admin: &Admin, job: apply::Job) {
    let (client, kafka, refresh) = (admin.client.clone(), admin.kafka.clone(), admin.people.refresh);
    tokio::spawn(async move {
        let Some(kafka) = kafka else { return };
        let producer = match runtime::kafka::clients::producer(&kafka) {
            Ok(producer) => producer,
            Err(error) => return tracing::error!(%error, job = %job.job_id, "no Kafka producer for the apply job"),
        };
        let topic = kafka.topic(runtime::kafka::topics::SIGNALS_HISTORICAL);
        let sending = apply::Sending { producer: &producer, topic: &topic, refresh };
        let job_id = job.job_id.clone();
        match apply::run(&client, &sending, job, |_| {}).await {
            Ok(job) => {
                tracing::info!(job = %job_id, state = %job.state, read = job.read, sent = job.sent, "apply job ended")
            }
            Err(error) => tracing::error!(%error, job = %job_id, "apply job failed"),
        }
    });
}

//! `/api/admin/orgs/{org}/rules` and `/queue`: an org's mapping rules (list, add, replace,
//! reorder, remove, and a dry run on the signal queue's samples before saving) and the queue of
//! signals no rule matched.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemas::mapping::{Compiled, Mapping};
use schemas::rules::{Rule, RuleSpec};
use serde::Deserialize;
use serde_json::json;

use super::{answer, body, error, Admin, Refusal};
use control::rules::{self, RuleAdminError};
use control::signal_queue;

impl Refusal for RuleAdminError {
    fn refusal(self) -> Response {
        let (status, code) = match &self {
            RuleAdminError::InvalidOrg(_) | RuleAdminError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_rule"),
            RuleAdminError::NotFound { .. } => (StatusCode::NOT_FOUND, "rule_not_found"),
            RuleAdminError::Random(_) | RuleAdminError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        match self {
            RuleAdminError::Invalid(problems) => {
                (status, Json(json!({"error": code, "message": "the rule is not valid", "problems": problems})))
                    .into_response()
            }
            other => error(status, code, other.to_string()),
        }
    }
}

impl Refusal for signal_queue::SuggestError {
    fn refusal(self) -> Response {
        let (status, code) = match &self {
            signal_queue::SuggestError::NoGroup { .. } => (StatusCode::NOT_FOUND, "queue_group_not_found"),
            signal_queue::SuggestError::SampleCut => (StatusCode::UNPROCESSABLE_ENTITY, "sample_cut"),
            signal_queue::SuggestError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        error(status, code, self.to_string())
    }
}

pub async fn list(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    answer(StatusCode::OK, rules::list(&admin.client, Some(&org)).await.map(|rules| json!({"rules": rules})))
}

pub async fn add(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    spec: Result<Json<RuleSpec>, JsonRejection>,
) -> Response {
    match body(spec, "invalid_rule") {
        Ok(spec) => answer(StatusCode::CREATED, rules::add(&admin.client, &org, spec).await),
        Err(refused) => refused,
    }
}

pub async fn update(
    State(admin): State<Admin>,
    Path((org, rule_id)): Path<(String, String)>,
    spec: Result<Json<RuleSpec>, JsonRejection>,
) -> Response {
    match body(spec, "invalid_rule") {
        Ok(spec) => answer(StatusCode::OK, rules::update(&admin.client, &org, &rule_id, spec).await),
        Err(refused) => refused,
    }
}

pub async fn remove(State(admin): State<Admin>, Path((org, rule_id)): Path<(String, String)>) -> Response {
    answer(StatusCode::OK, rules::remove(&admin.client, &org, &rule_id).await)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Order {
    rule_ids: Vec<String>,
}

pub async fn reorder(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    order: Result<Json<Order>, JsonRejection>,
) -> Response {
    match body(order, "invalid_order") {
        Ok(order) => answer(
            StatusCode::OK,
            rules::reorder(&admin.client, &org, &order.rule_ids).await.map(|rules| json!({"rules": rules})),
        ),
        Err(refused) => refused,
    }
}

pub async fn queue(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    match signal_queue::list(&admin.client, &org).await {
        Ok(groups) => Json(json!({"groups": groups})).into_response(),
        Err(error) => RuleAdminError::ClickHouse(error).refusal(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuggestRequest {
    source: String,
    /// The group's event; absent or empty: signals without one.
    #[serde(default)]
    event: Option<String>,
    /// A sample to read instead of the queue group's own: a JSON object, or its text.
    #[serde(default)]
    sample: Option<serde_json::Value>,
}

/// A first rule for a signal queue group, read off its sample (or the one given): the
/// group's source and event, a few `exists` conditions, and the lead fields a person would map.
/// Not saved: the console opens it in the rule editor.
pub async fn suggest(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    request: Result<Json<SuggestRequest>, JsonRejection>,
) -> Response {
    let request = match body(request, "invalid_suggestion") {
        Ok(request) => request,
        Err(refused) => return refused,
    };
    let event = request.event.unwrap_or_default();
    let sample = match request.sample {
        Some(serde_json::Value::String(text)) => match serde_json::from_str(&text) {
            Ok(sample) => Some(sample),
            Err(why) => {
                return error(StatusCode::BAD_REQUEST, "invalid_sample", format!("the sample is not JSON: {why}"))
            }
        },
        other => other,
    };
    let suggested = match sample {
        Some(sample) => {
            Ok(schemas::suggest::suggest(&request.source, Some(event.as_str()).filter(|e| !e.is_empty()), &sample))
        }
        None => signal_queue::suggest(&admin.client, &org, &request.source, &event).await,
    };
    answer(StatusCode::OK, suggested)
}

/// Runs a rule, unsaved, over the sample of every group in the org's signal queue: which
/// groups it would match, and what it would map from each sample (its own mappings first, then
/// the defaults, as the stream applies them).
pub async fn dry_run(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    spec: Result<Json<RuleSpec>, JsonRejection>,
) -> Response {
    let spec = match body(spec, "invalid_rule") {
        Ok(spec) => spec,
        Err(refused) => return refused,
    };
    let problems = spec.problems();
    if !problems.is_empty() {
        return RuleAdminError::Invalid(problems).refusal();
    }
    let rule = Rule { id: "dry-run".to_owned(), org_id: org.clone(), created_ms: 0, spec };
    let compiled = match Compiled::new(&rule) {
        Ok(compiled) => [compiled],
        Err(problem) => return RuleAdminError::Invalid(vec![problem]).refusal(),
    };
    let groups = match signal_queue::list(&admin.client, &org).await {
        Ok(groups) => groups,
        Err(error) => return RuleAdminError::ClickHouse(error).refusal(),
    };
    let mut samples = Vec::with_capacity(groups.len());
    let (mut matched_groups, mut matched_signals) = (0u64, 0u64);
    for group in groups {
        let mut bytes = group.sample.clone().into_bytes();
        let outcome = match simd_json::to_borrowed_value(&mut bytes) {
            Err(_) => json!({"checked": false, "why": "the sample was cut at 4 KiB: not whole JSON"}),
            Ok(signal) if compiled[0].matches(&group.source, &group.event, &signal) => {
                let mapping = Mapping { rules: &compiled, matched: &[0] };
                let email = mapping
                    .first("email", &signal)
                    .and_then(|value| simd_json::prelude::ValueAsScalar::as_str(value).map(str::to_owned));
                let mut fields = Vec::new();
                mapping.write_fields(&signal, &mut fields);
                matched_groups += 1;
                matched_signals += group.signals;
                let fields: serde_json::Value = serde_json::from_slice(&fields).unwrap_or_default();
                json!({"checked": true, "matches": true, "email": email, "fields": fields})
            }
            Ok(_) => json!({"checked": true, "matches": false}),
        };
        samples
            .push(json!({"source": group.source, "event": group.event, "signals": group.signals, "result": outcome}));
    }
    Json(json!({
        "matched_groups": matched_groups,
        "matched_signals": matched_signals,
        "samples": samples,
    }))
    .into_response()
}

/// `?since=&until=`: days (`2026-03-01`, UTC) or RFC 3339 times; `until` defaults to now.
#[derive(Deserialize)]
pub struct Range {
    pub(crate) since: String,
    pub(crate) until: Option<String>,
}

impl Range {
    /// In epoch milliseconds, or a 400 naming the value that is not a time.
    #[allow(clippy::result_large_err)] // the refusal is answered at once
    pub(crate) fn millis(&self) -> Result<(u64, u64), Response> {
        let time = |name: &str, value: &str| {
            control::history::parse_time(value)
                .ok_or_else(|| format!("{name} {value:?} is not a day (2026-03-01) or an RFC 3339 time"))
        };
        let range = time("since", &self.since).and_then(|since| {
            let until = self.until.as_deref().map(|until| time("until", until)).transpose()?;
            Ok((since, until.unwrap_or_else(runtime::time::now_ms)))
        });
        range.map_err(|message| error(StatusCode::BAD_REQUEST, "invalid_range", message))
    }
}

/// A saved rule of `org`, or the answer saying why not.
#[allow(clippy::result_large_err)] // the refusal is answered at once
pub(crate) async fn saved(admin: &Admin, org: &str, rule_id: &str) -> Result<Rule, Response> {
    let rules = rules::list(&admin.client, Some(org)).await.map_err(Refusal::refusal)?;
    rules
        .into_iter()
        .find(|rule| rule.id == rule_id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "rule_not_found", format!("org {org} has no rule {rule_id:?}")))
}

/// What a saved rule would change in the org's stored signals ([`control::history::preview`]).
pub async fn preview(
    State(admin): State<Admin>,
    Path((org, rule_id)): Path<(String, String)>,
    axum::extract::Query(range): axum::extract::Query<Range>,
) -> Response {
    let (since_ms, until_ms) = match range.millis() {
        Ok(range) => range,
        Err(refused) => return refused,
    };
    let rule = match saved(&admin, &org, &rule_id).await {
        Ok(rule) => rule,
        Err(refused) => return refused,
    };
    previewed(&admin, &rule, since_ms, until_ms).await
}

/// The preview's answer.
pub(crate) async fn previewed(admin: &Admin, rule: &Rule, since_ms: u64, until_ms: u64) -> Response {
    match control::history::preview(&admin.client, rule, since_ms, until_ms).await {
        Ok(preview) => Json(preview).into_response(),
        Err(control::history::PreviewError::Invalid(problem)) => RuleAdminError::Invalid(vec![problem]).refusal(),
        Err(control::history::PreviewError::ClickHouse(failure)) => super::unavailable(failure),
    }
}

//! The admin API under `/api/admin/`, on the admin listener (`SIGSTAGE_ADMIN_ADDR`, apart from
//! the public one) of every role when a token is configured, and the console (`/console`) that
//! is one of its clients.
//!
//! A request is authorised by `Authorization: Bearer <token>`, or by the console's session
//! cookie; with the cookie, a request that changes anything must also carry the session's
//! `X-CSRF-Token`. Read-only tokens may only GET; a token scoped to an org sees only that org.
//! Each request is logged with the token's id, never the token. Errors are
//! `{"error": "<code>", "message": "…"}`.
//!
//! Every operation is one entry of [`operations`], from which both the router and the OpenAPI
//! document (`GET /api/admin/openapi.json`) are built, so the two cannot drift apart.

mod analytics;
mod apply;
mod backfill;
mod console;
mod keys;
mod leads;
mod limits;
mod openapi;
mod overview;
mod people;
mod retention;
mod rules;
mod session;
mod tail;
mod throttle;
mod trace;
mod webhooks;

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use runtime::config::{AdminToken, KafkaConfig};

#[derive(Clone)]
pub(crate) struct Admin {
    pub(crate) client: clickhouse::Client,
    /// For the live tail and dead-letter counts; without it those answer 503.
    pub(crate) kafka: Option<KafkaConfig>,
    tokens: std::sync::Arc<[AdminToken]>,
    /// The public listener's URL, for the curl the console shows with a new key.
    pub(crate) public_url: std::sync::Arc<str>,
    /// Wrong tokens per client address (sign-ins and bearer tokens alike).
    pub(crate) failures: std::sync::Arc<throttle::Failures>,
    /// The live tails open now, and how many and how idle they may be.
    pub(crate) tails: std::sync::Arc<tail::Tails>,
    pub(crate) people: std::sync::Arc<PeopleReach>,
}

impl Admin {
    /// The caller's address, or 429 while that address is barred for wrong tokens.
    #[allow(clippy::result_large_err)] // the refusal is answered at once, never carried further
    fn admit(&self, extensions: &axum::http::Extensions) -> Result<Option<std::net::IpAddr>, Response> {
        let client = throttle::client(extensions);
        match self.failures.barred(client, runtime::time::now_ms()) {
            Some(retry_after_s) => Err(throttle::refused(retry_after_s)),
            None => Ok(client),
        }
    }

    /// Logs and counts a wrong token from `client`.
    fn failed(&self, client: Option<std::net::IpAddr>, what: &str) {
        let from = client.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        tracing::warn!(client = %from, "{what}");
        if self.failures.record(client, runtime::time::now_ms()) {
            let window_s = throttle::WINDOW_MS / 1000;
            tracing::warn!(client = %from, max = throttle::MAX_FAILURES, window_s, "too many wrong admin tokens: the address is refused until its window ends");
        }
    }
}

/// What the admin API needs besides ClickHouse.
pub struct Settings {
    /// For the live tail and dead-letter counts; without it those answer 503.
    pub kafka: Option<KafkaConfig>,
    pub tokens: Vec<AdminToken>,
    /// Where senders reach the edge, e.g. `http://127.0.0.1:8080`.
    pub public_url: String,
    pub tails: TailLimits,
    /// Where a person's deletion reaches beyond ClickHouse (`control::people`).
    pub people: PeopleReach,
}

/// What deleting a person needs beyond ClickHouse: the cluster the schema is on, and how long
/// the stream and the sink take to load a suppression (`SIGSTAGE_CONTROL_REFRESH_MS`).
#[derive(Debug, Clone)]
pub struct PeopleReach {
    pub cluster: Option<String>,
    pub refresh: std::time::Duration,
}

impl Default for PeopleReach {
    fn default() -> Self {
        Self { cluster: None, refresh: std::time::Duration::from_secs(5) }
    }
}

/// Live tails served at once, and how long one may send no signal before it ends.
#[derive(Debug, Clone, Copy)]
pub struct TailLimits {
    pub most: usize,
    pub idle: std::time::Duration,
}

impl Default for TailLimits {
    /// `SIGSTAGE_ADMIN_MAX_TAILS` and `SIGSTAGE_ADMIN_TAIL_IDLE_MS`'s defaults.
    fn default() -> Self {
        TailLimits { most: 8, idle: std::time::Duration::from_secs(30 * 60) }
    }
}

/// Who is calling, as the authorisation found it; handlers that list orgs read it.
#[derive(Clone)]
pub(crate) struct Caller {
    pub(crate) org: Option<String>,
    /// The token's id (never the token): who did it, in the people audit.
    pub(crate) token_id: String,
}

/// The admin API and the console.
pub fn router(client: clickhouse::Client, settings: Settings) -> Router {
    let Settings { kafka, tokens, public_url, tails, people } = settings;
    tail::Open::describe();
    let admin = Admin {
        client,
        kafka,
        tokens: tokens.into(),
        public_url: public_url.into(),
        failures: Default::default(),
        tails: std::sync::Arc::new(tail::Tails::new(tails)),
        people: std::sync::Arc::new(people),
    };
    let mut api = Router::new();
    for operation in operations() {
        api = api.route(operation.path, operation.route);
    }
    let api = api
        .route(
            "/api/admin/{*rest}",
            on(MethodFilter::GET.or(MethodFilter::POST).or(MethodFilter::PUT).or(MethodFilter::DELETE), not_found),
        )
        .layer(middleware::from_fn_with_state(admin.clone(), authorize));
    Router::new()
        .route("/api/admin/openapi.json", axum::routing::get(openapi::serve))
        .merge(api)
        .merge(console::router())
        .with_state(admin)
}

/// One operation of the admin API: how it is routed and how the OpenAPI document shows it.
pub(crate) struct Operation {
    pub(crate) method: Method,
    pub(crate) path: &'static str,
    pub(crate) summary: &'static str,
    /// Query parameters, as (name, description).
    pub(crate) query: &'static [(&'static str, &'static str)],
    /// What the JSON body holds, when there is one.
    pub(crate) body: Option<&'static str>,
    route: MethodRouter<Admin>,
}

fn op<H: Handler<T, Admin>, T: 'static>(
    method: Method,
    path: &'static str,
    summary: &'static str,
    handler: H,
) -> Operation {
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Operation { method, path, summary, query: &[], body: None, route: on(filter, handler) }
}

impl Operation {
    fn body(mut self, body: &'static str) -> Self {
        self.body = Some(body);
        self
    }

    fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Self {
        self.query = query;
        self
    }
}

/// Every operation of the admin API.
pub(crate) fn operations() -> Vec<Operation> {
    vec![
        op(Method::GET, "/api/admin/orgs", "The orgs this token may see", overview::orgs),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/overview",
            "Signals per source, usage, refusals, dead letters and webhook health over the last 24 h",
            overview::overview,
        ),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/analytics/{query}",
            "A question of the analysts' library (schemas/queries/) for the org, as ClickHouse's JSON",
            analytics::ask,
        )
        .query(&[
            ("since", "first day, YYYY-MM-DD (default: 30 days ago)"),
            ("until", "last day, included (default: today, UTC)"),
            ("…", "any other parameter the query takes (lead, first, then, days)"),
        ]),
        op(Method::GET, "/api/admin/orgs/{org}/rules", "The org's mapping rules, in the order they apply", rules::list),
        op(Method::POST, "/api/admin/orgs/{org}/rules", "Add a mapping rule; 201 with its id", rules::add)
            .body("a rule: {name, source?, event?, conditions: [{path, op, value|values}], map: {field: path}}"),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/rules/dry-run",
            "What a rule would match and map among the signal queue's samples, without saving it",
            rules::dry_run,
        )
        .body("a rule, as for POST …/rules"),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/rules/suggest",
            "A first rule for a signal queue group, read off its sample; not saved",
            rules::suggest,
        )
        .body("{source, event?, sample?}: a queue group, and optionally a sample to read instead of its own"),
        op(Method::PUT, "/api/admin/orgs/{org}/rules/order", "Put the org's rules in a new order", rules::reorder)
            .body("{rule_ids: [every rule id, in the new order]}"),
        op(
            Method::PUT,
            "/api/admin/orgs/{org}/rules/{rule_id}",
            "Replace a rule, keeping its id and place",
            rules::update,
        )
        .body("a rule, as for POST …/rules"),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/rules/{rule_id}/preview",
            "What a saved rule would change in the stored signals (writes nothing)",
            rules::preview,
        )
        .query(&[("since", "a day (2026-03-01) or RFC 3339 time"), ("until", "exclusive; default now")]),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/rules/{rule_id}/apply",
            "Apply a saved rule to the stored signals: a background job (202), or with dry_run what it would change",
            apply::start,
        )
        .body("{since, until?, dry_run?, rate?}: days (2026-03-01) or RFC 3339 times; stored signals read a second"),
        op(Method::GET, "/api/admin/orgs/{org}/rules/jobs", "The org's apply jobs, the newest first", apply::list),
        op(Method::GET, "/api/admin/orgs/{org}/rules/jobs/{job_id}", "An apply job's state and progress", apply::show),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/rules/jobs/{job_id}/{action}",
            "Pause, resume (run on from where it stopped) or cancel an apply job",
            apply::act,
        ),
        op(Method::DELETE, "/api/admin/orgs/{org}/rules/{rule_id}", "Remove a rule", rules::remove),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/queue",
            "The signal queue: unmapped signals by source and event, with counts and a sample",
            rules::queue,
        ),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/tail",
            "The org's processed signals as they arrive (server-sent events, sampled)",
            tail::tail,
        )
        .query(&[("source", "only signals of this source"), ("event", "only signals of this event")]),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/leads/{email}",
            "One lead: its traits, the visitors linked to it and its newest signals",
            leads::lead,
        ),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/signals/{id}",
            "What sigstage did with one signal: its rows, links, leads, events and deliveries",
            trace::signal,
        ),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/webhooks",
            "The org's webhook subscriptions (no secrets)",
            webhooks::list,
        ),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/webhooks",
            "Subscribe; 201 with the secret, shown once",
            webhooks::create,
        )
        .body("{url, events: [signal.created|lead.created|lead.identified]}"),
        op(
            Method::PUT,
            "/api/admin/orgs/{org}/webhooks/{sub}",
            "Change a subscription's URL and event types",
            webhooks::edit,
        )
        .body("{url, events}"),
        op(Method::POST, "/api/admin/orgs/{org}/webhooks/{sub}/enable", "Turn a subscription on", webhooks::enable),
        op(Method::POST, "/api/admin/orgs/{org}/webhooks/{sub}/disable", "Turn a subscription off", webhooks::disable),
        op(Method::POST, "/api/admin/orgs/{org}/webhooks/{sub}/test", "Send the endpoint a test event", webhooks::test),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/webhooks/{sub}/deliveries",
            "The delivery log, newest first",
            webhooks::deliveries,
        ),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/webhooks/{sub}/resend/{event_id}",
            "Deliver an event again",
            webhooks::resend,
        ),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/webhooks/{sub}/recover",
            "Queue again every event not delivered since a time",
            webhooks::recover,
        )
        .body("{since_ms}"),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/webhooks/{sub}/backfill",
            "Send every stored event of its types in a range it was not delivered, through a queue of its own",
            backfill::start,
        )
        .body("{since_ms, until_ms?, events?: [types], per_second?}"),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/webhooks/{sub}/backfills",
            "The subscription's backfills with their progress",
            backfill::list,
        ),
        op(
            Method::POST,
            "/api/admin/orgs/{org}/webhooks/{sub}/backfills/{backfill_id}/{action}",
            "Pause, resume or cancel a backfill",
            backfill::act,
        ),
        op(
            Method::PUT,
            "/api/admin/orgs/{org}/webhooks/{sub}/rate-limit",
            "Cap deliveries per second (0 for none)",
            webhooks::set_rate_limit,
        )
        .body("{per_second}"),
        op(Method::GET, "/api/admin/orgs/{org}/keys", "The org's API keys (ids and prefixes, never keys)", keys::list),
        op(Method::POST, "/api/admin/orgs/{org}/keys", "Create a key; 201 with the key, shown once", keys::create)
            .body("{name?, secret?, expires_at_ms?, endpoints?: [signal_staging|collect|ingress|tracking]}"),
        op(Method::DELETE, "/api/admin/orgs/{org}/keys/{key_id}", "Revoke a key", keys::revoke),
        op(
            Method::PUT,
            "/api/admin/orgs/{org}/keys/{key_id}/signing",
            "Require a provider's signature on the key's requests",
            keys::set_signing,
        )
        .body("{provider: stripe|github|hubspot|shopify|slack|standard_webhooks, secret}"),
        op(
            Method::DELETE,
            "/api/admin/orgs/{org}/keys/{key_id}/signing",
            "Stop requiring a signature",
            keys::remove_signing,
        ),
        op(
            Method::DELETE,
            "/api/admin/orgs/{org}/people",
            "Delete a person everywhere and suppress them; answers what was deleted",
            people::delete,
        )
        .query(&[("email", "the person's email"), ("anonymous_id", "or one of their visitor ids")]),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/people/suppressions",
            "Emails and visitors suppressed",
            people::suppressions,
        ),
        op(
            Method::DELETE,
            "/api/admin/orgs/{org}/people/suppressions",
            "Lift a suppression (and those its deletion made)",
            people::lift,
        )
        .query(&[("email", "the email"), ("anonymous_id", "or the visitor id")]),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/people/audit",
            "Deletions, suppressions and lifts: who, when, what, rows",
            people::audit,
        ),
        op(
            Method::GET,
            "/api/admin/orgs/{org}/retention",
            "Days of the org's signals kept (0: for ever)",
            retention::get,
        ),
        op(Method::PUT, "/api/admin/orgs/{org}/retention", "Change how many days of signals are kept", retention::set)
            .body("{days}"),
        op(Method::GET, "/api/admin/orgs/{org}/limits", "Rate, plan and this month's usage", limits::get),
        op(Method::PUT, "/api/admin/orgs/{org}/limits", "Change the limits", limits::set)
            .body("{requests_per_second?, burst?, monthly_raw_signals?, allow_overages?}"),
        op(Method::GET, "/api/admin/orgs/{org}/usage", "Signals per day and outcome", limits::usage)
            .query(&[("days", "days back from today, 1 to 400 (30)"), ("by", "day (the default) or month")]),
    ]
}

/// How a control-plane error is answered: its status, code and message.
pub(crate) trait Refusal {
    fn refusal(self) -> Response;
}

pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": code, "message": message.into()}))).into_response()
}

/// The token a secret belongs to, compared in constant time with every token.
fn token_of<'t>(tokens: &'t [AdminToken], given: &str) -> Option<&'t AdminToken> {
    tokens.iter().fold(None, |found, token| {
        let equal = bool::from(given.as_bytes().ct_eq(token.secret.expose().as_bytes()));
        found.or(equal.then_some(token))
    })
}

async fn authorize(State(admin): State<Admin>, mut request: Request, next: Next) -> Response {
    if admin.tokens.is_empty() {
        return error(StatusCode::NOT_FOUND, "admin_api_disabled", "the admin API is off: set SIGSTAGE_ADMIN_TOKEN");
    }
    let client = match admin.admit(request.extensions()) {
        Ok(client) => client,
        Err(barred) => return barred,
    };
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let changes = method != Method::GET && method != Method::HEAD;
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    let token = match bearer {
        Some(given) => match token_of(&admin.tokens, given) {
            Some(token) => token,
            None => {
                admin.failed(client, "admin request refused: wrong admin token");
                return unauthorized("the admin token is wrong");
            }
        },
        None => match session::from_cookie(&admin.tokens, request.headers()) {
            Some(session) => {
                if changes {
                    if let Some(refused) = session.csrf_refusal(request.headers()) {
                        tracing::warn!(token = %session.token.id, %method, %path, "admin request refused: CSRF token");
                        return refused;
                    }
                }
                session.token
            }
            None => {
                return unauthorized(
                    "send an admin token as `Authorization: Bearer <SIGSTAGE_ADMIN_TOKEN>`, or sign in at /console",
                )
            }
        },
    };
    if token.read_only && changes {
        tracing::warn!(token = %token.id, %method, %path, "admin request refused: the token is read-only");
        return error(StatusCode::FORBIDDEN, "admin_token_read_only", "this admin token may only read (GET)");
    }
    let org = org_in_path(&path);
    if let Some(org) = org.filter(|org| !schemas::valid_org_id(org)) {
        // Also an empty one (`/orgs//rules`), which must never reach a handler as "every org".
        let message = format!("org id {org:?} is not valid: use 1-64 letters, digits, '_', '-' or '.'");
        return error(StatusCode::BAD_REQUEST, "invalid_org", message);
    }
    if let (Some(allowed), Some(org)) = (&token.org, org) {
        if org != allowed {
            tracing::warn!(token = %token.id, %method, %path, "admin request refused: another org");
            return error(
                StatusCode::FORBIDDEN,
                "admin_token_other_org",
                format!("this admin token is for org {allowed:?} only"),
            );
        }
    }
    request.extensions_mut().insert(Caller { org: token.org.clone(), token_id: token.id.clone() });
    let token_id = token.id.clone();
    let response = next.run(request).await;
    tracing::info!(token = %token_id, %method, %path, status = response.status().as_u16(), "admin request");
    response
}

/// The `{org}` of `/api/admin/orgs/{org}/…`, as written (possibly empty or percent-encoded).
fn org_in_path(path: &str) -> Option<&str> {
    path.strip_prefix("/api/admin/orgs/")?.split('/').next()
}

fn unauthorized(message: &str) -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "invalid_admin_token", message);
    response.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    response
}

/// 503 `storage_unavailable`: a store the request needed did not answer (logged).
pub(crate) fn unavailable(failure: impl std::fmt::Display) -> Response {
    tracing::error!(error = %failure, "admin API request failed");
    error(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", format!("ClickHouse: {failure}"))
}

/// `value` as JSON with `status`, or the error's own answer.
pub(crate) fn answer<T: serde::Serialize, E: Refusal>(status: StatusCode, result: Result<T, E>) -> Response {
    match result {
        Ok(value) => (status, Json(value)).into_response(),
        Err(error) => error.refusal(),
    }
}

/// A JSON body, or the answer that says what is wrong with it (`code` names the error).
#[allow(clippy::result_large_err)] // the refusal is answered at once, never carried further
pub(crate) fn body<T>(
    body: Result<Json<T>, axum::extract::rejection::JsonRejection>,
    code: &str,
) -> Result<T, Response> {
    body.map(|Json(value)| value).map_err(|rejection| error(rejection.status(), code, rejection.body_text()))
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such admin endpoint; GET /api/admin/openapi.json lists them")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_org_of_a_path() {
        assert_eq!(org_in_path("/api/admin/orgs/acme/rules"), Some("acme"));
        assert_eq!(org_in_path("/api/admin/orgs/acme"), Some("acme"));
        assert_eq!(org_in_path("/api/admin/orgs"), None);
        assert_eq!(org_in_path("/api/admin/orgs/"), Some(""), "refused as invalid, never taken for every org");
        assert_eq!(org_in_path("/api/admin/orgs//rules"), Some(""));
    }

    #[test]
    fn operations_are_unique_and_routable() {
        let operations = operations();
        let mut seen = std::collections::HashSet::new();
        for operation in &operations {
            assert!(
                seen.insert((operation.method.clone(), operation.path)),
                "{} {} twice",
                operation.method,
                operation.path
            );
        }
        // Building the router panics on overlapping or malformed routes.
        let client = clickhouse::Client::default();
        let _ = router(
            client,
            Settings {
                kafka: None,
                tokens: Vec::new(),
                public_url: String::new(),
                tails: TailLimits::default(),
                people: PeopleReach::default(),
            },
        );
    }
}

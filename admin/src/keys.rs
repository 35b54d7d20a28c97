//! `/api/admin/orgs/{org}/keys`: an org's API keys. A key is shown once, at creation; listings
//! show its id and first characters, never the key or its hashes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{body, error, Admin, Refusal};
use control::keys::{self, ApiKeyRow, Endpoint, KeyAdminError, NewKey};
use control::signing::{self, SetError};

impl Refusal for KeyAdminError {
    fn refusal(self) -> Response {
        let (status, code) = match &self {
            KeyAdminError::BadOrg(_) => (StatusCode::BAD_REQUEST, "invalid_key"),
            KeyAdminError::NotFound(_) => (StatusCode::NOT_FOUND, "key_not_found"),
            KeyAdminError::Random(_) | KeyAdminError::ClickHouse(_) => {
                tracing::error!(error = %self, "admin API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable")
            }
        };
        error(status, code, self.to_string())
    }
}

/// A key as listed.
#[derive(Serialize)]
struct ShownKey {
    key_id: String,
    name: String,
    /// The key's first characters, to tell keys apart.
    prefix: String,
    has_secret: bool,
    /// The provider whose signatures the key's requests must carry (`stripe`, …), if any.
    signing_provider: Option<String>,
    /// Everything it sends goes to the historical lane.
    historical: bool,
    endpoints: Vec<String>,
    active: bool,
    expires_at_ms: u64,
    created_at_ms: u64,
}

impl From<ApiKeyRow> for ShownKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            key_id: row.key_id,
            name: String::new(),
            prefix: row.key_prefix,
            has_secret: !row.secret_hash.is_empty(),
            signing_provider: None,
            historical: false,
            endpoints: row.endpoints,
            active: row.active == 1,
            expires_at_ms: row.expires_at_ms,
            created_at_ms: row.created_at_ms,
        }
    }
}

pub async fn list(State(admin): State<Admin>, Path(org): Path<String>) -> Response {
    let providers = async { signing::providers(&admin.client, &org).await.map_err(KeyAdminError::from) };
    let found = tokio::try_join!(
        keys::list(&admin.client, &org),
        keys::names(&admin.client, &org),
        providers,
        keys::historical_of(&admin.client, &org)
    );
    let (rows, mut names, mut providers, historical) = match found {
        Ok(found) => found,
        Err(error) => return error.refusal(),
    };
    let shown: Vec<ShownKey> = rows
        .into_iter()
        .map(|row| {
            let name = names.remove(&row.key_id).unwrap_or_default();
            let signing_provider = providers.remove(&row.key_id);
            let historical = historical.contains(&row.key_id);
            ShownKey { name, signing_provider, historical, ..ShownKey::from(row) }
        })
        .collect();
    Json(json!({"keys": shown})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// What people call it.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    expires_at_ms: Option<u64>,
    /// Endpoint types the key may use (`signal_staging`, `collect`, `ingress`, `tracking`); all
    /// when absent or empty.
    #[serde(default)]
    endpoints: Vec<String>,
    /// Everything the key sends goes to the historical lane.
    #[serde(default)]
    historical: bool,
}

pub async fn create(
    State(admin): State<Admin>,
    Path(org): Path<String>,
    new: Result<Json<NewKeyBody>, JsonRejection>,
) -> Response {
    let new = match body(new, "invalid_key") {
        Ok(new) => new,
        Err(refused) => return refused,
    };
    let mut endpoints = Vec::with_capacity(new.endpoints.len());
    for name in &new.endpoints {
        match Endpoint::parse(name) {
            Some(endpoint) => endpoints.push(endpoint),
            None => {
                let known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
                let message = format!("{name:?} is not an endpoint type; use {}", known.join(", "));
                return error(StatusCode::BAD_REQUEST, "invalid_key", message);
            }
        }
    }
    if new.expires_at_ms.is_some_and(|at| at <= runtime::time::now_ms()) {
        return error(StatusCode::BAD_REQUEST, "invalid_key", "expires_at_ms is in the past");
    }
    let secret = new.secret.as_deref().filter(|secret| !secret.is_empty());
    let created = keys::create(
        &admin.client,
        NewKey {
            org_id: &org,
            name: new.name.as_deref(),
            secret,
            expires_at_ms: new.expires_at_ms,
            endpoints: &endpoints,
            historical: new.historical,
        },
    )
    .await;
    match created {
        Ok(created) => (
            StatusCode::CREATED,
            Json(json!({"key": created.key, "key_id": created.key_id, "name": new.name, "message": "keep the key now: it is not shown again"})),
        )
            .into_response(),
        Err(error) => error.refusal(),
    }
}

pub async fn revoke(State(admin): State<Admin>, Path((org, key_id)): Path<(String, String)>) -> Response {
    // Only a key of this org, and only by its id: a key itself never travels in a URL.
    match keys::revoke_of(&admin.client, &org, &key_id).await {
        Ok(row) => Json(ShownKey::from(row)).into_response(),
        Err(error) => error.refusal(),
    }
}

impl Refusal for SetError {
    fn refusal(self) -> Response {
        match self {
            SetError::Invalid(error) => super::error(StatusCode::BAD_REQUEST, "invalid_signing", error.to_string()),
            SetError::ClickHouse(error) => KeyAdminError::ClickHouse(error).refusal(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningBody {
    /// `stripe`, `github`, `hubspot`, `shopify`, `slack` or `standard_webhooks`.
    provider: String,
    /// The signing secret as the provider shows it (Standard Webhooks: `whsec_…`).
    secret: String,
}

/// Requires the provider's signature on every request the key makes; the secret is never shown.
pub async fn set_signing(
    State(admin): State<Admin>,
    Path((org, key_id)): Path<(String, String)>,
    given: Result<Json<SigningBody>, JsonRejection>,
) -> Response {
    let given = match body(given, "invalid_signing") {
        Ok(given) => given,
        Err(refused) => return refused,
    };
    if let Err(error) = keys::find_of(&admin.client, &org, &key_id).await {
        return error.refusal();
    }
    match signing::set(&admin.client, &org, &key_id, &given.provider, &given.secret).await {
        Ok(set) => Json(json!({
            "key_id": key_id,
            "signing_provider": set.provider.as_str(),
            "message": "requests with this key must now carry a valid signature (within the control refresh interval)"
        }))
        .into_response(),
        Err(error) => error.refusal(),
    }
}

/// Stops requiring a signature on the key's requests.
pub async fn remove_signing(State(admin): State<Admin>, Path((org, key_id)): Path<(String, String)>) -> Response {
    if let Err(error) = keys::find_of(&admin.client, &org, &key_id).await {
        return error.refusal();
    }
    match signing::remove(&admin.client, &org, &key_id).await {
        Ok(()) => Json(json!({"key_id": key_id, "signing_provider": null})).into_response(),
        Err(error) => error.refusal(),
    }
}

//! API keys: created, listed and revoked in ClickHouse, checked from memory.
//!
//! A key is `sgk_` and 48 hex digits (192 random bits). Only its SHA-256 is stored; a fast hash
//! is enough because the key carries full entropy (there is nothing to brute-force from a
//! dictionary). A key's shared secret, when it has one, is stored hashed the same way and
//! compared in constant time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use clickhouse::Row;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::signing::{Signing, SigningRow};

pub const KEY_PREFIX: &str = "sgk_";
const KEY_RANDOM_BYTES: usize = 24;
const SHOWN_PREFIX_CHARS: usize = 12;

/// The endpoint families a key can be limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/api/signal-staging/...`: webhook, batch and bulk.
    SignalStaging,
    /// `/collect/...` (Tracardi-style).
    Collect,
    /// `/webhooks/ingress/...` (activities).
    Ingress,
    /// `/v1/...`: the Segment Tracking API (the key is the writeKey).
    Tracking,
}

impl Endpoint {
    pub const ALL: [Endpoint; 4] = [Endpoint::SignalStaging, Endpoint::Collect, Endpoint::Ingress, Endpoint::Tracking];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::SignalStaging => "signal_staging",
            Endpoint::Collect => "collect",
            Endpoint::Ingress => "ingress",
            Endpoint::Tracking => "tracking",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|endpoint| endpoint.as_str() == value)
    }
}

/// A key as stored: one row per change, the highest `version` wins.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct ApiKeyRow {
    pub key_id: String,
    pub org_id: String,
    pub key_hash: String,
    pub key_prefix: String,
    pub secret_hash: String,
    pub endpoints: Vec<String>,
    pub active: u8,
    pub expires_at_ms: u64,
    pub created_at_ms: u64,
    pub version: u64,
}

/// What `create` needs.
#[derive(Debug, Default)]
pub struct NewKey<'a> {
    pub org_id: &'a str,
    /// What people call it (at most 100 characters kept).
    pub name: Option<&'a str>,
    pub secret: Option<&'a str>,
    /// Epoch milliseconds; `None` never expires.
    pub expires_at_ms: Option<u64>,
    /// Empty: every endpoint.
    pub endpoints: &'a [Endpoint],
    /// Everything the key sends goes to the historical lane.
    pub historical: bool,
}

/// A created key. `key` is shown once and never stored.
pub struct CreatedKey {
    pub key: String,
    pub key_id: String,
}

impl fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreatedKey").field("key", &"[redacted]").field("key_id", &self.key_id).finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyAdminError {
    #[error("org id {0:?} is not valid: use 1-64 letters, digits, '_', '-' or '.'")]
    BadOrg(String),
    #[error("no key matches {0:?} (give the key itself or its key id)")]
    NotFound(String),
    #[error("could not read random bytes: {0}")]
    Random(String),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

/// Hex SHA-256: how keys and secrets are stored.
pub fn hash_hex(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

fn generate_key() -> Result<String, KeyAdminError> {
    let mut bytes = [0u8; KEY_RANDOM_BYTES];
    getrandom::fill(&mut bytes).map_err(|error| KeyAdminError::Random(error.to_string()))?;
    Ok(format!("{KEY_PREFIX}{}", hex::encode(bytes)))
}

fn generate_key_id() -> Result<String, KeyAdminError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| KeyAdminError::Random(error.to_string()))?;
    Ok(format!("key_{}", hex::encode(bytes)))
}

/// Creates a key for `new.org_id` (recording the org if it is new) and returns it, once.
pub async fn create(client: &clickhouse::Client, new: NewKey<'_>) -> Result<CreatedKey, KeyAdminError> {
    if !schemas::valid_org_id(new.org_id) {
        return Err(KeyAdminError::BadOrg(new.org_id.to_owned()));
    }
    super::orgs::ensure(client, new.org_id).await?;
    let key = generate_key()?;
    let key_id = generate_key_id()?;
    // The name first: a name without a key is harmless, a key whose creation answered an error
    // would be live and never shown.
    if let Some(name) = new.name.map(str::trim).filter(|name| !name.is_empty()) {
        set_name(client, new.org_id, &key_id, name).await?;
    }
    if new.historical {
        let row = KeyLane {
            org_id: new.org_id.to_owned(),
            key_id: key_id.clone(),
            lane: HISTORICAL.to_owned(),
            version: runtime::time::now_ms(),
        };
        runtime::clickhouse::insert::<KeyLane, _>(client, "key_lanes", &[row]).await?;
    }
    let now = runtime::time::now_ms();
    let row = ApiKeyRow {
        key_id: key_id.clone(),
        org_id: new.org_id.to_owned(),
        key_hash: hash_hex(&key),
        key_prefix: key[..SHOWN_PREFIX_CHARS].to_owned(),
        secret_hash: new.secret.map(hash_hex).unwrap_or_default(),
        endpoints: new.endpoints.iter().map(|endpoint| endpoint.as_str().to_owned()).collect(),
        active: 1,
        expires_at_ms: new.expires_at_ms.unwrap_or(0),
        created_at_ms: now,
        version: now,
    };
    write(client, &row).await?;
    Ok(CreatedKey { key, key_id })
}

/// Revokes the key given by value or by key id; answers the revoked key's row.
pub async fn revoke(client: &clickhouse::Client, key_or_id: &str) -> Result<ApiKeyRow, KeyAdminError> {
    let (column, value) = if key_or_id.starts_with(KEY_PREFIX) {
        ("key_hash", hash_hex(key_or_id))
    } else {
        ("key_id", key_or_id.to_owned())
    };
    let query = format!("SELECT ?fields FROM api_keys FINAL WHERE {column} = ?");
    let row: ApiKeyRow = client
        .query(&query)
        .bind(&value)
        .fetch_optional()
        .await?
        .ok_or_else(|| KeyAdminError::NotFound(shown(key_or_id)))?;
    deactivate(client, row).await
}

/// Revokes the key `key_id` if it is one of `org_id`'s; answers the revoked key's row.
pub async fn revoke_of(client: &clickhouse::Client, org_id: &str, key_id: &str) -> Result<ApiKeyRow, KeyAdminError> {
    deactivate(client, find_of(client, org_id, key_id).await?).await
}

/// The key `key_id` if it is one of `org_id`'s.
pub async fn find_of(client: &clickhouse::Client, org_id: &str, key_id: &str) -> Result<ApiKeyRow, KeyAdminError> {
    client
        .query("SELECT ?fields FROM api_keys FINAL WHERE org_id = ? AND key_id = ?")
        .bind(org_id)
        .bind(key_id)
        .fetch_optional()
        .await?
        .ok_or_else(|| KeyAdminError::NotFound(key_id.to_owned()))
}

async fn deactivate(client: &clickhouse::Client, mut row: ApiKeyRow) -> Result<ApiKeyRow, KeyAdminError> {
    row.active = 0;
    row.version = runtime::time::now_ms().max(row.version + 1);
    write(client, &row).await?;
    Ok(row)
}

/// The lane of a key marked historical.
pub const HISTORICAL: &str = "historical";

/// A key's lane as stored (`key_lanes`).
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct KeyLane {
    pub org_id: String,
    pub key_id: String,
    pub lane: String,
    pub version: u64,
}

/// The ids of `org_id`'s keys marked historical.
pub async fn historical_of(
    client: &clickhouse::Client,
    org_id: &str,
) -> Result<std::collections::HashSet<String>, KeyAdminError> {
    let ids: Vec<String> = client
        .query("SELECT key_id FROM key_lanes FINAL WHERE org_id = ? AND lane = ?")
        .bind(org_id)
        .bind(HISTORICAL)
        .fetch_all()
        .await?;
    Ok(ids.into_iter().collect())
}

#[derive(Debug, Row, Serialize, Deserialize)]
struct KeyName {
    org_id: String,
    key_id: String,
    name: String,
    version: u64,
}

/// Names a key (at most 100 characters).
async fn set_name(client: &clickhouse::Client, org_id: &str, key_id: &str, name: &str) -> Result<(), KeyAdminError> {
    let row = KeyName {
        org_id: org_id.to_owned(),
        key_id: key_id.to_owned(),
        name: name.chars().take(100).collect(),
        version: runtime::time::now_ms(),
    };
    Ok(runtime::clickhouse::insert::<KeyName, _>(client, "api_key_names", &[row]).await?)
}

/// The names of `org_id`'s keys, by key id.
pub async fn names(
    client: &clickhouse::Client,
    org_id: &str,
) -> Result<std::collections::HashMap<String, String>, KeyAdminError> {
    #[derive(Row, Deserialize)]
    struct Named {
        key_id: String,
        name: String,
    }
    let rows: Vec<Named> = client
        .query("SELECT key_id, argMax(name, version) AS shown FROM api_key_names WHERE org_id = ? GROUP BY key_id")
        .bind(org_id)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|row| (row.key_id, row.name)).collect())
}

/// Every key of `org_id`, newest first.
pub async fn list(client: &clickhouse::Client, org_id: &str) -> Result<Vec<ApiKeyRow>, KeyAdminError> {
    Ok(client
        .query("SELECT ?fields FROM api_keys FINAL WHERE org_id = ? ORDER BY created_at_ms DESC")
        .bind(org_id)
        .fetch_all()
        .await?)
}

async fn write(client: &clickhouse::Client, row: &ApiKeyRow) -> Result<(), clickhouse::error::Error> {
    runtime::clickhouse::insert::<ApiKeyRow, _>(client, "api_keys", &[row]).await
}

/// A key as the edge sees it: its first characters only, for error messages and logs.
pub fn shown(key: &str) -> String {
    match key.get(..SHOWN_PREFIX_CHARS) {
        Some(prefix) if key.len() > SHOWN_PREFIX_CHARS => format!("{prefix}…"),
        _ => key.to_owned(),
    }
}

/// True when `key` has the shape of a key sigstage makes (prefix and length): anything else is
/// refused without a lookup.
pub fn is_well_formed(key: &str) -> bool {
    key.len() == KEY_PREFIX.len() + 2 * KEY_RANDOM_BYTES
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why a key was refused. Each maps to a 401 with its own machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("API key is invalid")]
    Unknown,
    #[error("API key is inactive")]
    Inactive,
    #[error("API key has expired")]
    Expired,
    #[error("API key may not be used on this endpoint")]
    EndpointNotAllowed,
    #[error("this API key requires the X-Api-Secret header")]
    SecretRequired,
    #[error("X-Api-Secret does not match the API key's secret")]
    SecretWrong,
    #[error(
        "no API key: for the Tracking API, send the writeKey as Basic auth's username (base64 of `writeKey:`), \
         the X-Write-Key header, or the body's writeKey"
    )]
    Missing,
}

impl AuthError {
    pub fn code(self) -> &'static str {
        match self {
            AuthError::Unknown => "invalid_api_key",
            AuthError::Inactive => "inactive_api_key",
            AuthError::Expired => "expired_api_key",
            AuthError::EndpointNotAllowed => "endpoint_not_allowed",
            AuthError::SecretRequired => "missing_api_secret",
            AuthError::SecretWrong => "invalid_api_secret",
            AuthError::Missing => "missing_api_key",
        }
    }
}

/// A key as held in memory.
#[derive(Debug, Clone)]
pub struct KeyEntry {
    pub key_id: Arc<str>,
    pub org_id: Arc<str>,
    secret_hash: Option<[u8; 32]>,
    /// Empty: every endpoint.
    endpoints: Vec<Endpoint>,
    active: bool,
    expires_at_ms: u64,
    /// The provider signature its requests must carry, if any.
    pub signing: Option<Arc<Signing>>,
    /// Everything it sends goes to the historical lane.
    pub historical: bool,
}

/// Every key, indexed by the SHA-256 of the key: an immutable snapshot, replaced on refresh.
#[derive(Debug, Default)]
pub struct KeySet {
    by_hash: HashMap<[u8; 32], KeyEntry>,
}

impl KeySet {
    /// Reads the latest version of every key, and the signatures they require.
    pub async fn load(client: &clickhouse::Client) -> Result<Self, clickhouse::error::Error> {
        let rows: Vec<ApiKeyRow> = client.query("SELECT ?fields FROM api_keys FINAL").fetch_all().await?;
        let signing: Vec<SigningRow> = client.query("SELECT ?fields FROM key_signing FINAL").fetch_all().await?;
        let lanes: Vec<KeyLane> = client.query("SELECT ?fields FROM key_lanes FINAL").fetch_all().await?;
        Ok(Self::from_rows(rows, signing, lanes))
    }

    pub fn from_rows(
        rows: impl IntoIterator<Item = ApiKeyRow>,
        signing: impl IntoIterator<Item = SigningRow>,
        lanes: impl IntoIterator<Item = KeyLane>,
    ) -> Self {
        let historical: std::collections::HashSet<String> =
            lanes.into_iter().filter(|lane| lane.lane == HISTORICAL).map(|lane| lane.key_id).collect();
        let mut signing: HashMap<String, Arc<Signing>> =
            signing.into_iter().filter_map(|row| Some((row.key_id.clone(), Arc::new(row.signing()?)))).collect();
        let decode = |hex_digest: &str| -> Option<[u8; 32]> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hex_digest, &mut out).ok().map(|()| out)
        };
        let by_hash = rows
            .into_iter()
            .filter_map(|row| {
                let entry = KeyEntry {
                    signing: signing.remove(&row.key_id),
                    historical: historical.contains(&row.key_id),
                    key_id: row.key_id.into(),
                    org_id: row.org_id.into(),
                    secret_hash: decode(&row.secret_hash),
                    endpoints: row.endpoints.iter().filter_map(|name| Endpoint::parse(name)).collect(),
                    active: row.active != 0,
                    expires_at_ms: row.expires_at_ms,
                };
                Some((decode(&row.key_hash)?, entry))
            })
            .collect();
        Self { by_hash }
    }

    /// The latest version of one key, when it exists: for a key created since the last load.
    pub async fn load_one(client: &clickhouse::Client, key: &str) -> Result<Self, clickhouse::error::Error> {
        let rows: Vec<ApiKeyRow> = client
            .query("SELECT ?fields FROM api_keys FINAL WHERE key_hash = ?")
            .bind(hash_hex(key))
            .fetch_all()
            .await?;
        let Some(row) = rows.first() else { return Ok(Self::default()) };
        let signing: Vec<SigningRow> = client
            .query("SELECT ?fields FROM key_signing FINAL WHERE key_id = ?")
            .bind(&row.key_id)
            .fetch_all()
            .await?;
        let lanes: Vec<KeyLane> =
            client.query("SELECT ?fields FROM key_lanes FINAL WHERE key_id = ?").bind(&row.key_id).fetch_all().await?;
        Ok(Self::from_rows(rows, signing, lanes))
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Checks a key (and its secret, when it has one) for use on `endpoint` at `now_ms`.
    pub fn authenticate(
        &self,
        key: &str,
        secret: Option<&[u8]>,
        endpoint: Endpoint,
        now_ms: u64,
    ) -> Result<&KeyEntry, AuthError> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        let entry = self.by_hash.get(&digest).ok_or(AuthError::Unknown)?;
        if !entry.active {
            return Err(AuthError::Inactive);
        }
        if entry.expires_at_ms != 0 && entry.expires_at_ms <= now_ms {
            return Err(AuthError::Expired);
        }
        if !entry.endpoints.is_empty() && !entry.endpoints.contains(&endpoint) {
            return Err(AuthError::EndpointNotAllowed);
        }
        if let Some(expected) = &entry.secret_hash {
            let given = secret.ok_or(AuthError::SecretRequired)?;
            let given: [u8; 32] = Sha256::digest(given).into();
            if !bool::from(given.ct_eq(expected)) {
                return Err(AuthError::SecretWrong);
            }
        }
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, secret: Option<&str>, active: u8, expires_at_ms: u64, endpoints: &[&str]) -> ApiKeyRow {
        ApiKeyRow {
            key_id: format!("id-{key}"),
            org_id: "acme".into(),
            key_hash: hash_hex(key),
            key_prefix: shown(key),
            secret_hash: secret.map(hash_hex).unwrap_or_default(),
            endpoints: endpoints.iter().map(|e| (*e).to_owned()).collect(),
            active,
            expires_at_ms,
            created_at_ms: 1,
            version: 1,
        }
    }

    #[test]
    fn authenticate_cases() {
        let keys = KeySet::from_rows(
            [
                row("plain", None, 1, 0, &[]),
                row("secret", Some("s3"), 1, 0, &[]),
                row("revoked", None, 0, 0, &[]),
                row("expiring", None, 1, 1_000, &[]),
                row("collect-only", None, 1, 0, &["collect"]),
            ],
            [],
            [],
        );
        let now = 999;
        type Case<'a> = (&'a str, Option<&'a str>, Endpoint, Result<(), AuthError>);
        let cases: [Case<'_>; 9] = [
            ("plain", None, Endpoint::SignalStaging, Ok(())),
            ("nope", None, Endpoint::SignalStaging, Err(AuthError::Unknown)),
            ("secret", None, Endpoint::SignalStaging, Err(AuthError::SecretRequired)),
            ("secret", Some("s4"), Endpoint::SignalStaging, Err(AuthError::SecretWrong)),
            ("secret", Some("s3"), Endpoint::SignalStaging, Ok(())),
            ("revoked", None, Endpoint::SignalStaging, Err(AuthError::Inactive)),
            ("expiring", None, Endpoint::SignalStaging, Ok(())),
            ("collect-only", None, Endpoint::Ingress, Err(AuthError::EndpointNotAllowed)),
            ("collect-only", None, Endpoint::Collect, Ok(())),
        ];
        for (key, secret, endpoint, expected) in cases {
            let got = keys.authenticate(key, secret.map(str::as_bytes), endpoint, now).map(|entry| {
                assert_eq!(&*entry.org_id, "acme");
            });
            assert_eq!(got, expected, "{key} {secret:?} {endpoint:?}");
        }
        assert_eq!(keys.authenticate("expiring", None, Endpoint::Collect, 1_000).map(drop), Err(AuthError::Expired));
    }

    #[test]
    fn generated_keys_are_distinct_and_shaped() {
        let a = generate_key().expect("random");
        let b = generate_key().expect("random");
        assert_ne!(a, b);
        assert!(a.starts_with(KEY_PREFIX));
        assert_eq!(a.len(), KEY_PREFIX.len() + 2 * KEY_RANDOM_BYTES);
        assert!(is_well_formed(&a));
        assert!(!is_well_formed(&a[1..]) && !is_well_formed(&a.replace(KEY_PREFIX, "sgx_")));
        assert_eq!(shown(&a).chars().count(), SHOWN_PREFIX_CHARS + 1);
        assert!(!shown(&a).contains(&a[SHOWN_PREFIX_CHARS..]));
    }
}

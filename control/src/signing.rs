//! Provider signatures a key's requests must carry: which provider signs them and with what
//! secret, set and removed per key, held in memory with the keys (the edge checks them in
//! `ingest::verify`).

use std::fmt;

use base64::Engine;
use clickhouse::Row;
use serde::{Deserialize, Serialize};

/// The webhook providers whose signatures the edge checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// `Stripe-Signature: t=…,v1=…`, HMAC-SHA256 hex of `{t}.{body}`.
    Stripe,
    /// `X-Hub-Signature-256: sha256=…`, HMAC-SHA256 hex of the body.
    Github,
    /// `X-HubSpot-Signature-v3`, base64 HMAC-SHA256 of method, URL, body and timestamp.
    Hubspot,
    /// `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the body.
    Shopify,
    /// `X-Slack-Signature: v0=…`, HMAC-SHA256 hex of `v0:{timestamp}:{body}`.
    Slack,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,…` (Svix and others).
    StandardWebhooks,
}

impl Provider {
    pub const ALL: [Provider; 6] = [
        Provider::Stripe,
        Provider::Github,
        Provider::Hubspot,
        Provider::Shopify,
        Provider::Slack,
        Provider::StandardWebhooks,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Stripe => "stripe",
            Provider::Github => "github",
            Provider::Hubspot => "hubspot",
            Provider::Shopify => "shopify",
            Provider::Slack => "slack",
            Provider::StandardWebhooks => "standard_webhooks",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|provider| provider.as_str() == value)
    }

    /// The names `parse` takes, for error messages.
    pub fn names() -> String {
        Self::ALL.map(Provider::as_str).join(", ")
    }
}

/// The signature a key's requests must carry. The secret never reaches a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Signing {
    pub provider: Provider,
    /// The HMAC key: the secret's bytes, or for Standard Webhooks the base64 after `whsec_`.
    pub key: Vec<u8>,
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signing").field("provider", &self.provider).field("key", &"[redacted]").finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("{0:?} is not a provider; use one of {names}", names = Provider::names())]
    UnknownProvider(String),
    #[error("the signing secret is empty")]
    EmptySecret,
    #[error("a Standard Webhooks secret is `whsec_` followed by base64 (as the sender shows it)")]
    BadStandardSecret,
}

impl Signing {
    /// A provider and its secret as the provider shows it.
    pub fn new(provider: &str, secret: &str) -> Result<Self, SigningError> {
        let provider = Provider::parse(provider).ok_or_else(|| SigningError::UnknownProvider(provider.to_owned()))?;
        if secret.is_empty() {
            return Err(SigningError::EmptySecret);
        }
        let key = match provider {
            Provider::StandardWebhooks => secret
                .strip_prefix("whsec_")
                .and_then(|encoded| base64::engine::general_purpose::STANDARD.decode(encoded).ok())
                .filter(|key| !key.is_empty())
                .ok_or(SigningError::BadStandardSecret)?,
            _ => secret.as_bytes().to_vec(),
        };
        Ok(Self { provider, key })
    }
}

/// One key's signing requirement as stored; the highest `version` wins, an empty provider
/// removes it.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct SigningRow {
    pub org_id: String,
    pub key_id: String,
    pub provider: String,
    pub secret: String,
    pub version: u64,
}

impl SigningRow {
    /// The requirement this row sets, if any; a row that no longer parses is skipped, warned.
    pub fn signing(&self) -> Option<Signing> {
        if self.provider.is_empty() {
            return None;
        }
        Signing::new(&self.provider, &self.secret)
            .inspect_err(|error| tracing::warn!(key_id = %self.key_id, %error, "a key's signing requirement is not valid; ignored"))
            .ok()
    }
}

/// Requires `provider`'s signatures, made with `secret`, on the requests of `org_id`'s key
/// `key_id` (which the caller has checked exists).
pub async fn set(
    client: &clickhouse::Client,
    org_id: &str,
    key_id: &str,
    provider: &str,
    secret: &str,
) -> Result<Signing, SetError> {
    let signing = Signing::new(provider, secret)?;
    write(client, org_id, key_id, signing.provider.as_str(), secret).await?;
    Ok(signing)
}

/// Stops requiring signatures on `key_id`'s requests.
pub async fn remove(client: &clickhouse::Client, org_id: &str, key_id: &str) -> Result<(), SetError> {
    Ok(write(client, org_id, key_id, "", "").await?)
}

async fn write(
    client: &clickhouse::Client,
    org_id: &str,
    key_id: &str,
    provider: &str,
    secret: &str,
) -> Result<(), clickhouse::error::Error> {
    let row = SigningRow {
        org_id: org_id.to_owned(),
        key_id: key_id.to_owned(),
        provider: provider.to_owned(),
        secret: secret.to_owned(),
        version: runtime::time::now_ms(),
    };
    runtime::clickhouse::insert::<SigningRow, _>(client, "key_signing", &[row]).await
}

/// The provider each of `org_id`'s keys requires, by key id (never the secrets).
pub async fn providers(
    client: &clickhouse::Client,
    org_id: &str,
) -> Result<std::collections::HashMap<String, String>, clickhouse::error::Error> {
    #[derive(Row, Deserialize)]
    struct Required {
        key_id: String,
        provider: String,
    }
    let rows: Vec<Required> = client
        .query("SELECT key_id, provider FROM key_signing FINAL WHERE org_id = ? AND provider != ''")
        .bind(org_id)
        .fetch_all()
        .await?;
    Ok(rows.into_iter().map(|row| (row.key_id, row.provider)).collect())
}

#[derive(Debug, thiserror::Error)]
pub enum SetError {
    #[error(transparent)]
    Invalid(#[from] SigningError),
    #[error("ClickHouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_taken_as_each_provider_shows_them() {
        let stripe = Signing::new("stripe", "whsec_abc").expect("stripe");
        assert_eq!((stripe.provider, stripe.key.as_slice()), (Provider::Stripe, b"whsec_abc".as_slice()));
        let standard = Signing::new("standard_webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("standard");
        assert_eq!(standard.key.len(), 24);
        assert_eq!(Signing::new("standard_webhooks", "MfKQ9r8G"), Err(SigningError::BadStandardSecret));
        assert_eq!(Signing::new("paypal", "x"), Err(SigningError::UnknownProvider("paypal".into())));
        assert_eq!(Signing::new("github", ""), Err(SigningError::EmptySecret));
        assert!(!format!("{stripe:?}").contains("abc"), "the secret is never shown");
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
    }
}

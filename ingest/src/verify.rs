//! Provider signatures, checked before a 202: a key that requires a provider's signature
//! (`control::signing`) accepts only requests that carry one made with its secret over the body
//! as sent. Each scheme is the provider's documented one; every comparison is constant-time
//! (`Mac::verify_slice`), and a timestamped scheme refuses a timestamp more than
//! [`TOLERANCE_S`] from now, as the providers' own libraries do.

use axum::http::{HeaderMap, Method, Uri};
use base64::Engine;
use control::signing::{Provider, Signing};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far a signed timestamp may be from now, either way: Stripe's, Slack's, HubSpot's and
/// Standard Webhooks' default (5 minutes).
pub const TOLERANCE_S: i64 = 300;

pub const SIGNATURES_TOTAL: &str = "sigstage_ingest_signatures_total";

/// What a signature is computed over.
pub struct Signed<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("this key takes only {provider} webhooks, signed: the {header} header is missing")]
    Missing { provider: &'static str, header: &'static str },
    #[error("the {header} header does not match the body signed with this key's {provider} signing secret")]
    Invalid { provider: &'static str, header: &'static str },
    #[error(
        "the {header} timestamp is more than 300 s from now: a replayed request, or a clock that is off (check NTP)"
    )]
    Stale { provider: &'static str, header: &'static str },
    #[error(
        "this key takes only {provider} webhooks, signed, which the webhook endpoints check \
         (/api/signal-staging/webhook/…, /webhooks/ingress/…): use another key here"
    )]
    Unchecked { provider: &'static str },
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing { .. } => "missing_signature",
            SignatureError::Invalid { .. } => "invalid_signature",
            SignatureError::Stale { .. } => "stale_signature",
            SignatureError::Unchecked { .. } => "signature_required",
        }
    }

    /// The metric's `result` label.
    fn result(self) -> &'static str {
        match self {
            SignatureError::Missing { .. } => "missing",
            SignatureError::Invalid { .. } => "invalid",
            SignatureError::Stale { .. } => "stale",
            SignatureError::Unchecked { .. } => "unchecked",
        }
    }
}

/// Checks `request` against `signing` at `now_s` (Unix seconds), and counts the outcome.
pub fn verify(signing: &Signing, request: &Signed<'_>, now_s: i64) -> Result<(), SignatureError> {
    count(signing, check(signing, request, now_s))
}

/// Refuses a request to an endpoint that checks no signature, from a key that requires one.
pub fn unchecked(signing: &Signing) -> SignatureError {
    let refused = SignatureError::Unchecked { provider: signing.provider.as_str() };
    count(signing, Err(refused)).expect_err("refused")
}

fn count(signing: &Signing, checked: Result<(), SignatureError>) -> Result<(), SignatureError> {
    let result = checked.map_or_else(SignatureError::result, |()| "verified");
    metrics::counter!(SIGNATURES_TOTAL, "provider" => signing.provider.as_str(), "result" => result).increment(1);
    checked
}

fn check(signing: &Signing, request: &Signed<'_>, now_s: i64) -> Result<(), SignatureError> {
    let provider = signing.provider.as_str();
    let header = |name: &'static str| {
        request
            .headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .ok_or(SignatureError::Missing { provider, header: name })
    };
    let invalid = |name: &'static str| SignatureError::Invalid { provider, header: name };
    let mac = |parts: &[&[u8]]| {
        let mut mac = Hmac::<Sha256>::new_from_slice(&signing.key).expect("HMAC takes a key of any length");
        for part in parts {
            mac.update(part);
        }
        mac
    };
    let fresh = |name: &'static str, timestamp: i64| {
        if (now_s - timestamp).abs() > TOLERANCE_S {
            Err(SignatureError::Stale { provider, header: name })
        } else {
            Ok(())
        }
    };
    let hex = |value: &str| hex::decode(value).ok();
    let base64 = |value: &str| base64::engine::general_purpose::STANDARD.decode(value).ok();
    let body = request.body;
    match signing.provider {
        Provider::Stripe => {
            const NAME: &str = "stripe-signature";
            let value = header(NAME)?;
            let items = || value.split(',').filter_map(|item| item.trim().split_once('='));
            let timestamp = items().find(|(k, _)| *k == "t").and_then(|(_, t)| t.parse::<i64>().ok());
            let timestamp = timestamp.ok_or(invalid(NAME))?;
            let signed = mac(&[timestamp.to_string().as_bytes(), b".", body]);
            let matches = items()
                .filter(|(k, _)| *k == "v1")
                .filter_map(|(_, signature)| hex(signature))
                .any(|signature| signed.clone().verify_slice(&signature).is_ok());
            if !matches {
                return Err(invalid(NAME));
            }
            fresh(NAME, timestamp)
        }
        Provider::Github => {
            const NAME: &str = "x-hub-signature-256";
            let signature = header(NAME)?.strip_prefix("sha256=").and_then(hex).ok_or(invalid(NAME))?;
            mac(&[body]).verify_slice(&signature).map_err(|_| invalid(NAME))
        }
        Provider::Shopify => {
            const NAME: &str = "x-shopify-hmac-sha256";
            let signature = base64(header(NAME)?).ok_or(invalid(NAME))?;
            mac(&[body]).verify_slice(&signature).map_err(|_| invalid(NAME))
        }
        Provider::Slack => {
            const NAME: &str = "x-slack-signature";
            const TIME: &str = "x-slack-request-timestamp";
            let signature = header(NAME)?;
            let timestamp = header(TIME)?;
            let seconds = timestamp.parse::<i64>().map_err(|_| invalid(TIME))?;
            let signature = signature.strip_prefix("v0=").and_then(hex).ok_or(invalid(NAME))?;
            mac(&[b"v0:", timestamp.as_bytes(), b":", body]).verify_slice(&signature).map_err(|_| invalid(NAME))?;
            fresh(TIME, seconds)
        }
        Provider::Hubspot => {
            const NAME: &str = "x-hubspot-signature-v3";
            const TIME: &str = "x-hubspot-request-timestamp";
            let signature = header(NAME)?;
            let timestamp = header(TIME)?;
            let millis = timestamp.parse::<i64>().map_err(|_| invalid(TIME))?;
            let signature = base64(signature).ok_or(invalid(NAME))?;
            let url = hubspot_url(request).ok_or(invalid(NAME))?;
            let signed = mac(&[request.method.as_str().as_bytes(), url.as_bytes(), body, timestamp.as_bytes()]);
            signed.verify_slice(&signature).map_err(|_| invalid(NAME))?;
            fresh(TIME, millis.div_euclid(1000))
        }
        Provider::StandardWebhooks => {
            const NAME: &str = "webhook-signature";
            const ID: &str = "webhook-id";
            const TIME: &str = "webhook-timestamp";
            let signatures = header(NAME)?;
            let id = header(ID)?;
            let timestamp = header(TIME)?;
            let seconds = timestamp.parse::<i64>().map_err(|_| invalid(TIME))?;
            let signed = mac(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]);
            let matches = signatures
                .split(' ')
                .filter_map(|signature| signature.strip_prefix("v1,"))
                .filter_map(base64)
                .any(|signature| signed.clone().verify_slice(&signature).is_ok());
            if !matches {
                return Err(invalid(NAME));
            }
            fresh(TIME, seconds)
        }
    }
}

/// The URL HubSpot signed: the scheme the sender used (`X-Forwarded-Proto` behind a proxy that
/// ends TLS), the `Host`, and the path and query with the characters HubSpot decodes decoded.
fn hubspot_url(request: &Signed<'_>) -> Option<String> {
    let host = request.headers.get("host")?.to_str().ok()?;
    let scheme = request
        .headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(',').next())
        .map_or("http", str::trim);
    let path = request.uri.path_and_query().map_or("/", |path| path.as_str());
    const DECODED: [(&str, &str); 12] = [
        ("%3A", ":"),
        ("%2F", "/"),
        ("%3F", "?"),
        ("%40", "@"),
        ("%21", "!"),
        ("%24", "$"),
        ("%27", "'"),
        ("%28", "("),
        ("%29", ")"),
        ("%2A", "*"),
        ("%2C", ","),
        ("%3B", ";"),
    ];
    let path = DECODED
        .iter()
        .fold(path.to_owned(), |path, (from, to)| path.replace(from, to).replace(&from.to_lowercase(), to));
    Some(format!("{scheme}://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac_hex(key: &[u8], message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
        mac.update(message);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| (axum::http::HeaderName::from_static(name), value.parse().expect("value")))
            .collect()
    }

    const NOW: i64 = 1_800_000_000;

    fn check_with(signing: &Signing, headers: &HeaderMap, body: &[u8]) -> Result<(), SignatureError> {
        let uri: Uri = "/api/signal-staging/webhook/k?x=%3A".parse().expect("uri");
        check(signing, &Signed { method: &Method::POST, uri: &uri, headers, body }, NOW)
    }

    #[test]
    fn github_known_vector() {
        // GitHub's documented example: secret "It's a Secret to Everybody", payload "Hello, World!".
        let signing = Signing::new("github", "It's a Secret to Everybody").expect("signing");
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(check_with(&signing, &headers(&[("x-hub-signature-256", good.into())]), b"Hello, World!"), Ok(()));
        let invalid = SignatureError::Invalid { provider: "github", header: "x-hub-signature-256" };
        assert_eq!(
            check_with(&signing, &headers(&[("x-hub-signature-256", good.into())]), b"Hello, World?"),
            Err(invalid)
        );
        let missing = SignatureError::Missing { provider: "github", header: "x-hub-signature-256" };
        assert_eq!(check_with(&signing, &HeaderMap::new(), b"Hello, World!"), Err(missing));
    }

    #[test]
    fn stripe_takes_any_v1_and_refuses_a_stale_timestamp() {
        let signing = Signing::new("stripe", "whsec_test").expect("signing");
        let sign = |t: i64| hmac_hex(b"whsec_test", format!("{t}.{{}}").as_bytes());
        let header = |t: i64| headers(&[("stripe-signature", format!("t={t},v1=00ff,v1={},v0=ab", sign(t)))]);
        assert_eq!(check_with(&signing, &header(NOW - 10), b"{}"), Ok(()));
        let stale = SignatureError::Stale { provider: "stripe", header: "stripe-signature" };
        assert_eq!(check_with(&signing, &header(NOW - TOLERANCE_S - 1), b"{}"), Err(stale));
        let forged = headers(&[("stripe-signature", format!("t={},v1={}", NOW, sign(NOW - 10)))]);
        assert_eq!(check_with(&signing, &forged, b"{}").map_err(SignatureError::code), Err("invalid_signature"));
    }

    #[test]
    fn slack_hubspot_shopify_and_standard_webhooks() {
        let body = br#"{"a":1}"#;
        let slack = Signing::new("slack", "s").expect("slack");
        let signature = format!("v0={}", hmac_hex(b"s", format!("v0:{NOW}:{{\"a\":1}}").as_bytes()));
        let signed = headers(&[("x-slack-signature", signature), ("x-slack-request-timestamp", NOW.to_string())]);
        assert_eq!(check_with(&slack, &signed, body), Ok(()));

        let hubspot = Signing::new("hubspot", "h").expect("hubspot");
        let millis = (NOW * 1000).to_string();
        let message = format!("POSThttps://edge.example/api/signal-staging/webhook/k?x=:{{\"a\":1}}{millis}");
        let digest = hex::decode(hmac_hex(b"h", message.as_bytes())).expect("hex");
        let signature = base64::engine::general_purpose::STANDARD.encode(digest);
        let signed = headers(&[
            ("x-hubspot-signature-v3", signature),
            ("x-hubspot-request-timestamp", millis),
            ("host", "edge.example".into()),
            ("x-forwarded-proto", "https".into()),
        ]);
        assert_eq!(check_with(&hubspot, &signed, body), Ok(()));

        let shopify = Signing::new("shopify", "k").expect("shopify");
        let digest = hex::decode(hmac_hex(b"k", body)).expect("hex");
        let signed = headers(&[("x-shopify-hmac-sha256", base64::engine::general_purpose::STANDARD.encode(digest))]);
        assert_eq!(check_with(&shopify, &signed, body), Ok(()));

        let standard = Signing::new("standard_webhooks", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("standard");
        let message = format!("msg_1.{NOW}.{{\"a\":1}}");
        let digest = hex::decode(hmac_hex(&standard.key, message.as_bytes())).expect("hex");
        let signature = format!("v1,AAAA v1,{}", base64::engine::general_purpose::STANDARD.encode(digest));
        let signed = headers(&[
            ("webhook-id", "msg_1".into()),
            ("webhook-timestamp", NOW.to_string()),
            ("webhook-signature", signature.clone()),
        ]);
        assert_eq!(check_with(&standard, &signed, body), Ok(()));
        let unsent = headers(&[("webhook-signature", signature), ("webhook-timestamp", NOW.to_string())]);
        let missing = SignatureError::Missing { provider: "standard_webhooks", header: "webhook-id" };
        assert_eq!(check_with(&standard, &unsent, body), Err(missing));
    }
}

//! One delivery attempt: a signed POST of the event's JSON. Redirects are not followed (a 3xx is
//! a failure), the receiver has `SIGSTAGE_WEBHOOKS_TIMEOUT_MS` to answer, and at most the first
//! [`RESPONSE_BODY_MAX_BYTES`] of its answer are kept for the log.

use std::time::{Duration, Instant};

use control::webhooks::Subscription;
use reqwest::header::{HeaderMap, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::redirect::Policy;
use runtime::config::WebhookConfig;

use super::{sign, target};

pub const RESPONSE_BODY_MAX_BYTES: usize = 1024;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    pub body: String,
    /// Why there was no answer (timeout, connection refused, target refused).
    pub error: String,
    pub duration: Duration,
    pub retry_after: Option<Duration>,
    /// The target may not be reached at all: retrying is pointless.
    pub refused: bool,
}

impl Answer {
    /// The target may not be reached: no attempt was made.
    pub fn refused(error: String, duration: Duration) -> Self {
        Self { status: None, body: String::new(), error, duration, retry_after: None, refused: true }
    }

    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|status| (200..300).contains(&status))
    }
}

pub struct Deliverer {
    client: reqwest::Client,
    allow_internal: bool,
    /// Deliveries go through the configured proxy.
    proxied: bool,
}

impl Deliverer {
    pub fn new(config: &WebhookConfig) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_millis(config.timeout_ms))
            .connect_timeout(Duration::from_millis(config.timeout_ms.min(5_000)))
            .dns_resolver(target::resolver(config.allow_private))
            .user_agent(concat!("sigstage-webhooks/", env!("CARGO_PKG_VERSION")));
        // Never through a proxy from the environment (HTTPS_PROXY): the guarded resolver would
        // only ever see the proxy's name. Only through the one named in the settings, and then
        // each target is checked by resolving it before the attempt.
        let builder = match &config.proxy {
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy.as_str())?),
            None => builder.no_proxy(),
        };
        Ok(Self { client: builder.build()?, allow_internal: config.allow_private, proxied: config.proxy.is_some() })
    }

    /// POSTs `body` (event `event_id` of type `event_type`) to the subscription, signed.
    pub async fn post(&self, subscription: &Subscription, event_id: &str, event_type: &str, body: &[u8]) -> Answer {
        let started = Instant::now();
        let refused = |error: String| Answer::refused(error, started.elapsed());
        let url = match reqwest::Url::parse(&subscription.url) {
            Ok(url) => url,
            Err(error) => return refused(format!("the subscription's URL does not parse: {error}")),
        };
        let refusal = if self.proxied {
            target::refused_through_proxy(&url, self.allow_internal).await
        } else {
            target::refused_literal(&url, self.allow_internal)
        };
        if let Some(reason) = refusal {
            return refused(reason);
        }
        let timestamp = runtime::time::now_ms() / 1000;
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut set = |name: &'static str, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        };
        set("x-sigstage-signature", sign::signature_hex(&subscription.secret, body));
        set("x-sigstage-event", event_type.to_owned());
        set("webhook-id", event_id.to_owned());
        set("webhook-timestamp", timestamp.to_string());
        set("webhook-signature", sign::standard_signature(&subscription.secret, event_id, timestamp, body));
        match self.client.post(url).headers(headers).body(body.to_vec()).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                let body = read_prefix(response).await;
                Answer {
                    status: Some(status),
                    body,
                    error: String::new(),
                    duration: started.elapsed(),
                    retry_after,
                    refused: false,
                }
            }
            Err(error) => {
                let error = describe(error);
                let refused = error.contains(target::NOT_REACHABLE);
                Answer {
                    status: None,
                    body: String::new(),
                    error,
                    duration: started.elapsed(),
                    retry_after: None,
                    refused,
                }
            }
        }
    }
}

/// At most the first [`RESPONSE_BODY_MAX_BYTES`] of a response body, as text.
async fn read_prefix(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_BODY_MAX_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_BODY_MAX_BYTES - kept.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// The error with its causes, for the delivery log, without the URL: its credentials and query
/// string (often a token) must not reach logs or the delivery log.
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = if error.is_timeout() { "timed out".to_owned() } else { error.to_string() };
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

//! Sending one chunk of signals to the bulk endpoint, with retries.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

/// What became of each signal of a chunk.
#[derive(Debug, Default)]
pub struct ChunkOutcome {
    pub accepted: u64,
    /// (index within the chunk, error code, message) of each signal refused for good.
    pub rejected: Vec<(usize, String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// Stop the whole import: nothing else will succeed either (bad key, wrong URL).
    #[error("{0}")]
    Fatal(String),
    /// This chunk could not be delivered after every attempt; a `--resume` run retries it.
    #[error("{0}")]
    GaveUp(String),
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<SignalAnswer>,
}

#[derive(Deserialize)]
struct SignalAnswer {
    index: usize,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Per-signal refusals worth retrying: they depend on the moment, not on the signal.
fn retryable(code: &str) -> bool {
    matches!(code, "broker_unavailable" | "rate_limited")
}

pub struct Sender {
    pub client: reqwest::Client,
    pub url: String,
    pub secret: Option<String>,
    pub max_attempts: u32,
}

impl Sender {
    /// Sends `signals` (JSON texts) until each is accepted or refused for good. Signals refused
    /// for a passing reason (broker unavailable, rate limited) are sent again, alone.
    pub async fn send_chunk(&self, signals: &[String]) -> Result<ChunkOutcome, ChunkError> {
        let mut outcome = ChunkOutcome::default();
        let mut pending: Vec<usize> = (0..signals.len()).collect();
        let mut attempt = 0;
        while !pending.is_empty() {
            attempt += 1;
            let body = pending.iter().map(|&i| signals[i].as_str()).collect::<Vec<_>>().join("\n");
            let wait = match self.post(body).await {
                Ok(answer) => {
                    let mut retry = Vec::new();
                    for result in answer.results {
                        let Some(&index) = pending.get(result.index) else { continue };
                        match result.error {
                            None => outcome.accepted += 1,
                            Some(code) if retryable(&code) => retry.push(index),
                            Some(code) => outcome.rejected.push((index, code, result.message.unwrap_or_default())),
                        }
                    }
                    pending = retry;
                    None
                }
                Err(Attempt::Retry { reason, after }) => {
                    if attempt >= self.max_attempts {
                        return Err(ChunkError::GaveUp(format!("gave up after {attempt} attempts: {reason}")));
                    }
                    // Retry-After when the edge gave one, else backoff.
                    Some(after).filter(|after| !after.is_zero()).or(Some(backoff(attempt)))
                }
                Err(Attempt::Fatal(message)) => return Err(ChunkError::Fatal(message)),
            };
            if !pending.is_empty() {
                if attempt >= self.max_attempts {
                    return Err(ChunkError::GaveUp(format!(
                        "{} signals still refused after {attempt} attempts",
                        pending.len()
                    )));
                }
                tokio::time::sleep(wait.unwrap_or_else(|| backoff(attempt))).await;
            }
        }
        Ok(outcome)
    }

    async fn post(&self, body: String) -> Result<BatchAnswer, Attempt> {
        let mut request = self.client.post(&self.url).header("content-type", "application/x-ndjson").body(body);
        if let Some(secret) = &self.secret {
            request = request.header("x-api-secret", secret);
        }
        let response = request.send().await.map_err(|error| Attempt::Retry {
            reason: format!("cannot reach the edge: {error}"),
            after: Duration::ZERO,
        })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        match status {
            StatusCode::ACCEPTED | StatusCode::BAD_REQUEST | StatusCode::TOO_MANY_REQUESTS
                if text.contains("\"results\"") =>
            {
                serde_json::from_str(&text)
                    .map_err(|error| Attempt::Fatal(format!("unexpected answer from the edge: {error}")))
            }
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => Err(Attempt::Retry {
                reason: format!("{status}: {text}"),
                after: retry_after.unwrap_or(Duration::ZERO),
            }),
            StatusCode::UNAUTHORIZED => Err(Attempt::Fatal(format!("the edge refused the key: {text}"))),
            StatusCode::PAYLOAD_TOO_LARGE => {
                Err(Attempt::Fatal(format!("a chunk is too large for the edge; lower --chunk-size: {text}")))
            }
            status if status.is_server_error() => Err(Attempt::Retry {
                reason: format!("{status}: {text}"),
                after: retry_after.unwrap_or(Duration::ZERO),
            }),
            status => Err(Attempt::Fatal(format!("unexpected {status} from {}: {text}", self.url))),
        }
    }
}

enum Attempt {
    Retry { reason: String, after: Duration },
    Fatal(String),
}

/// Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s, … capped at 30 s, each scaled by a
/// random factor in [0.5, 1).
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(250).saturating_mul(1 << attempt.min(7)).min(Duration::from_secs(30));
    let mut byte = [0u8; 1];
    let _ = getrandom::fill(&mut byte);
    base.mul_f64(0.5 + f64::from(byte[0]) / 512.0)
}

//! One worker per subscription, so a slow or dead endpoint only ever delays its own events. A
//! worker takes its events in order and tries each until it is delivered or the schedule ends:
//! `SIGSTAGE_WEBHOOKS_MAX_ATTEMPTS` attempts, the delay doubling from
//! `SIGSTAGE_WEBHOOKS_RETRY_BASE_MS` with jitter (at most an hour), or the receiver's
//! `Retry-After` when longer. Every attempt is logged. A subscription is disabled after
//! `SIGSTAGE_WEBHOOKS_DISABLE_AFTER` consecutive failures, or at once when its endpoint answers
//! 410 Gone; its remaining events are then dropped, and the drop is logged.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::config::WebhookConfig;
use common::control::webhooks::{self, Attempt, Subscription};
use tokio::sync::mpsc;

use super::delivery::{Answer, Deliverer};

pub const ATTEMPTS_TOTAL: &str = "sigstage_webhook_attempts_total";
const MAX_DELAY: Duration = Duration::from_secs(3600);

/// An event to deliver.
pub struct Event {
    pub id: String,
    pub kind: String,
    pub body: Vec<u8>,
}

/// One event for one subscription; `pending` counts down when the worker is done with it.
pub struct Job {
    pub event: Arc<Event>,
    pub pending: Arc<AtomicUsize>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct Worker {
    pub subscription: Subscription,
    pub deliverer: Arc<Deliverer>,
    pub config: WebhookConfig,
    pub clickhouse: clickhouse::Client,
    /// Where attempts go to be written to the delivery log.
    pub log: mpsc::Sender<Attempt>,
}

impl Worker {
    pub async fn run(self, mut jobs: mpsc::Receiver<Job>) {
        let mut failures = 0u32;
        while let Some(job) = jobs.recv().await {
            let mut attempt = 0;
            loop {
                attempt += 1;
                let answer =
                    self.deliverer.post(&self.subscription, &job.event.id, &job.event.kind, &job.event.body).await;
                let delivered = answer.delivered();
                failures = if delivered { 0 } else { failures + 1 };
                let gone = answer.status == Some(410);
                let disable = !delivered && (gone || failures >= self.config.disable_after);
                let outcome = match () {
                    _ if delivered => "delivered",
                    _ if disable => "disabled",
                    _ if answer.refused => "refused",
                    _ if attempt >= self.config.max_attempts => "gave_up",
                    _ => "retrying",
                };
                metrics::counter!(ATTEMPTS_TOTAL, "outcome" => outcome).increment(1);
                self.record(&job.event, attempt, &answer, failures, outcome).await;
                if disable {
                    let reason = if gone {
                        "the endpoint answered 410 Gone".to_owned()
                    } else {
                        format!("{failures} consecutive failed deliveries")
                    };
                    self.disable(&reason).await;
                    drop(job);
                    let mut dropped = 0;
                    while let Ok(job) = jobs.try_recv() {
                        drop(job);
                        dropped += 1;
                    }
                    tracing::warn!(subscription = %self.subscription.subscription_id, dropped, %reason, "webhook subscription disabled");
                    // Events still on their way are dropped as they come.
                    while let Some(job) = jobs.recv().await {
                        drop(job);
                    }
                    return;
                }
                if outcome != "retrying" {
                    break;
                }
                tokio::time::sleep(retry_delay(&self.config, attempt, answer.retry_after)).await;
            }
        }
    }

    async fn record(&self, event: &Event, attempt: u32, answer: &Answer, failures: u32, outcome: &str) {
        let entry = Attempt {
            org_id: self.subscription.org_id.clone(),
            subscription_id: self.subscription.subscription_id.clone(),
            event_id: event.id.clone(),
            event_type: event.kind.clone(),
            attempt,
            status_code: answer.status.unwrap_or(0),
            response_body: answer.body.clone(),
            error: answer.error.clone(),
            duration_ms: u32::try_from(answer.duration.as_millis()).unwrap_or(u32::MAX),
            attempted_ms: common::time::now_ms(),
            failure_count: failures,
            outcome: outcome.to_owned(),
        };
        if self.log.send(entry).await.is_err() {
            tracing::warn!("the delivery log is closed; attempt not logged");
        }
    }

    async fn disable(&self, reason: &str) {
        let id = &self.subscription.subscription_id;
        for _ in 0..5 {
            match webhooks::set_active(&self.clickhouse, id, false, reason).await {
                Ok(_) => return,
                Err(error) => tracing::warn!(%error, subscription = %id, "cannot mark the subscription disabled yet"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The wait before attempt `attempt + 1`: base × 2^(attempt-1), ±25% jitter, or the receiver's
/// Retry-After when that is longer; never more than an hour.
fn retry_delay(config: &WebhookConfig, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let base = Duration::from_millis(config.retry_base_ms).saturating_mul(1 << (attempt - 1).min(20));
    let mut jitter = [0u8; 2];
    let _ = getrandom::fill(&mut jitter);
    let factor = 0.75 + f64::from(u16::from_le_bytes(jitter)) / f64::from(u16::MAX) * 0.5;
    let backoff = base.mul_f64(factor);
    retry_after.map_or(backoff, |asked| asked.max(backoff)).min(MAX_DELAY)
}

/// Writes logged attempts to `webhook_deliveries` in batches, until every sender is gone.
pub async fn write_log(clickhouse: clickhouse::Client, mut attempts: mpsc::Receiver<Attempt>) {
    let mut batch = Vec::new();
    while attempts.recv_many(&mut batch, 1000).await > 0 {
        if let Err(error) = webhooks::log_attempts(&clickhouse, &batch).await {
            tracing::warn!(%error, attempts = batch.len(), "delivery attempts not logged");
        }
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_with_jitter_honour_retry_after_and_stay_bounded() {
        let config = WebhookConfig {
            allow_private: false,
            max_attempts: 8,
            retry_base_ms: 1000,
            timeout_ms: 1000,
            disable_after: 20,
        };
        for attempt in 1..=4 {
            let expected = 1000.0 * f64::from(1u32 << (attempt - 1));
            let delay = retry_delay(&config, attempt, None).as_millis() as f64;
            assert!((expected * 0.75..=expected * 1.25).contains(&delay), "attempt {attempt}: {delay} ms");
        }
        assert_eq!(retry_delay(&config, 1, Some(Duration::from_secs(30))), Duration::from_secs(30), "Retry-After wins");
        assert!(
            retry_delay(&config, 1, Some(Duration::from_millis(1))) >= Duration::from_millis(750),
            "but never shortens"
        );
        assert_eq!(retry_delay(&config, 30, None), MAX_DELAY);
        assert_eq!(retry_delay(&config, 1, Some(Duration::from_secs(86_400))), MAX_DELAY);
    }
}

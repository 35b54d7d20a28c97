//! One subscription's due deliveries, attempted with at most [`IN_FLIGHT`] at a time (and at
//! most its rate limit per second), each moved on in the queue after its attempt: delivered,
//! due again after the next wait of the retry schedule (or the receiver's `Retry-After`, when
//! longer), or failed once the schedule is over or the target is refused. An endpoint that
//! answers 410 Gone is done with: the rest of the batch is left pending and the scheduler
//! disables the subscription. Every attempt is logged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control::deliveries::{Delivery, Lane, DELIVERED, FAILED, PENDING};
use control::webhooks::{Attempt, Subscription};
use futures::StreamExt;
use runtime::config::WebhookConfig;
use tokio::sync::Mutex;

use super::delivery::{Answer, Deliverer};

pub const ATTEMPTS_TOTAL: &str = "sigstage_webhook_attempts_total";
/// Attempts in flight to one endpoint at most.
pub const IN_FLIGHT: usize = 16;
/// The longest a receiver's `Retry-After` may push an attempt back.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

/// Due deliveries, each with its event's body (`None`: not stored).
pub type Due = Vec<(Delivery, Option<Arc<[u8]>>)>;

/// Deliveries due for one subscription, from one lane.
pub struct Batch {
    pub subscription: Subscription,
    pub lane: Lane,
    /// Deliveries per second at most (0: no limit).
    pub rate_limit: u32,
    /// The subscription's consecutive failed attempts before this batch.
    pub failures: u32,
    pub deliveries: Due,
}

/// What a batch came to, for the scheduler to judge the endpoint's health.
#[derive(Debug, Default)]
pub struct Outcome {
    pub subscription_id: String,
    pub delivered: usize,
    /// When the first failed attempt of the batch was made.
    pub first_failure_ms: Option<u64>,
    pub failures: u32,
    /// The endpoint answered 410 Gone.
    pub gone: bool,
    /// Attempts made, and how long they took (recording them aside): the endpoint's pace.
    pub attempts: usize,
    pub took: Duration,
    /// Queue or log rows could not be written (the batch will be attempted again).
    pub unrecorded: bool,
}

struct Attempted {
    delivery: Delivery,
    answer: Answer,
    attempted_ms: u64,
}

/// Attempts a batch, then records the queue's new state and the attempts.
pub async fn run(
    batch: Batch,
    deliverer: Arc<Deliverer>,
    config: Arc<WebhookConfig>,
    clickhouse: clickhouse::Client,
) -> Outcome {
    let Batch { subscription, lane, rate_limit, failures, deliveries } = batch;
    let gone = AtomicBool::new(false);
    let pace = (rate_limit > 0).then(|| {
        let mut interval = tokio::time::interval(Duration::from_secs(1) / rate_limit);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Mutex::new(interval)
    });
    let started = tokio::time::Instant::now();
    let attempted: Vec<Attempted> = futures::stream::iter(deliveries)
        .map(|(delivery, body)| {
            let (subscription, deliverer, gone, pace) = (&subscription, &deliverer, &gone, &pace);
            async move {
                if gone.load(Ordering::Relaxed) {
                    return None; // left pending: the subscription is being disabled
                }
                if let Some(pace) = pace {
                    pace.lock().await.tick().await;
                }
                let attempted_ms = runtime::time::now_ms();
                let answer = match body {
                    Some(body) => deliverer.post(subscription, &delivery.event_id, &delivery.event_type, &body).await,
                    None => Answer::refused("the event is not stored in webhook_events".into(), Duration::ZERO),
                };
                if answer.status == Some(410) {
                    gone.store(true, Ordering::Relaxed);
                }
                Some(Attempted { delivery, answer, attempted_ms })
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .filter_map(|attempted| async move { attempted })
        .collect()
        .await;

    let mut outcome = Outcome {
        subscription_id: subscription.subscription_id.clone(),
        attempts: attempted.len(),
        took: started.elapsed(),
        ..Outcome::default()
    };
    let mut consecutive = failures;
    let mut queue = Vec::with_capacity(attempted.len());
    let mut log = Vec::with_capacity(attempted.len());
    for Attempted { delivery, answer, attempted_ms } in attempted {
        let attempt = delivery.attempts + 1;
        let (state, next, label) = next_step(&config, &answer, attempt, attempted_ms);
        if answer.delivered() {
            outcome.delivered += 1;
            consecutive = 0;
        } else {
            outcome.first_failure_ms = Some(outcome.first_failure_ms.map_or(attempted_ms, |t| t.min(attempted_ms)));
            consecutive += 1;
        }
        outcome.gone |= answer.status == Some(410);
        metrics::counter!(ATTEMPTS_TOTAL, "outcome" => label).increment(1);
        log.push(Attempt {
            org_id: delivery.org_id.clone(),
            subscription_id: delivery.subscription_id.clone(),
            event_id: delivery.event_id.clone(),
            event_type: delivery.event_type.clone(),
            attempt,
            status_code: answer.status.unwrap_or(0),
            response_body: answer.body,
            error: answer.error,
            duration_ms: u32::try_from(answer.duration.as_millis()).unwrap_or(u32::MAX),
            attempted_ms,
            failure_count: consecutive,
            outcome: label.to_owned(),
        });
        queue.push(delivery.after_attempt(state, next));
    }
    outcome.failures = consecutive;
    // The queue first: an attempt whose new state is lost is made again (receivers dedupe on
    // webhook-id); a log row without its queue row would claim an attempt that is repeated.
    let recorded = match control::deliveries::write_to(&clickhouse, lane, &queue).await {
        Ok(()) => control::webhooks::log_attempts(&clickhouse, &log).await,
        Err(error) => Err(error),
    };
    if let Err(error) = recorded {
        tracing::warn!(%error, subscription = %outcome.subscription_id, attempts = log.len(), "webhook attempts not recorded; they will be made again");
        outcome.unrecorded = true;
    }
    outcome
}

/// After attempt number `attempt`: the delivery's new state, when it is due again, and the
/// attempt's outcome as logged.
fn next_step(
    config: &WebhookConfig,
    answer: &Answer,
    attempt: u32,
    now_ms: u64,
) -> (&'static str, Option<u64>, &'static str) {
    if answer.delivered() {
        return (DELIVERED, None, "delivered");
    }
    if answer.status == Some(410) {
        return (FAILED, None, "disabled");
    }
    if answer.refused {
        return (FAILED, None, "refused");
    }
    match config.retry_schedule.get(attempt as usize - 1) {
        Some(wait) => {
            let wait = answer.retry_after.map_or(*wait, |asked| asked.min(MAX_RETRY_AFTER).max(*wait));
            (PENDING, Some(now_ms + wait.as_millis() as u64), "retrying")
        }
        None => (FAILED, None, "gave_up"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: Option<u16>, retry_after: Option<Duration>, refused: bool) -> Answer {
        Answer { status, body: String::new(), error: String::new(), duration: Duration::ZERO, retry_after, refused }
    }

    #[test]
    fn the_schedule_then_failure_with_retry_after_honoured_when_longer() {
        let config = WebhookConfig {
            allow_private: false,
            retry_schedule: vec![Duration::from_secs(5), Duration::from_secs(300)],
            timeout_ms: 1000,
            disable_after: Duration::from_secs(60),
            proxy: None,
        };
        let failed = answer(Some(500), None, false);
        assert_eq!(next_step(&config, &failed, 1, 1_000), (PENDING, Some(6_000), "retrying"));
        assert_eq!(next_step(&config, &failed, 2, 1_000), (PENDING, Some(301_000), "retrying"));
        assert_eq!(next_step(&config, &failed, 3, 1_000), (FAILED, None, "gave_up"));
        let busy = answer(Some(503), Some(Duration::from_secs(60)), false);
        assert_eq!(next_step(&config, &busy, 1, 0), (PENDING, Some(60_000), "retrying"), "Retry-After wins");
        let hurried = answer(Some(503), Some(Duration::from_millis(1)), false);
        assert_eq!(next_step(&config, &hurried, 1, 0), (PENDING, Some(5_000), "retrying"), "but never shortens");
        let forever = answer(Some(503), Some(Duration::from_secs(10 * 86_400)), false);
        assert_eq!(next_step(&config, &forever, 1, 0).1, Some(86_400_000), "and is capped at a day");
        assert_eq!(next_step(&config, &answer(Some(204), None, false), 3, 0), (DELIVERED, None, "delivered"));
        assert_eq!(next_step(&config, &answer(Some(410), None, false), 1, 0), (FAILED, None, "disabled"));
        assert_eq!(next_step(&config, &answer(None, None, true), 1, 0), (FAILED, None, "refused"));
    }
}

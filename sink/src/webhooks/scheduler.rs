//! Takes due deliveries from the queue and hands each subscription's to a task of its own
//! ([`worker::run`]), never more than one per subscription: a slow or dead endpoint holds only
//! its own backlog, and the others are served as soon as their deliveries are due.
//!
//! A subscription with a backfill running ([`control::backfill`]) has a second task, for its
//! backfill's queue, paced at the backfill's rate: history is delivered beside the live queue,
//! never in front of it. A backfill with nothing left pending is marked done.
//!
//! It also judges each endpoint's health. A subscription whose every attempt has failed for
//! `SIGSTAGE_WEBHOOKS_DISABLE_AFTER` (counted from its first failure after its last delivery, or
//! from when it was last enabled), or whose endpoint answered 410 Gone, is disabled, with the
//! reason on the subscription and in the log. On stop, attempts in flight get
//! [`SHUTDOWN_GRACE`] to finish; the others are made again after the restart.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use control::backfill::{self, Backfill};
use control::deliveries::{self, Lane};
use control::webhooks::{self, Subscription};
use runtime::config::WebhookConfig;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use super::delivery::Deliverer;
use super::worker::{self, Batch, Due, Outcome};

pub const DISABLED_TOTAL: &str = "sigstage_webhook_subscriptions_disabled_total";
/// Deliveries handed to one subscription's task at a time, from its live queue: the largest of
/// [`ROUNDS`] its endpoint got through in about [`ROUND_TIME`] last round, and the smallest
/// before that is known. Reading the queue costs about the same for 500 deliveries as for
/// 4 000, so a fast endpoint's long rounds spend little of their time on it; a slow endpoint
/// keeps rounds of 500, so it writes no more often than before. Bodies included, a round holds a
/// few MB at most.
const ROUNDS: [u64; 4] = [500, 1000, 2000, 4000];
const ROUND_TIME: Duration = Duration::from_millis(500);
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
const RATE_LIMITS_REFRESH: Duration = Duration::from_secs(5);
/// How soon a backfill started, paused or cancelled is heeded.
const BACKFILLS_REFRESH: Duration = Duration::from_secs(1);

/// An endpoint's recent failures.
#[derive(Debug, Default, Clone, Copy)]
struct Health {
    /// Since when every attempt failed.
    failing_since_ms: Option<u64>,
    /// Consecutive failed attempts.
    failures: u32,
}

/// What the lanes' tasks are paced and judged by.
struct Lanes<'a> {
    rate_limits: &'a HashMap<String, u32>,
    health: &'a HashMap<String, Health>,
}

pub struct Scheduler {
    pub clickhouse: clickhouse::Client,
    pub deliverer: Arc<Deliverer>,
    pub config: Arc<WebhookConfig>,
    pub subscriptions: watch::Receiver<Arc<Vec<Subscription>>>,
    /// Told when new deliveries were queued.
    pub wake: Arc<Notify>,
}

impl Scheduler {
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut health = self.load_health(&mut stop).await;
        let mut rate_limits: HashMap<String, u32> = HashMap::new();
        let mut rate_limits_at = tokio::time::Instant::now() - RATE_LIMITS_REFRESH;
        // Subscriptions disabled here, until the reloaded list says so too.
        let mut disabled: HashSet<String> = HashSet::new();
        // Each subscription's next live round, by what its endpoint took in the last.
        let mut rounds: HashMap<String, u64> = HashMap::new();
        // The subscriptions with a task, and its lane, by task.
        let mut busy: HashMap<tokio::task::Id, (String, Lane)> = HashMap::new();
        let mut tasks: JoinSet<Outcome> = JoinSet::new();
        let mut backfills: Vec<Backfill> = Vec::new();
        let mut backfills_at = tokio::time::Instant::now() - BACKFILLS_REFRESH;
        // The shortest retry wait bounds how late a retry may be noticed.
        let poll = self.config.retry_schedule.iter().min().map_or(Duration::from_secs(1), |wait| {
            (*wait / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
        });
        while !*stop.borrow() {
            let subscriptions = self.subscriptions.borrow_and_update().clone();
            disabled.retain(|id| subscriptions.iter().any(|s| &s.subscription_id == id && s.active == 1));
            rounds.retain(|id, _| subscriptions.iter().any(|s| &s.subscription_id == id));
            if rate_limits_at.elapsed() >= RATE_LIMITS_REFRESH {
                match deliveries::rate_limits(&self.clickhouse).await {
                    Ok(limits) => rate_limits = limits.into_iter().collect(),
                    Err(error) => tracing::warn!(%error, "webhook rate limits not reloaded"),
                }
                rate_limits_at = tokio::time::Instant::now();
            }
            let refresh_backfills = backfills_at.elapsed() >= BACKFILLS_REFRESH;
            if refresh_backfills {
                match backfill::running(&self.clickhouse).await {
                    Ok(running) => backfills = running,
                    Err(error) => tracing::warn!(%error, "webhook backfills not reloaded"),
                }
                backfills_at = tokio::time::Instant::now();
            }
            let idle = |lane: Lane| -> Vec<&Subscription> {
                subscriptions
                    .iter()
                    .filter(|s| {
                        s.active == 1
                            && !busy.values().any(|(id, on)| *id == s.subscription_id && *on == lane)
                            && !disabled.contains(&s.subscription_id)
                    })
                    .collect()
            };
            // Live first: no backfill lookup delays its deliveries. One read per round size.
            let idle_live = idle(Lane::Live);
            let mut live = Vec::new();
            for round in ROUNDS {
                let of_round: Vec<&Subscription> = idle_live
                    .iter()
                    .filter(|s| rounds.get(&s.subscription_id).copied().unwrap_or(ROUNDS[0]) == round)
                    .copied()
                    .collect();
                match self.due(Lane::Live, &of_round, round).await {
                    Ok(batches) => live.extend(batches.into_iter().map(|(subscription, due)| (subscription, due, 0))),
                    Err(error) => tracing::warn!(%error, "due webhook deliveries not read; trying again"),
                }
            }
            let idle_backfilling = idle(Lane::Backfill);
            let lanes = Lanes { rate_limits: &rate_limits, health: &health };
            self.spawn(&lanes, Lane::Live, live, &mut tasks, &mut busy);
            let mut history = Vec::new();
            for running in &backfills {
                let Some(subscription) = idle_backfilling.iter().find(|s| s.subscription_id == running.subscription_id)
                else {
                    continue;
                };
                // A second's worth at the backfill's rate.
                let per_round = u64::from(running.per_second).clamp(1, ROUNDS[ROUNDS.len() - 1]);
                match self.due(Lane::Backfill, &[*subscription], per_round).await {
                    Ok(batches) if batches.is_empty() && refresh_backfills => {
                        if let Err(error) = backfill::finish_if_drained(&self.clickhouse, running).await {
                            tracing::warn!(%error, backfill = %running.backfill_id, "backfill progress not read");
                        }
                    }
                    Ok(batches) => history
                        .extend(batches.into_iter().map(|(subscription, due)| (subscription, due, running.per_second))),
                    Err(error) => {
                        tracing::warn!(%error, backfill = %running.backfill_id, "due backfill deliveries not read")
                    }
                }
            }
            self.spawn(&lanes, Lane::Backfill, history, &mut tasks, &mut busy);
            tokio::select! {
                changed = stop.changed() => {
                    if changed.is_err() {
                        break; // the stop signal's sender is gone: nobody can stop this otherwise
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let outcome = match done {
                        Ok((task, outcome)) => {
                            if let Some((id, Lane::Live)) = busy.remove(&task) {
                                rounds.insert(id, round_after(outcome.attempts, outcome.took));
                            }
                            outcome
                        }
                        Err(error) => {
                            let subscription = busy.remove(&error.id()).map(|(id, _)| id);
                            tracing::error!(%error, ?subscription, "a webhook delivery task failed; its deliveries stay due");
                            continue;
                        }
                    };
                    let Some(subscription) = subscriptions.iter().find(|s| s.subscription_id == outcome.subscription_id) else {
                        continue;
                    };
                    let entry = health.entry(outcome.subscription_id.clone()).or_default();
                    if let Some(reason) = self.judge(entry, subscription, &outcome) {
                        self.disable(subscription, &reason);
                        disabled.insert(outcome.subscription_id.clone());
                    }
                }
            }
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tracing::warn!(
                in_flight = tasks.len(),
                "webhook attempts still in flight at shutdown; they will be made again after the restart"
            );
            tasks.abort_all();
        }
    }

    /// Starts a task for each subscription's batch of one lane, paced at the lower of the
    /// subscription's rate limit and the batch's own pace (0: none).
    fn spawn(
        &self,
        lanes: &Lanes<'_>,
        lane: Lane,
        batches: Vec<(Subscription, Due, u32)>,
        tasks: &mut JoinSet<Outcome>,
        busy: &mut HashMap<tokio::task::Id, (String, Lane)>,
    ) {
        for (subscription, deliveries, pace) in batches {
            let id = subscription.subscription_id.clone();
            let limit = lanes.rate_limits.get(&id).copied().unwrap_or(0);
            let rate_limit = match (limit, pace) {
                (0, pace) | (pace, 0) => pace,
                (limit, pace) => limit.min(pace),
            };
            let failures = lanes.health.get(&id).map_or(0, |h| h.failures);
            let batch = Batch { lane, rate_limit, failures, subscription, deliveries };
            let (deliverer, config) = (Arc::clone(&self.deliverer), Arc::clone(&self.config));
            let task = tasks.spawn(worker::run(batch, deliverer, config, self.clickhouse.clone()));
            busy.insert(task.id(), (id, lane));
        }
    }

    /// The due deliveries of a lane for these subscriptions, at most `per_subscription` of each,
    /// with their bodies, by subscription.
    async fn due(
        &self,
        lane: Lane,
        idle: &[&Subscription],
        per_subscription: u64,
    ) -> Result<Vec<(Subscription, Due)>, clickhouse::error::Error> {
        let ids: Vec<String> = idle.iter().map(|s| s.subscription_id.clone()).collect();
        let due = deliveries::due(&self.clickhouse, lane, &ids, runtime::time::now_ms(), per_subscription).await?;
        let mut by_org: HashMap<&str, Vec<String>> = HashMap::new();
        for delivery in &due {
            by_org.entry(&delivery.org_id).or_default().push(delivery.event_id.clone());
        }
        let mut bodies: HashMap<(String, String), Arc<[u8]>> = HashMap::new();
        for (org, mut events) in by_org {
            events.sort_unstable();
            events.dedup();
            for (event, body) in deliveries::bodies(&self.clickhouse, org, &events).await? {
                bodies.insert((org.to_owned(), event), Arc::from(body.into_bytes()));
            }
        }
        let mut batches: HashMap<String, (Subscription, Due)> = HashMap::new();
        for delivery in due {
            let Some(subscription) = idle.iter().find(|s| s.subscription_id == delivery.subscription_id) else {
                continue;
            };
            let body = bodies.get(&(delivery.org_id.clone(), delivery.event_id.clone())).cloned();
            batches
                .entry(delivery.subscription_id.clone())
                .or_insert_with(|| ((*subscription).clone(), Vec::new()))
                .1
                .push((delivery, body));
        }
        Ok(batches.into_values().collect())
    }

    /// Updates an endpoint's health with a batch's outcome; answers why to disable it, if so.
    fn judge(&self, health: &mut Health, subscription: &Subscription, outcome: &Outcome) -> Option<String> {
        health.failures = outcome.failures;
        if outcome.delivered > 0 {
            health.failing_since_ms = None;
        } else if let Some(first) = outcome.first_failure_ms {
            health.failing_since_ms.get_or_insert(first);
        }
        if outcome.gone {
            return Some("the endpoint answered 410 Gone".to_owned());
        }
        // Enabling a subscription gives it a new chance: count from then at the earliest.
        let since = health.failing_since_ms?.max(subscription.version);
        let failing_for = Duration::from_millis(runtime::time::now_ms().saturating_sub(since));
        (failing_for >= self.config.disable_after)
            .then(|| format!("every delivery failed for {}", runtime::time::format_duration(self.config.disable_after)))
    }

    /// Stops scheduling the subscription at once (the caller marks it disabled in memory) and
    /// stores why in the background, retrying while ClickHouse is out of reach, so the other
    /// endpoints' deliveries never wait for it.
    fn disable(&self, subscription: &Subscription, reason: &str) {
        let id = subscription.subscription_id.clone();
        metrics::counter!(DISABLED_TOTAL).increment(1);
        tracing::warn!(subscription = %id, org = %subscription.org_id, %reason, "webhook subscription disabled");
        let (clickhouse, reason) = (self.clickhouse.clone(), reason.to_owned());
        tokio::spawn(async move {
            for _ in 0..5 {
                match webhooks::set_active(&clickhouse, &id, false, &reason).await {
                    Ok(_) => return,
                    Err(error) => {
                        tracing::warn!(%error, subscription = %id, "cannot mark the subscription disabled yet")
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            tracing::error!(subscription = %id, "the subscription is not marked disabled; it will be judged again after a restart");
        });
    }

    /// Each endpoint's failures so far, from the delivery log, so a restart does not reset them.
    async fn load_health(&self, stop: &mut watch::Receiver<bool>) -> HashMap<String, Health> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match deliveries::failing_since(&self.clickhouse).await {
                Ok(failing) => {
                    return failing
                        .into_iter()
                        .map(|(id, since)| (id, Health { failing_since_ms: Some(since), failures: 0 }))
                        .collect()
                }
                Err(error) => tracing::warn!(%error, "webhook endpoint health not read; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => return HashMap::new(),
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// The next live round of a subscription whose last took `took` for `attempts` attempts.
fn round_after(attempts: usize, took: Duration) -> u64 {
    let done_in_time = attempts as f64 * ROUND_TIME.as_secs_f64() / took.as_secs_f64().max(0.001);
    ROUNDS.into_iter().rev().find(|&round| round as f64 <= done_in_time).unwrap_or(ROUNDS[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_endpoint_gets_long_rounds_and_a_slow_one_the_shortest() {
        // 500 attempts in 10 ms: 25 000 in half a second, more than the longest round.
        assert_eq!(round_after(500, Duration::from_millis(10)), 4000);
        // 500 in 200 ms: 1 250 in half a second.
        assert_eq!(round_after(500, Duration::from_millis(200)), 1000);
        assert_eq!(round_after(1000, Duration::from_millis(250)), 2000);
        // 500 attempts that each waited out a 10 s timeout, 16 at a time.
        assert_eq!(round_after(500, Duration::from_secs(320)), 500);
        assert_eq!(round_after(0, Duration::ZERO), 500, "a batch left at once (410 Gone)");
    }
}

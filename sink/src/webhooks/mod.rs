//! The webhook sink. The dispatcher reads `webhooks.outbox`, keeps each event (for re-sending
//! and recovery), queues one delivery for every active subscription of its org that wants its
//! type (`webhook_queue` in ClickHouse), and only then commits its offsets: a crash reads the
//! batch again and queues the same rows, which the queue's versions make harmless. The
//! [`scheduler`] delivers from the queue, each subscription on its own, so nothing owed is held
//! in memory and one endpoint's trouble stays its own.

pub mod delivery;
pub mod scheduler;
pub mod sign;
pub mod target;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use control::deliveries::{self, Delivery};
use control::webhooks::{self, StoredEvent, Subscription};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use runtime::config::{KafkaConfig, WebhookConfig};
use runtime::kafka::reader::{BatchReader, Batching};
use runtime::kafka::{self, topics, Assignments};
use runtime::reload::keep_loaded;
use runtime::stage::batches::{run_batches, BatchStage, Flow};
use runtime::stage::{Stage, StageError};
use schemas::events::Envelope;
use tokio::sync::{watch, Notify};

use crate::store::Retries;
use delivery::Deliverer;
use scheduler::Scheduler;

const BATCH_MAX: usize = 1000;
const BATCH_WAIT: Duration = Duration::from_millis(50);

pub async fn run(
    config: &KafkaConfig,
    webhook_config: WebhookConfig,
    clickhouse: clickhouse::Client,
    refresh: Duration,
    stage: runtime::stage::Stage,
    mut stop: watch::Receiver<bool>,
) -> Result<(), runtime::stage::StageError> {
    let outbox = config.topic(topics::WEBHOOKS_OUTBOX);
    let deliverer = match Deliverer::new(&webhook_config) {
        Ok(deliverer) => Arc::new(deliverer),
        Err(error) => return Err(format!("the webhook HTTP client: {error}").into()),
    };
    let client = clickhouse.clone();
    let load = move || {
        let client = client.clone();
        async move { webhooks::list(&client, None).await }
    };
    let Some(subscriptions) = keep_loaded("webhook subscriptions", refresh, stop.clone(), load).await else {
        return Ok(()); // stopped before the subscriptions could be loaded
    };
    // A deleted person's events already on their way are kept out (control::people).
    let suppressions = control::people::Suppressions::keep_loaded(&clickhouse, refresh, stop.clone());
    let Some(suppressions) = suppressions.await else {
        return Ok(());
    };
    let wake = Arc::new(Notify::new());
    let scheduler = Scheduler {
        clickhouse: clickhouse.clone(),
        deliverer,
        config: Arc::new(webhook_config),
        subscriptions: subscriptions.clone(),
        wake: Arc::clone(&wake),
    };
    // The scheduler stops when the dispatcher does, for whatever reason it does.
    let (stop_scheduler, scheduler_stop) = watch::channel(false);
    let scheduler = tokio::spawn(scheduler.run(scheduler_stop));
    let consumer: Arc<StreamConsumer<Assignments>> =
        Arc::new(kafka::stage_consumer(config, &config.topic("webhooks"), Assignments::new("webhooks"))?);
    consumer.subscribe(&[&outbox])?;
    let mut reader = BatchReader::new(consumer, Batching { max: BATCH_MAX, wait: BATCH_WAIT, idle: BATCH_WAIT });
    tracing::info!(%outbox, "webhook sink consuming");
    let status = stage.clone();
    let mut dispatcher = Dispatcher { clickhouse, subscriptions, suppressions, wake, status };
    let ended = run_batches(&mut reader, &mut dispatcher, &stage, &mut stop).await;
    let _ = stop_scheduler.send(true);
    let _ = scheduler.await;
    ended?;
    tracing::info!("webhook sink stopped");
    Ok(())
}

/// The dispatcher as a [`BatchStage`]: a batch's events and the deliveries they owe are in
/// ClickHouse before its offsets are committed.
struct Dispatcher {
    clickhouse: clickhouse::Client,
    subscriptions: watch::Receiver<Arc<Vec<Subscription>>>,
    suppressions: watch::Receiver<Arc<control::people::Suppressions>>,
    wake: Arc<Notify>,
    /// Shows in `/readyz` that a write waits on ClickHouse.
    status: Stage,
}

impl BatchStage for Dispatcher {
    const NAME: &'static str = "webhooks";

    async fn process(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        batch: &[BorrowedMessage<'_>],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Flow, StageError> {
        let mut events = Vec::with_capacity(batch.len());
        let suppressions = self.suppressions.borrow().clone();
        for message in batch {
            let body = message.payload().unwrap_or_default();
            match serde_json::from_slice::<Envelope>(body) {
                Ok(envelope)
                    if suppressions.holds_any(
                        &envelope.org,
                        [envelope.data.email.as_deref(), envelope.data.anonymous_id.as_deref()],
                    ) =>
                {
                    metrics::counter!(crate::runner::ROWS_SUPPRESSED_TOTAL).increment(1);
                }
                Ok(envelope) => events.push(StoredEvent {
                    org_id: envelope.org,
                    event_id: envelope.id,
                    event_type: envelope.kind,
                    body: String::from_utf8_lossy(body).into_owned(),
                    created_ms: envelope.created_ms,
                }),
                Err(error) => {
                    tracing::warn!(%error, offset = message.offset(), "outbox record is not an event; skipped")
                }
            }
        }
        let current = self.subscriptions.borrow_and_update().clone();
        let owed = deliveries_owed(&events, &current);
        let clickhouse = &self.clickhouse;
        let mut retries = Retries { stop, status: &self.status };
        let kept = retries.run("webhook_events", || async {
            webhooks::store_events(clickhouse, &events).await?;
            deliveries::write(clickhouse, &owed).await
        });
        match kept.await {
            Ok(Some(())) => {}
            Ok(None) => return Ok(Flow::Stop), // the batch is read again next time
            Err(error) => {
                return Err(format!("ClickHouse refused the batch's events ({error}); it will be read again").into())
            }
        }
        kafka::commit_offsets(consumer, kafka::next_offsets(batch)).await?;
        if !owed.is_empty() {
            self.wake.notify_one();
        }
        Ok(Flow::Go)
    }
}

/// One delivery for each active subscription of an event's org that wants its type, at version 0:
/// queued again after a crash, it never undoes the progress of the first.
fn deliveries_owed(events: &[StoredEvent], subscriptions: &[Subscription]) -> Vec<Delivery> {
    let mut owed = Vec::new();
    for event in events {
        for subscription in subscriptions
            .iter()
            .filter(|s| s.active == 1 && s.org_id == event.org_id && s.event_types.contains(&event.event_type))
        {
            owed.push(Delivery::due(
                &event.org_id,
                &subscription.subscription_id,
                &event.event_id,
                &event.event_type,
                0,
            ));
        }
    }
    owed
}

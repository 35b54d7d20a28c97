//! The webhook sink: a consumer group over `webhooks.outbox` that keeps each event (for
//! re-sending) and hands it to the worker of every active subscription of its org that wants
//! its type. Offsets are stored once every worker is done with a batch's events (delivered,
//! given up, or dropped by a disabled subscription), so a crash re-delivers at most those
//! still in hand, with the same `webhook-id`.

pub mod delivery;
pub mod sign;
pub mod target;
pub mod worker;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::config::{KafkaConfig, WebhookConfig};
use common::control::watch::keep_loaded;
use common::control::webhooks::{self, StoredEvent, Subscription};
use common::kafka::{self, topics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use serde::Deserialize;
use tokio::sync::{mpsc, watch};

use delivery::Deliverer;
use worker::{Event, Job, Worker};

const QUEUE_PER_SUBSCRIPTION: usize = 10_000;
const BATCH_MAX: usize = 1000;
const BATCH_WAIT: Duration = Duration::from_millis(50);

#[derive(Deserialize)]
struct Envelope {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    org: String,
    created_ms: u64,
}

/// A batch whose events workers still hold.
struct InHand {
    pending: Arc<AtomicUsize>,
    /// The last offset of each (topic, partition) in the batch.
    offsets: Vec<(String, i32, i64)>,
}

pub async fn run(
    config: &KafkaConfig,
    webhook_config: WebhookConfig,
    clickhouse: clickhouse::Client,
    refresh: Duration,
    stage: common::stage::Stage,
    mut stop: watch::Receiver<bool>,
) -> Result<(), common::stage::StageError> {
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
    let Some(mut subscriptions) = keep_loaded("webhook subscriptions", refresh, stop.clone(), load).await else {
        return Ok(()); // stopped before the subscriptions could be loaded
    };
    let (log, log_rx) = mpsc::channel(10_000);
    let log_writer = tokio::spawn(worker::write_log(clickhouse.clone(), log_rx));
    let consumer: StreamConsumer = kafka::consumer(config, &config.topic("webhooks"))?;
    consumer.subscribe(&[&outbox])?;
    let mut workers: HashMap<String, mpsc::Sender<Job>> = HashMap::new();
    // Subscriptions whose worker disabled them, until the reloaded list says so too.
    let mut ended: HashSet<String> = HashSet::new();
    let mut in_hand: VecDeque<InHand> = VecDeque::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    stage.set(common::stage::Status::Running);
    tracing::info!(%outbox, "webhook sink consuming");

    while !*stop.borrow() {
        let first = tokio::select! {
            message = consumer.recv() => message,
            _ = tick.tick() => {
                settle(&consumer, &mut in_hand);
                continue;
            }
            _ = stop.changed() => break,
        };
        let mut batch = match first {
            Ok(message) => vec![message],
            Err(error) => {
                tracing::warn!(%error, "consume failed");
                continue;
            }
        };
        kafka::fill_batch(&consumer, &mut batch, BATCH_MAX, BATCH_WAIT).await;
        let mut events = Vec::with_capacity(batch.len());
        for message in &batch {
            let body = message.payload().unwrap_or_default();
            match serde_json::from_slice::<Envelope>(body) {
                Ok(envelope) => {
                    let resend_to = message
                        .headers()
                        .and_then(|h| h.iter().find(|h| h.key == schemas::events::RESEND_TO_HEADER))
                        .and_then(|h| std::str::from_utf8(h.value?).ok())
                        .map(str::to_owned);
                    events.push((envelope, resend_to, body.to_vec()));
                }
                Err(error) => {
                    tracing::warn!(%error, offset = message.offset(), "outbox record is not an event; skipped")
                }
            }
        }
        // Kept before anything is delivered, so each can be re-sent later (one insert a batch).
        let stored: Vec<StoredEvent> = events
            .iter()
            .filter(|(_, resend_to, _)| resend_to.is_none())
            .map(|(envelope, _, body)| StoredEvent {
                org_id: envelope.org.clone(),
                event_id: envelope.id.clone(),
                event_type: envelope.kind.clone(),
                body: String::from_utf8_lossy(body).into_owned(),
                created_ms: envelope.created_ms,
            })
            .collect();
        let mut attempt_stop = stop.clone();
        if !stored.is_empty()
            && crate::store::with_retries("webhook_events", &mut attempt_stop, || {
                webhooks::store_events(&clickhouse, &stored)
            })
            .await
            .is_err()
        {
            break; // stopping, or ClickHouse refused the events: the batch is read again next time
        }
        let current = subscriptions.borrow_and_update().clone();
        ended.retain(|id| current.iter().any(|s| &s.subscription_id == id && s.active == 1));
        let pending = Arc::new(AtomicUsize::new(0));
        for (envelope, resend_to, body) in events {
            let event = Arc::new(Event { id: envelope.id, kind: envelope.kind, body });
            let targets: Vec<&Subscription> = current
                .iter()
                .filter(|s| {
                    s.active == 1
                        && !ended.contains(&s.subscription_id)
                        && s.org_id == envelope.org
                        && match &resend_to {
                            Some(id) => &s.subscription_id == id,
                            None => s.event_types.iter().any(|t| *t == event.kind),
                        }
                })
                .collect();
            for subscription in targets {
                let queue = workers.entry(subscription.subscription_id.clone()).or_insert_with(|| {
                    spawn_worker(subscription.clone(), &deliverer, &webhook_config, &clickhouse, &log)
                });
                pending.fetch_add(1, Ordering::AcqRel);
                let job = Job { event: Arc::clone(&event), pending: Arc::clone(&pending) };
                if let Err(mpsc::error::SendError(job)) = queue.send(job).await {
                    drop(job); // the worker ended: it disabled its subscription
                    workers.remove(&subscription.subscription_id);
                    ended.insert(subscription.subscription_id.clone());
                }
            }
        }
        in_hand.push_back(InHand { pending, offsets: last_offsets(&batch) });
        settle(&consumer, &mut in_hand);
        // Workers of subscriptions no longer active end once their queue is empty.
        workers.retain(|id, _| current.iter().any(|s| &s.subscription_id == id && s.active == 1));
    }
    workers.clear();
    settle(&consumer, &mut in_hand);
    drop(log);
    let _ = log_writer.await;
    kafka::commit_stored(&consumer)?;
    tracing::info!("webhook sink stopped");
    Ok(())
}

fn spawn_worker(
    subscription: Subscription,
    deliverer: &Arc<Deliverer>,
    config: &WebhookConfig,
    clickhouse: &clickhouse::Client,
    log: &mpsc::Sender<webhooks::Attempt>,
) -> mpsc::Sender<Job> {
    let (jobs, queue) = mpsc::channel(QUEUE_PER_SUBSCRIPTION);
    let worker = Worker {
        subscription,
        deliverer: Arc::clone(deliverer),
        config: config.clone(),
        clickhouse: clickhouse.clone(),
        log: log.clone(),
    };
    tokio::spawn(worker.run(queue));
    jobs
}

/// The last offset of each (topic, partition) in a batch.
fn last_offsets(batch: &[rdkafka::message::BorrowedMessage<'_>]) -> Vec<(String, i32, i64)> {
    let mut last: Vec<(String, i32, i64)> = Vec::new();
    for message in batch {
        match last.iter_mut().find(|(t, p, _)| *p == message.partition() && t == message.topic()) {
            Some(entry) => entry.2 = entry.2.max(message.offset()),
            None => last.push((message.topic().to_owned(), message.partition(), message.offset())),
        }
    }
    last
}

/// Stores the offsets of the oldest batches whose events every worker is done with.
fn settle(consumer: &StreamConsumer, in_hand: &mut VecDeque<InHand>) {
    while in_hand.front().is_some_and(|batch| batch.pending.load(Ordering::Acquire) == 0) {
        let Some(batch) = in_hand.pop_front() else { break };
        for (topic, partition, offset) in batch.offsets {
            if let Err(error) = consumer.store_offset(&topic, partition, offset) {
                tracing::warn!(%error, %topic, partition, "offset not stored");
            }
        }
    }
}

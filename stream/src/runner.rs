//! The stream role's loop: a consumer group over the raw topics, batch by batch. Each batch's
//! outputs, its state changes (dedupe entries, links, leads) and its consumer offsets are
//! committed in one Kafka transaction, and readers downstream read only committed records: a
//! crash at any step leaves all of a batch's effects or none. Any failure inside a batch ends
//! the run with the error; the supervisor starts it again, and the new run restores its state
//! from what was committed (see [`crate::restore`]).
//!
//! The live lane goes first: the historical lane's partitions are split into queues of their
//! own, read only when the live lane has nothing ready, so a bulk import never delays live
//! signals by more than one batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::Producer;
use rdkafka::Offset;
use runtime::config::KafkaConfig;
use runtime::kafka::{self, topics, Assignments};
use runtime::reload::keep_loaded;
use runtime::stage::{self, Stage, StageError, Status};
use tokio::sync::watch;

use crate::outputs::{self, Destinations};
use crate::processor::Processor;
use crate::restore;
use schemas::mapping::RuleSet;

/// Tuning of the stream role.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A batch is one transaction: larger ones spread its commit over more records.
    pub batch_max: usize,
    /// A batch closes this long after its first record at the latest (a deadline) ...
    pub batch_wait: Duration,
    /// ... or as soon as no record came for this long (so a trickle is not held back).
    pub batch_idle: Duration,
    /// The dedupe window's bound; ~37-73 bytes an entry (see [`crate::dedupe`]).
    pub dedupe_entries: usize,
    pub dedupe_window: Duration,
    /// How often mapping rules are reloaded and signal queue counts written.
    pub refresh: Duration,
    /// Larger raw records go to the dead-letter topic (their outputs could not be written).
    pub max_record_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_max: 5000,
            batch_wait: Duration::from_millis(100),
            batch_idle: Duration::from_millis(20),
            dedupe_entries: 10_000_000,
            dedupe_window: kafka::DEDUPE_WINDOW,
            refresh: Duration::from_secs(5),
            max_record_bytes: 2 << 20,
        }
    }
}

/// Consumes `signals.raw` and `signals.raw.historical` until `stop` turns true; answers the
/// error that ended it otherwise. `transactional_id` stays the same across the stage's runs.
pub async fn run(
    config: &KafkaConfig,
    clickhouse: clickhouse::Client,
    settings: Settings,
    transactional_id: &str,
    stage: Stage,
    mut stop: watch::Receiver<bool>,
) -> Result<(), StageError> {
    let (live, historical) = (config.topic(topics::SIGNALS_RAW), config.topic(topics::SIGNALS_HISTORICAL));
    let outputs_to = Destinations {
        partitions: config.partitions,
        processed: config.topic(topics::SIGNALS_PROCESSED),
        identities: config.topic(topics::IDENTITIES),
        outbox: config.topic(topics::WEBHOOKS_OUTBOX),
        dlq: config.topic(topics::SIGNALS_DLQ),
        dedupe: config.topic(topics::DEDUPE),
    };
    let raw_topics = [live.clone(), historical.clone()];
    // Loaded before the first record, reloaded every refresh: rule changes apply without a restart.
    let client = clickhouse.clone();
    let load = move || {
        let client = client.clone();
        async move { control::rules::list(&client, None).await }
    };
    let Some(mut rules) = keep_loaded("mapping rules", settings.refresh, stop.clone(), load).await else {
        return Ok(()); // stopped before the rules could be loaded
    };
    let producer = kafka::transactional_producer(config, transactional_id).await?;
    let consumer: Arc<StreamConsumer<Assignments>> =
        Arc::new(kafka::stage_consumer(config, &config.topic("stream"), Assignments::new("stream"))?);
    consumer.subscribe(&[&live, &historical])?;
    let mut history = split(&consumer, &historical, config.partitions);
    let mut processor = Processor::new(settings.dedupe_entries, settings.dedupe_window);
    stage.set(Status::Running);
    processor.set_rules(Arc::new(RuleSet::compile(rules.borrow_and_update().to_vec())));
    let mut last_flush = Instant::now();
    tracing::info!(%live, %historical, "stream processor consuming");

    // After an assignment, history waits until the live lane has read what its partitions held
    // then (an empty live queue may only mean its first fetch has not come back yet); after
    // that, history goes whenever the live queue is empty.
    // The broker is asked on a blocking thread, with a client of its own, so live records flow
    // meanwhile; an answer about an earlier assignment (`generation`) is dropped.
    let mut live_due: Option<LiveDue> = None;
    let mut asking: Option<(u64, tokio::task::JoinHandle<Option<LiveDue>>)> = None;
    let (mut generation, mut history_open) = (0u64, false);
    while !*stop.borrow() {
        if live_due.is_none() && asking.is_none() {
            let partitions = assigned_partitions(&consumer, &live);
            if !partitions.is_empty() {
                let (config, live) = (config.clone(), live.clone());
                let task = tokio::task::spawn_blocking(move || live_backlog(&config, &live, &partitions));
                asking = Some((generation, task));
            }
        }
        history_open = history_open || live_due.as_deref().is_some_and(|due| read_up_to(&consumer, &live, due));
        let (assigned, resplit) = {
            let mut older = futures::stream::select_all(history.iter().map(|queue| queue.stream()));
            let (first, from_history) = tokio::select! {
                biased;
                _ = stop.changed() => break,
                message = consumer.recv() => (message, false),
                Some(message) = older.next(), if history_open => (message, true),
                answer = async { (&mut asking.as_mut().expect("asking").1).await }, if asking.is_some() => {
                    let asked_for = asking.take().map(|(asked_for, _)| asked_for);
                    live_due = answer.ok().flatten().filter(|_| asked_for == Some(generation));
                    continue;
                }
                // Not assigned yet, or the broker did not answer: look again shortly.
                _ = tokio::time::sleep(Duration::from_millis(20)), if live_due.is_none() && asking.is_none() => continue,
            };
            let mut batch: Vec<BorrowedMessage<'_>> = match first {
                Ok(message) => vec![message],
                Err(error) => {
                    tracing::warn!(%error, "consume failed");
                    continue;
                }
            };
            let rebalances = consumer.context().rebalances();
            let deadline = tokio::time::Instant::now() + settings.batch_wait;
            while batch.len() < settings.batch_max {
                let until = deadline.min(tokio::time::Instant::now() + settings.batch_idle);
                let next = if from_history {
                    tokio::time::timeout_at(until, older.next()).await.ok().flatten()
                } else {
                    tokio::time::timeout_at(until, consumer.recv()).await.ok()
                };
                match next {
                    Some(Ok(message)) => batch.push(message),
                    _ => break,
                }
            }
            if consumer.context().rebalances() != rebalances {
                tracing::info!(records = batch.len(), "the group rebalanced while a batch was read; it is read again");
                batch.clear();
            }
            // An assignment forwards the historical partitions to the live queue until they are
            // split again, and history fetched meanwhile arrives there. It is put back (each
            // partition rewound to its first such record) to be read from its own queue once split.
            let resplit = !from_history && batch.iter().any(|message| message.topic() == historical);
            if resplit {
                let mut rewound = Vec::new();
                for message in batch.iter().filter(|message| message.topic() == historical) {
                    if !rewound.contains(&message.partition()) {
                        rewound.push(message.partition());
                        let offset = Offset::Offset(message.offset());
                        consumer.seek(&historical, message.partition(), offset, Duration::ZERO)?;
                    }
                }
                batch.retain(|message| message.topic() != historical);
            }
            let assigned = consumer.context().take();
            if !assigned.is_empty() {
                let restored =
                    restore::restore(config, &consumer, &raw_topics, &assigned, &mut processor, &stage, &mut stop)
                        .await?;
                if restored.is_none() {
                    break; // asked to stop
                }
                stage.set(Status::Running);
            }
            if rules.has_changed().unwrap_or(false) {
                processor.set_rules(Arc::new(RuleSet::compile(rules.borrow_and_update().to_vec())));
            }
            if !batch.is_empty() {
                let started = Instant::now();
                processor.deduper().expire(runtime::time::now_ms());
                let mut outputs = Vec::with_capacity(batch.len() + 16);
                for message in &batch {
                    outputs::route(&mut processor, message, &outputs_to, settings.max_record_bytes, &mut outputs);
                }
                producer.begin_transaction()?;
                if let Err(error) = outputs::write(&producer, &outputs_to.dlq, outputs).await {
                    kafka::abort_transaction(&producer).await;
                    return Err(error.into());
                }
                // The generation the batch was read in: no rebalance came since its first record.
                let group = consumer.group_metadata().ok_or("the consumer has no group metadata")?;
                kafka::commit_transaction(&producer, kafka::next_offsets(&batch), group, "stream").await?;
                stage::record_batch("stream", &batch, started);
            }
            (assigned, resplit)
        };
        if !assigned.is_empty() {
            (live_due, history_open, generation) = (None, false, generation + 1);
        }
        if !assigned.is_empty() || resplit {
            // An assignment may forward the partitions to the main queue again.
            history = split(&consumer, &historical, config.partitions);
        }
        if last_flush.elapsed() >= settings.refresh {
            crate::signal_queue::flush(&clickhouse, processor.queue()).await;
            last_flush = Instant::now();
        }
    }
    crate::signal_queue::flush(&clickhouse, processor.queue()).await;
    tracing::info!("stream processor stopped");
    Ok(())
}
/// Live partitions with records to read before history's turn, each with its end offset.
type LiveDue = Vec<(i32, i64)>;

/// Which of `partitions` of `topic` held records not yet processed, with their end offsets, as
/// the broker and the group's commits say now; `None` when the broker did not answer (asked
/// again on the next turn).
fn live_backlog(config: &KafkaConfig, topic: &str, partitions: &[i32]) -> Option<LiveDue> {
    // In the group (to read its commits) without joining it, so closing it is immediate.
    let reader: StreamConsumer = kafka::consumer(config, &config.topic("stream")).ok()?;
    let mut wanted = rdkafka::TopicPartitionList::new();
    for &partition in partitions {
        wanted.add_partition(topic, partition);
    }
    let committed = reader.committed_offsets(wanted, Duration::from_secs(5)).ok()?;
    let mut due = Vec::new();
    for &partition in partitions {
        let (low, high) = reader.fetch_watermarks(topic, partition, Duration::from_secs(5)).ok()?;
        let start = match committed.find_partition(topic, partition).map(|e| e.offset()) {
            Some(Offset::Offset(offset)) => offset.max(low),
            _ => low,
        };
        if start < high {
            due.push((partition, high));
        }
    }
    Some(due)
}

/// The partitions of `topic` assigned to `consumer` now.
fn assigned_partitions(consumer: &StreamConsumer<Assignments>, topic: &str) -> Vec<i32> {
    let assignment = consumer.assignment().unwrap_or_default();
    assignment.elements_for_topic(topic).iter().map(|element| element.partition()).collect()
}

/// True when the consumer's position in each of `due`'s partitions has reached its end offset.
fn read_up_to(consumer: &StreamConsumer<Assignments>, topic: &str, due: &[(i32, i64)]) -> bool {
    if due.is_empty() {
        return true;
    }
    let Ok(position) = consumer.position() else { return false };
    due.iter().all(|&(partition, end)| {
        matches!(position.find_partition(topic, partition).map(|e| e.offset()), Some(Offset::Offset(at)) if at >= end)
    })
}

/// Every partition of the historical topic in a queue of its own, apart from the live lane.
fn split(
    consumer: &Arc<StreamConsumer<Assignments>>,
    topic: &str,
    partitions: i32,
) -> Vec<StreamPartitionQueue<Assignments>> {
    (0..partitions).filter_map(|partition| consumer.split_partition_queue(topic, partition)).collect()
}

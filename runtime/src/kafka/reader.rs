//! The one batch reader every stage reads through: "give me the next batch", with the
//! partitions newly assigned since the last one, so the stage restores what it keeps for them
//! before it processes their records.
//!
//! A batch closes at `max` records, `wait` after its first record (a deadline, so a trickle
//! cannot keep it open), or `idle` after the last one. A batch read across a rebalance is
//! dropped: some of its records may be another instance's now, and those still this one's are
//! read again from the committed offsets.
//!
//! With a lower lane ([`BatchReader::with_lower_lane`]), that topic's partitions are read from
//! queues of their own, only when the main topic has nothing ready: a bulk import never delays
//! live signals by more than one batch. After an assignment, the lower lane waits until the
//! main one has read what its partitions held then (an empty queue may only mean its first
//! fetch has not come back yet); after that, it goes whenever the main queue is empty.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::stream_consumer::StreamPartitionQueue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::Offset;
use tokio::sync::watch;

use super::Assignments;
use crate::config::KafkaConfig;

/// A batch closes once its records' payloads come to this much, whatever [`Batching::max`]
/// says: what a role holds of a batch stays bounded when records are large.
pub const BATCH_MAX_BYTES: usize = 64 << 20;

/// How a batch closes: at `max` records, at [`BATCH_MAX_BYTES`], or by time.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max: usize,
    /// How long a batch may stay open after its first record.
    pub wait: Duration,
    /// How long a batch waits for its next record before it closes.
    pub idle: Duration,
}

/// What the reader read.
pub struct Read<'r> {
    /// Partitions assigned since the last read: restore them before processing `batch`.
    pub assigned: Vec<i32>,
    /// Records of the partitions this instance holds, in offset order per partition. Empty when
    /// the group rebalanced while they were read.
    pub batch: Vec<BorrowedMessage<'r>>,
}

pub struct BatchReader {
    consumer: Arc<StreamConsumer<Assignments>>,
    batching: Batching,
    lower: Option<LowerLane>,
    /// The lower lane's partitions, each in a queue of its own.
    queues: Vec<StreamPartitionQueue<Assignments>>,
    /// Main partitions with records to read before the lower lane's turn, with their end offsets.
    main_due: Option<MainDue>,
    /// The broker asked for `main_due`, for the assignment of that generation.
    asking: Option<(u64, tokio::task::JoinHandle<Option<MainDue>>)>,
    generation: u64,
    lower_open: bool,
    split_again: bool,
}

/// A topic read only when the main one has nothing ready.
struct LowerLane {
    config: KafkaConfig,
    group: String,
    main: String,
    topic: String,
}

type MainDue = Vec<(i32, i64)>;

impl BatchReader {
    /// Reads what `consumer` is subscribed to.
    pub fn new(consumer: Arc<StreamConsumer<Assignments>>, batching: Batching) -> Self {
        Self {
            consumer,
            batching,
            lower: None,
            queues: Vec::new(),
            main_due: None,
            asking: None,
            generation: 0,
            lower_open: false,
            split_again: false,
        }
    }

    /// Reads `topic` (full name, also subscribed) only when `main` has nothing ready; `group` is
    /// the consumer's group, whose commits say what `main` still holds.
    pub fn with_lower_lane(mut self, config: &KafkaConfig, group: &str, main: &str, topic: &str) -> Self {
        self.queues = split_queues(&self.consumer, topic, config.partitions);
        let (group, main, topic) = (group.to_owned(), main.to_owned(), topic.to_owned());
        self.lower = Some(LowerLane { config: config.clone(), group, main, topic });
        self
    }

    pub fn consumer(&self) -> &Arc<StreamConsumer<Assignments>> {
        &self.consumer
    }

    /// The next batch, or None once `stop` turns true.
    pub async fn next(&mut self, stop: &mut watch::Receiver<bool>) -> Result<Option<Read<'_>>, KafkaError> {
        let Self { consumer, batching, lower, queues, main_due, asking, generation, lower_open, split_again } = self;
        let consumer: &Arc<StreamConsumer<Assignments>> = consumer;
        if let Some(lane) = lower.as_ref().filter(|_| *split_again) {
            // An assignment may forward the partitions to the main queue again. The old queues go
            // first: each is a handle on the same partition queue, and dropping one turns off the
            // queue's wake-up callback, which the new handle's must come after. Dropped after, they
            // left the lane unwoken: records arriving once it had drained were never read.
            queues.clear();
            *queues = split_queues(consumer, &lane.topic, lane.config.partitions);
            *split_again = false;
        }
        let queues: &[StreamPartitionQueue<Assignments>] = queues;
        loop {
            if *stop.borrow() {
                return Ok(None);
            }
            if let Some(lane) = lower.as_ref() {
                if main_due.is_none() && asking.is_none() {
                    let assignment = consumer.assignment().unwrap_or_default();
                    let partitions: Vec<i32> =
                        assignment.elements_for_topic(&lane.main).iter().map(|element| element.partition()).collect();
                    if !partitions.is_empty() {
                        // On a blocking thread, with a client of its own, so records flow meanwhile.
                        let (config, group, main) = (lane.config.clone(), lane.group.clone(), lane.main.clone());
                        let task =
                            tokio::task::spawn_blocking(move || main_backlog(&config, &group, &main, &partitions));
                        *asking = Some((*generation, task));
                    }
                }
                *lower_open =
                    *lower_open || main_due.as_deref().is_some_and(|due| read_up_to(consumer, &lane.main, due));
            }
            let waiting = lower.is_some() && main_due.is_none() && asking.is_none();
            let mut older = futures::stream::select_all(queues.iter().map(|queue| queue.stream()));
            let (first, from_lower) = tokio::select! {
                biased;
                _ = stop.changed() => return Ok(None),
                message = consumer.recv() => (message, false),
                Some(message) = older.next(), if *lower_open => (message, true),
                answer = async { (&mut asking.as_mut().expect("asking").1).await }, if asking.is_some() => {
                    // An answer about an earlier assignment is dropped.
                    let asked_for = asking.take().map(|(asked_for, _)| asked_for);
                    *main_due = answer.ok().flatten().filter(|_| asked_for == Some(*generation));
                    continue;
                }
                // Not assigned yet, or the broker did not answer: look again shortly.
                _ = tokio::time::sleep(Duration::from_millis(20)), if waiting => continue,
                // Partitions to restore before their first record: an empty topic has none to wait for.
                () = consumer.context().assignment() => {
                    let assigned = consumer.context().take();
                    if assigned.is_empty() {
                        continue;
                    }
                    if lower.is_some() {
                        (*main_due, *lower_open, *generation, *split_again) = (None, false, *generation + 1, true);
                    }
                    return Ok(Some(Read { assigned, batch: Vec::new() }));
                }
            };
            let mut batch = match first {
                Ok(message) => vec![message],
                Err(error) => {
                    tracing::warn!(%error, "consume failed");
                    continue;
                }
            };
            let rebalances = consumer.context().rebalances();
            let deadline = tokio::time::Instant::now() + batching.wait;
            let mut bytes = batch[0].payload_len();
            while batch.len() < batching.max && bytes < BATCH_MAX_BYTES {
                let until = deadline.min(tokio::time::Instant::now() + batching.idle);
                let next = if from_lower {
                    tokio::time::timeout_at(until, older.next()).await.ok().flatten()
                } else {
                    tokio::time::timeout_at(until, consumer.recv()).await.ok()
                };
                match next {
                    Some(Ok(message)) => {
                        bytes += message.payload_len();
                        batch.push(message);
                    }
                    _ => break,
                }
            }
            if consumer.context().rebalances() != rebalances {
                tracing::info!(records = batch.len(), "the group rebalanced while a batch was read; it is read again");
                batch.clear();
            }
            let assigned = consumer.context().take();
            if let Some(lane) = lower.as_ref() {
                // An assignment forwards the lower lane's partitions to the main queue until they
                // are split again, and records fetched meanwhile arrive there. They are put back
                // (each partition rewound to its first such record) to be read from their own
                // queue once split.
                if !from_lower && batch.iter().any(|message| message.topic() == lane.topic) {
                    let mut rewound = Vec::new();
                    for message in batch.iter().filter(|message| message.topic() == lane.topic) {
                        if !rewound.contains(&message.partition()) {
                            rewound.push(message.partition());
                            let offset = Offset::Offset(message.offset());
                            consumer.seek(&lane.topic, message.partition(), offset, Duration::ZERO)?;
                        }
                    }
                    batch.retain(|message| message.topic() != lane.topic);
                    *split_again = true;
                }
                if !assigned.is_empty() {
                    (*main_due, *lower_open, *generation, *split_again) = (None, false, *generation + 1, true);
                }
            }
            return Ok(Some(Read { assigned, batch }));
        }
    }
}

/// Which of `partitions` of `topic` held records not yet processed, with their end offsets, as
/// the broker and the group's commits say now; `None` when the broker did not answer (asked
/// again on the next turn).
fn main_backlog(config: &KafkaConfig, group: &str, topic: &str, partitions: &[i32]) -> Option<MainDue> {
    // In the group (to read its commits) without joining it, so closing it is immediate.
    let reader: StreamConsumer = super::consumer(config, group).ok()?;
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

/// Every partition of `topic` in a queue of its own, apart from the main queue.
fn split_queues(
    consumer: &Arc<StreamConsumer<Assignments>>,
    topic: &str,
    partitions: i32,
) -> Vec<StreamPartitionQueue<Assignments>> {
    (0..partitions).filter_map(|partition| consumer.split_partition_queue(topic, partition)).collect()
}

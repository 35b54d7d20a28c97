//! The stream role's loop: a consumer group over the raw topics, batch by batch. A batch's
//! outputs are all acknowledged by the broker before its offsets are stored, so a crash replays
//! at most the unfinished tail, which the reloaded dedupe window absorbs.
//!
//! The live lane goes first: while a batch holds live records, the historical lane's partitions
//! are paused; they resume as soon as the live lane has nothing for a batch.

use std::time::{Duration, Instant};

use common::config::KafkaConfig;
use common::kafka::{self, topics};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::TopicPartitionList;
use tokio::sync::watch;

use crate::outputs::{self, Topics};
use crate::processor::Processor;
use crate::window::{self, Assignments};

/// Tuning of the stream role.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub dedupe_entries: u64,
    pub dedupe_window: Duration,
    /// How often mapping rules are reloaded and signal queue counts written.
    pub refresh: Duration,
    /// Larger raw records go to the dead-letter topic (their outputs could not be written).
    pub max_record_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_max: 1000,
            batch_wait: Duration::from_millis(20),
            dedupe_entries: 10_000_000,
            dedupe_window: Duration::from_secs(24 * 3600),
            refresh: Duration::from_secs(5),
            max_record_bytes: 2 << 20,
        }
    }
}

/// Consumes `signals.raw` and `signals.raw.historical` until `stop` turns true.
pub async fn run(
    config: &KafkaConfig,
    clickhouse: clickhouse::Client,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
) -> Result<(), KafkaError> {
    let (live, historical) = (config.topic(topics::SIGNALS_RAW), config.topic(topics::SIGNALS_HISTORICAL));
    let outputs_to = Topics {
        processed: config.topic(topics::SIGNALS_PROCESSED),
        identities: config.topic(topics::IDENTITIES),
        outbox: config.topic(topics::WEBHOOKS_OUTBOX),
        dlq: config.topic(topics::SIGNALS_DLQ),
    };
    kafka::ensure_topics(
        config,
        &[&live, &historical, &outputs_to.processed, &outputs_to.identities, &outputs_to.outbox, &outputs_to.dlq],
    )
    .await?;
    let Some(mut rules) = crate::control::watch_rules(clickhouse.clone(), settings.refresh, stop.clone()).await else {
        return Ok(()); // stopped before the rules could be loaded
    };
    let consumer: StreamConsumer<Assignments> =
        kafka::consumer_with_context(config, &config.topic("stream"), Assignments::default())?;
    consumer.subscribe(&[&live, &historical])?;
    let producer = kafka::producer(config)?;
    let mut processor = Processor::new(settings.dedupe_entries, settings.dedupe_window);
    processor.set_rules(rules.borrow_and_update().clone());
    let mut lanes = Lanes { historical, paused: None };
    let mut last_flush = Instant::now();
    tracing::info!(%live, historical = %lanes.historical, "stream processor consuming");

    while !*stop.borrow() {
        let first = tokio::select! {
            message = consumer.recv() => message,
            _ = stop.changed() => break,
            // Paused historical partitions and a quiet live lane: let history flow again.
            _ = tokio::time::sleep(settings.batch_wait), if lanes.paused.is_some() => {
                lanes.resume(&consumer)?;
                continue;
            }
        };
        let mut batch: Vec<BorrowedMessage<'_>> = match first {
            Ok(message) => vec![message],
            Err(error) => {
                tracing::warn!(%error, "consume failed");
                continue;
            }
        };
        while batch.len() < settings.batch_max {
            match tokio::time::timeout(settings.batch_wait, consumer.recv()).await {
                Ok(Ok(message)) => batch.push(message),
                _ => break,
            }
        }
        let assigned = consumer.context().take();
        if !assigned.is_empty() {
            lanes.paused = None; // a new assignment starts unpaused
            let (hashes, links) = window::reload(config, &assigned, settings.dedupe_window, &mut processor).await?;
            tracing::info!(partitions = ?assigned, hashes, links, "dedupe window and identities reloaded");
        }
        if rules.has_changed().unwrap_or(false) {
            processor.set_rules(rules.borrow_and_update().clone());
        }
        let mut outputs = Vec::with_capacity(batch.len() + 16);
        for message in &batch {
            outputs::route(&mut processor, message, &outputs_to, settings.max_record_bytes, &mut outputs);
        }
        if !outputs::deliver(&producer, &outputs_to.dlq, outputs, &mut stop).await {
            break; // stopping with outputs undelivered: their offsets stay unstored
        }
        for message in &batch {
            consumer.store_offset_from_message(message)?;
        }
        if batch.iter().any(|message| message.topic() != lanes.historical) {
            lanes.pause(&consumer)?;
        } else {
            lanes.resume(&consumer)?;
        }
        if last_flush.elapsed() >= settings.refresh {
            crate::control::flush_queue(&clickhouse, &mut processor).await;
            last_flush = Instant::now();
        }
    }
    crate::control::flush_queue(&clickhouse, &mut processor).await;
    consumer.commit_consumer_state(CommitMode::Sync).or_else(|error| match error {
        KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset) => Ok(()),
        error => Err(error),
    })?;
    tracing::info!("stream processor stopped");
    Ok(())
}

/// The historical lane's pause state.
struct Lanes {
    historical: String,
    /// The historical partitions paused, while the live lane has work.
    paused: Option<TopicPartitionList>,
}

impl Lanes {
    fn pause(&mut self, consumer: &StreamConsumer<Assignments>) -> Result<(), KafkaError> {
        if self.paused.is_some() {
            return Ok(());
        }
        let mut partitions = TopicPartitionList::new();
        for element in consumer.assignment()?.elements() {
            if element.topic() == self.historical {
                partitions.add_partition(element.topic(), element.partition());
            }
        }
        if partitions.count() > 0 {
            consumer.pause(&partitions)?;
            self.paused = Some(partitions);
        }
        Ok(())
    }

    fn resume(&mut self, consumer: &StreamConsumer<Assignments>) -> Result<(), KafkaError> {
        match self.paused.take() {
            Some(partitions) => consumer.resume(&partitions),
            None => Ok(()),
        }
    }
}

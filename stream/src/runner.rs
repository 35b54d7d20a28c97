//! The stream role's loop: a consumer group over the raw topics, batch by batch. Each batch's
//! outputs, its state changes (dedupe entries, links, leads) and its consumer offsets are
//! committed in one Kafka transaction, and readers downstream read only committed records: a
//! crash at any step leaves all of a batch's effects or none. Any failure inside a batch ends
//! the run with the error; the supervisor starts it again, and the new run restores its state
//! from what was committed (see [`crate::restore`]).
//!
//! Batches are pipelined: batch N's outputs are written and its transaction committed on a task
//! of its own while batch N+1 is read and processed in memory, and N+1's transaction begins once
//! N's has committed. A producer has one transaction open at a time, so nothing of N+1 reaches
//! Kafka before N is committed. When N's transaction fails, N+1 is never written and the run
//! ends with the error: the state N+1 changed in memory goes with it, and the next run restores
//! what was committed. Signal queue counts, taken when a flush is due, are written by the task
//! once the batch that closes them is committed, so a failed batch's counts are never written.
//!
//! The live lane goes first: the historical topic is the reader's lower lane (see
//! [`runtime::kafka::reader`]), read only when the live lane has nothing ready, so a bulk import
//! never delays live signals by more than one batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use runtime::config::KafkaConfig;
use runtime::kafka::reader::{BatchReader, Batching};
use runtime::kafka::{self, topics, Assignments};
use runtime::reload::keep_loaded;
use runtime::stage::batches::{run_batches, BatchStage, Flow};
use runtime::stage::{Stage, StageError};
use tokio::sync::watch;

use crate::outputs::{self, Destinations};
use crate::processor::Processor;
use crate::restore;
use control::signal_queue::QueuedGroup;
use schemas::mapping::RuleSet;
use tokio::task::JoinError;

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
            batch_idle: Duration::from_millis(5),
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
    let to = Arc::new(Destinations {
        partitions: config.partitions,
        processed: config.topic(topics::SIGNALS_PROCESSED),
        identities: config.topic(topics::IDENTITIES),
        outbox: config.topic(topics::WEBHOOKS_OUTBOX),
        dlq: config.topic(topics::SIGNALS_DLQ),
        dedupe: config.topic(topics::DEDUPE),
    });
    // Loaded before the first record, reloaded every refresh: rule changes apply without a restart.
    let client = clickhouse.clone();
    let load = move || {
        let client = client.clone();
        async move { control::rules::list(&client, None).await }
    };
    let Some(mut rules) = keep_loaded("mapping rules", settings.refresh, stop.clone(), load).await else {
        return Ok(()); // stopped before the rules could be loaded
    };
    // Deleted people's emails and visitors, whose signals are not stored (control::people).
    let suppressions = control::people::Suppressions::keep_loaded(&clickhouse, settings.refresh, stop.clone());
    let Some(mut suppressions) = suppressions.await else {
        return Ok(());
    };
    let producer = kafka::transactional_producer(config, transactional_id).await?;
    let group = config.topic("stream");
    let consumer: Arc<StreamConsumer<Assignments>> =
        Arc::new(kafka::stage_consumer(config, &group, Assignments::new("stream"))?);
    consumer.subscribe(&[&live, &historical])?;
    let batching = Batching { max: settings.batch_max, wait: settings.batch_wait, idle: settings.batch_idle };
    let mut reader = BatchReader::new(consumer, batching).with_lower_lane(config, &group, &live, &historical);
    let mut processor = Processor::new(settings.dedupe_entries, settings.dedupe_window);
    processor.set_rules(Arc::new(RuleSet::compile(rules.borrow_and_update().to_vec())));
    processor.set_suppressions(suppressions.borrow_and_update().clone());
    let mut processing = Processing {
        config: config.clone(),
        raw_topics: [live.clone(), historical.clone()],
        to,
        processor,
        producer,
        rules,
        suppressions,
        clickhouse,
        settings,
        stage: stage.clone(),
        last_flush: Instant::now(),
        in_flight: None,
    };
    tracing::info!(%live, %historical, "stream processor consuming");
    run_batches(&mut reader, &mut processing, &stage, &mut stop).await?;
    tracing::info!("stream processor stopped");
    Ok(())
}

/// The stream processor as a [`BatchStage`]: each batch's outputs, state changes and offsets in
/// one transaction.
struct Processing {
    config: KafkaConfig,
    raw_topics: [String; 2],
    to: Arc<Destinations>,
    processor: Processor,
    producer: FutureProducer,
    rules: watch::Receiver<Arc<Vec<schemas::rules::Rule>>>,
    suppressions: watch::Receiver<Arc<control::people::Suppressions>>,
    clickhouse: clickhouse::Client,
    settings: Settings,
    stage: Stage,
    last_flush: Instant,
    /// The last batch's transaction: its outputs written and committed while the next batch is
    /// read and processed; then the signal queue counts taken with it, when due. Answers the
    /// counts it could not write.
    in_flight: Option<tokio::task::JoinHandle<Result<Vec<QueuedGroup>, StageError>>>,
}

impl Processing {
    /// Waits for the last batch's transaction; its error ends the run.
    async fn committed(&mut self) -> Result<(), StageError> {
        match self.in_flight.take() {
            Some(transaction) => self.settle(transaction.await),
            None => Ok(()),
        }
    }

    /// The answer of the last batch's task: its error, or the signal queue counts it could not
    /// write, put back for the next flush.
    fn settle(&mut self, answer: Result<Result<Vec<QueuedGroup>, StageError>, JoinError>) -> Result<(), StageError> {
        let unwritten = answer.map_err(|_| "the transaction task ended without an answer")??;
        if !unwritten.is_empty() {
            self.processor.queue().restore(unwritten);
            // A person deleted meanwhile must not come back with the counts put back.
            self.processor.forget_suppressed();
        }
        Ok(())
    }

    /// Takes in the suppressions loaded since the last batch, before any count is taken: an idle
    /// stream holds samples a deletion must scrub before they are written.
    fn heed_suppressions(&mut self) {
        // The loader ends with the stop signal, closing its channel: its last value still counts.
        if self.suppressions.has_changed().unwrap_or(true) {
            self.processor.set_suppressions(self.suppressions.borrow_and_update().clone());
        }
    }
}

impl BatchStage for Processing {
    const NAME: &'static str = "stream";

    async fn assigned(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        partitions: &[i32],
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Flow, StageError> {
        self.committed().await?;
        let (config, topics) = (&self.config, &self.raw_topics);
        let restored =
            restore::restore(config, consumer, topics, partitions, &mut self.processor, &self.stage, stop).await?;
        self.processor.forget_suppressed();
        Ok(if restored.is_some() { Flow::Go } else { Flow::Stop })
    }

    async fn process(
        &mut self,
        consumer: &Arc<StreamConsumer<Assignments>>,
        batch: &[BorrowedMessage<'_>],
        _stop: &mut watch::Receiver<bool>,
    ) -> Result<Flow, StageError> {
        if self.rules.has_changed().unwrap_or(false) {
            self.processor.set_rules(Arc::new(RuleSet::compile(self.rules.borrow_and_update().to_vec())));
        }
        self.heed_suppressions();
        self.processor.deduper().expire(runtime::time::now_ms());
        let mut outputs = outputs::Outputs::with_capacity(batch.len() + 16);
        for message in batch {
            outputs::route(&mut self.processor, message, &self.to, self.settings.max_record_bytes, &mut outputs);
        }
        // Processed in memory; the last batch's transaction may still be in flight.
        runtime::stage::fault_point("stream.processed");
        self.committed().await?;
        // The generation the batch was read in: no rebalance came since its first record.
        let group = consumer.group_metadata().ok_or("the consumer has no group metadata")?;
        let (producer, to, offsets) = (self.producer.clone(), Arc::clone(&self.to), kafka::next_offsets(batch));
        // Counts up to this batch, written once it is committed (a failed batch is read again).
        let queued = if self.last_flush.elapsed() >= self.settings.refresh {
            self.last_flush = Instant::now();
            self.processor.queue().take()
        } else {
            Vec::new()
        };
        let clickhouse = self.clickhouse.clone();
        self.in_flight = Some(tokio::spawn(async move {
            producer.begin_transaction()?;
            if let Err(error) = outputs::write(&producer, &to, outputs).await {
                kafka::abort_transaction(&producer).await;
                return Err(error.into());
            }
            kafka::commit_transaction(&producer, offsets, group, "stream").await?;
            Ok(crate::signal_queue::write(&clickhouse, queued).await)
        }));
        Ok(Flow::Go)
    }

    async fn failure(&mut self) -> StageError {
        // Polled by reference: if the next batch comes first, the transaction stays awaited by it.
        if let Some(transaction) = self.in_flight.as_mut() {
            let answer = transaction.await;
            self.in_flight = None;
            if let Err(error) = self.settle(answer) {
                return error;
            }
        }
        std::future::pending().await
    }

    async fn stopped(&mut self) {
        match self.committed().await {
            Ok(()) => {
                self.heed_suppressions();
                crate::signal_queue::flush(&self.clickhouse, self.processor.queue()).await
            }
            Err(error) => tracing::warn!(
                %error,
                "the last batch's transaction failed as the stream stopped; the next run restores and reads it again"
            ),
        }
    }
}

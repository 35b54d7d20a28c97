//! The stream role's loop: a consumer group over the raw topics, batch by batch. A batch's
//! outputs are all acknowledged by the broker before its offsets are stored, so a crash replays
//! at most the unfinished tail (which dedupe absorbs while the process lives).

use std::time::Duration;

use common::config::KafkaConfig;
use common::kafka::{self, topics};
use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schemas::record::headers;
use tokio::sync::watch;

use crate::inbound::Inbound;
use crate::processor::{Output, Processor};
use crate::window::{self, Assignments};

pub const PROCESSED_TOTAL: &str = "sigstage_stream_records_total";

/// Tuning of the stream role.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_max: usize,
    pub batch_wait: Duration,
    pub dedupe_entries: u64,
    pub dedupe_window: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_max: 1000,
            batch_wait: Duration::from_millis(20),
            dedupe_entries: 10_000_000,
            dedupe_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// A record to write, kept until the broker has it.
struct Pending {
    topic: String,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: OwnedHeaders,
}

/// Consumes `signals.raw` and `signals.raw.historical` until `stop` turns true.
pub async fn run(config: &KafkaConfig, settings: Settings, mut stop: watch::Receiver<bool>) -> Result<(), KafkaError> {
    let (raw, historical) = (config.topic(topics::SIGNALS_RAW), config.topic(topics::SIGNALS_HISTORICAL));
    let outputs_to = Topics {
        processed: config.topic(topics::SIGNALS_PROCESSED),
        identities: config.topic(topics::IDENTITIES),
        dlq: config.topic(topics::SIGNALS_DLQ),
    };
    kafka::ensure_topics(config, &[&raw, &historical, &outputs_to.processed, &outputs_to.identities, &outputs_to.dlq])
        .await?;
    let consumer: StreamConsumer<Assignments> =
        kafka::consumer_with_context(config, &config.topic("stream"), Assignments::default())?;
    consumer.subscribe(&[&raw, &historical])?;
    let producer = kafka::producer(config)?;
    let mut processor = Processor::new(settings.dedupe_entries, settings.dedupe_window);
    tracing::info!(%raw, %historical, "stream processor consuming");

    while !*stop.borrow() {
        let first = tokio::select! {
            message = consumer.recv() => message,
            _ = stop.changed() => break,
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
            let (hashes, links) = window::reload(config, &assigned, settings.dedupe_window, &mut processor).await?;
            tracing::info!(partitions = ?assigned, hashes, links, "dedupe window and identities reloaded");
        }
        let mut outputs = Vec::with_capacity(batch.len() + 16);
        for message in &batch {
            route(&mut processor, message, &outputs_to, &mut outputs);
        }
        if !deliver(&producer, outputs, &mut stop).await {
            break; // stopping with outputs undelivered: their offsets stay unstored
        }
        for message in &batch {
            consumer.store_offset_from_message(message)?;
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync).or_else(|error| match error {
        KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset) => Ok(()),
        error => Err(error),
    })?;
    tracing::info!("stream processor stopped");
    Ok(())
}

/// Where each output goes.
struct Topics {
    processed: String,
    identities: String,
    dlq: String,
}

/// What one raw record becomes, appended to `out`: a processed record (and the identity link it
/// made), a dead letter, or nothing (a duplicate).
fn route(processor: &mut Processor, message: &BorrowedMessage<'_>, topics: &Topics, out: &mut Vec<Pending>) {
    let output = match Inbound::from_message(message) {
        Ok(inbound) => processor.process(&inbound),
        Err(reason) => Output::Dead { reason, stage: "envelope", detail: "not written by the sigstage edge".into() },
    };
    let key = || message.key().unwrap_or_default().to_vec();
    match output {
        Output::Processed { value, hash, link } => {
            metrics::counter!(PROCESSED_TOTAL, "outcome" => "processed").increment(1);
            let hash = format!("{hash:032x}");
            let headers = OwnedHeaders::new().insert(Header { key: headers::CONTENT_HASH, value: Some(hash.as_str()) });
            out.push(Pending {
                topic: topics.processed.clone(),
                key: key(),
                value,
                headers: copy_headers(message, headers),
            });
            if let Some(link) = link.and_then(|link| serde_json::to_vec(&link).ok()) {
                metrics::counter!(PROCESSED_TOTAL, "outcome" => "identity_link").increment(1);
                out.push(Pending {
                    topic: topics.identities.clone(),
                    key: key(),
                    value: link,
                    headers: copy_headers(message, OwnedHeaders::new()),
                });
            }
        }
        Output::Duplicate => {
            metrics::counter!(PROCESSED_TOTAL, "outcome" => "duplicate").increment(1);
        }
        Output::Dead { reason, stage, detail } => {
            metrics::counter!(PROCESSED_TOTAL, "outcome" => "dead_letter").increment(1);
            tracing::warn!(reason, stage, %detail, partition = message.partition(), offset = message.offset(), "dead letter");
            let headers = OwnedHeaders::new()
                .insert(Header { key: headers::DLQ_REASON, value: Some(reason) })
                .insert(Header { key: headers::DLQ_STAGE, value: Some(stage) })
                .insert(Header { key: headers::DLQ_DETAIL, value: Some(detail.as_str()) });
            out.push(Pending {
                topic: topics.dlq.clone(),
                key: key(),
                value: message.payload().unwrap_or_default().to_vec(),
                headers: copy_headers(message, headers),
            });
        }
    }
}

/// The edge's headers of `message`, after `into`.
fn copy_headers(message: &BorrowedMessage<'_>, mut into: OwnedHeaders) -> OwnedHeaders {
    if let Some(existing) = message.headers() {
        for header in existing.iter() {
            into = into.insert(Header { key: header.key, value: header.value });
        }
    }
    into
}

/// Writes every output, retrying failures with backoff until all are acknowledged. Answers
/// false when asked to stop before that.
async fn deliver(producer: &FutureProducer, mut outputs: Vec<Pending>, stop: &mut watch::Receiver<bool>) -> bool {
    let mut backoff = Duration::from_millis(100);
    loop {
        let results = join_all(outputs.iter().map(|output| {
            let record =
                FutureRecord::to(&output.topic).key(&output.key).payload(&output.value).headers(output.headers.clone());
            producer.send(record, Duration::from_secs(5))
        }))
        .await;
        let failed: Vec<usize> =
            results.iter().enumerate().filter_map(|(i, result)| result.is_err().then_some(i)).collect();
        if failed.is_empty() {
            return true;
        }
        tracing::warn!(failed = failed.len(), "outputs not acknowledged; retrying");
        let mut index = 0;
        outputs.retain(|_| {
            index += 1;
            failed.contains(&(index - 1))
        });
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.changed() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

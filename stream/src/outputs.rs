//! What a batch writes: each raw record's outputs (processed record, lead and identity link,
//! webhook events, or a dead letter) and the batch's dedupe entries (a record per partition, see
//! [`crate::dedupe::Changelog`]) as Kafka records, within the transaction that also commits the
//! batch's offsets.

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use runtime::kafka::{self, header_pairs};
use schemas::events;
use schemas::record::headers;

use crate::inbound::Inbound;
use crate::processor::{Output, Processor};
use schemas::identities::Identity;

pub const PROCESSED_TOTAL: &str = "sigstage_stream_records_total";

/// Where each output goes (full topic names).
pub struct Destinations {
    /// Partitions of the co-partitioned topics.
    pub partitions: i32,
    pub processed: String,
    pub identities: String,
    pub outbox: String,
    pub dlq: String,
    pub dedupe: String,
}

/// A record to write, kept until the broker has it.
pub struct Pending {
    topic: String,
    /// Set for records that must stay on the raw record's partition under another key.
    partition: Option<i32>,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: OwnedHeaders,
    /// Set for changelog records, whose time is the state's age.
    timestamp: Option<i64>,
}

/// A batch's outputs, gathered record by record.
pub struct Outputs {
    records: Vec<Pending>,
    changelog: crate::dedupe::Changelog,
}

impl Outputs {
    pub fn with_capacity(records: usize) -> Self {
        Self { records: Vec::with_capacity(records), changelog: Default::default() }
    }
}

/// What one raw record becomes, added to `outputs`.
pub fn route(
    processor: &mut Processor,
    message: &BorrowedMessage<'_>,
    to: &Destinations,
    max_bytes: usize,
    outputs: &mut Outputs,
) {
    let out = &mut outputs.records;
    let payload = message.payload().unwrap_or_default();
    let (output, first) = match Inbound::from_message(message) {
        Err(reason) => {
            (Output::Dead { reason, stage: "envelope", detail: "not written by the sigstage edge".into() }, None)
        }
        Ok(_) if payload.len() > max_bytes => (
            Output::Dead {
                reason: "too_large",
                stage: "envelope",
                detail: format!("{} bytes; signals of at most {max_bytes} bytes are processed", payload.len()),
            },
            None,
        ),
        // History (a stored signal sent again) adds nothing to dedupe.
        Ok(inbound) => {
            let first = inbound.history_rules.is_none().then_some((inbound.signal_id, inbound.received_ms));
            (processor.process(&inbound), first)
        }
    };
    // Of the edge's headers, outputs keep only its receive time: the stages downstream time
    // their end-to-end latency from it (`runtime::stage`).
    let received = message.headers().and_then(|headers| headers.iter().find(|h| h.key == headers::RECEIVED_MS));
    let pending = |topic: &str, value: Vec<u8>, mut headers: OwnedHeaders| {
        if let Some(received) = &received {
            headers = headers.insert(Header { key: headers::RECEIVED_MS, value: received.value });
        }
        Pending {
            topic: topic.to_owned(),
            partition: None,
            key: message.key().unwrap_or_default().to_vec(),
            value,
            headers,
            timestamp: None,
        }
    };
    // `identities` is compacted: each record is keyed by what it is about, so compaction keeps
    // the latest link of each visitor and every lead, on the partition of the visitor's raw
    // records, where the processor that owns it reloads them.
    let identity = |identity: &Identity| Pending {
        partition: Some(message.partition()),
        key: identity.key().into_bytes(),
        ..pending(&to.identities, identity.encode(), header(headers::IDENTITY_KIND, identity.kind()))
    };
    let outcome = match output {
        Output::Processed { value, hash, lead, links, events } => {
            if let Some((signal_id, received_ms)) = first {
                outputs.changelog.push(message.partition(), message.offset(), hash, signal_id, received_ms);
            }
            out.push(pending(&to.processed, value, OwnedHeaders::new()));
            if let Some(lead) = lead {
                out.push(identity(&Identity::Lead(*lead)));
            }
            for link in links {
                // A link of another id of the person goes where that id's records go.
                let visitor_key = schemas::record::record_key(&link.org, Some(&link.anonymous_id), 0);
                let mut record = identity(&Identity::Link(link));
                if message.key() != Some(visitor_key.as_bytes()) {
                    record.partition = Some(runtime::kafka::partition_of(visitor_key.as_bytes(), to.partitions));
                }
                out.push(record);
            }
            for event in events {
                out.push(pending(&to.outbox, event.value, header(events::TYPE_HEADER, event.kind)));
            }
            "processed"
        }
        Output::Duplicate => "duplicate",
        Output::Suppressed => "suppressed",
        Output::Dead { reason, stage, detail } => {
            tracing::warn!(reason, stage, %detail, partition = message.partition(), offset = message.offset(), "dead letter");
            let own = message.headers().map(header_pairs);
            let key = message.key().unwrap_or_default();
            out.push(dead_letter(&to.dlq, key, payload, own.as_deref().unwrap_or_default(), [reason, stage, &detail]));
            "dead_letter"
        }
    };
    metrics::counter!(PROCESSED_TOTAL, "outcome" => outcome).increment(1);
}

fn header(key: &str, value: &str) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header { key, value: Some(value) })
}

fn dead_letter(dlq: &str, key: &[u8], payload: &[u8], headers: &[(&str, &[u8])], why: [&str; 3]) -> Pending {
    let (value, headers) = runtime::kafka::dead_letter(payload, headers, why);
    Pending { topic: dlq.to_owned(), partition: None, key: key.to_vec(), value, headers, timestamp: None }
}

/// Writes every output within the producer's open transaction, and waits until the broker has
/// them all. An output the broker will never take (too large, refused) is written as a dead
/// letter instead, so it cannot hold the partition. Any other failure is returned: the caller
/// aborts the transaction and its stage restarts from what was committed.
pub async fn write(producer: &FutureProducer, to: &Destinations, outputs: Outputs) -> Result<(), KafkaError> {
    let Outputs { records: mut outputs, changelog } = outputs;
    outputs.extend(changelog.into_records().map(|record| Pending {
        topic: to.dedupe.clone(),
        partition: Some(record.partition),
        key: record.key.to_vec(),
        value: record.value,
        headers: OwnedHeaders::new(),
        timestamp: Some(record.timestamp_ms as i64),
    }));
    let dlq = to.dlq.as_str();
    let mut sent = Vec::with_capacity(outputs.len());
    for output in &outputs {
        sent.push(enqueue(producer, output).await?);
    }
    let mut dead = Vec::new();
    let half = sent.len() / 2;
    for (n, (output, delivery)) in outputs.iter().zip(sent).enumerate() {
        if n == half {
            runtime::stage::fault_point("stream.some_outputs_written");
        }
        match delivery.await.map_err(|_| KafkaError::Canceled)? {
            Ok(_) => {}
            // Not the dedupe changelog: its entries are state, so the batch fails and is read
            // again rather than lose them.
            Err((error, _))
                if kafka::is_refused_for_good(&error) && output.topic != dlq && output.topic != to.dedupe =>
            {
                tracing::error!(%error, topic = %output.topic, "output refused by the broker; dead-lettered");
                let why = ["unwritable", "produce", &error.to_string()];
                dead.push(dead_letter(dlq, &output.key, &output.value, &header_pairs(&output.headers), why));
            }
            Err((error, _)) => return Err(error),
        }
    }
    for letter in &dead {
        let delivery = enqueue(producer, letter).await?;
        delivery.await.map_err(|_| KafkaError::Canceled)?.map_err(|(error, _)| error)?;
    }
    Ok(())
}

/// Hands `output` to the producer; while its queue is full, waits and tries again.
async fn enqueue(producer: &FutureProducer, output: &Pending) -> Result<DeliveryFuture, KafkaError> {
    loop {
        let mut record =
            FutureRecord::to(&output.topic).key(&output.key).payload(&output.value).headers(output.headers.clone());
        record.partition = output.partition;
        record.timestamp = output.timestamp;
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

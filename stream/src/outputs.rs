//! What a batch writes: each raw record's outputs (processed record, lead and identity link,
//! webhook events, or a dead letter) as Kafka records, delivered until all are acknowledged.

use std::time::Duration;

use common::config::KafkaConfig;
use common::kafka::{self, header_pairs};
use futures::future::join_all;
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer, PurgeConfig};
use schemas::events;
use schemas::record::headers;
use tokio::sync::watch;

use crate::inbound::Inbound;
use crate::processor::{Output, Processor};

pub const PROCESSED_TOTAL: &str = "sigstage_stream_records_total";

/// Where each output goes (full topic names).
pub struct Topics {
    pub processed: String,
    pub identities: String,
    pub outbox: String,
    pub dlq: String,
}

/// A record to write, kept until the broker has it.
pub struct Pending {
    topic: String,
    /// Set for records that must stay on the raw record's partition under another key.
    partition: Option<i32>,
    key: Vec<u8>,
    value: Vec<u8>,
    headers: OwnedHeaders,
}

/// What one raw record becomes, appended to `out`.
pub fn route(
    processor: &mut Processor,
    message: &BorrowedMessage<'_>,
    topics: &Topics,
    max_bytes: usize,
    out: &mut Vec<Pending>,
) {
    let payload = message.payload().unwrap_or_default();
    let output = match Inbound::from_message(message) {
        Err(reason) => Output::Dead { reason, stage: "envelope", detail: "not written by the sigstage edge".into() },
        Ok(_) if payload.len() > max_bytes => Output::Dead {
            reason: "too_large",
            stage: "envelope",
            detail: format!("{} bytes; signals of at most {max_bytes} bytes are processed", payload.len()),
        },
        Ok(inbound) => processor.process(&inbound),
    };
    let pending = |topic: &str, value: Vec<u8>, headers: OwnedHeaders| Pending {
        topic: topic.to_owned(),
        partition: None,
        key: message.key().unwrap_or_default().to_vec(),
        value,
        headers: copy_headers(message, headers),
    };
    // `identities` is compacted: each record is keyed by what it is about, so compaction keeps
    // the latest link of each visitor and every lead, on the partition of the visitor's raw
    // records, where the processor that owns it reloads them.
    let identity = |key: String, value: Vec<u8>, kind: &str| Pending {
        partition: Some(message.partition()),
        key: key.into_bytes(),
        ..pending(&topics.identities, value, header(headers::IDENTITY_KIND, kind))
    };
    let outcome = match output {
        Output::Processed { value, hash, lead, link, events } => {
            let hash = format!("{hash:032x}");
            out.push(pending(&topics.processed, value, header(headers::CONTENT_HASH, &hash)));
            if let Some(lead) = lead {
                let value = serde_json::to_vec(&lead).expect("a lead serializes");
                out.push(identity(format!("lead:{}:{}", lead.org, lead.email), value, "lead"));
            }
            if let Some(link) = link {
                let value = serde_json::to_vec(&link).expect("a link serializes");
                out.push(identity(format!("link:{}:{}", link.org, link.anonymous_id), value, "link"));
            }
            for event in events {
                out.push(pending(&topics.outbox, event.value, header(events::TYPE_HEADER, event.kind)));
            }
            "processed"
        }
        Output::Duplicate => "duplicate",
        Output::Dead { reason, stage, detail } => {
            tracing::warn!(reason, stage, %detail, partition = message.partition(), offset = message.offset(), "dead letter");
            let own = message.headers().map(header_pairs);
            let key = message.key().unwrap_or_default();
            out.push(dead_letter(
                &topics.dlq,
                key,
                payload,
                own.as_deref().unwrap_or_default(),
                [reason, stage, &detail],
            ));
            "dead_letter"
        }
    };
    metrics::counter!(PROCESSED_TOTAL, "outcome" => outcome).increment(1);
}

fn header(key: &str, value: &str) -> OwnedHeaders {
    OwnedHeaders::new().insert(Header { key, value: Some(value) })
}

fn dead_letter(dlq: &str, key: &[u8], payload: &[u8], headers: &[(&str, &[u8])], why: [&str; 3]) -> Pending {
    let (value, headers) = common::kafka::dead_letter(payload, headers, why);
    Pending { topic: dlq.to_owned(), partition: None, key: key.to_vec(), value, headers }
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

/// Writes every output, retrying transient failures with backoff until all are acknowledged.
/// An output the broker will never take (too large, refused) becomes a dead letter instead, so
/// it cannot hold the partition. Answers false when asked to stop before the end.
pub async fn deliver(
    config: &KafkaConfig,
    producer: &mut FutureProducer,
    dlq: &str,
    mut outputs: Vec<Pending>,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut backoff = Duration::from_millis(100);
    while !outputs.is_empty() {
        let results = join_all(outputs.iter().map(|output| {
            let mut record =
                FutureRecord::to(&output.topic).key(&output.key).payload(&output.value).headers(output.headers.clone());
            record.partition = output.partition;
            producer.send(record, Duration::from_secs(5))
        }))
        .await;
        let mut retry = Vec::new();
        let mut replace = false;
        for (output, result) in outputs.into_iter().zip(results) {
            match result {
                Ok(_) => {}
                Err((error, _)) if !kafka::is_refused_for_good(&error) || output.topic == dlq => {
                    replace |= kafka::needs_fresh_producer(&error);
                    retry.push(output);
                }
                Err((error, _)) => {
                    tracing::error!(%error, topic = %output.topic, "output refused by the broker; dead-lettered");
                    let why = ["unwritable", "produce", &error.to_string()];
                    retry.push(dead_letter(dlq, &output.key, &output.value, &header_pairs(&output.headers), why));
                }
            }
        }
        if retry.is_empty() {
            return true;
        }
        tracing::warn!(failed = retry.len(), "outputs not acknowledged; retrying");
        outputs = retry;
        if replace {
            match kafka::producer(config) {
                Ok(fresh) => {
                    std::mem::replace(producer, fresh).purge(PurgeConfig::default().queue().inflight());
                    tracing::warn!("the producer hit a fatal error (its idempotence state was refused); replaced it");
                }
                Err(error) => tracing::error!(%error, "cannot create a replacement producer"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {},
            _ = stop.changed() => return false,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    true
}

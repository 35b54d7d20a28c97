//! Rebuilding the dedupe window: when a processor is given partitions (at start, or after a
//! rebalance), it reads the content hashes of the signals processed on those partitions within
//! the window back from `signals.processed`, so a redelivery that arrives after a restart or a
//! hand-over is still recognised. Processed records keep their raw record's key, so raw
//! partition p's signals are on processed partition p.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::config::KafkaConfig;
use common::kafka::{self, topics};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use schemas::record::headers;

use crate::dedupe::Deduper;

/// Hears partition assignments; the runner reloads the window of each before processing it.
#[derive(Default)]
pub struct Assignments {
    pending: Mutex<Vec<i32>>,
}

impl ClientContext for Assignments {}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for element in list.elements() {
                if !pending.contains(&element.partition()) {
                    pending.push(element.partition());
                }
            }
        }
    }
}

impl Assignments {
    /// Partitions assigned since the last call.
    pub fn take(&self) -> Vec<i32> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

/// Reads the hashes of the last `window` of `partitions` of `signals.processed` into
/// `deduper`. Answers how many were read.
pub async fn reload(
    config: &KafkaConfig,
    partitions: &[i32],
    window: Duration,
    deduper: &Deduper,
) -> Result<usize, KafkaError> {
    let topic = config.topic(topics::SIGNALS_PROCESSED);
    let reader: StreamConsumer = kafka::consumer(config, &config.topic("stream-window"))?;
    let since_ms = common::time::now_ms().saturating_sub(window.as_millis() as u64) as i64;
    let mut wanted = TopicPartitionList::new();
    for &partition in partitions {
        wanted.add_partition_offset(&topic, partition, Offset::Offset(since_ms))?;
    }
    let starts = reader.offsets_for_times(wanted, Duration::from_secs(10))?;
    // Read each partition from its window start up to where it ends now.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for element in starts.elements() {
        let (_, high) = reader.fetch_watermarks(&topic, element.partition(), Duration::from_secs(10))?;
        if let Offset::Offset(start) = element.offset() {
            if start < high {
                ends.insert(element.partition(), high);
                assignment.add_partition_offset(&topic, element.partition(), Offset::Offset(start))?;
            }
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    reader.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut read = 0;
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, reader.recv()).await {
            Ok(message) => message?,
            Err(_) => {
                tracing::warn!(partitions = ?ends.keys().collect::<Vec<_>>(), "dedupe window reload timed out");
                break;
            }
        };
        let hash = message
            .headers()
            .and_then(|h| h.iter().find(|header| header.key == headers::CONTENT_HASH))
            .and_then(|header| std::str::from_utf8(header.value?).ok())
            .and_then(|hex| u128::from_str_radix(hex, 16).ok());
        if let Some(hash) = hash {
            deduper.remember(hash);
            read += 1;
        }
        if ends.get(&message.partition()).is_some_and(|&end| message.offset() + 1 >= end) {
            ends.remove(&message.partition());
        }
    }
    Ok(read)
}

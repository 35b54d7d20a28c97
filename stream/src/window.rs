//! Rebuilding a processor's state: when it is given partitions (at start, or after a
//! rebalance), it reads back the content hashes of the signals processed on those partitions
//! within the dedupe window, and the identity links made on them, so a redelivery after a
//! restart or a hand-over is still recognised and an identified visitor stays identified.
//! Outputs keep their raw record's key, so raw partition p's outputs are on partition p.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::config::KafkaConfig;
use common::kafka::{self, topics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use schemas::record::headers;

use crate::identity::{IdentityLink, NewLead};
use crate::processor::Processor;

/// Before a processor works on newly assigned `partitions`, it reads back what earlier owners
/// wrote for them: the content hashes of the last `window` of `signals.processed` (dedupe) and
/// every link and lead in `identities`. Answers (hashes, identity records) read.
pub async fn reload(
    config: &KafkaConfig,
    partitions: &[i32],
    window: Duration,
    processor: &mut Processor,
) -> Result<(usize, usize), KafkaError> {
    let since_ms = common::time::now_ms().saturating_sub(window.as_millis() as u64) as i64;
    let hashes = replay(config, &config.topic(topics::SIGNALS_PROCESSED), partitions, Some(since_ms), |message| {
        let hash = header(message, headers::CONTENT_HASH).and_then(|hex| u128::from_str_radix(hex, 16).ok());
        hash.map(|hash| processor.deduper().remember(hash)).is_some()
    })
    .await?;
    let links = replay(config, &config.topic(topics::IDENTITIES), partitions, None, |message| {
        let bytes = message.payload().unwrap_or_default();
        if header(message, headers::IDENTITY_KIND) == Some("lead") {
            let lead = serde_json::from_slice::<NewLead>(bytes).ok();
            return lead.map(|lead| processor.identities().new_lead(&lead.org, &lead.email)).is_some();
        }
        let link = serde_json::from_slice::<IdentityLink>(bytes).ok();
        link.map(|link| processor.identities().link(&link.org, &link.anonymous_id, &link.email)).is_some()
    })
    .await?;
    Ok((hashes, links))
}

fn header<'m>(message: &'m BorrowedMessage<'_>, name: &str) -> Option<&'m str> {
    let header = message.headers()?.iter().find(|header| header.key == name)?;
    std::str::from_utf8(header.value?).ok()
}

/// Reads `partitions` of `topic` from `since_ms` (or the beginning) to where they end now,
/// handing each record to `apply`; answers how many it accepted.
async fn replay(
    config: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    since_ms: Option<i64>,
    mut apply: impl FnMut(&BorrowedMessage<'_>) -> bool,
) -> Result<usize, KafkaError> {
    let reader: StreamConsumer = kafka::consumer(config, &config.topic("stream-replay"))?;
    let mut wanted = TopicPartitionList::new();
    for &partition in partitions {
        wanted.add_partition_offset(topic, partition, since_ms.map_or(Offset::Beginning, Offset::Offset))?;
    }
    let starts = match since_ms {
        Some(_) => reader.offsets_for_times(wanted, Duration::from_secs(10))?,
        None => wanted,
    };
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for element in starts.elements() {
        let (low, high) = reader.fetch_watermarks(topic, element.partition(), Duration::from_secs(10))?;
        let start = match element.offset() {
            Offset::Offset(start) => start.max(low),
            Offset::Beginning => low,
            _ => high, // no record at or after the time
        };
        if start < high {
            ends.insert(element.partition(), high);
            assignment.add_partition_offset(topic, element.partition(), Offset::Offset(start))?;
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    reader.assign(&assignment)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut accepted = 0;
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = match tokio::time::timeout(left, reader.recv()).await {
            Ok(message) => message?,
            Err(_) => {
                tracing::warn!(%topic, partitions = ?ends.keys().collect::<Vec<_>>(), "replay timed out");
                break;
            }
        };
        if apply(&message) {
            accepted += 1;
        }
        if ends.get(&message.partition()).is_some_and(|&end| message.offset() + 1 >= end) {
            ends.remove(&message.partition());
        }
    }
    Ok(accepted)
}

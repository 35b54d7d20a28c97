//! Restoring a processor's state when it is given partitions (at start, or after a rebalance):
//! the dedupe window from `stream.dedupe` and the identity links and leads from `identities`,
//! both written in the same transactions as the outputs they describe. Each store reads its own
//! changelog's records ([`crate::dedupe::Deduper::restore_record`],
//! [`crate::identity::Identities::restore_record`]); this drives the reading. Only those changelogs
//! are read, so a restore costs time in proportion to the state (32 bytes an entry in records of
//! a batch each, a record per link or lead with compaction keeping one per key), never to the
//! traffic or the size of the signals.
//!
//! A partition is not processed until its state is whole: first the group's committed offsets
//! of the partitions are fetched, which waits until no transaction of an earlier owner is
//! pending on them, then each changelog partition is read to its end (the last stable offset).

use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::{Offset, TopicPartitionList};
use runtime::config::KafkaConfig;
use runtime::kafka::{self, topics, Assignments};
use runtime::stage::{self, Stage, Status};
use tokio::sync::watch;

use crate::processor::Processor;

/// What a restore read back.
#[derive(Debug, Default, Clone, Copy)]
pub struct Restored {
    /// Dedupe entries kept (those of the changelog still within the window).
    pub hashes: u64,
    /// Links and leads.
    pub identities: u64,
    /// Changelog records read.
    pub records: u64,
}

/// Restores the state of `partitions` into `processor`. Answers None when asked to stop first.
pub async fn restore(
    config: &KafkaConfig,
    consumer: &std::sync::Arc<StreamConsumer<Assignments>>,
    raw_topics: &[String],
    partitions: &[i32],
    processor: &mut Processor,
    stage: &Stage,
    stop: &mut watch::Receiver<bool>,
) -> Result<Option<Restored>, KafkaError> {
    let started = Instant::now();
    if !await_stable_offsets(consumer, raw_topics, partitions, stop).await {
        return Ok(None);
    }
    let mut restored = Restored::default();
    let now_ms = runtime::time::now_ms();
    let progress = |records: u64| {
        stage::fault_point("stream.restoring");
        stage.set(Status::Restoring { partitions: partitions.to_vec(), records });
        metrics::gauge!(stage::RESTORE_RECORDS, "stage" => "stream").set(records as f64);
    };
    let dedupe = config.topic(topics::DEDUPE);
    let read = read_to_end(config, &dedupe, partitions, stop, &mut restored.records, &progress, |message| {
        restored.hashes += processor.deduper().restore_record(message, now_ms) as u64;
    })
    .await?;
    if !read {
        return Ok(None);
    }
    let identities = config.topic(topics::IDENTITIES);
    let read = read_to_end(config, &identities, partitions, stop, &mut restored.records, &progress, |message| {
        restored.identities += processor.identities().restore_record(message) as u64;
    })
    .await?;
    if !read {
        return Ok(None);
    }
    progress(restored.records);
    metrics::histogram!(stage::RESTORE_SECONDS, "stage" => "stream").record(started.elapsed().as_secs_f64());
    tracing::info!(
        ?partitions,
        hashes = restored.hashes,
        identities = restored.identities,
        records = restored.records,
        took_ms = started.elapsed().as_millis() as u64,
        "state restored"
    );
    Ok(Some(restored))
}

/// Waits until the group's committed offsets of `partitions` are stable: an earlier owner's
/// transaction on them has committed or aborted (it times out if that owner died). Answers
/// false when asked to stop first.
async fn await_stable_offsets(
    consumer: &std::sync::Arc<StreamConsumer<Assignments>>,
    raw_topics: &[String],
    partitions: &[i32],
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut wanted = TopicPartitionList::new();
    for topic in raw_topics {
        for &partition in partitions {
            wanted.add_partition(topic, partition);
        }
    }
    loop {
        let (asking, wanted) = (std::sync::Arc::clone(consumer), wanted.clone());
        let answer = tokio::task::spawn_blocking(move || asking.committed_offsets(wanted, Duration::from_secs(30)));
        tokio::select! {
            answer = answer => match answer {
                Ok(Ok(_)) => return true,
                Ok(Err(error)) => tracing::warn!(%error, "committed offsets not known yet; asking again"),
                Err(error) => tracing::warn!(%error, "committed offsets not known yet; asking again"),
            },
            _ = stop.changed() => return false,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stop.changed() => return false,
        }
    }
}

/// Reads `partitions` of `topic` from their beginning to their end, handing each record to
/// `apply`, counting them in `records` and telling `progress` at the first and every 10 000th. Broker trouble is
/// waited out; answers false when asked to stop first.
async fn read_to_end(
    config: &KafkaConfig,
    topic: &str,
    partitions: &[i32],
    stop: &mut watch::Receiver<bool>,
    records: &mut u64,
    progress: &(dyn Fn(u64) + Sync),
    mut apply: impl FnMut(&BorrowedMessage<'_>),
) -> Result<bool, KafkaError> {
    let reader = std::sync::Arc::new(kafka::partition_reader(config)?);
    // An empty partition has nothing to read: its end is known without waiting for a fetch.
    let (asking, name, wanted) = (std::sync::Arc::clone(&reader), topic.to_owned(), partitions.to_vec());
    let mut left = tokio::task::spawn_blocking(move || {
        let mut holding = Vec::new();
        for partition in wanted {
            let (low, high) = asking.fetch_watermarks(&name, partition, Duration::from_secs(30))?;
            if high > low {
                holding.push(partition);
            }
        }
        Ok::<_, KafkaError>(holding)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))?;
    let mut assignment = TopicPartitionList::new();
    for &partition in &left {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    reader.assign(&assignment)?;
    let mut quiet_since = Instant::now();
    while !left.is_empty() {
        let next = tokio::select! {
            next = tokio::time::timeout(Duration::from_secs(30), reader.recv()) => next,
            _ = stop.changed() => return Ok(false),
        };
        match next {
            Ok(Ok(message)) => {
                quiet_since = Instant::now();
                apply(&message);
                *records += 1;
                if *records == 1 || records.is_multiple_of(10_000) {
                    progress(*records);
                }
            }
            Ok(Err(KafkaError::PartitionEOF(partition))) => left.retain(|&p| p != partition),
            Ok(Err(error)) => tracing::warn!(%error, %topic, "restore read failed; reading on"),
            Err(_) => tracing::warn!(
                %topic,
                partitions = ?left,
                quiet_s = quiet_since.elapsed().as_secs(),
                "restore has not reached the end of these partitions yet; still waiting (is the broker up?)"
            ),
        }
    }
    Ok(true)
}

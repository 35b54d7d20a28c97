//! A stage's batch: filling it from a consumer, and committing it, in a transaction with its
//! outputs or as stored offsets once its writes are done.

use std::time::Duration;

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, Producer};

/// Commits the open transaction of `producer` with `offsets` (the next offset to read of each
/// partition the batch came from) as `group`'s consumer offsets: the batch's outputs and its
/// offsets become visible together, or neither. `stage` names the fault points passed on the
/// way (`{stage}.before_commit`). On failure the transaction is aborted and the error
/// returned: the caller's stage must restart from its committed state.
pub async fn commit_transaction(
    producer: &FutureProducer,
    offsets: rdkafka::TopicPartitionList,
    group: rdkafka::consumer::ConsumerGroupMetadata,
    stage: &str,
) -> Result<(), KafkaError> {
    let committing = producer.clone();
    let fault = format!("{stage}.before_commit");
    let call = super::clients::detached(move || {
        committing.send_offsets_to_transaction(&offsets, &group, TRANSACTION_CALL_TIMEOUT)?;
        crate::stage::fault_point(&fault);
        committing.commit_transaction(TRANSACTION_CALL_TIMEOUT)
    });
    let Ok(result) = tokio::time::timeout(TRANSACTION_WATCHDOG, call).await else {
        // librdkafka can wait past its own timeouts for a transaction coordinator that died
        // (seen with a broker SIGKILLed under load): the stage would hang for good. It fails
        // instead, and its next run's producer, with the same transactional id, fences this one.
        tracing::warn!(
            stage,
            watchdog_s = TRANSACTION_WATCHDOG.as_secs(),
            "the transaction's commit did not answer (a lost coordinator); the stage restarts"
        );
        return Err(KafkaError::Canceled);
    };
    if result.is_err() {
        abort_transaction(producer).await;
    }
    result
}

/// The timeout given to each of librdkafka's transactional calls.
const TRANSACTION_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit (its two calls) may take before the stage gives up on it and restarts.
pub const TRANSACTION_WATCHDOG: Duration = Duration::from_secs(65);

/// The next offset to read of each partition `batch` came from: what a batch commits.
pub fn next_offsets(batch: &[rdkafka::message::BorrowedMessage<'_>]) -> rdkafka::TopicPartitionList {
    use rdkafka::message::Message;
    let mut next: Vec<(&str, i32, i64)> = Vec::new();
    for message in batch {
        let (topic, partition, offset) = (message.topic(), message.partition(), message.offset() + 1);
        match next.iter_mut().find(|(t, p, _)| *t == topic && *p == partition) {
            Some(entry) => entry.2 = entry.2.max(offset),
            None => next.push((topic, partition, offset)),
        }
    }
    let mut list = rdkafka::TopicPartitionList::with_capacity(next.len());
    for (topic, partition, offset) in next {
        // Only a negative offset is refused, and these are all past a record's.
        let _ = list.add_partition_offset(topic, partition, rdkafka::Offset::Offset(offset));
    }
    list
}

/// Aborts the open transaction of `producer`, if it can; the stage restarts either way.
pub async fn abort_transaction(producer: &FutureProducer) {
    let aborting = producer.clone();
    let call = super::clients::detached(move || aborting.abort_transaction(TRANSACTION_CALL_TIMEOUT));
    if let Ok(Err(error)) | Err(error) =
        tokio::time::timeout(TRANSACTION_WATCHDOG, call).await.map_err(|_| KafkaError::Canceled)
    {
        tracing::warn!(%error, "the transaction could not be aborted; it times out on the broker");
    }
}

/// Commits `offsets` (with their metadata) for the consumer's group, and waits for the broker.
pub async fn commit_offsets<C: ConsumerContext + 'static>(
    consumer: &std::sync::Arc<StreamConsumer<C>>,
    offsets: rdkafka::TopicPartitionList,
) -> Result<(), KafkaError> {
    use rdkafka::consumer::{CommitMode, Consumer};
    let committing = std::sync::Arc::clone(consumer);
    tokio::task::spawn_blocking(move || committing.commit(&offsets, CommitMode::Sync))
        .await
        .unwrap_or(Err(KafkaError::Canceled))
}

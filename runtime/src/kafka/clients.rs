//! Every producer and consumer in sigstage is built here, so delivery guarantees (acks=all,
//! idempotence, commit-after-store, `read_committed`) are set once.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{ConsumerContext, DefaultConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, FutureProducer, Producer};
use rdkafka::{ClientConfig, ClientContext};

use crate::config::KafkaConfig;

/// How long a stage's transaction may stay open. A stage that dies mid-transaction holds back
/// `read_committed` readers of the partitions it wrote for at most this long (a restart with the
/// same transactional id aborts it at once).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest record sigstage writes (a processed signal is the raw one plus its description,
/// so this is above the edge's body limit). Topics sigstage creates accept it.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// How long a consumer may go silent before its group gives its partitions to another.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn base(config: &KafkaConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("client.id", "sigstage")
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    client
}

/// A producer that only reports success once every in-sync replica has the record, never
/// duplicates on retry, and batches for throughput. Its queue is bounded: when it is full,
/// sends fail with `QueueFull` and the caller must push back instead of buffering.
pub fn producer(config: &KafkaConfig) -> Result<FutureProducer, KafkaError> {
    base(config)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", config.linger_ms.to_string())
        .set("batch.num.messages", "10000")
        .set("batch.size", "1048576")
        .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
        .set("queue.buffering.max.messages", config.queue_max_messages.to_string())
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", config.message_timeout_ms.to_string())
        .create()
}

/// A producer whose writes are atomic with its stage's consumer offsets: one per stage
/// instance, `transactional_id` stable across the stage's restarts, so a restart fences the
/// previous incarnation and aborts what it left open. Its transactions are initialised here.
pub async fn transactional_producer(
    config: &KafkaConfig,
    transactional_id: &str,
) -> Result<FutureProducer, KafkaError> {
    let timeout = TRANSACTION_TIMEOUT.as_millis() as u32;
    let producer: FutureProducer = base(config)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", timeout.to_string())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1048576")
        .set("message.max.bytes", MAX_RECORD_BYTES.to_string())
        .set("queue.buffering.max.messages", config.queue_max_messages.to_string())
        .set("queue.buffering.max.kbytes", "262144")
        .set("message.timeout.ms", config.message_timeout_ms.min(timeout).to_string())
        .create()?;
    let initialising = producer.clone();
    blocking(move || initialising.init_transactions(Duration::from_secs(30))).await?;
    Ok(producer)
}

/// A transactional id unique to this process and `stage` (e.g. `stream-0`), under the
/// deployment's prefix.
pub fn transactional_id(config: &KafkaConfig, stage: &str) -> String {
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let process = PROCESS.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        (nanos.as_nanos() as u64) ^ ((std::process::id() as u64) << 32)
    });
    config.topic(&format!("{stage}.{process:016x}"))
}

/// Runs a blocking client call on a blocking thread.
pub(super) async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(call).await.unwrap_or(Err(KafkaError::Canceled))
}

/// [`blocking`], on a thread of its own that is left behind if the call never returns. For the
/// transactional calls: librdkafka can wait for a dead transaction coordinator without end,
/// whatever timeout it was given (seen in `rd_kafka_send_offsets_to_transaction` after a broker
/// was SIGKILLed). The caller's watchdog gives up on it; a `spawn_blocking` task would then hold
/// up the runtime's shutdown for good, since a runtime waits for its blocking tasks to end.
pub(super) async fn detached<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    let (answer, answered) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new().name("kafka-txn".into()).spawn(move || {
        let _ = answer.send(call());
    });
    match spawned {
        Ok(_) => answered.await.unwrap_or(Err(KafkaError::Canceled)),
        Err(_) => Err(KafkaError::Canceled),
    }
}

/// A consumer for a stage: it commits nothing by itself (the stage commits each batch's offsets,
/// in its transaction or once its writes are done) and reads only committed records.
pub fn stage_consumer<C: ConsumerContext + 'static>(
    config: &KafkaConfig,
    group_id: &str,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    consumer_config(config, group_id)
        .set("enable.auto.commit", "false")
        // For the lag metric: the stages' context (`Assignments`) reads them; rdkafka's default
        // context would log each, several kilobytes every 5 s, so no other client asks for them.
        .set("statistics.interval.ms", "5000")
        .create_with_context(context)
}

/// A consumer that reads assigned partitions to their end (it reports each end as a
/// `PartitionEOF` error) and never joins a group or commits: for restoring state.
pub fn partition_reader(config: &KafkaConfig) -> Result<StreamConsumer<ReaderContext>, KafkaError> {
    consumer_config(config, &config.topic("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // A partition's end is reported after a fetch answers: do not let the broker hold one
        // for its default half second when there is nothing more.
        .set("fetch.wait.max.ms", "50")
        .create_with_context(ReaderContext)
}

/// A reader's context: reaching a partition's end is what it waits for, not an error to log.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::error!(%error, reason, "Kafka client error");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// A consumer in `group_id` that commits only offsets the caller stored, i.e. records whose
/// processing finished (`enable.auto.offset.store=false`; stored offsets are committed in the
/// background and on close).
pub fn consumer(config: &KafkaConfig, group_id: &str) -> Result<StreamConsumer, KafkaError> {
    consumer_with_context(config, group_id, DefaultConsumerContext)
}

/// [`consumer`], with a context that hears about rebalances and other client events.
pub fn consumer_with_context<C: ConsumerContext + 'static>(
    config: &KafkaConfig,
    group_id: &str,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    consumer_config(config, group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .create_with_context(context)
}

fn consumer_config(config: &KafkaConfig, group_id: &str) -> ClientConfig {
    let mut client = base(config);
    client
        .set("group.id", group_id)
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", SESSION_TIMEOUT.as_millis().to_string())
        .set("enable.partition.eof", "false")
        // Fetch up to 32 MiB per partition, so a record far above what sigstage writes (from
        // another writer) still arrives and is dead-lettered instead of stalling its partition.
        .set("max.partition.fetch.bytes", (32 << 20).to_string())
        .set("fetch.max.bytes", (64 << 20).to_string())
        .set("receive.message.max.bytes", ((64 << 20) + 4096).to_string());
    client
}

/// A small client for cluster questions (is the broker reachable?), kept apart from the data
/// path so a readiness probe never queues behind produced records.
#[derive(Clone)]
pub struct MetadataClient(Arc<BaseProducer>);

impl MetadataClient {
    pub fn new(config: &KafkaConfig) -> Result<Self, KafkaError> {
        Ok(Self(Arc::new(base(config).create()?)))
    }

    /// Fetches cluster metadata; answers the number of brokers.
    pub async fn ping(&self, timeout: Duration) -> Result<usize, KafkaError> {
        let producer = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || {
            producer.client().fetch_metadata(None, timeout).map(|metadata| metadata.brokers().len())
        })
        .await
        .unwrap_or(Err(KafkaError::Canceled))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_call_that_never_returns_does_not_hold_up_the_runtime() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let stuck = detached(|| -> Result<(), KafkaError> {
                loop {
                    std::thread::park(); // as librdkafka waiting for a dead coordinator
                }
            });
            assert!(tokio::time::timeout(Duration::from_millis(50), stuck).await.is_err(), "it never answers");
        });
        // With `spawn_blocking`, dropping the runtime would wait for the call for good.
        let (dropped, heard) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(runtime);
            let _ = dropped.send(());
        });
        assert!(heard.recv_timeout(Duration::from_secs(10)).is_ok(), "the runtime shut down");
    }
}

//! The one place Kafka clients are built. Every producer and consumer in sigstage comes from
//! here, so delivery guarantees (acks=all, idempotence, commit-after-store) are set once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, DefaultConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{BaseProducer, FutureProducer, Producer};
use rdkafka::{ClientConfig, ClientContext};

use crate::config::KafkaConfig;

/// Topic names, before the deployment's prefix (see [`KafkaConfig::topic`]).
pub mod topics {
    pub const SIGNALS_RAW: &str = "signals.raw";
    pub const SIGNALS_HISTORICAL: &str = "signals.raw.historical";
    pub const SIGNALS_PROCESSED: &str = "signals.processed";
    pub const IDENTITIES: &str = "identities";
    pub const WEBHOOKS_OUTBOX: &str = "webhooks.outbox";
    pub const SIGNALS_DLQ: &str = "signals.dlq";
    /// The stream's dedupe changelog: each content hash first seen, with its signal id.
    pub const DEDUPE: &str = "stream.dedupe";
    /// Claims, renewals and releases of edge instance ids (one partition: its order decides).
    pub const INSTANCES: &str = "instances";

    /// Every topic sigstage writes.
    pub const ALL: [&str; 8] = [
        SIGNALS_RAW,
        SIGNALS_HISTORICAL,
        SIGNALS_PROCESSED,
        IDENTITIES,
        WEBHOOKS_OUTBOX,
        SIGNALS_DLQ,
        DEDUPE,
        INSTANCES,
    ];

    /// Topics whose partition p must hold the same keys: a processor that owns raw partition p
    /// (live and historical) writes its outputs and state to partition p and restores from there.
    pub const COPARTITIONED: [&str; 5] = [SIGNALS_RAW, SIGNALS_HISTORICAL, SIGNALS_PROCESSED, IDENTITIES, DEDUPE];

    /// Topics that carry state: compacted, so they keep the latest record of each key for good.
    pub const COMPACTED: [&str; 1] = [IDENTITIES];

    /// State kept for a window only: compacted, and deleted once older than the window.
    pub const WINDOWED: [&str; 1] = [DEDUPE];
}

/// The partition a record keyed `key` goes to among `partitions`, as every sigstage producer
/// places it: librdkafka's default partitioner (`consistent_random`), the CRC-32 of the key.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    (crc32fast::hash(key) % partitions.max(1) as u32) as i32
}

/// How long the dedupe window remembers a signal.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How long a stage's transaction may stay open. A stage that dies mid-transaction holds back
/// `read_committed` readers of the partitions it wrote for at most this long (a restart with the
/// same transactional id aborts it at once).
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest record sigstage writes (a processed signal is the raw one plus its description,
/// so this is above the edge's body limit). Topics sigstage creates accept it.
pub const MAX_RECORD_BYTES: usize = 4 << 20;

/// How long a consumer may go silent before its group gives its partitions to another.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

fn base(config: &KafkaConfig) -> ClientConfig {
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
    let result = blocking(move || {
        committing.send_offsets_to_transaction(&offsets, &group, Duration::from_secs(30))?;
        crate::stage::fault_point(&fault);
        committing.commit_transaction(Duration::from_secs(30))
    })
    .await;
    if result.is_err() {
        abort_transaction(producer).await;
    }
    result
}

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
    if let Err(error) = blocking(move || aborting.abort_transaction(Duration::from_secs(30))).await {
        tracing::warn!(%error, "the transaction could not be aborted; it times out on the broker");
    }
}

/// Runs a blocking client call on a blocking thread.
async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(call).await.unwrap_or(Err(KafkaError::Canceled))
}

/// A consumer for a stage: it commits nothing by itself (the stage commits each batch's offsets,
/// in its transaction or once its writes are done) and reads only committed records.
pub fn stage_consumer<C: ConsumerContext + 'static>(
    config: &KafkaConfig,
    group_id: &str,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    consumer_config(config, group_id).set("enable.auto.commit", "false").create_with_context(context)
}

/// A consumer that reads assigned partitions to their end (it reports each end as a
/// `PartitionEOF` error) and never joins a group or commits: for restoring state.
pub fn reader(config: &KafkaConfig) -> Result<StreamConsumer<ReaderContext>, KafkaError> {
    consumer_config(config, &config.topic("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
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
        .set("statistics.interval.ms", "5000")
        .set("enable.partition.eof", "false")
        // Fetch up to 32 MiB per partition, so a record far above what sigstage writes (from
        // another writer) still arrives and is dead-lettered instead of stalling its partition.
        .set("max.partition.fetch.bytes", (32 << 20).to_string())
        .set("fetch.max.bytes", (64 << 20).to_string())
        .set("receive.message.max.bytes", ((64 << 20) + 4096).to_string());
    client
}

/// Adds records to `batch` until it holds `max` or `window` has passed since the call (a
/// deadline, so a trickle of records cannot keep a batch open).
pub async fn fill_batch<'c, C: ConsumerContext + 'static>(
    consumer: &'c StreamConsumer<C>,
    batch: &mut Vec<rdkafka::message::BorrowedMessage<'c>>,
    max: usize,
    window: Duration,
) {
    let deadline = tokio::time::Instant::now() + window;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message),
            _ => break,
        }
    }
}

/// Commits the offsets stored so far, before a consumer stops; having stored none is fine.
pub fn commit_stored<C: ConsumerContext + 'static>(consumer: &StreamConsumer<C>) -> Result<(), KafkaError> {
    use rdkafka::consumer::{CommitMode, Consumer};
    consumer.commit_consumer_state(CommitMode::Sync).or_else(|error| match error {
        KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset) => Ok(()),
        error => Err(error),
    })
}

/// Why sigstage's topics are not fit to run on.
#[derive(Debug, thiserror::Error)]
pub enum TopicsError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("topic {topic}: {code}")]
    Refused { topic: String, code: RDKafkaErrorCode },
    #[error(
        "topics {0} must have the same partition count: a processor that owns partition p of the raw \
         topics writes to and rebuilds its state from partition p of the others. Give them the same \
         count (with the pipeline stopped and drained, since keys move to other partitions)"
    )]
    NotCopartitioned(String),
}

/// Creates every sigstage topic that is missing, brings the settings sigstage owns (retention,
/// compaction, `min.insync.replicas`, record size) of existing ones up to date, and refuses to
/// go on when the co-partitioned topics differ in partition count. Every role runs this first.
pub async fn prepare_topics(config: &KafkaConfig) -> Result<(), TopicsError> {
    let names: Vec<String> = topics::ALL.iter().map(|name| config.topic(name)).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    ensure_topics(config, &names).await?;
    // A topic just created may not be in every broker's metadata yet: it shows no partitions.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let counts = loop {
        let counts = partition_counts(config, &names).await?;
        let settled = names.iter().all(|name| counts.get(*name).is_some_and(|&count| count > 0));
        if settled || std::time::Instant::now() > deadline {
            break counts;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let copartitioned: Vec<(String, usize)> = topics::COPARTITIONED
        .iter()
        .map(|name| {
            let topic = config.topic(name);
            let count = counts.get(&topic).copied().unwrap_or(0);
            (topic, count)
        })
        .collect();
    if copartitioned.iter().any(|(_, count)| *count != copartitioned[0].1) {
        let list = copartitioned.iter().map(|(topic, count)| format!("{topic} ({count})")).collect::<Vec<_>>();
        return Err(TopicsError::NotCopartitioned(list.join(", ")));
    }
    Ok(())
}

/// Creates the named topics (full names) with the configured partitions, replicas and
/// settings; for topics that exist, sets what differs from those settings.
pub async fn ensure_topics(config: &KafkaConfig, names: &[&str]) -> Result<(), TopicsError> {
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    let admin: AdminClient<DefaultClientContext> = base(config).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let (replicas, min_insync) = replication(config).await?;
    let settings: Vec<Vec<(&str, String)>> =
        names.iter().map(|name| topic_settings(config, name, min_insync)).collect();
    let new_topics: Vec<NewTopic<'_>> = names
        .iter()
        .zip(&settings)
        .map(|(name, settings)| {
            let short = name.strip_prefix(config.topic_prefix.as_str()).unwrap_or(name);
            let partitions = if short == topics::INSTANCES { 1 } else { config.partitions };
            let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
            settings.iter().fold(topic, |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let mut existing = Vec::new();
    for (result, settings) in admin.create_topics(&new_topics, &options).await?.into_iter().zip(&settings) {
        match result {
            Ok(_) => {}
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => existing.push((topic, settings)),
            Err((topic, code)) => return Err(TopicsError::Refused { topic, code }),
        }
    }
    if existing.is_empty() {
        return Ok(());
    }
    let resources: Vec<ResourceSpecifier<'_>> =
        existing.iter().map(|(topic, _)| ResourceSpecifier::Topic(topic.as_str())).collect();
    let described = admin.describe_configs(&resources, &options).await?;
    let mut changes = Vec::new();
    for ((topic, settings), described) in existing.iter().zip(described) {
        let described = described.map_err(|code| TopicsError::Refused { topic: topic.clone(), code })?;
        let stale: Vec<String> = settings
            .iter()
            .filter(|(key, value)| described.get(key).and_then(|entry| entry.value.as_deref()) != Some(value.as_str()))
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        if !stale.is_empty() {
            tracing::info!(%topic, settings = %stale.join(" "), "updating topic settings");
            let change = AlterConfig::new(ResourceSpecifier::Topic(topic.as_str()));
            changes.push(settings.iter().fold(change, |change, (key, value)| change.set(key, value)));
        }
    }
    if !changes.is_empty() {
        for result in admin.alter_configs(&changes, &options).await? {
            result.map_err(|(resource, code)| TopicsError::Refused { topic: format!("{resource:?}"), code })?;
        }
    }
    Ok(())
}

/// Replicas and `min.insync.replicas` of new topics: the configured ones, or three replicas (as
/// many as there are brokers, below three) and one fewer in sync (at most two, at least one).
async fn replication(config: &KafkaConfig) -> Result<(i32, i32), KafkaError> {
    let replicas = match config.replication_factor {
        Some(replicas) => replicas,
        None => (MetadataClient::new(config)?.ping(Duration::from_secs(10)).await? as i32).clamp(1, 3),
    };
    let min_insync = config.min_insync_replicas.unwrap_or((replicas - 1).clamp(1, 2));
    if replicas < 3 {
        tracing::info!(replicas, "topics are created with fewer than 3 replicas: losing a broker loses records");
    }
    Ok((replicas, min_insync))
}

/// The settings sigstage owns on topic `name` (full name).
fn topic_settings(config: &KafkaConfig, name: &str, min_insync: i32) -> Vec<(&'static str, String)> {
    let short = name.strip_prefix(config.topic_prefix.as_str()).unwrap_or(name);
    let mut settings =
        vec![("max.message.bytes", MAX_RECORD_BYTES.to_string()), ("min.insync.replicas", min_insync.to_string())];
    if topics::WINDOWED.contains(&short) {
        // One record per key, dropped once older than the window; an hour a segment so the
        // oldest hour goes as a whole.
        settings.push(("cleanup.policy", "compact,delete".into()));
        settings.push(("retention.ms", (DEDUPE_WINDOW.as_millis() + 3_600_000).to_string()));
        settings.push(("segment.ms", "3600000".into()));
    } else if short == topics::INSTANCES {
        // Ordered by the broker's clock; an hour is many lease lengths.
        settings.push(("cleanup.policy", "delete".into()));
        settings.push(("retention.ms", "3600000".into()));
        settings.push(("segment.ms", "600000".into()));
        settings.push(("message.timestamp.type", "LogAppendTime".into()));
    } else if topics::COMPACTED.contains(&short) {
        // The latest record of each key, kept for good; a segment a day so compaction can run.
        settings.push(("cleanup.policy", "compact".into()));
        settings.push(("segment.ms", (24 * 3_600_000).to_string()));
    } else if let Some(&hours) = config.retention_hours.get(short) {
        settings.push(("cleanup.policy", "delete".into()));
        settings.push(("retention.ms", if hours < 0 { "-1".into() } else { (hours * 3_600_000).to_string() }));
    }
    settings
}

/// How many partitions each of the named topics has.
async fn partition_counts(
    config: &KafkaConfig,
    names: &[&str],
) -> Result<std::collections::HashMap<String, usize>, KafkaError> {
    let client: BaseProducer = base(config).create()?;
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut counts = std::collections::HashMap::new();
        for name in names {
            let metadata = client.client().fetch_metadata(Some(&name), Duration::from_secs(10))?;
            for topic in metadata.topics() {
                counts.insert(topic.name().to_owned(), topic.partitions().len());
            }
        }
        Ok(counts)
    })
    .await
    .unwrap_or(Err(KafkaError::Canceled))
}

/// Hears partition assignments, so a stage can restore what it keeps per partition before it
/// processes records of newly assigned ones; and the client's statistics, for the consumer lag
/// of each partition.
#[derive(Default)]
pub struct Assignments {
    stage: &'static str,
    pending: Mutex<Vec<i32>>,
    rebalances: std::sync::atomic::AtomicU64,
}

impl Assignments {
    /// For the stage named `stage` (the label of its lag metric).
    pub fn new(stage: &'static str) -> Self {
        Self { stage, pending: Mutex::default(), rebalances: Default::default() }
    }

    /// How many rebalances (revocations and assignments) this consumer has seen. A batch read
    /// across one is dropped unwritten: some of its records may belong to partitions now owned
    /// by another member, whose offsets this one could still commit under the new generation
    /// (the coordinator checks the member and generation, not who owns the partition). The
    /// records of partitions still owned are read again from the committed offsets.
    pub fn rebalances(&self) -> u64 {
        self.rebalances.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Partitions assigned since the last call.
    pub fn take(&self) -> Vec<i32> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }
}

impl ClientContext for Assignments {
    fn stats(&self, statistics: rdkafka::Statistics) {
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                if *partition >= 0 && stats.consumer_lag >= 0 {
                    let labels = [
                        ("stage", self.stage.to_owned()),
                        ("topic", topic.clone()),
                        ("partition", partition.to_string()),
                    ];
                    metrics::gauge!(crate::stage::CONSUMER_LAG, &labels).set(stats.consumer_lag as f64);
                }
            }
        }
    }
}

impl ConsumerContext for Assignments {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

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

/// The largest part of a record a dead letter keeps; its headers say how long the record was,
/// and a dead letter always fits in a Kafka record.
pub const DEAD_LETTER_MAX_BYTES: usize = 64 * 1024;

/// A dead letter's value and headers: at most the first [`DEAD_LETTER_MAX_BYTES`] of the record,
/// why it could not be handled (`reason`, `stage`, `detail`), then the record's own headers.
pub fn dead_letter(payload: &[u8], own_headers: &[(&str, &[u8])], why: [&str; 3]) -> (Vec<u8>, OwnedHeaders) {
    use schemas::record::headers;
    let [reason, stage, detail] = why;
    let size = payload.len().to_string();
    let mut all = OwnedHeaders::new()
        .insert(Header { key: headers::DLQ_REASON, value: Some(reason) })
        .insert(Header { key: headers::DLQ_STAGE, value: Some(stage) })
        .insert(Header { key: headers::DLQ_DETAIL, value: Some(detail) })
        .insert(Header { key: headers::DLQ_ORIGINAL_BYTES, value: Some(size.as_str()) });
    for &(key, value) in own_headers {
        all = all.insert(Header { key, value: Some(value) });
    }
    (payload[..payload.len().min(DEAD_LETTER_MAX_BYTES)].to_vec(), all)
}

/// A record's headers as (name, value) pairs.
pub fn header_pairs<H: Headers>(headers: &H) -> Vec<(&str, &[u8])> {
    headers.iter().filter_map(|h| Some((h.key, h.value?))).collect()
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

/// True when retrying the same operation later may succeed (broker down, queue full,
/// timeouts); false for errors that will repeat (bad config, record too large, auth).
pub fn is_transient(error: &KafkaError) -> bool {
    let code = match error {
        KafkaError::MessageProduction(code)
        | KafkaError::MessageConsumption(code)
        | KafkaError::MetadataFetch(code)
        | KafkaError::AdminOp(code) => *code,
        KafkaError::Canceled => return true,
        _ => return false,
    };
    matches!(
        code,
        RDKafkaErrorCode::QueueFull
            | RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::RequestTimedOut
            | RDKafkaErrorCode::OperationTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::NetworkException
            | RDKafkaErrorCode::LeaderNotAvailable
            | RDKafkaErrorCode::NotLeaderForPartition
            | RDKafkaErrorCode::NotEnoughReplicas
            | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
            | RDKafkaErrorCode::CoordinatorNotAvailable
            | RDKafkaErrorCode::NotCoordinator
    )
}

/// Errors after which a producer must be replaced: the idempotent producer hit a fatal error (the
/// broker refused its idempotence state), and every later send would fail the same way. A lost
/// broker is not one: the producer reconnects by itself.
pub fn needs_fresh_producer(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::OutOfOrderSequenceNumber
                | RDKafkaErrorCode::UnknownProducerId
                | RDKafkaErrorCode::InvalidProducerEpoch
                | RDKafkaErrorCode::InvalidProducerIdMapping
        )
    )
}

/// True when the broker (or the client) will refuse this record however often it is sent: it
/// is too large or malformed. Anything else, unknown errors included, may pass on a retry.
pub fn is_refused_for_good(error: &KafkaError) -> bool {
    matches!(
        error,
        KafkaError::MessageProduction(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::MessageBatchTooLarge
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::BadMessage
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_errors_are_told_from_permanent_ones() {
        let cases = [
            (KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), true),
            (KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), true),
            (KafkaError::MessageProduction(RDKafkaErrorCode::AllBrokersDown), true),
            (KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge), false),
            (KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed), false),
            (KafkaError::ClientCreation("bad".into()), false),
        ];
        for (error, transient) in cases {
            assert_eq!(is_transient(&error), transient, "{error}");
        }
        assert!(is_refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)));
        assert!(
            !is_refused_for_good(&KafkaError::MessageProduction(RDKafkaErrorCode::Unknown)),
            "retried, not dropped"
        );
    }
}
